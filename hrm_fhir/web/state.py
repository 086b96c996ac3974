"""What the app shares between requests: settings, rules, the database and the sweep launcher.

``ServiceState`` lives in ``app.extensions``; blueprints reach it with ``service_state()``. The
``SweepLauncher`` runs at most one sweep at a time in this process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir import clock
from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.audit.pdf_renderer import PdfRenderer
from hrm_fhir.config import Settings
from hrm_fhir.db import init_db, make_session_factory
from hrm_fhir.errors import HRMError
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.sweep import SweepSummary, run_sweep
from hrm_fhir.sweep_lock import SweepBusyError

EXTENSION = "hrm"
"""The key of the service state in ``app.extensions``."""
logger = logging.getLogger("hrm_fhir.app")
"""The name the sweep launcher's log lines had before it moved here, kept."""


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
