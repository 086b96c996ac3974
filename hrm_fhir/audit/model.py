"""The monthly audit's inputs (facts read from the ledger and the record) and its result.

Every count in the report is a ``Figure``: a number with the id of the patient list behind it,
so each number traces to the patients it counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from hrm_fhir.domain import FindingKind, Severity

# ------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class TaskFact:
    """One finding the service wrote (monitoring or review Task, or out-of-range Flag)."""

    identifier: str
    resource_type: str
    """``Task`` or ``Flag``."""
    resource_id: str
    patient: str
    practice: str | None
    kind: FindingKind
    drug_group: str
    severity: Severity | None
    due_date: date | None
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None

    @property
    def is_monitoring(self) -> bool:
        return self.kind in (FindingKind.DUE, FindingKind.OVERDUE)

    def open_at(self, moment: datetime) -> bool:
        return self.opened_at <= moment and (self.closed_at is None or self.closed_at > moment)


@dataclass(frozen=True, slots=True)
class EventFact:
    """One programme action from the workflow ledger."""

    at: datetime
    task_id: str
    patient: str
    practice: str | None
    actor: str
    role: str
    action: str
    stage_after: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SweepFact:
    """One completed sweep: the evidence that searches run on a defined cadence."""

    id: int
    started_at: datetime
    mode: str
    scope: str
    created: int
    closed: int


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One patient's monitoring position for one drug group at month end (from the engine)."""

    patient: str
    practice: str | None
    drug_group: str
    established: bool
    age: int | None
    overdue_identifier: str | None = None
    due_date: date | None = None
    tests: tuple[str, ...] = ()
    severely_overdue: bool = False
    """The overdue finding is past its schedule's tolerance (rule packs)."""
    monitored_elsewhere: str | None = None
    """Who monitors the group, when another organisation does (and its review date has not
    passed): counted apart from the practice's own monitoring."""


@dataclass(frozen=True, slots=True)
class IndicatorStatus:
    """One patient in an indicator's initial population at month end."""

    indicator: str
    patient: str
    practice: str | None
    denominator: bool
    numerator: bool


@dataclass(frozen=True)
class AuditInputs:
    """Everything the report is computed from; the same inputs give the same report."""

    month: date
    """The first day of the month reported."""
    groups: tuple[GroupStatus, ...]
    indicators: tuple[IndicatorStatus, ...]
    findings: tuple[TaskFact, ...]
    events: tuple[EventFact, ...]
    sweeps: tuple[SweepFact, ...]
    record_as_at: datetime | None = None
    """When the clinical record (snapshots) was last read from the FHIR server."""

    def for_practice(self, practice: str) -> AuditInputs:
        """The part of these inputs that belongs to one practice (Organization id)."""
        return replace(
            self,
            groups=tuple(g for g in self.groups if g.practice == practice),
            indicators=tuple(i for i in self.indicators if i.practice == practice),
            findings=tuple(f for f in self.findings if f.practice == practice),
            events=tuple(e for e in self.events if e.practice == practice),
            sweeps=tuple(s for s in self.sweeps if s.scope in ("all", f"Organization/{practice}")),
        )


# ------------------------------------------------------------------ result


@dataclass(frozen=True, slots=True)
class Figure:
    value: int
    list_id: str


@dataclass(frozen=True, slots=True)
class ListRow:
    patient: str
    """A FHIR reference, ``Patient/<id>``: the list never holds names or NHS numbers."""
    drug_group: str
    detail: str
    """Why the patient is counted, e.g. ``due 2026-09-01, 30 days overdue``."""


@dataclass(frozen=True, slots=True)
class PatientList:
    """The patients behind one figure: one row per thing counted."""

    id: str
    title: str
    rows: tuple[ListRow, ...]


@dataclass(frozen=True, slots=True)
class GroupRow:
    drug_group: str
    title: str
    established: Figure
    in_date: Figure
    in_date_pct: float | None
    overdue: Figure
    """Established therapy with monitoring overdue at month end: the three bands together."""
    overdue_up_to_4w: Figure
    overdue_4_to_12w: Figure
    overdue_over_12w: Figure
    severely_overdue: Figure
    """Established therapy overdue past the schedule's tolerance (from the rule packs)."""
    new_starts: Figure
    new_starts_overdue: Figure
    newly_overdue: Figure
    closed: Figure
    median_days_overdue_at_closure: float | None
    monitored_elsewhere: Figure
    """On the drug, but another organisation monitors it: not in the figures above."""


@dataclass(frozen=True, slots=True)
class InspectorRow:
    id: str
    title: str
    population: Figure
    """Who the criterion looks at: patients on the drugs (or the results) it covers."""
    figure: Figure
    source: str
    verified: bool
    note: str


@dataclass(frozen=True, slots=True)
class IndicatorRow:
    id: str
    pincer: str
    title: str
    initial_population: Figure
    denominator: Figure
    numerator: Figure
    rate_pct: float | None
    source: str
    verified: bool
    note: str


@dataclass(frozen=True, slots=True)
class SeverityRow:
    severity: str
    results: Figure
    pharmacist_actioned: Figure
    median_hours_to_pharmacist: float | None
    gp_actioned: Figure
    median_hours_to_gp: float | None
    no_escalation: Figure


@dataclass(frozen=True, slots=True)
class Workload:
    contact_attempts: int
    patients_contacted: Figure
    tests_completed: Figure
    attempts_per_completed_test: float | None
    non_responders: Figure
    non_responders_decided: Figure
    sign_offs: int
    signed_off_patients: Figure
    by_severity: tuple[SeverityRow, ...]


@dataclass(frozen=True, slots=True)
class WeekPoint:
    week_ending: date
    open_overdue: int


@dataclass(frozen=True, slots=True)
class Forecast:
    backlog: int
    closures_per_week: float
    new_overdue_per_week: float
    weeks_at_current_rate: float | None
    """None when the backlog is not shrinking at the current rate."""
    capacity_per_week: float
    weeks_at_capacity: float | None
    expected_weeks: tuple[int, int]
    on_track: bool | None
    """None when there is nothing to clear."""


@dataclass(frozen=True, slots=True)
class SweepRow:
    started_at: datetime
    mode: str
    created: int
    closed: int


@dataclass(frozen=True, slots=True)
class PracticeRow:
    practice: str
    established: int
    in_date: int
    in_date_pct: float | None
    backlog: int
    weeks_at_current_rate: float | None


@dataclass(frozen=True)
class MonthlyReport:
    scope: str
    """``Organization/<practice>`` or ``PCN <id>``."""
    practices: tuple[str, ...]
    month: date
    period_start: date
    period_end: date
    definitions: str
    """``<id>@<version>`` of the audit definitions."""
    rule_packs: tuple[str, ...]
    """``<id>@<version>`` of every rule pack in force at month end: the schedules applied."""
    record_as_at: datetime | None
    groups: tuple[GroupRow, ...]
    totals: GroupRow
    inspector_findings: tuple[InspectorRow, ...]
    indicators: tuple[IndicatorRow, ...]
    workload: Workload
    backlog: tuple[WeekPoint, ...]
    forecast: Forecast
    sweeps: tuple[SweepRow, ...]
    practice_rows: tuple[PracticeRow, ...] = ()
    lists: dict[str, PatientList] = field(default_factory=dict)
    cadence_gaps: tuple[str, ...] = ()
    """Where the weekly searches did not run on their cadence in the month, in words."""
    warnings: tuple[str, ...] = ()
    """What limits the whole report, e.g. rule packs no version covers at month end."""
