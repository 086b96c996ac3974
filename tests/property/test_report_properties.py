"""Properties of the monthly report over generated ledgers: every figure is the length of its
list, the bands add up, input order does not matter, and nothing after the month changes it."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hrm_fhir.audit.model import (
    AuditInputs,
    EventFact,
    Figure,
    GroupStatus,
    MonthlyReport,
    SweepFact,
    TaskFact,
)
from hrm_fhir.domain import FindingKind, Severity
from tests.audit.conftest import build_report

MONTH = date(2027, 4, 1)
MONTH_END = datetime(2027, 4, 30, 23, tzinfo=UTC)
GROUPS = ("methotrexate", "lithium", "doac")
FIRST = datetime(2027, 1, 4, 6, tzinfo=UTC)

patients = st.integers(min_value=1, max_value=12).map(lambda n: f"Patient/p{n}")
days = st.integers(min_value=0, max_value=130)  # 4 January to mid May 2027
hours = st.integers(min_value=0, max_value=130 * 24)


@st.composite
def tasks(draw: st.DrawFn, number: int) -> TaskFact:
    opened = FIRST + timedelta(hours=draw(hours))
    closes = draw(st.booleans())
    flag = draw(st.booleans())
    return TaskFact(
        identifier=f"f{number}",
        resource_type="Flag" if flag else "Task",
        resource_id=f"f{number}",
        patient=draw(patients),
        practice="practice-1",
        kind=FindingKind.OUT_OF_RANGE if flag else FindingKind.OVERDUE,
        drug_group=draw(st.sampled_from(GROUPS)),
        severity=draw(st.sampled_from(list(Severity))) if flag else None,
        due_date=None if flag else FIRST.date() + timedelta(days=draw(days)),
        opened_at=opened,
        closed_at=opened + timedelta(hours=draw(hours)) if closes else None,
        close_reason=draw(st.sampled_from(["result received", "drug stopped"])) if closes else None,
    )


@st.composite
def events(draw: st.DrawFn, task_ids: list[str]) -> EventFact:
    action = draw(st.sampled_from(["contact", "route", "decision", "signoff", "escalate"]))
    task = draw(st.sampled_from(task_ids)) if task_ids else "none"
    return EventFact(
        at=FIRST + timedelta(hours=draw(hours)),
        task_id=task,
        patient=draw(patients),
        practice="practice-1",
        actor="someone",
        role="pharmacist",
        action=action,
        stage_after="non-engagement" if action == "route" else None,
        detail={"flags": [task], "result_to_action_hours": draw(st.integers(0, 500))},
    )


@st.composite
def statuses(draw: st.DrawFn) -> GroupStatus:
    overdue = draw(st.booleans())
    return GroupStatus(
        patient=draw(patients),
        practice="practice-1",
        drug_group=draw(st.sampled_from(GROUPS)),
        established=draw(st.booleans()),
        age=draw(st.integers(18, 99)),
        overdue_identifier="x" if overdue else None,
        due_date=date(2027, 4, 30) - timedelta(days=draw(st.integers(1, 200))) if overdue else None,
        tests=tuple(draw(st.sets(st.sampled_from(["fbc", "lft", "lithium", "renal"])))),
    )


@st.composite
def ledgers(draw: st.DrawFn) -> AuditInputs:
    findings = [draw(tasks(n)) for n in range(draw(st.integers(0, 25)))]
    ids = [f.resource_id for f in findings]
    return AuditInputs(
        month=MONTH,
        groups=tuple(
            {(s.patient, s.drug_group): s for s in draw(st.lists(statuses(), max_size=20))}.values()
        ),
        indicators=(),
        findings=tuple(findings),
        events=tuple(draw(st.lists(events(ids), max_size=25))),
        sweeps=(SweepFact(1, FIRST, "full", "all", 0, 0),),
    )


def _report(inputs: AuditInputs) -> MonthlyReport:
    return build_report(inputs)


def _figures(node: object) -> list[Figure]:
    if isinstance(node, Figure):
        return [node]
    if is_dataclass(node) and not isinstance(node, type):
        return [f for field in fields(node) for f in _figures(getattr(node, field.name))]
    if isinstance(node, tuple | list):
        return [f for item in node for f in _figures(item)]
    return []


@given(ledgers())
def test_every_figure_is_the_length_of_its_list(inputs: AuditInputs) -> None:
    report = _report(inputs)
    figures = _figures(report)
    assert figures
    for figure in figures:
        assert figure.value == len(report.lists[figure.list_id].rows)


@given(ledgers())
def test_the_bands_add_up(inputs: AuditInputs) -> None:
    report = _report(inputs)
    for row in (*report.groups, report.totals):
        assert row.established.value == row.in_date.value + row.overdue.value
        bands = (row.overdue_up_to_4w, row.overdue_4_to_12w, row.overdue_over_12w)
        assert row.overdue.value == sum(b.value for b in bands)
    assert report.totals.established.value == sum(g.established.value for g in report.groups)
    assert report.backlog[-1].open_overdue == report.forecast.backlog


@given(ledgers(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(inputs: AuditInputs, random: object) -> None:
    shuffled = [list(inputs.findings), list(inputs.events), list(inputs.groups)]
    for items in shuffled:
        random.shuffle(items)  # type: ignore[attr-defined]
    again = replace(
        inputs,
        findings=tuple(shuffled[0]),
        events=tuple(shuffled[1]),
        groups=tuple(shuffled[2]),
    )
    assert _report(again) == _report(inputs)


@given(ledgers(), ledgers())
def test_what_happens_after_the_month_changes_nothing(
    inputs: AuditInputs, later: AuditInputs
) -> None:
    shift = MONTH_END - FIRST + timedelta(hours=1)
    after = [
        replace(
            f, identifier=f"later-{f.identifier}", opened_at=f.opened_at + shift, closed_at=None
        )
        for f in later.findings
    ]
    after_events = [replace(e, at=e.at + shift) for e in later.events]
    extended = replace(
        inputs,
        findings=inputs.findings + tuple(after),
        events=inputs.events + tuple(after_events),
    )
    assert _report(extended) == _report(inputs)
