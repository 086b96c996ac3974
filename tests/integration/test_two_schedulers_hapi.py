"""Two scheduler processes on one PostgreSQL database whose weekly sweep fires at the same
instant: exactly one sweeps, the other logs that it skipped (against a real HAPI). The lock
itself races on both backends in tests/adapters/store/test_store_locks.py."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest

from hrm_fhir import terminology
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import SweepStatus
from hrm_fhir.sweep.run import utc_now
from hrm_fhir.web.app import create_app
from hrm_fhir.web.scheduling import build_scheduler
from hrm_fhir.web.state import service_state
from tests.integration.harness import Harness
from tests.integration.practice import starter

pytestmark = pytest.mark.hapi
OUTCOMES = {"sweep run": "swept", "skipped: another sweep is running": "skipped"}


class _Outcome(logging.Handler):
    """Catches the launcher's line that says how the scheduled sweep ended."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.done = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() in OUTCOMES and record.__dict__.get("trigger") == "schedule:sweep":
            self.seen.append(OUTCOMES[record.getMessage()])
            self.done.set()


def _scheduler(
    fhir_base: str,
    database_url: str,
    practice: str,
    ready: Barrier,
    start_at: Queue[float],
    outcomes: Queue[list[str]],
) -> None:
    """One ``hrm-fhir scheduler``: its own app and APScheduler, the sweep job moved to the
    instant the test gives both processes."""
    app = create_app(
        {"fhir_base_url": fhir_base, "database_url": database_url, "practice": practice}
    )
    state = service_state(app)
    state.sessions()
    outcome = _Outcome()
    logging.getLogger("hrm_fhir.sweep.launcher").addHandler(outcome)
    logging.getLogger("hrm_fhir.sweep.launcher").setLevel(logging.INFO)
    scheduler = build_scheduler(app)
    scheduler.start()
    try:
        ready.wait(timeout=120)
        moment = datetime.fromtimestamp(start_at.get(timeout=60), UTC)
        scheduler.modify_job("sweep", next_run_time=moment)
        outcome.done.wait(timeout=300)
    finally:
        scheduler.shutdown(wait=True)
        state.close(timeout=60)
    outcomes.put(outcome.seen)


@pytest.fixture
def harness(fhir_base: str, run_id: str, postgres_url: str) -> Iterator[Harness]:
    h = Harness(fhir_base, run_id, postgres_url)
    yield h
    h.close()


def test_two_schedulers_firing_together_make_exactly_one_sweep(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(3)
    start_at: Queue[float] = context.Queue()
    outcomes: Queue[list[str]] = context.Queue()
    args = (
        harness.settings.fhir_base_url,
        harness.settings.database_url,
        harness.practice.org,
        ready,
        start_at,
        outcomes,
    )
    processes = [context.Process(target=_scheduler, args=args) for _ in range(2)]
    for process in processes:
        process.start()
    try:
        ready.wait(timeout=120)
        moment = (datetime.now(UTC) + timedelta(seconds=2)).timestamp()
        for _ in processes:
            start_at.put(moment)
        seen = sorted(o for _ in processes for o in outcomes.get(timeout=360))
    finally:
        for process in processes:
            process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]

    assert seen == ["skipped", "swept"]
    with harness.sessions.begin() as session:
        [sweep] = ledger.list_sweeps(session)
        assert sweep.status is SweepStatus.COMPLETED
        assert sweep.created > 0
        assert ledger.live_lock(session, ledger.SWEEP_LOCK, now=utc_now()) is None
        identifiers = [f.identifier for f in ledger.open_findings(session)]
    assert len(identifiers) == sweep.created
    for identifier in identifiers:
        found = [
            resource
            for kind in ("Task", "Flag")
            for resource in harness.gateway.search(
                kind, {"identifier": f"{terminology.FINDING_IDENTIFIER}|{identifier}"}
            ).resources
        ]
        assert len(found) == 1, f"{identifier} was written {len(found)} times"
