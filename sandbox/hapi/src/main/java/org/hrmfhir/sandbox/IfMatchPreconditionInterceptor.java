package org.hrmfhir.sandbox;

import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.rest.api.Constants;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.server.exceptions.BaseServerResponseException;
import ca.uhn.fhir.rest.server.exceptions.PreconditionFailedException;
import ca.uhn.fhir.rest.server.exceptions.ResourceVersionConflictException;
import org.apache.commons.lang3.StringUtils;

/**
 * Answers a failed {@code If-Match} version check with 412 Precondition Failed, as FHIR R4
 * specifies (http.html#concurrency), instead of HAPI's stock 409 Conflict.
 *
 * <p>Only requests that carried an {@code If-Match} header are touched, so other conflicts
 * (for example a delete blocked by references, or a concurrent-write clash without If-Match)
 * keep their 409. The OperationOutcome HAPI produced is passed through unchanged. Switch off with
 * {@code hrm.sandbox.if-match-412=false} to get stock HAPI's 409.
 */
@Interceptor
public class IfMatchPreconditionInterceptor {

	@Hook(Pointcut.SERVER_PRE_PROCESS_OUTGOING_EXCEPTION)
	public BaseServerResponseException toPreconditionFailed(RequestDetails theRequest, Throwable theException) {
		if (theRequest == null || StringUtils.isBlank(theRequest.getHeader(Constants.HEADER_IF_MATCH))) {
			return null;
		}
		for (Throwable t = theException; t != null; t = t.getCause()) {
			if (t instanceof ResourceVersionConflictException conflict) {
				return new PreconditionFailedException(conflict.getMessage(), conflict.getOperationOutcome());
			}
			if (t.getCause() == t) {
				break;
			}
		}
		return null;
	}
}
