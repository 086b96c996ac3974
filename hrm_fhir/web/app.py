"""The Flask application factory: settings, database, rules, sweep launcher, blueprints, errors.

``create_app`` wires everything and starts nothing: no thread, no scheduler, no database
connection. The database schema is created or migrated the first time a request needs it.

Overrides: lowercase keys are ``Settings`` fields (``database_url``, ``api_keys``...); UPPERCASE
keys go to ``app.config``. Three of those are the service's own: ``SWEEP_RUNNER`` (a callable
``SweepRequest -> SweepSummary`` replacing the live sweep, for tests), ``SWEEP_BACKGROUND``
(default True; False runs ``POST /api/v1/sweeps`` inline and answers with the sweep's id) and
``PDF_RENDER`` (a callable ``html -> PDF bytes`` replacing WeasyPrint, for tests).

Every response carries the security headers of ``_register_security``; request bodies are limited
to ``settings.max_request_bytes`` (413) and JSON is parsed by orjson, whose nesting limit makes a
deeply nested body a 400, not a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

from hrm_fhir import clock
from hrm_fhir.config import load_settings
from hrm_fhir.errors import (
    FHIRAuthError,
    FHIRCapabilityError,
    FHIRError,
    FHIRTemporaryError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowPermissionError,
)
from hrm_fhir.rules.registry import load_rule_set
from hrm_fhir.sweep.run import SweepBusyError
from hrm_fhir.web import request_scope
from hrm_fhir.web.state import EXTENSION, ServiceState

logger = logging.getLogger(__name__)


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, then ``overrides`` (see module docstring)."""
    given = dict(overrides or {})
    settings = load_settings().with_overrides({k: v for k, v in given.items() if k.islower()})
    clock.use_zone(settings.timezone)
    app = Flask(__name__, static_folder=None)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config.update({k: v for k, v in given.items() if not k.islower()})
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = ServiceState(
        settings,
        load_rule_set(),
        app.config.get("SWEEP_RUNNER"),
        bool(app.config.get("SWEEP_BACKGROUND", True)),
        app.config.get("PDF_RENDER"),
    )
    request_scope.init_app(app)
    _register_blueprints(app)
    _register_error_handlers(app)
    _register_request_log(app)
    app.after_request(_security_headers)
    return app


class OrjsonProvider(DefaultJSONProvider):
    """Request bodies parsed by orjson: it refuses nesting deeper than 1024 levels with a
    JSONDecodeError (a 400), where the standard library's parser hits Python's recursion limit
    (a 500) on 100,000-deep JSON. It also refuses NaN and Infinity, which are not JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
"""The printable HTML formats: inline CSS and SVG, nothing else; no script at all."""


def _security_headers(response: Response) -> Response:
    """Every response but the pages' own (hrm_fhir/web/pages/hooks.py sets theirs): not cached,
    not sniffed, not framed, and under a CSP that runs no script."""
    if request.blueprint == "pages":
        return response
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    html = response.mimetype == "text/html"
    response.headers["Content-Security-Policy"] = _DOCUMENT_CSP if html else _API_CSP
    return response


def _register_blueprints(app: Flask) -> None:
    from hrm_fhir.web.api import (
        api_keys,
        findings,
        health,
        openapi,
        patients,
        reports,
        sweeps,
        workflow,
    )
    from hrm_fhir.web.pages import bp as pages

    api = Blueprint("api", __name__, url_prefix="/api/v1")
    api.before_request(api_keys.authorise)
    for module in (sweeps, findings, patients, workflow, reports):
        api.register_blueprint(module.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(api)
    app.register_blueprint(pages)


def _json(status: int, body: Mapping[str, object]) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _register_error_handlers(app: Flask) -> None:
    def validation(exc: ValidationError) -> Response:
        return _json(400, {"error": "invalid request", "messages": exc.messages})

    def busy(_exc: SweepBusyError) -> Response:
        return _json(409, {"error": "conflict", "message": "a sweep is already running"})

    def unavailable(exc: FHIRTemporaryError) -> Response:
        logger.warning("FHIR server unavailable", extra={"http_status": exc.status})
        return _json(503, {"error": "unavailable", "message": "the FHIR server is unavailable"})

    def bad_gateway(exc: FHIRError | FHIRAuthError | FHIRCapabilityError) -> Response:
        status = getattr(exc, "status", None)
        extra = {"error": type(exc).__name__, "http_status": status}
        logger.warning("FHIR server error", extra=extra)
        return _json(502, {"error": "bad gateway", "message": "the FHIR server request failed"})

    def workflow_error(exc: WorkflowError) -> Response:
        if isinstance(exc, WorkflowNotFoundError):
            return _json(404, {"error": "not found", "message": str(exc)})
        if isinstance(exc, WorkflowPermissionError):
            return _json(403, {"error": "forbidden", "message": str(exc)})
        return _json(409, {"error": "conflict", "message": str(exc)})

    def http_error(exc: HTTPException) -> BaseResponse:
        response = exc.get_response()
        response.set_data(
            orjson.dumps({"error": (exc.name or "error").lower(), "message": exc.description})
        )
        response.mimetype = "application/json"
        return response

    def internal(_exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"endpoint": request.endpoint})
        return _json(500, {"error": "internal server error", "message": "unexpected error"})

    app.register_error_handler(ValidationError, validation)
    app.register_error_handler(SweepBusyError, busy)
    app.register_error_handler(WorkflowError, workflow_error)
    app.register_error_handler(FHIRTemporaryError, unavailable)
    for kind in (FHIRError, FHIRAuthError, FHIRCapabilityError):
        app.register_error_handler(kind, bad_gateway)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, internal)


_PROBES = frozenset({"health.health", "health.ready"})


def _register_request_log(app: Flask) -> None:
    """One log line per request: method, endpoint name (never the path), status, duration."""

    def started() -> None:
        g.request_started = time.perf_counter()

    def finished(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        extra = {
            "method": request.method,
            "endpoint": request.endpoint,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 1),
        }
        level = logging.DEBUG if request.endpoint in _PROBES else logging.INFO
        logger.log(level, "request", extra=extra)
        return response

    app.before_request(started)
    app.after_request(finished)
