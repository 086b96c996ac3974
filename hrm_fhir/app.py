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
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

from hrm_fhir import clock
from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.audit.pdf_renderer import PdfRenderer
from hrm_fhir.config import Settings, load_settings
from hrm_fhir.db import init_db, make_session_factory
from hrm_fhir.errors import (
    FHIRAuthError,
    FHIRCapabilityError,
    FHIRError,
    FHIRTemporaryError,
    HRMError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowPermissionError,
)
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.sweep import SweepBusyError, SweepSummary, run_sweep

EXTENSION = "hrm"
"""The key of the service state in ``app.extensions``."""
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRequest:
    """What to sweep: ``as_of`` None means today in the service's time zone."""

    as_of: date | None = None
    dry_run: bool = False
    full: bool | None = None
    """None: incremental once a watermark exists, else full (as ``run_sweep`` decides)."""


SweepRunner = Callable[[SweepRequest], SweepSummary]


class SweepLauncher:
    """Runs at most one sweep at a time in this process, and logs how each one ended.

    The flag is per process; ``run_sweep``'s database lock keeps other processes out.
    """

    def __init__(self, runner: SweepRunner, *, background: bool = True) -> None:
        self._runner = runner
        self._background = background
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    def is_busy(self) -> bool:
        return self._busy.locked()

    def start(self, request: SweepRequest) -> int | None:
        """Start a sweep: in a background thread (returns None), or inline (returns its id).

        Raises SweepBusyError when this process is already sweeping.
        """
        self._claim()
        if not self._background:
            return self._run_claimed(request, "api").sweep_id
        thread = threading.Thread(target=self._run_logged, args=(request, "api"), name="sweep")
        try:
            thread.start()
        except BaseException:
            self._busy.release()
            raise
        self._thread = thread
        return None

    def run_logged(self, request: SweepRequest, trigger: str) -> None:
        """Run a sweep in this thread and log its outcome instead of raising (scheduled jobs)."""
        try:
            self._claim()
        except SweepBusyError:
            logger.info("skipped: another sweep is running", extra={"trigger": trigger})
            return
        self._run_logged(request, trigger)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background sweep, if one was started, to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _claim(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise SweepBusyError("a sweep is already running in this process")

    def _run_logged(self, request: SweepRequest, trigger: str) -> None:
        try:
            self._run_claimed(request, trigger)
        except SweepBusyError:
            logger.info("skipped: another sweep is running", extra={"trigger": trigger})
        except HRMError as exc:
            status = getattr(exc, "status", None)
            extra = {"trigger": trigger, "error": type(exc).__name__, "http_status": status}
            logger.error("sweep failed", extra=extra)
        except Exception:
            logger.exception("sweep failed", extra={"trigger": trigger})

    def _run_claimed(self, request: SweepRequest, trigger: str) -> SweepSummary:
        try:
            summary = self._runner(request)
        finally:
            self._busy.release()
        # run_sweep logs the counts; this line adds who asked for the sweep.
        logger.info("sweep run", extra={"trigger": trigger, "sweep_id": summary.sweep_id})
        return summary


class ServiceState:
    """What the app shares between requests: settings, rules, database and sweep launcher."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        runner: SweepRunner | None,
        background: bool,
        pdf_render: Callable[[str], bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.sweeps = SweepLauncher(runner or self.run_live_sweep, background=background)
        self.pdfs = PdfRenderer(pdf_render or _weasyprint, workers=settings.pdf_workers)
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    def sessions(self) -> sessionmaker[Session]:
        """The session factory; the first call creates or migrates the schema (``init_db``)."""
        with self._lock:
            if self._sessions is None:
                self._engine = init_db(self.settings.database_url)
                self._sessions = make_session_factory(self._engine)
            return self._sessions

    def run_live_sweep(self, request: SweepRequest) -> SweepSummary:
        """The default runner: one sweep of the configured server, with its own gateway."""
        gateway = FHIRGateway.from_settings(self.settings)
        try:
            return run_sweep(
                self.settings,
                self.sessions(),
                gateway,
                self.rules,
                as_of=request.as_of or clock.today(),
                dry_run=request.dry_run,
                full=request.full,
            )
        finally:
            gateway.close()

    def close(self, timeout: float | None = None) -> None:
        """Wait for a background sweep, then dispose of the engine."""
        self.sweeps.join(timeout)
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = self._sessions = None


def _weasyprint(html: str) -> bytes:
    from hrm_fhir.audit.render import html_to_pdf  # the audit and WeasyPrint load on first use

    return html_to_pdf(html)


def service_state(app: Flask | None = None) -> ServiceState:
    """The state of ``app`` (default: the current app)."""
    state = (app or current_app).extensions[EXTENSION]
    if not isinstance(state, ServiceState):
        raise TypeError(f"app.extensions[{EXTENSION!r}] is not a ServiceState")
    return state


def db_session() -> Session:
    """This request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = service_state().sessions()()
    session: Session = g.db_session
    return session


def _close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


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
    app.teardown_appcontext(_close_session)
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
    """Every response but the pages' own (hrm_fhir/pages/hooks.py sets theirs): not cached,
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
    from hrm_fhir.api import (
        auth,
        findings,
        health,
        openapi,
        patients,
        reports,
        sweeps,
        workflow,
    )
    from hrm_fhir.pages import bp as pages

    api = Blueprint("api", __name__, url_prefix="/api/v1")
    api.before_request(auth.authorise)
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
