"""Frozen dataclasses the rules read and produce; no I/O, no FHIR models."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from enum import StrEnum
from typing import NewType

PatientRef = NewType("PatientRef", str)
"""A FHIR reference to a patient, e.g. ``Patient/abc``."""
ResourceRef = NewType("ResourceRef", str)
"""A FHIR reference to any resource, e.g. ``Observation/xyz``."""


class Severity(StrEnum):
    """How fast a clinician must respond (monitoring reference section 1)."""

    URGENT = "urgent"
    ACTION = "action"
    REVIEW = "review"

    @property
    def rank(self) -> int:
        """Higher is more severe; used where several rules fire and the highest wins."""
        return {"urgent": 3, "action": 2, "review": 1}[self.value]


class FindingKind(StrEnum):
    DUE = "due"
    OVERDUE = "overdue"
    OUT_OF_RANGE = "out_of_range"
    PRESCRIBING = "prescribing"
    INCOMPLETE = "incomplete"
    """A rule could not be assessed: data it needs is missing or unreadable (never silent)."""


class MatchMethod(StrEnum):
    """How a prescription was recognised as a monitored drug; ``statement`` when the evidence of
    therapy is a MedicationStatement (what the patient takes) rather than a prescription."""

    CODE = "code"
    TEXT = "text"
    STATEMENT = "statement"
    """Recorded as taken (a MedicationStatement), not prescribed here."""


Coding = tuple[str, str]
"""A (system, code) pair."""


@dataclass(frozen=True, slots=True)
class Patient:
    ref: PatientRef
    birth_date: date | None
    sex: str | None
    deceased: bool
    deceased_on: date | None = None
    practice: str | None = None

    def is_alive_on(self, day: date) -> bool:
        """False once a recorded death (dated on or before ``day``, or undated) applies."""
        return not self.deceased or (self.deceased_on is not None and self.deceased_on > day)

    def age_on(self, day: date) -> int | None:
        """Whole years of age on ``day``; None when the birth date is unknown."""
        if self.birth_date is None:
            return None
        born = self.birth_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class Dosage:
    """What could be read from ``dosageInstruction``: structured first, text as fallback."""

    text: str
    per_day: float | None
    """Administrations per day (a once-weekly dose is 1/7)."""
    dose_value: float | None
    dose_unit: str | None
    """``mg``, ``ug`` (per dose or per hour for patches), or a unit form such as ``tablet``."""
    source: str
    """``structured``, ``text`` or ``none``."""


@dataclass(frozen=True, slots=True)
class Prescription:
    """One MedicationRequest (or MedicationStatement), reduced to what the rules need."""

    ref: ResourceRef
    patient: PatientRef
    status: str
    intent: str
    authored_on: date
    codings: tuple[Coding, ...]
    text: str
    """Lower-cased medication text and displays, for ingredient-name matching."""
    strength: float | None
    """Strength of one unit of the product, in ``strength_unit``."""
    strength_unit: str | None
    """``mg`` for solid and liquid doses, ``ug/h`` for transdermal patches."""
    dosage: Dosage
    validity_end: date | None = None
    medication_ref: ResourceRef | None = None


@dataclass(frozen=True, slots=True)
class LabResult:
    """One Observation value for an analyte in scope, with its unit normalised where possible."""

    ref: ResourceRef
    patient: PatientRef
    analyte: str
    effective: date
    """The local calendar date (``clock.py``) of the sample (due dates count from it)."""
    value: float | None
    unit: str | None
    """The analyte's canonical unit when ``normalised``, else the unit as recorded."""
    normalised: bool
    """The value (and its range) are in the canonical unit; False when the unit cannot be read."""
    ref_low: float | None = None
    ref_high: float | None = None
    """The laboratory's reference range, in the same unit as ``value``."""
    time: int = -1
    """Seconds after London midnight on ``effective``; -1 when the record gives a date only."""
    issued: int = -1
    """When the laboratory released it (POSIX seconds); -1 when not recorded."""
    comparator: str | None = None
    """``<``, ``<=``, ``>`` or ``>=`` when the laboratory gave a bound, not a value (``>8.0``)."""
    interpretation: str | None = None
    """The laboratory's flag (v3 ObservationInterpretation: ``H``, ``HH``, ``L``, ``LL``, ``A``,
    ``AA``, ``N``...), used when the range is absent."""
    preliminary: bool = False
    """Status ``preliminary``: compared with thresholds (the finding says so), never counted as
    the test done."""

    @property
    def order(self) -> tuple[date, int, int, str]:
        """Oldest first: date, time of day (a date-only result first), then issue, then id."""
        return self.effective, self.time, self.issued, self.ref

    def same_moment(self, other: LabResult) -> bool:
        """Whether the two could have been taken at the same moment: the same day, and neither
        time (nor issue) says otherwise. Such results are weighed together (the worst counts)."""
        if self.effective != other.effective:
            return False
        if self.time >= 0 and other.time >= 0 and self.time != other.time:
            return False
        return self.issued < 0 or other.issued < 0 or self.issued == other.issued


