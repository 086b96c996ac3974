"""The sweep's writeback when a drug group is monitored elsewhere: routine Tasks close with the
reason (the chase stops, a review with the pharmacist stays), and reopen when it lapses."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hrm_fhir import terminology as t
from hrm_fhir.adapters.store.records import FindingRecord, ResourceType
from hrm_fhir.domain import FindingKind
from hrm_fhir.tasks.emit import (
    MONITORED_ELSEWHERE,
    Closure,
    PatientContext,
    _closed,
    _resumed,
    close_reason,
)

DAY = date(2026, 11, 27)


def _record(kind: FindingKind, group: str = "lithium") -> FindingRecord:
    return FindingRecord(
        identifier="hrm-x",
        patient="Patient/p1",
        kind=kind,
        drug_group=group,
        rule="lithium@2",
        check="level",
        resource_type=ResourceType.TASK,
        resource_id="hrm-x",
        opened_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def _context(elsewhere: frozenset[str]) -> PatientContext:
    return PatientContext(True, frozenset({"lithium", "doac"}), {}, elsewhere)


def test_routine_monitoring_of_a_group_monitored_elsewhere_closes_with_that_reason() -> None:
    held = _context(frozenset({"lithium"}))
    assert close_reason(_record(FindingKind.OVERDUE), held) == MONITORED_ELSEWHERE
    assert close_reason(_record(FindingKind.DUE), held) == MONITORED_ELSEWHERE
    assert close_reason(_record(FindingKind.OVERDUE, "doac"), held) == "result received"
    assert close_reason(_record(FindingKind.OVERDUE), _context(frozenset())) == "result received"
    assert close_reason(_record(FindingKind.OUT_OF_RANGE), held).startswith("resolved")


def _task(stage: str, status: str = "requested") -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "hrm-x",
        "status": status,
        "businessStatus": {"coding": [{"system": t.BUSINESS_STATUS, "code": stage}]},
        "code": {"coding": [{"system": t.TASK_CODE, "code": "monitoring-due"}]},
        "executionPeriod": {"start": "2026-11-01T09:00:00Z"},
    }


def _closure() -> Closure:
    return Closure(
        "hrm-x", "Patient/p1", ResourceType.TASK, "hrm-x", MONITORED_ELSEWHERE, FindingKind.OVERDUE
    )


def test_the_chase_stops_but_a_review_with_the_pharmacist_or_gp_stays() -> None:
    held = _context(frozenset({"lithium"}))
    for stage in ("to-contact", "invited", "reminded-2", "booked", "sample-taken"):
        closed = _closed(_task(stage, "in-progress"), _closure(), held, DAY)
        assert closed is not None, stage
        assert closed["status"] == "cancelled"
        assert closed["businessStatus"]["coding"][0]["code"] == "monitored-elsewhere"
        assert closed["statusReason"] == {"text": MONITORED_ELSEWHERE}
    for stage in ("awaiting-pharmacist", "escalated-gp", "non-engagement"):
        assert _closed(_task(stage, "in-progress"), _closure(), held, DAY) is None, stage


def test_only_a_task_closed_as_monitored_elsewhere_is_reopened() -> None:
    cancelled = {**_task("monitored-elsewhere", "cancelled"), "statusReason": {"text": "x"}}
    cancelled["executionPeriod"] = {"start": "2026-11-01T09:00:00Z", "end": "2026-11-20T09:00:00Z"}
    reopened = _resumed(cancelled)
    assert reopened is not None
    assert reopened["status"] == "requested"
    assert reopened["businessStatus"]["coding"][0]["code"] == "to-contact"
    assert "statusReason" not in reopened
    assert reopened["executionPeriod"] == {"start": "2026-11-01T09:00:00Z"}
    assert _resumed(_task("closed", "cancelled")) is None, "a drug stopped stays cancelled"
    assert _resumed(_task("monitored-elsewhere", "completed")) is None
    assert _resumed({"resourceType": "Flag", "status": "inactive"}) is None
