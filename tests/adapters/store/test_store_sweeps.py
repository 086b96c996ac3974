"""Sweep lifecycle, counters, poll cursors and interrupted sweeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.database import make_session_factory
from hrm_fhir.adapters.store.ledger import (
    SWEEP_LOCK,
    acquire_lock,
    close_finding,
    finish_sweep,
    get_cursor,
    get_sweep,
    list_sweeps,
    mark_interrupted,
    open_finding,
    poll_cursor,
    recorded_identifiers,
    running_sweep,
    set_cursor,
    set_server_marker,
)
from hrm_fhir.adapters.store.records import PollCursor, ResourceType, SweepStatus
from tests.adapters.store.examples import NOW, finding, start


def test_a_sweep_runs_then_completes_with_counters_watermark_and_duration(
    engine: Engine,
) -> None:
    with make_session_factory(engine).begin() as session:
        sweep = start(session)
        assert sweep.id is not None
        assert sweep.status is SweepStatus.RUNNING
        assert (sweep.created, sweep.errors, sweep.finished_at) == (0, 0, None)
        assert running_sweep(session) is sweep

    with make_session_factory(engine).begin() as session:
        running = get_sweep(session, sweep.id)
        assert running is not None
        finish_sweep(
            session,
            running,
            status=SweepStatus.COMPLETED,
            counts={"created": 3, "updated": 1, "closed": 2, "unchanged": 40, "skipped": 1},
            watermark="2026-07-06T05:59:58.123+00:00",
            error=None,
            now=NOW + timedelta(seconds=90.5),
        )

    with make_session_factory(engine)() as session:
        done = get_sweep(session, sweep.id)
        assert done is not None
        assert done.status is SweepStatus.COMPLETED
        assert (done.created, done.updated, done.closed, done.unchanged, done.skipped) == (
            3,
            1,
            2,
            40,
            1,
        )
        assert done.errors == 0
        assert done.watermark == "2026-07-06T05:59:58.123+00:00"
        assert done.finished_at == NOW + timedelta(seconds=90.5)
        assert done.duration_seconds == 90.5
        assert running_sweep(session) is None


def test_a_failed_sweep_keeps_its_error(session: Session) -> None:
    sweep = start(session)
    finish_sweep(
        session,
        sweep,
        status=SweepStatus.FAILED,
        counts={"errors": 1},
        watermark=None,
        error="FHIR server unavailable (503)",
        now=NOW + timedelta(seconds=2),
    )
    assert (sweep.status, sweep.errors, sweep.error) == (
        SweepStatus.FAILED,
        1,
        "FHIR server unavailable (503)",
    )


def test_finish_refuses_unknown_counters_and_a_running_status(session: Session) -> None:
    sweep = start(session)
    with pytest.raises(ValueError, match="unknown sweep counters: creatd"):
        finish_sweep(
            session,
            sweep,
            status=SweepStatus.COMPLETED,
            counts={"creatd": 1},
            watermark=None,
            error=None,
            now=NOW,
        )
    with pytest.raises(ValueError, match="cannot finish as running"):
        finish_sweep(
            session,
            sweep,
            status=SweepStatus.RUNNING,
            counts={},
            watermark=None,
            error=None,
            now=NOW,
        )


def test_list_sweeps_is_newest_first_and_limited(session: Session) -> None:
    ids = [start(session, now=NOW + timedelta(days=7 * week)).id for week in range(4)]
    assert [sweep.id for sweep in list_sweeps(session)] == ids[::-1]
    assert [sweep.id for sweep in list_sweeps(session, limit=2)] == ids[:1:-1]
    assert get_sweep(session, 999) is None


def test_cursor_round_trips_per_scope_and_moves_forward(session: Session) -> None:
    first = start(session)
    assert get_cursor(session, "all") is None
    set_cursor(session, "all", "2026-07-06T05:59:58Z", sweep_id=first.id, now=NOW)
    set_cursor(session, "Organization/gp1", "2026-07-05T00:00:00Z", sweep_id=first.id, now=NOW)
    session.commit()
    assert get_cursor(session, "all") == "2026-07-06T05:59:58Z"

    second = start(session, now=NOW + timedelta(days=7))
    cursor = set_cursor(
        session, "all", "2026-07-13T05:59:58Z", sweep_id=second.id, now=NOW + timedelta(days=7)
    )
    session.commit()
    assert (cursor.sweep_id, cursor.updated_at) == (second.id, NOW + timedelta(days=7))
    assert get_cursor(session, "all") == "2026-07-13T05:59:58Z"
    assert get_cursor(session, "Organization/gp1") == "2026-07-05T00:00:00Z"
    assert session.scalars(select(func.count()).select_from(PollCursor)).one() == 2


def test_running_sweeps_without_a_live_lock_are_marked_interrupted(session: Session) -> None:
    orphan = start(session)
    session.commit()
    later = NOW + timedelta(hours=2)
    assert mark_interrupted(session, now=later) == [orphan]
    assert orphan.status is SweepStatus.INTERRUPTED
    assert orphan.error is not None
    assert "without holding the 'sweep' lock" in orphan.error
    assert running_sweep(session) is None


def test_the_sweep_of_the_live_lock_holder_is_left_running(session: Session) -> None:
    orphan = start(session, now=NOW - timedelta(days=7))
    session.commit()
    assert acquire_lock(session, SWEEP_LOCK, "host-a:1", ttl_seconds=3600, now=NOW)
    current = start(session, now=NOW + timedelta(seconds=1))
    session.commit()
    assert acquire_lock(
        session, SWEEP_LOCK, "host-a:1", ttl_seconds=3600, now=NOW + timedelta(minutes=30)
    )

    assert mark_interrupted(session, now=NOW + timedelta(minutes=45)) == [orphan]
    assert current.status is SweepStatus.RUNNING
    assert running_sweep(session) is current


def test_a_sweep_whose_lock_was_taken_over_is_interrupted(session: Session) -> None:
    assert acquire_lock(session, SWEEP_LOCK, "host-a:1", ttl_seconds=60, now=NOW)
    stalled = start(session, now=NOW)
    session.commit()
    takeover = NOW + timedelta(minutes=5)
    assert acquire_lock(session, SWEEP_LOCK, "host-b:2", ttl_seconds=3600, now=takeover)

    assert mark_interrupted(session, now=takeover) == [stalled]


def test_the_scope_keeps_its_marker_and_size_until_a_whole_read_replaces_the_size(
    session: Session,
) -> None:
    first = start(session)
    with pytest.raises(LookupError):
        set_server_marker(session, "all", "hrm-marker-1")
    set_cursor(session, "all", "2026-07-06T05:59:58Z", sweep_id=first.id, now=NOW, scope_pages=90)
    set_server_marker(session, "all", "hrm-marker-1")
    set_cursor(session, "all", "2026-07-13T05:59:58Z", sweep_id=first.id, now=NOW)
    kept = poll_cursor(session, "all")
    assert kept is not None
    assert (kept.server_marker, kept.scope_pages) == ("hrm-marker-1", 90)
    set_cursor(session, "all", "2026-07-20T05:59:58Z", sweep_id=first.id, now=NOW, scope_pages=95)
    assert (kept.server_marker, kept.scope_pages) == ("hrm-marker-1", 95)
    assert poll_cursor(session, "Organization/gp1") is None


def test_recorded_identifiers_are_those_with_a_ledger_row_open_or_closed(session: Session) -> None:
    sweep = start(session)
    for identifier in ("hrm-open", "hrm-closed"):
        open_finding(
            session,
            finding(identifier),
            practice=None,
            resource_type=ResourceType.TASK,
            resource_id=identifier,
            status="requested",
            content_hash="h",
            version_id="1",
            sweep_id=sweep.id,
            now=NOW,
        )
    close_finding(
        session,
        "hrm-closed",
        reason="drug stopped",
        status="cancelled",
        version_id="2",
        sweep_id=sweep.id,
        now=NOW,
    )
    wanted = ["hrm-open", "hrm-closed", "hrm-never", *(f"hrm-x{n}" for n in range(1200))]
    assert recorded_identifiers(session, wanted) == {"hrm-open", "hrm-closed"}