@dataclass(frozen=True, slots=True)
class RecordedTarget:
    """A patient's own target range for an analyte (INR 3.0-4.0) as the record states it: a
    FHIR Goal whose target measures the analyte. The rules also read targets written in the
    dosage text of a current prescription (``rules/targets.py``)."""

    ref: ResourceRef
    patient: PatientRef
    analyte: str
    low: float
    high: float
    """Equal when the record gives one target value (INR 3.5): the rules widen it."""
    recorded: date | None
    """When it was set (Goal ``startDate``, else ``statusDate``); None when the record does not
    say (the oldest of all)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A resource or line left out of the evaluation, and why."""

    source: str
    reason: str


class ArrangementSource(StrEnum):
    """Where a statement of who monitors came from."""

    RECORD = "record"
    """A coded entry or a prescription's prescribing organisation in the GP record."""
    WORKFLOW = "workflow"
    """The pharmacist's decision in this service (a Task it wrote)."""


@dataclass(frozen=True, slots=True)
class Arrangement:
    """A statement of who monitors a patient's drug group: monitored elsewhere (a hospital or
    community team) or by the practice. The latest statement in force for a group wins."""

    ref: ResourceRef
    patient: PatientRef
    elsewhere: bool
    recorded_on: date
    source: ArrangementSource
    by: str = ""
    """The organisation or team that monitors, as recorded."""
    review_on: date | None = None
    """When the practice reviews the arrangement (workflow decisions)."""
    ended_on: date | None = None
    groups: tuple[str, ...] = ()
    """Drug groups the statement names; otherwise it is scoped by ``about`` or ``text``."""
    about: tuple[ResourceRef, ...] = ()
    """Prescriptions the statement is about (its own MedicationRequest, an entry's focus)."""
    codings: tuple[Coding, ...] = ()
    """The medication the statement is about, when it names one by code."""
    text: str = ""
    """Lower-cased text and displays, where an ingredient name may scope the statement."""
    code: str = ""
    """What made it a statement of who monitors (``system|code``)."""


@dataclass(frozen=True, slots=True)
class MonitoredElsewhere:
    """A drug group another organisation monitors, as the register and the audit show it."""

    by: str
    since: date
    source: ArrangementSource
    evidence: ResourceRef
    review_on: date | None = None
    lapsed: bool = False
    """The review date has passed: the practice monitors again until the pharmacist reviews."""

    def to_json(self) -> dict[str, object]:
        return {
            "by": self.by,
            "since": self.since.isoformat(),
            "source": self.source.value,
            "evidence": self.evidence,
            "review_on": self.review_on.isoformat() if self.review_on else None,
            "lapsed": self.lapsed,
        }


