"""What a ``kill -9`` mid-sweep and a storm of 429s, 503s, dropped connections and time-outs do
to what is on the server: nothing duplicated, nothing lost.

Each test sweeps two twin practices (the same records under different ids): ``a`` plainly, ``b``
under faults, then compares what the server holds for each. The counts are printed (``-s``).
"""

from __future__ import annotations

import multiprocessing
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.records import WriteOutcome
from hrm_fhir.config import Settings
from hrm_fhir.errors import FHIRError
from hrm_fhir.sweep.run import SweepSummary, run_sweep
from hrm_fhir.tasks import emit
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import rules
from tests.integration.faults import FaultProxy, KillSwitch, differences, duplicates, ours
from tests.integration.harness import Harness, a_week_of_changes
from tests.integration.practice import AS_OF, several

pytestmark = pytest.mark.hapi
SEED = 20261204
COPIES = 6
"""Four patients each: 18 findings a practice, written in batches of ``BATCH``."""
BATCH = 4
KILLS_PER_PHASE = 5


@pytest.fixture
def twins(fhir_base: str, run_id: str, tmp_path: Path) -> Iterator[tuple[Harness, Harness]]:
    a = Harness(fhir_base, f"{run_id}a", f"sqlite:///{tmp_path / 'a.db'}")
    b = Harness(fhir_base, f"{run_id}b", f"sqlite:///{tmp_path / 'b.db'}")
    for h in (a, b):
        h.upload(several(h.practice, COPIES))
    yield a, b
    a.close()
    b.close()


def _sweep_until_killed(base: str, database_url: str, org: str, at: int) -> None:
    """In a forked child: one sweep that SIGKILLs itself at its ``at``-th kill point."""
    emit.BATCH_SIZE = BATCH
    settings = Settings(fhir_base_url=base, database_url=database_url, practice=org)
    engine = init_db(database_url)
    gateway = FHIRGateway.from_settings(settings)
    with KillSwitch(at).armed(engine):
        run_sweep(
            settings,
            make_session_factory(engine),
            gateway,
            rules(),
            as_of=AS_OF,
            chases=SweepChases.of(settings, gateway, rules()),
        )


def _counted_sweep(h: Harness) -> int:
    """One plain sweep of ``h``; how many kill points it passed."""
    switch = KillSwitch(None)
    with switch.armed(h.engine):
        summary = h.sweep()
    assert summary.counts.errors == 0
    return switch.points


def _killed_then_rerun(b: Harness, points: int, rng: random.Random) -> tuple[int, int]:
    """``KILLS_PER_PHASE`` sweeps of ``b``, each killed at a random point, then a plain one;
    (runs, kills)."""
    context = multiprocessing.get_context("fork")
    kills = 0
    for _ in range(KILLS_PER_PHASE):
        at = rng.randint(1, points)
        child = context.Process(
            target=_sweep_until_killed,
            args=(b.settings.fhir_base_url, b.settings.database_url, b.practice.org, at),
        )
        child.start()
        child.join(120)
        assert child.exitcode in (0, -signal.SIGKILL), child.exitcode
        kills += child.exitcode == -signal.SIGKILL
    final = b.sweep()
    assert final.counts.errors == 0
    return KILLS_PER_PHASE + 1, kills


def _assert_same(a: Harness, b: Harness) -> tuple[int, int]:
    """b holds what a holds, each business identifier once, and plans nothing more."""
    assert len(ours(a)) >= 3 * COPIES, "a Task or Flag for three of every four patients"
    missing, extra = differences(a, b)
    doubled = duplicates(ours(b))
    assert (missing, extra, doubled) == (0, 0, 0)
    again = b.sweep(dry_run=True, full=True)
    assert (again.counts.created, again.counts.repaired, again.counts.updated) == (0, 0, 0)
    with a.sessions.begin() as sa, b.sessions.begin() as sb:
        assert len(ledger.open_findings(sa)) == len(ledger.open_findings(sb))
    return doubled, missing


