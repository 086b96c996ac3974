"""What the workflow's lists and actions return: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from hrm_fhir.domain import Severity
from hrm_fhir.programme import (
    ChaseStep,
    Priority,
    Stage,
)


@dataclass(frozen=True)
class HistoryItem:
    """One entry of a patient's contact history: a Communication, or a ledger event."""

    at: datetime
    action: str
    """``contact`` for Communications; else the ledger action (``booking``, ``sample``...)."""
    summary: str
    by: str
    task_ids: tuple[str, ...]
    medium: str | None = None
    outcome: str | None = None
    status: str | None = None
    """The Communication's status: ``completed`` or ``not-done``."""
    note: str = ""
    reference: str | None = None


@dataclass(frozen=True)
class TaskSummary:
    """One open Task as the lists show it; ``version`` is what an action must send back."""

    task_id: str
    version: str | None
    code: str
    stage: Stage
    status: str
    drug_group: str
    rule: str
    tests: tuple[str, ...]
    test_titles: tuple[str, ...]
    due_date: date | None
    days_overdue: int
    severely_overdue: bool
    """The engine graded it past its schedule's tolerance (the Task's severely-overdue flag)."""
    description: str
    source: str | None
    attempts: int
    last_attempt: date | None
    chase: ChaseStep | None
    chase_due_on: date | None
    chase_due: bool
    """A chase step falls due within the seven days from the as-of date."""
    booked_for: date | None


@dataclass(frozen=True)
class WorklistEntry:
    """One patient on the technician's list: every open monitoring Task, across drug groups."""

    patient: str
    practice: str | None
    tasks: list[TaskSummary]
    tests: list[str]
    test_titles: list[str]
    drug_groups: list[str]
    due_date: date | None
    days_overdue: int
    stage: Stage
    """The least advanced stage among the patient's Tasks."""
    chase_due: bool
    next_chase: ChaseStep | None
    contacts: list[HistoryItem]
    priority: Priority
    out_of_range: bool
    """The patient has an active out-of-range Flag or an open result review."""


@dataclass(frozen=True)
class PatientDetails:
    """Read from the Patient resource when shown; never stored in the ledger nor logged."""

    name: str
    nhs_number: str
    phone: str
    preferred_contact: str


@dataclass(frozen=True)
class ResultPoint:
    observation: str
    on: date
    value: float | None
    unit: str | None


@dataclass(frozen=True)
class Trend:
    """One analyte's results, oldest first."""

    analyte: str
    title: str
    points: list[ResultPoint]


@dataclass(frozen=True)
class ThresholdInfo:
    analyte: str
    rule: str
    """E.g. ``>= 1.5 mmol/L``."""
    severity: Severity
    advice: str


@dataclass(frozen=True)
class FlagSummary:
    flag_id: str
    version: str | None
    severity: Severity | None
    text: str
    observation: str | None
    since: date | None


@dataclass(frozen=True)
class OpenItem:
    """A Task or Flag the service wrote (open ones on the card), with the rule and source."""

    reference: str
    version: str | None
    kind: str
    """The Task code (``monitoring-due``, ``result-review``...) or ``flag``."""
    description: str
    rule: str
    source: str | None
    status: str
    stage: Stage | None
    severity: Severity | None
    drug_group: str = ""
    """The drug group of a Task (from the ledger or the Task itself); empty for a Flag."""


@dataclass(frozen=True)
class PatientCard:
    patient: str
    as_of: date
    practice: str | None
    details: PatientDetails
    tests_due: list[TaskSummary]
    contacts: list[HistoryItem]
    results: list[Trend]
    findings: list[OpenItem]


@dataclass(frozen=True)
class ReviewItem:
    """One thing for the pharmacist (or, for ``gp-escalation``, the GP) to act on.

    ``task_id`` and ``version`` are what the action takes: a Task, or for a ``flag`` item (an
    out-of-range result with no Task awaiting review) the Flag itself.
    """

    kind: str
    """``flag``, ``result``, ``gp-escalation``, ``prescribing`` or ``non-engagement``."""
    task_id: str
    version: str | None
    patient: str
    practice: str | None
    stage: Stage
    drug_group: str
    medication: str | None
    rule: str
    description: str
    severity: Severity | None
    source: str | None
    since: date | None
    flags: list[FlagSummary]
    results: list[str]
    trend: list[Trend]
    thresholds: list[ThresholdInfo]
    severely_overdue: bool = False
    """A non-engagement item whose monitoring is past its schedule's tolerance: first among
    the non-engagement decisions."""


@dataclass(frozen=True)
class ActionResult:
    task_id: str
    version: str | None
    """The Task's (or Flag's) version after the action: send it with the next action."""
    stage: Stage
    written: list[str]
    """Versioned references of everything written (``Task/x/_history/4``...)."""
