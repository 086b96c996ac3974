"""The monthly audit summary over HTTP: JSON, the printable HTML, or the FHIR MeasureReport.
A caller bound to a practice reads that practice's report only (no PCN report)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, request
from werkzeug.exceptions import Forbidden, NotFound

from hrm_fhir import clock
from hrm_fhir.audit.measure_report import measure_report
from hrm_fhir.audit.outputs import previous_month
from hrm_fhir.audit.render import render_html, report_to_json
from hrm_fhir.audit.service import ReportScopeError, monthly_report, resolve_scope
from hrm_fhir.web.api.api_keys import caller, scoped_practice
from hrm_fhir.web.api.schemas import load_report_query
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.get("/monthly")
def monthly() -> Response:
    """``?month=YYYY-MM&practice=ID|pcn=ID&format=json|html|measure-report``."""
    query = load_report_query(request.args)
    if query.pcn is not None and caller().practice is not None:
        raise Forbidden("this credential is bound to one practice: no PCN report")
    practice = scoped_practice(query.practice)
    state = service_state()
    session = db_session()
    try:
        scope = resolve_scope(
            state.settings,
            session,
            practice=None if practice is None else practice.removeprefix("Organization/"),
            pcn=query.pcn,
        )
    except ReportScopeError as exc:
        raise NotFound(str(exc)) from exc
    month = query.month or previous_month(clock.today())
    report = monthly_report(session, state.rules, state.settings, month, scope)
    if query.format == "html":
        return Response(render_html(report), mimetype="text/html")
    body = measure_report(report) if query.format == "measure-report" else report_to_json(report)
    mimetype = "application/fhir+json" if query.format == "measure-report" else "application/json"
    return Response(orjson.dumps(body), mimetype=mimetype)
