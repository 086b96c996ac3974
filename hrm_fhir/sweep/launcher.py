"""The sweep launcher: at most one sweep at a time in this process, each one's ending logged.

The flag is per process; ``run_sweep``'s database lock keeps other processes out. The API starts
sweeps in a background thread; the scheduler runs them in its own thread (``run_logged``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from hrm_fhir.errors import HRMError
from hrm_fhir.sweep.run import SweepBusyError, SweepSummary

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
