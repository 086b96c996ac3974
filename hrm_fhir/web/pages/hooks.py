"""Before every page: the off switch, the signed-in user and the CSRF check; HTML error pages;
what every template can use (the user, their permissions, rule sources)."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from hrm_fhir import display
from hrm_fhir.errors import FHIRAuthError, FHIRCapabilityError, FHIRError, FHIRTemporaryError
from hrm_fhir.untrusted import is_http_url
from hrm_fhir.web.pages.blueprint import DISABLED, TO_TURN_ON, bp
from hrm_fhir.web.pages.csrf import CSRFError, protect
from hrm_fhir.web.pages.forms import state
from hrm_fhir.web.pages.session import (
    ACKNOWLEDGE_ROLES,
    CONTACT_ROLES,
    SIGN_OFF_ROLES,
    can,
    load_user,
    signed_in,
)
from hrm_fhir.web.pages.sources import Source, sources_for
from hrm_fhir.web.state import service_state

logger = logging.getLogger(__name__)


@bp.before_request
def before_page() -> ResponseReturnValue | None:
    if request.endpoint == "pages.static":
        return None  # the stylesheet holds no patient data: served even when the pages are off
    reason = current_app.config.get(DISABLED)
    if reason:
        return error_page(
            503,
            "The pages are switched off",
            f"The service's pages cannot run: {reason}. {TO_TURN_ON} The API and the scheduled "
            "sweeps are not affected.",
        )
    redirected = load_user()
    if redirected is not None:
        return redirected
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        protect()
    return None


@bp.after_request
def no_store(response: Any) -> Any:
    """Pages show patient data: no caching by the browser or a proxy; no framing."""
    if request.endpoint != "pages.static":
        response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'none'; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )
    return response


# What people read (hrm_fhir/display.py): one date style, human units, the age of a result.
for _name, _filter in (
    ("day", display.day),
    ("age", display.age),
    ("quantity", display.quantity),
    ("unit", display.unit),
    ("readable", display.readable),
):
    bp.add_app_template_filter(_filter, _name)

# Only absolute http(s) URLs become links; a global, so imported macros see it too.
bp.add_app_template_global(is_http_url, "http_url")


@bp.app_template_global("page_url")
def page_url(endpoint: str, number: int, param: str = "page") -> str:
    """The list page ``endpoint`` at page ``number``, keeping the request's other arguments
    (the worklist's filters)."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != param}
    args[param] = number
    return url_for(endpoint, **args)


@bp.app_template_filter("nhs")
def nhs_filter(value: str | None) -> str:
    """An NHS number as people read it: ``999 000 0018``."""
    digits = (value or "").replace(" ", "")
    if len(digits) == 10 and digits.isdigit():
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return value or ""


@bp.context_processor
def page_context() -> dict[str, Any]:
    user = signed_in()
    return {
        "user": user,
        "can_contact": can(user, CONTACT_ROLES),
        "can_sign_off": can(user, SIGN_OFF_ROLES),
        "can_acknowledge": can(user, ACKNOWLEDGE_ROLES),
        "sources_for": _sources,
        "form_state": state,
        "session_minutes": round(current_app.permanent_session_lifetime.total_seconds() / 60),
    }


def _sources(rule: str | None, url: str | None = None) -> list[Source]:
    return sources_for(service_state().rules, rule, url)


def error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("pages/error.html", title=title, message=message), status


_TITLES = {
    400: "The form could not be used",
    403: "You may not do this",
    404: "Not found",
    405: "Not allowed",
    409: "Someone else changed this first",
}


@bp.errorhandler(CSRFError)
def csrf_error(exc: HTTPException) -> ResponseReturnValue:
    logger.warning("form refused: CSRF", extra={"endpoint": request.endpoint})
    return error_page(
        400,
        "The form was refused",
        "The form had expired or did not come from this service, so nothing was changed. "
        "Go back, reload the page and try again.",
    )


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    title = _TITLES.get(status, exc.name or "Error")
    return error_page(status, title, exc.description or "")


@bp.errorhandler(FHIRTemporaryError)
def fhir_unavailable(exc: FHIRTemporaryError) -> ResponseReturnValue:
    logger.warning("FHIR server unavailable", extra={"http_status": exc.status})
    return error_page(
        503,
        "The clinical record server is not answering",
        "Nothing was changed. Try again in a few minutes.",
    )


def _fhir_failed(exc: Exception) -> ResponseReturnValue:
    status = getattr(exc, "status", None)
    logger.warning("FHIR server error", extra={"error": type(exc).__name__, "http_status": status})
    return error_page(
        502,
        "The clinical record server refused the request",
        "Nothing was changed here. If this goes on, tell the service's administrator.",
    )


for _kind in (FHIRError, FHIRAuthError, FHIRCapabilityError):
    bp.register_error_handler(_kind, _fhir_failed)


@bp.errorhandler(Exception)
def internal(_exc: Exception) -> ResponseReturnValue:
    logger.exception("unhandled error", extra={"endpoint": request.endpoint})
    return error_page(
        500,
        "Something went wrong",
        "The service hit an unexpected error. Tell the service's administrator the time it "
        "happened.",
    )
