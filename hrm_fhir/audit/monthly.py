"""The monthly audit summary, computed from the audit inputs (pure).

Month boundaries are local days (``clock.py``); ledger instants are compared with the local
start of the month and of the next month. Nothing after the month's end is read, so a past month
reproduces exactly from the same inputs. See docs/audit.md for every definition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from hrm_fhir.audit.backlog import OverdueSpan, forecast, week_endings, weekly_trend
from hrm_fhir.audit.definitions import UNESCALATED, AuditDefinitions, InspectorFinding
from hrm_fhir.audit.figures import Lists, Month, local_day, median_of, month_bounds, pct
from hrm_fhir.audit.model import (
    AuditInputs,
    EventFact,
    Figure,
    GroupRow,
    GroupStatus,
    IndicatorRow,
    IndicatorStatus,
    InspectorRow,
    ListRow,
    MonthlyReport,
    PracticeRow,
    SweepRow,
    TaskFact,
)
from hrm_fhir.audit.workload import actions_by_finding, event_order, workload
from hrm_fhir.domain import FindingKind
from hrm_fhir.rules.model import RulePack

CADENCE_DAYS = 8
"""This many days in a row without a completed sweep break the weekly cadence (a day's grace)."""
FOUR_WEEKS, TWELVE_WEEKS = 28, 84
"""Days overdue that bound the report's bands (up to 4 weeks, 4 to 12, over 12): the programme
specification's reporting bands, not clinical thresholds."""


def _span(task: TaskFact, programme_start: date | None) -> OverdueSpan | None:
    if not task.is_monitoring or task.due_date is None:
        return None
    opened = local_day(task.opened_at)
    start = max(task.due_date + timedelta(days=1), opened)
    end = local_day(task.closed_at) if task.closed_at is not None else None
    if end is not None and end < start:
        return None
    inherited = opened == programme_start and task.due_date < opened
    return OverdueSpan(start=start, end=end, closed_overdue=end is not None, inherited=inherited)


def _overdue_detail(status: GroupStatus, last: date) -> str:
    assert status.due_date is not None  # noqa: S101 - only called for overdue statuses
    days = (last - status.due_date).days
    return f"due {status.due_date.isoformat()}, {days} days overdue: {', '.join(status.tests)}"


_BANDS = (
    ("overdue-up-to-4w", "overdue up to 4 weeks", None, FOUR_WEEKS),
    ("overdue-4-12w", "overdue 4 to 12 weeks", FOUR_WEEKS, TWELVE_WEEKS),
    ("overdue-over-12w", "overdue over 12 weeks", TWELVE_WEEKS, None),
)
"""The overdue bands: list id, title, and days overdue after ``low`` up to ``high`` (open ends
None)."""
_Spans = Sequence[tuple[TaskFact, OverdueSpan]]


@dataclass(frozen=True)
class _GroupFigures:
    """The figures of one drug group's row, each named after the group, with its patient list."""

    group: str
    title: str
    last: date
    lists: Lists

    def of(self, key: str, text: str, rows: Iterable[ListRow]) -> Figure:
        return self.lists.figure(f"{self.group}-{key}", f"{self.title}: {text}", rows)

    def statuses(
        self, key: str, text: str, items: Iterable[GroupStatus], overdue: bool = False
    ) -> Figure:
        """Patients at month end, with what is overdue when ``overdue``."""
        return self.of(
            key,
            text,
            [
                ListRow(s.patient, s.drug_group, _overdue_detail(s, self.last) if overdue else "")
                for s in items
            ],
        )

    def tasks(
        self, key: str, text: str, items: _Spans, what: Callable[[TaskFact, OverdueSpan], str]
    ) -> Figure:
        """Overdue Tasks, each with ``what`` happened to it."""
        return self.of(
            key,
            text,
            [
                ListRow(
                    t.patient, t.drug_group, f"Task/{t.resource_id} due {t.due_date}, {what(t, s)}"
                )
                for t, s in items
            ],
        )

    def elsewhere(self, statuses: Iterable[GroupStatus]) -> Figure:
        """Patients another organisation monitors, and by whom."""
        return self.of(
            "monitored-elsewhere",
            "monitored elsewhere at month end",
            [
                ListRow(s.patient, s.drug_group, f"by {s.monitored_elsewhere}")
                for s in statuses
                if s.monitored_elsewhere is not None
            ],
        )

    def bands(self, overdue: Sequence[GroupStatus]) -> list[Figure]:
        """The overdue patients in each band of days overdue at month end."""

        def days(s: GroupStatus) -> int:
            return (self.last - s.due_date).days if s.due_date else 0

        return [
            self.statuses(
                key,
                f"{text} at month end",
                (
                    s
                    for s in overdue
                    if (low is None or days(s) > low) and (high is None or days(s) <= high)
                ),
                overdue=True,
            )
            for key, text, low, high in _BANDS
        ]


def _overdue_from(_task: TaskFact, span: OverdueSpan) -> str:
    return f"overdue from {span.start}"


def _closed_as(task: TaskFact, span: OverdueSpan) -> str:
    return f"closed {span.end} ({task.close_reason})"


def _in_month(tasks: _Spans, month: Month) -> tuple[_Spans, _Spans]:
    """The Tasks that became overdue in the month, and the overdue ones closed in it."""
    newly = [(t, s) for t, s in tasks if month.first <= s.start <= month.last]
    closed = [
        (t, s)
        for t, s in tasks
        if s.closed_overdue and s.end is not None and month.first <= s.end <= month.last
    ]
    return newly, closed


def _group_row(
    group: str,
    title: str,
    statuses: Sequence[GroupStatus],
    tasks: _Spans,
    month: Month,
    lists: Lists,
) -> GroupRow:
    figures = _GroupFigures(group, title, month.last, lists)
    ours = [s for s in statuses if s.monitored_elsewhere is None]
    established = [s for s in ours if s.established]
    new = [s for s in ours if not s.established]
    overdue = [s for s in established if s.due_date is not None]
    bands = figures.bands(overdue)
    in_date = [s for s in established if s.due_date is None]
    newly, closed = _in_month(tasks, month)
    return GroupRow(
        drug_group=group,
        title=title,
        established=figures.statuses("established", "on established therapy", established),
        in_date=figures.statuses("in-date", "in date at month end", in_date),
        in_date_pct=pct(len(in_date), len(established)),
        overdue=figures.statuses("overdue", "overdue at month end", overdue, overdue=True),
        overdue_up_to_4w=bands[0],
        overdue_4_to_12w=bands[1],
        overdue_over_12w=bands[2],
        severely_overdue=figures.statuses(
            "severely-overdue",
            "severely overdue at month end (past the schedule's tolerance)",
            (s for s in overdue if s.severely_overdue),
            overdue=True,
        ),
        new_starts=figures.statuses("new-starts", "new starts", new),
        new_starts_overdue=figures.statuses(
            "new-starts-overdue",
            "new starts overdue at month end",
            (s for s in new if s.due_date is not None),
            overdue=True,
        ),
        newly_overdue=figures.tasks(
            "newly-overdue",
            "newly overdue in the month",
            newly,
            lambda _, s: f"overdue from {s.start}",
        ),
        closed=figures.tasks(
            "closed",
            "overdue Tasks closed in the month",
            closed,
            lambda t, s: f"closed {s.end} ({t.close_reason})",
        ),
        median_days_overdue_at_closure=median_of(
            [float((s.end - t.due_date).days) for t, s in closed if s.end and t.due_date]
        ),
        monitored_elsewhere=figures.elsewhere(statuses),
    )


def _total_row(rows: Sequence[GroupRow], lists: Lists) -> GroupRow:
    def total(name: str, title: str) -> Figure:
        merged = [r for row in rows for r in lists.lists[getattr(row, name).list_id].rows]
        return lists.figure(f"all-{name.replace('_', '-')}", f"All drug groups: {title}", merged)

    established = total("established", "on established therapy")
    in_date = total("in_date", "in date at month end")
    return GroupRow(
        drug_group="all",
        title="All drug groups",
        established=established,
        in_date=in_date,
        in_date_pct=pct(in_date.value, established.value),
        overdue=total("overdue", "overdue at month end"),
        overdue_up_to_4w=total("overdue_up_to_4w", "overdue up to 4 weeks"),
        overdue_4_to_12w=total("overdue_4_to_12w", "overdue 4 to 12 weeks"),
        overdue_over_12w=total("overdue_over_12w", "overdue over 12 weeks"),
        severely_overdue=total("severely_overdue", "severely overdue at month end"),
        new_starts=total("new_starts", "new starts"),
        new_starts_overdue=total("new_starts_overdue", "new starts overdue"),
        newly_overdue=total("newly_overdue", "newly overdue in the month"),
        closed=total("closed", "overdue Tasks closed in the month"),
        median_days_overdue_at_closure=None,
        monitored_elsewhere=total("monitored_elsewhere", "monitored elsewhere at month end"),
    )


def _inspector_row(
    finding: InspectorFinding,
    statuses: Sequence[GroupStatus],
    contacted: Callable[[GroupStatus], bool],
    results: Sequence[TaskFact],
    unescalated: Sequence[TaskFact],
    lists: Lists,
    last: date,
) -> InspectorRow:
    if finding.kind == UNESCALATED:
        covered = [t for t in results if t.severity in finding.severities]
        population = [ListRow(t.patient, t.drug_group, _result_detail(t)) for t in covered]
        rows = [
            ListRow(t.patient, t.drug_group, _result_detail(t))
            for t in unescalated
            if t.severity in finding.severities
        ]
    else:
        looked_at = [
            s
            for s in statuses
            if s.drug_group in finding.groups
            and s.monitored_elsewhere is None
            and (s.established or not finding.established_only)
            and (finding.min_age is None or (s.age is not None and s.age >= finding.min_age))
        ]
        population = [ListRow(s.patient, s.drug_group, "") for s in looked_at]
        rows = [
            ListRow(s.patient, s.drug_group, _overdue_detail(s, last))
            for s in looked_at
            if s.due_date is not None
            and (not finding.tests or any(test in s.tests for test in finding.tests))
            and not (finding.without_contact and contacted(s))
        ]
    return InspectorRow(
        id=finding.id,
        title=finding.title,
        population=lists.figure(
            f"inspector-{finding.id}-population",
            f"{finding.title}: patients covered",
            _per_patient(population),
        ),
        figure=lists.figure(f"inspector-{finding.id}", finding.title, _per_patient(rows)),
        source=finding.citation.url,
        verified=finding.verified,
        note=finding.note,
    )


def _per_patient(rows: Iterable[ListRow]) -> list[ListRow]:
    """One row per patient: a patient on two drugs of a family is counted once."""
    merged: dict[str, list[ListRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.patient, r.drug_group, r.detail)):
        merged[row.patient].append(row)
    return [
        ListRow(
            patient,
            " + ".join(dict.fromkeys(r.drug_group for r in items)),
            "; ".join(r.detail for r in items if r.detail),
        )
        for patient, items in merged.items()
    ]


def _result_detail(task: TaskFact) -> str:
    return f"{task.resource_type}/{task.resource_id} {task.severity or ''}".rstrip()


def build_monthly_report(
    inputs: AuditInputs,
    definitions: AuditDefinitions,
    packs: Sequence[RulePack],
    *,
    scope: str,
    practices: Sequence[str],
    capacity_per_week: float,
) -> MonthlyReport:
    """The report for one practice, or for several (a PCN) taken together."""
    first, last, start, end = month_bounds(inputs.month)
    month = Month(first, last, start, end)
    lists = Lists()
    findings = sorted((f for f in inputs.findings if f.opened_at < end), key=lambda f: f.identifier)
    events = sorted((e for e in inputs.events if e.at < end), key=event_order)
    programme_start = _programme_start(inputs, findings)
    spans = {f.identifier: s for f in findings if (s := _span(f, programme_start)) is not None}
    groups = _group_rows(inputs, findings, spans, packs, month, lists)
    totals = _total_row(groups, lists)
    actions = actions_by_finding(events)
    results = [f for f in findings if f.kind is FindingKind.OUT_OF_RANGE and _open_at(f, start)]
    unescalated = [f for f in results if not actions.get(f.resource_id)]
    contacted = _contacted(findings, events, end)
    inspector = tuple(
        _inspector_row(d, inputs.groups, contacted, results, unescalated, lists, last)
        for d in definitions.inspector_findings
    )
    indicators = _indicator_rows(inputs, definitions, lists)
    work = workload(findings, events, results, actions, month, lists)
    sweeps = tuple(
        SweepRow(s.started_at, s.mode, s.created, s.closed)
        for s in sorted(inputs.sweeps, key=lambda s: s.started_at)
        if month.within(s.started_at)
    )
    first_search = min((local_day(s.started_at) for s in inputs.sweeps), default=None)
    weeks = week_endings(programme_start or first, last)
    return MonthlyReport(
        cadence_gaps=cadence_gaps(sweeps, month, first_search),
        scope=scope,
        practices=tuple(practices),
        month=first,
        period_start=first,
        period_end=last,
        definitions=definitions.ref,
        rule_packs=tuple(p.ref for p in packs),
        record_as_at=inputs.record_as_at,
        groups=groups,
        totals=totals,
        inspector_findings=inspector,
        indicators=indicators,
        workload=work,
        backlog=tuple(weekly_trend(list(spans.values()), weeks)),
        forecast=forecast(list(spans.values()), last, capacity_per_week),
        sweeps=sweeps,
        lists=lists.lists,
    )


def _open_at(task: TaskFact, moment: datetime) -> bool:
    """Not closed before ``moment``."""
    return task.closed_at is None or task.closed_at >= moment


def _group_rows(
    inputs: AuditInputs,
    findings: Sequence[TaskFact],
    spans: dict[str, OverdueSpan],
    packs: Sequence[RulePack],
    month: Month,
    lists: Lists,
) -> tuple[GroupRow, ...]:
    """One row per rule pack's drug group, in the packs' order."""
    by_group_status: dict[str, list[GroupStatus]] = defaultdict(list)
    for status in inputs.groups:
        by_group_status[status.drug_group].append(status)
    by_group_tasks: dict[str, list[tuple[TaskFact, OverdueSpan]]] = defaultdict(list)
    for f in findings:
        if f.identifier in spans:
            by_group_tasks[f.drug_group].append((f, spans[f.identifier]))
    return tuple(
        _group_row(g, title, by_group_status[g], by_group_tasks[g], month, lists)
        for g, title in ((p.drug_group, p.title) for p in packs)
    )


def _contacted(
    findings: Sequence[TaskFact], events: Sequence[EventFact], end: datetime
) -> Callable[[GroupStatus], bool]:
    """Whether anyone contacted the patient about the group's overdue Task (or one open at
    month end)."""
    contacted_tasks = {e.task_id for e in events if e.action == "contact"}
    tasks_by_patient_group: dict[tuple[str, str], list[TaskFact]] = defaultdict(list)
    for f in findings:
        if f.is_monitoring:
            tasks_by_patient_group[(f.patient, f.drug_group)].append(f)

    def contacted(status: GroupStatus) -> bool:
        tasks = tasks_by_patient_group[(status.patient, status.drug_group)]
        return any(
            t.resource_id in contacted_tasks
            for t in tasks
            if t.identifier == status.overdue_identifier
            or t.closed_at is None
            or t.closed_at >= end
        )

    return contacted


def cadence_gaps(
    sweeps: Sequence[SweepRow], month: Month, first_search: date | None = None
) -> tuple[str, ...]:
    """Stretches of ``CADENCE_DAYS`` or more days of the month with no completed sweep. When
    the programme's first search (``first_search``) falls in the month, the days before it are
    not counted: the programme had not started, so no search was missed."""
    days = [local_day(s.started_at) for s in sweeps]
    if not days:
        return (f"No search completed between {month.first} and {month.last}.",)
    start = max(month.first, first_search) if first_search is not None else month.first
    edges = [start - timedelta(days=1), *days, month.last + timedelta(days=1)]
    return tuple(
        f"No search completed from {a + timedelta(days=1)} to {b - timedelta(days=1)} "
        f"({(b - a).days - 1} days)."
        for a, b in pairwise(edges)
        if (b - a).days - 1 >= CADENCE_DAYS
    )


def _programme_start(inputs: AuditInputs, findings: Sequence[TaskFact]) -> date | None:
    starts = [s.started_at for s in inputs.sweeps] or [f.opened_at for f in findings]
    return local_day(min(starts)) if starts else None


def _indicator_rows(
    inputs: AuditInputs, definitions: AuditDefinitions, lists: Lists
) -> tuple[IndicatorRow, ...]:
    by_indicator: dict[str, list[IndicatorStatus]] = defaultdict(list)
    for status in inputs.indicators:
        by_indicator[status.indicator].append(status)
    out = []
    for indicator in definitions.indicators:
        statuses = by_indicator[indicator.id]
        figures = [
            lists.figure(
                f"{indicator.id}-{part}",
                f"{indicator.id}: {part.replace('-', ' ')}",
                [ListRow(s.patient, indicator.drug_group, "") for s in statuses if keep(s)],
            )
            for part, keep in (
                ("initial-population", lambda s: True),
                ("denominator", lambda s: s.denominator),
                ("numerator", lambda s: s.numerator),
            )
        ]
        out.append(
            IndicatorRow(
                id=indicator.id,
                pincer=indicator.pincer,
                title=indicator.title,
                initial_population=figures[0],
                denominator=figures[1],
                numerator=figures[2],
                rate_pct=pct(figures[2].value, figures[1].value),
                source=indicator.citation.url,
                verified=indicator.verified,
                note=indicator.note,
            )
        )
    return tuple(out)


def practice_row(report: MonthlyReport, practice: str) -> PracticeRow:
    """One practice's headline figures, for the PCN table."""
    return PracticeRow(
        practice=practice,
        established=report.totals.established.value,
        in_date=report.totals.in_date.value,
        in_date_pct=report.totals.in_date_pct,
        backlog=report.forecast.backlog,
        weeks_at_current_rate=report.forecast.weeks_at_current_rate,
    )
