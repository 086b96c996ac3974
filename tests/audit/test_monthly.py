"""The monthly figures from a small hand-made ledger whose every number is worked out below.

Month: April 2027 (British Summer Time: the month starts at 2027-03-31T23:00Z).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from hrm_fhir.audit.figures import month_bounds
from hrm_fhir.audit.model import (
    AuditInputs,
    EventFact,
    GroupStatus,
    IndicatorStatus,
    MonthlyReport,
    SweepFact,
    TaskFact,
)
from hrm_fhir.audit.render import render_html
from hrm_fhir.domain import FindingKind, Severity
from tests.audit.conftest import build_report

MONTH = date(2027, 4, 1)
PRACTICE = "practice-9"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _status(
    n: int,
    *,
    established: bool = True,
    due: str | None = None,
    group: str = "methotrexate",
    age: int = 60,
) -> GroupStatus:
    return GroupStatus(
        patient=f"Patient/p{n}",
        practice=PRACTICE,
        drug_group=group,
        established=established,
        age=age,
        overdue_identifier=f"id-p{n}-{due}" if due else None,
        due_date=date.fromisoformat(due) if due else None,
        tests=("fbc", "lft") if due else (),
    )


def _task(
    name: str,
    patient: int,
    *,
    due: str | None,
    opened: str,
    closed: str | None = None,
    reason: str | None = None,
    kind: FindingKind = FindingKind.OVERDUE,
    severity: Severity | None = None,
    resource_type: str = "Task",
    group: str = "methotrexate",
) -> TaskFact:
    return TaskFact(
        identifier=name,
        resource_type=resource_type,
        resource_id=name,
        patient=f"Patient/p{patient}",
        practice=PRACTICE,
        kind=kind,
        drug_group=group,
        severity=severity,
        due_date=date.fromisoformat(due) if due else None,
        opened_at=_at(opened),
        closed_at=_at(closed) if closed else None,
        close_reason=reason,
    )


def _event(
    action: str, task: str, patient: int, at: str, stage: str | None = None, **detail: object
) -> EventFact:
    role = {"contact": "technician", "acknowledge": "gp"}.get(action, "pharmacist")
    return EventFact(
        at=_at(at),
        task_id=task,
        patient=f"Patient/p{patient}",
        practice=PRACTICE,
        actor=f"user-{role}",
        role=role,
        action=action,
        stage_after=stage,
        detail=dict(detail),
    )


def _flag(
    name: str, patient: int, severity: Severity, opened: str, closed: str | None = None
) -> TaskFact:
    return _task(
        name,
        patient,
        due=None,
        opened=opened,
        closed=closed,
        kind=FindingKind.OUT_OF_RANGE,
        severity=severity,
        resource_type="Flag",
    )


STATUSES = (
    _status(1),  # in date
    _status(2, due="2027-04-20"),  # 10 days overdue at 30 April: up to 4 weeks
    _status(3, due="2027-04-02"),  # 28 days: still up to 4 weeks
    _status(4, due="2027-04-01"),  # 29 days: 4-12 weeks
    _status(5, due="2027-02-05"),  # 84 days: 4-12 weeks
    _status(6, due="2027-02-04"),  # 85 days: over 12 weeks
    _status(7, established=False, due="2027-04-25"),  # a new start, overdue
    _status(8, group="lithium", due="2027-03-01", age=70),  # lithium, overdue, established
)

FINDINGS = (
    # overdue from 21 March; closed 12 April by a result, 23 days after its due date
    _task(
        "T1",
        1,
        due="2027-03-20",
        opened="2027-03-08T06:00",
        closed="2027-04-12T05:00",
        reason="result received",
    ),
    # overdue from 6 April, still open: newly overdue in April
    _task("T2", 2, due="2027-04-05", opened="2027-03-22T06:00"),
    # closed by a result before its due date: a completed test, never overdue
    _task(
        "T3",
        3,
        due="2027-04-10",
        opened="2027-03-29T06:00",
        closed="2027-04-08T05:00",
        reason="result received",
    ),
    # overdue January to March, closed before April
    _task(
        "T4",
        4,
        due="2027-01-10",
        opened="2026-12-28T06:00",
        closed="2027-03-30T05:00",
        reason="result received",
    ),
    # written when already overdue (1 April), closed 23:30 BST on 30 April: 30 days overdue
    _task(
        "T5",
        5,
        due="2027-03-31",
        opened="2027-04-01T05:00",
        closed="2027-04-30T22:30",
        reason="drug stopped",
    ),
    _flag("F1", 11, Severity.URGENT, "2027-04-03T06:00"),
    _flag("F2", 12, Severity.ACTION, "2027-04-10T06:00"),
    _flag("F3", 13, Severity.URGENT, "2027-03-01T06:00", closed="2027-03-15T06:00"),
    _flag("F4", 14, Severity.ACTION, "2027-03-20T06:00"),
)

EVENTS = (
    _event("contact", "T1", 1, "2027-03-25T10:00", "invited"),
    _event("contact", "T2", 2, "2027-04-07T10:00", "invited"),
    _event("contact", "T2", 2, "2027-04-21T10:00", "reminded"),
    _event("contact", "T2", 2, "2027-05-02T10:00", "reminded-2"),  # after the month: ignored
    _event("route", "T2", 2, "2027-04-25T06:10", "non-engagement"),
    _event("decision", "T2", 2, "2027-04-28T12:00", "completed", decision="continue-with-caveats"),
    _event("route", "T9", 9, "2027-02-15T06:10", "non-engagement"),
    _event("decision", "T9", 9, "2027-03-03T12:00", "completed"),
    _event(
        "signoff",
        "F1",
        11,
        "2027-04-03T20:00",
        "completed",
        flags=["F1"],
        result_to_action_hours=10.5,
    ),
    _event(
        "escalate",
        "F4",
        14,
        "2027-04-02T09:00",
        "escalated-gp",
        flags=["F4"],
        gp_task="Task/gp-1",
        result_to_action_hours=300.0,
    ),
    _event(
        "acknowledge", "gp-1", 14, "2027-04-04T09:00", "completed", result_to_action_hours=348.0
    ),
)

INDICATORS = (
    IndicatorStatus("MTX-FBC-LFT-3m", "Patient/a", PRACTICE, denominator=True, numerator=True),
    IndicatorStatus("MTX-FBC-LFT-3m", "Patient/b", PRACTICE, denominator=True, numerator=False),
    IndicatorStatus("MTX-FBC-LFT-3m", "Patient/c", PRACTICE, denominator=False, numerator=False),
)

SWEEPS = tuple(
    SweepFact(n, _at(f"2027-{day}T05:00"), "incremental", "all", 0, 0)
    for n, day in enumerate(
        ["03-01", "03-08", "03-15", "03-22", "03-29", "04-05", "04-12", "04-19", "04-26"]
    )
)


@pytest.fixture(scope="module")
def small() -> MonthlyReport:
    inputs = AuditInputs(
        month=MONTH,
        groups=STATUSES,
        indicators=INDICATORS,
        findings=FINDINGS,
        events=EVENTS,
        sweeps=SWEEPS,
    )
    return build_report(inputs, PRACTICE, 12.0)


def _patients(report: MonthlyReport, list_id: str) -> list[str]:
    return [row.patient for row in report.lists[list_id].rows]


def test_month_bounds_are_london_days() -> None:
    first, last, start, end = month_bounds(date(2027, 4, 17))
    assert (first, last) == (date(2027, 4, 1), date(2027, 4, 30))
    assert start == _at("2027-03-31T23:00")
    assert end == _at("2027-04-30T23:00")


def test_drug_group_position_at_month_end(small: MonthlyReport) -> None:
    mtx = next(g for g in small.groups if g.drug_group == "methotrexate")
    assert mtx.established.value == 6
    assert _patients(small, mtx.in_date.list_id) == ["Patient/p1"]
    assert mtx.in_date_pct == pytest.approx(16.7)
    assert _patients(small, mtx.overdue_up_to_4w.list_id) == ["Patient/p2", "Patient/p3"]
    assert _patients(small, mtx.overdue_4_to_12w.list_id) == ["Patient/p4", "Patient/p5"]
    assert _patients(small, mtx.overdue_over_12w.list_id) == ["Patient/p6"]
    assert mtx.overdue.value == 5
    assert (mtx.new_starts.value, mtx.new_starts_overdue.value) == (1, 1)


def test_newly_overdue_closed_and_median_days_at_closure(small: MonthlyReport) -> None:
    mtx = next(g for g in small.groups if g.drug_group == "methotrexate")
    assert _patients(small, mtx.newly_overdue.list_id) == ["Patient/p2", "Patient/p5"]
    assert _patients(small, mtx.closed.list_id) == ["Patient/p1", "Patient/p5"]
    assert mtx.median_days_overdue_at_closure == 26.5  # median of 23 and 30


def test_totals_add_the_groups(small: MonthlyReport) -> None:
    assert small.totals.established.value == 7  # six on methotrexate, one on lithium
    assert small.totals.overdue.value == 6
    assert small.totals.in_date_pct == pytest.approx(14.3)


def test_inspector_findings(small: MonthlyReport) -> None:
    rows = {row.id: row for row in small.inspector_findings}
    no_contact = rows["dmard-overdue-no-contact"]
    # p2's overdue Task was contacted; new start p7 counts (DMARD monitoring applies to all)
    assert _patients(small, no_contact.figure.list_id) == [f"Patient/p{n}" for n in (3, 4, 5, 6, 7)]
    assert no_contact.population.value == 7
    lithium = rows["lithium-level-overdue-long-term"]
    assert lithium.figure.value == 0  # p8 is overdue for FBC and LFT, not a lithium level
    unescalated = rows["out-of-range-no-escalation"]
    assert _patients(small, unescalated.figure.list_id) == ["Patient/p12"]
    assert unescalated.population.value == 3  # F1, F2, F4 were open in April; F3 was not
    assert all(not row.verified and row.source.startswith("https://") for row in rows.values())


def test_pincer_indicator(small: MonthlyReport) -> None:
    mtx = next(i for i in small.indicators if i.id == "MTX-FBC-LFT-3m")
    assert (mtx.initial_population.value, mtx.denominator.value, mtx.numerator.value) == (3, 2, 1)
    assert mtx.rate_pct == 50.0
    assert mtx.pincer == "MO_P15"
    assert mtx.verified


def test_workload(small: MonthlyReport) -> None:
    work = small.workload
    assert work.contact_attempts == 2  # March and May attempts fall outside April
    assert _patients(small, work.patients_contacted.list_id) == ["Patient/p2"]
    assert _patients(small, work.tests_completed.list_id) == ["Patient/p1", "Patient/p3"]
    assert work.attempts_per_completed_test == 1.0
    assert _patients(small, work.non_responders.list_id) == ["Patient/p2"]  # p9 decided in March
    assert work.non_responders_decided.value == 1
    assert work.sign_offs == 2  # F1 signed off, F4 escalated


def test_results_by_severity(small: MonthlyReport) -> None:
    rows = {row.severity: row for row in small.workload.by_severity}
    urgent, action = rows["urgent"], rows["action"]
    assert (urgent.results.value, urgent.pharmacist_actioned.value) == (1, 1)
    assert urgent.median_hours_to_pharmacist == 10.5
    assert urgent.gp_actioned.value == 0
    assert (action.results.value, action.no_escalation.value) == (
        1,
        1,
    )  # F2; F4 was raised in March
    assert rows["review"].results.value == 0


def test_backlog_trend_and_forecast(small: MonthlyReport) -> None:
    trend = [(p.week_ending.isoformat(), p.open_overdue) for p in small.backlog]
    assert trend == [
        ("2027-03-07", 1),
        ("2027-03-14", 1),
        ("2027-03-21", 2),
        ("2027-03-28", 2),
        ("2027-04-04", 2),
        ("2027-04-11", 3),
        ("2027-04-18", 2),
        ("2027-04-25", 2),
        ("2027-04-30", 1),
    ]
    outlook = small.forecast
    assert outlook.backlog == 1
    assert outlook.closures_per_week == 0.5  # T1 and T5 in the four weeks to 30 April
    assert outlook.new_overdue_per_week == 0.25  # T2
    assert outlook.weeks_at_current_rate == 4.0
    assert outlook.weeks_at_capacity == 0.1
    assert outlook.on_track is True


def test_the_backlog_found_by_the_first_sweep_is_not_weekly_inflow() -> None:
    first_sweep = SweepFact(1, _at("2027-04-05T05:00"), "full", "all", 0, 0)
    inherited = _task("A", 1, due="2027-03-01", opened="2027-04-05T05:00")
    arrived = _task("B", 2, due="2027-04-10", opened="2027-04-12T05:00")
    report = build_report(AuditInputs(MONTH, (), (), (inherited, arrived), (), (first_sweep,)))
    assert report.forecast.backlog == 2
    assert report.forecast.new_overdue_per_week == 0.25  # B only
    mtx = next(g for g in report.groups if g.drug_group == "methotrexate")
    assert mtx.newly_overdue.value == 2  # both became overdue Tasks in April


def test_searches_run_in_the_month(small: MonthlyReport) -> None:
    assert [s.started_at.date().isoformat() for s in small.sweeps] == [
        "2027-04-05",
        "2027-04-12",
        "2027-04-19",
        "2027-04-26",
    ]


def test_a_month_on_the_weekly_cadence_has_no_gaps(small: MonthlyReport) -> None:
    assert small.cadence_gaps == ()


def test_the_days_before_the_programme_first_searched_are_not_a_missed_search() -> None:
    started = tuple(s for s in SWEEPS if s.started_at.date() >= date(2027, 4, 19))
    report = build_report(AuditInputs(MONTH, (), (), (), (), started), PRACTICE)
    assert report.cadence_gaps == ()
    stopped = tuple(s for s in started if s.started_at.date() <= date(2027, 4, 19))
    assert build_report(AuditInputs(MONTH, (), (), (), (), stopped), PRACTICE).cadence_gaps == (
        "No search completed from 2027-04-20 to 2027-04-30 (11 days).",
    )


def test_a_missed_weekly_search_is_reported() -> None:
    missed = [s for s in SWEEPS if s.started_at.date() != date(2027, 4, 12)]
    inputs = AuditInputs(MONTH, (), (), (), (), tuple(missed))
    assert build_report(inputs, PRACTICE).cadence_gaps == (
        "No search completed from 2027-04-06 to 2027-04-18 (13 days).",
    )
    none = build_report(AuditInputs(MONTH, (), (), (), (), SWEEPS[:5]), PRACTICE)
    assert none.cadence_gaps == ("No search completed between 2027-04-01 and 2027-04-30.",)
    html = render_html(none)
    assert "The weekly searches did not run on their cadence this month." in html
    assert "No search completed between 2027-04-01 and 2027-04-30." in html


def test_every_figure_is_the_length_of_its_list(small: MonthlyReport) -> None:
    for patient_list in small.lists.values():
        assert all(row.patient.startswith("Patient/") for row in patient_list.rows)
    mtx = next(g for g in small.groups if g.drug_group == "methotrexate")
    for figure in (mtx.established, mtx.in_date, mtx.overdue, mtx.closed):
        assert figure.value == len(small.lists[figure.list_id].rows)


def test_severely_overdue_and_monitored_elsewhere_are_counted_apart() -> None:
    elsewhere = "Rheumatology, Oakfield Hospital"
    statuses = (
        _status(1, due="2027-04-20"),
        replace(_status(2, due="2027-01-02"), severely_overdue=True),
        replace(_status(3), monitored_elsewhere=elsewhere),
        replace(_status(4, established=False), monitored_elsewhere=elsewhere),
    )
    inputs = AuditInputs(
        month=MONTH, groups=statuses, indicators=(), findings=(), events=(), sweeps=SWEEPS
    )
    report = build_report(inputs, PRACTICE, 12.0)
    [row] = [g for g in report.groups if g.drug_group == "methotrexate"]
    assert (row.established.value, row.overdue.value, row.new_starts.value) == (2, 2, 0)
    assert _patients(report, row.severely_overdue.list_id) == ["Patient/p2"]
    assert _patients(report, row.monitored_elsewhere.list_id) == ["Patient/p3", "Patient/p4"]
    assert report.lists[row.monitored_elsewhere.list_id].rows[0].detail == f"by {elsewhere}"
    assert (report.totals.severely_overdue.value, report.totals.monitored_elsewhere.value) == (1, 2)
    [dmard] = [i for i in report.inspector_findings if i.id == "dmard-overdue-no-contact"]
    looked_at = _patients(report, dmard.population.list_id)
    assert looked_at == ["Patient/p1", "Patient/p2"], "monitored elsewhere is not the practice's"
    html = render_html(report)
    assert "Monitored elsewhere" in html
    assert "Severely overdue" in html
