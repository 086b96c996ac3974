"""What the app shares between requests: settings, rules, the database and the sweep launcher.

``ServiceState`` lives in ``app.extensions``; blueprints reach it with ``service_state()``. The
``SweepLauncher`` (``sweep/launcher.py``) runs at most one sweep at a time in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir import clock
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.audit.pdf_renderer import PdfRenderer
from hrm_fhir.config import Settings
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.sweep.launcher import SweepLauncher, SweepRequest, SweepRunner
from hrm_fhir.sweep.run import SweepSummary, run_sweep
from hrm_fhir.workflow.chases import SweepChases

EXTENSION = "hrm"
"""The key of the service state in ``app.extensions``."""


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
                chases=SweepChases.of(self.settings, gateway, self.rules),
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