@dataclass(slots=True)
class PatientRecord:
    """Everything read for one patient; built by an adapter, read by the rules."""

    patient: Patient | None
    prescriptions: list[Prescription] = field(default_factory=list)
    results: list[LabResult] = field(default_factory=list)
    targets: list[RecordedTarget] = field(default_factory=list)
    arrangements: list[Arrangement] = field(default_factory=list)
    """Statements of who monitors which drug group (shared care)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the programme must act on, explained and traced to its rule and evidence."""

    patient: PatientRef
    kind: FindingKind
    drug_group: str
    medication: ResourceRef
    rule: str
    """``<rule-id>@<version>``."""
    check: str
    """The part of the rule that fired: a schedule, threshold or prescribing check id."""
    reason: str
    source: str
    """Citation URL."""
    verified: bool
    evidence: tuple[ResourceRef, ...]
    identifier: str
    """Deterministic business identifier: patient, rule, kind and due cycle."""
    matched_by: MatchMethod = MatchMethod.CODE
    """How the prescription was recognised: by code, by name in its text, or a statement."""
    tests: tuple[str, ...] = ()
    due_date: date | None = None
    analyte: str | None = None
    value: float | None = None
    unit: str | None = None
    observed_on: date | None = None
    """For out-of-range findings: the date of the result."""
    severity: Severity | None = None
    code: str | None = None
    missing: tuple[str, ...] = ()
    """For incomplete findings: the data that is missing or could not be read."""
    severely_overdue: bool = False
    """For overdue findings: a test has gone undone past its schedule's tolerance."""

    def __reduce__(self) -> tuple[type[Finding], tuple[object, ...]]:
        """Pickle as a constructor call: loads twice as fast as the dataclass default (the
        parent of ``evaluate``'s workers loads every finding)."""
        return Finding, tuple(getattr(self, name) for name in _FINDING_FIELDS)

    def to_json(self) -> dict[str, object]:
        """The ``hrm-fhir evaluate --format json`` shape of this finding."""
        out: dict[str, object] = {
            "patient": self.patient,
            "kind": self.kind.value,
            "drug_group": self.drug_group,
            "medication": self.medication,
            "rule": self.rule,
            "check": self.check,
            "reason": self.reason,
            "source": self.source,
            "verified": self.verified,
            "evidence": list(self.evidence),
            "identifier": self.identifier,
            "matched_by": self.matched_by.value,
        }
        if self.kind in (FindingKind.DUE, FindingKind.OVERDUE):
            out["tests"] = list(self.tests)
            out["due_date"] = self.due_date.isoformat() if self.due_date else None
            out["severely_overdue"] = self.severely_overdue
        elif self.kind is FindingKind.OUT_OF_RANGE:
            out["analyte"] = self.analyte
            out["value"] = self.value
            out["unit"] = self.unit
            out["observed_on"] = self.observed_on.isoformat() if self.observed_on else None
            out["severity"] = self.severity.value if self.severity else None
        else:
            out["code"] = self.code
            out["severity"] = self.severity.value if self.severity else None
            if self.kind is FindingKind.INCOMPLETE:
                out["missing"] = list(self.missing)
                if self.analyte is not None:
                    out["analyte"] = self.analyte
                    out["value"] = self.value
                    out["unit"] = self.unit
                    out["observed_on"] = self.observed_on.isoformat() if self.observed_on else None
        return out


_FINDING_FIELDS = tuple(f.name for f in fields(Finding))


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """One patient on monitored therapy in one drug group: the practice's register line."""

    patient: PatientRef
    drug_group: str
    medication: ResourceRef
    matched_by: MatchMethod
    course_start: date
    next_due: tuple[tuple[str, date], ...]
    """(test id, next due date) for each test the schedule in force asks for."""
    monitored_elsewhere: MonitoredElsewhere | None = None
    """Another organisation monitors this group: the practice raises no routine Tasks for it
    (unless the arrangement has lapsed)."""

    def to_json(self) -> dict[str, object]:
        elsewhere = self.monitored_elsewhere
        return {
            "patient": self.patient,
            "drug_group": self.drug_group,
            "medication": self.medication,
            "matched_by": self.matched_by.value,
            "course_start": self.course_start.isoformat(),
            "next_due": {test: due.isoformat() for test, due in self.next_due},
            "monitored_elsewhere": elsewhere.to_json() if elsewhere else None,
        }


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """A medication product no drug group or co-medication class matched, and how often."""

    text: str
    codings: tuple[Coding, ...]
    count: int

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "codes": [f"{system}|{code}" for system, code in self.codings],
            "count": self.count,
        }