def test_kill_9_at_random_points_then_a_rerun_duplicates_nothing_and_misses_nothing(
    twins: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = twins
    monkeypatch.setattr(emit, "BATCH_SIZE", BATCH)
    rng = random.Random(SEED)  # noqa: S311 - seeded kill points, not secrets
    totals = {"runs": 0, "kills": 0, "duplicates": 0, "missing": 0}
    for phase in ("first sweep", "after a week of changes"):
        if phase != "first sweep":
            a_week_of_changes(a, COPIES)
            a_week_of_changes(b, COPIES)
        points = _counted_sweep(a)
        runs, kills = _killed_then_rerun(b, points, rng)
        doubled, missing = _assert_same(a, b)
        for key, value in (("runs", runs), ("kills", kills), ("duplicates", doubled)):
            totals[key] += value
        totals["missing"] += missing
        print(f"kill -9, {phase}: {points} kill points, {runs} runs, {kills} killed")
    print(f"kill -9 totals: {totals}")
    assert totals["kills"] >= KILLS_PER_PHASE, "most runs were killed before they finished"


def _faulty_gateway(proxy: FaultProxy) -> FHIRGateway:
    return FHIRGateway(proxy.base, timeout=1.0, max_retries=3, backoff=0.05, max_backoff=2.0)


def _sweep_through(b: Harness, proxy: FaultProxy, runs: list[SweepSummary]) -> bool:
    """One sweep of ``b`` through the proxy; True once one completes without a write error.
    Every failed write is in the write audit: a failure is never silent."""
    gateway = _faulty_gateway(proxy)
    try:
        summary = run_sweep(
            b.settings,
            b.sessions,
            gateway,
            rules(),
            as_of=AS_OF,
            chases=SweepChases.of(b.settings, gateway, rules()),
        )
    except FHIRError:
        return False
    finally:
        gateway.close()
    runs.append(summary)
    with b.sessions.begin() as session:
        failed = [
            w
            for w in ledger.sweep_writes(session, summary.sweep_id)
            if w.outcome is not WriteOutcome.OK
        ]
    assert len(failed) == summary.counts.errors
    return summary.counts.errors == 0


def test_a_storm_of_429_503_drops_and_timeouts_loses_no_write_and_duplicates_none(
    twins: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = twins
    monkeypatch.setattr(emit, "BATCH_SIZE", BATCH)
    proxy = FaultProxy(
        b.settings.fhir_base_url,
        seed=SEED,
        rate=0.3,
        slow_seconds=1.3,
        first={"POST": "drop-after", "PUT": "slow"},
    )
    attempts = doubled = missing = 0
    runs: list[SweepSummary] = []
    try:
        for phase in ("first sweep", "after a week of changes"):
            if phase != "first sweep":
                a_week_of_changes(a, COPIES)
                a_week_of_changes(b, COPIES)
            a.sweep()
            for _ in range(12):
                attempts += 1
                if _sweep_through(b, proxy, runs):
                    break
            else:
                pytest.fail(f"{phase}: no sweep completed without a write error in 12 attempts")
            phase_doubled, phase_missing = _assert_same(a, b)
            doubled, missing = doubled + phase_doubled, missing + phase_missing
            print(f"fault proxy, {phase}: {attempts} sweeps so far, {dict(proxy.injected)}")
    finally:
        proxy.close()
    errors = sum(r.counts.errors for r in runs)
    print(
        f"fault proxy totals: {attempts} sweeps ({attempts - len(runs)} failed outright), "
        f"{proxy.requests} requests, {sum(proxy.injected.values())} faults injected "
        f"{dict(proxy.injected)}, into writes {dict(proxy.on_writes)}, {errors} write errors "
        "recorded and retried, "
        f"duplicates {doubled}, missing {missing}"
    )
    assert set(proxy.injected) == {"429", "503", "drop-before", "drop-after", "slow"}
    assert proxy.on_writes["drop-after"] >= 1, "a batch applied whose answer was lost"
    assert proxy.on_writes["slow"] >= 1, "an update applied whose answer came too late"
