"""Map → evaluate, once: what every caller of the rules runs on the resources it read.

``evaluate_records(rules, resources, as_of)`` maps FHIR resources (plain dicts, in any order)
into one record per patient and assesses each with the rules in force on ``as_of``. The live
sweep, the API's patient endpoints, the monthly audit and the evidence pack call it with what
they read (from the server, or from the sweep's snapshots); ``map_records`` is its first half,
for the readers that only show a record (the patient card's results). Offline evaluation maps in
parallel workers, so it shares the per-patient step (``assess_each``) rather than the whole
function (docs/design.md, "One evaluate_records").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

from hrm_fhir.adapters.fhir.mapping import RecordBuilder, Resource
from hrm_fhir.domain import (
    Finding,
    PatientRecord,
    PatientRef,
    RegisterEntry,
    Skipped,
    Unrecognised,
)
from hrm_fhir.rules.evaluate import Assessment, Evaluator
from hrm_fhir.rules.registry import RuleSet

UnrecognisedKey = tuple[str, tuple[tuple[str, str], ...]]
"""A medication product no group or class matched: (text, codings)."""


@dataclass(frozen=True)
class EvaluationRun:
    """What a whole run found, as ``evaluate`` and a sweep report it."""

    as_of: date
    findings: list[Finding]
    skipped: list[Skipped]
    patients: int
    monitored: list[RegisterEntry] = field(default_factory=list)
    """The register: one line per patient and drug group on current monitored therapy."""
    unrecognised: list[Unrecognised] = field(default_factory=list)
    """Medication products no group or class matched, most frequent first."""
    warnings: list[str] = field(default_factory=list)
    """What limits the whole run (e.g. a date no rule pack version covers)."""


@dataclass(frozen=True)
class MappedRecords:
    """The records the resources make, one per patient, and what mapping left out."""

    records: dict[PatientRef, PatientRecord]
    skipped: list[Skipped]
    """Resources that could not be used, with the reason."""
    unrecognised: Counter[UnrecognisedKey]


@dataclass(frozen=True)
class Evaluation:
    """Every patient's record and its assessment on ``evaluator.as_of``."""

    evaluator: Evaluator
    records: dict[PatientRef, PatientRecord]
    assessments: dict[PatientRef, Assessment]
    """In patient order."""
    skipped: list[Skipped]
    """What mapping left out (results dated after the as-of date are in ``later``)."""
    unrecognised: Counter[UnrecognisedKey]

    def record(self, patient: PatientRef) -> PatientRecord:
        """The patient's record; an empty one when no resource named them."""
        return self.records.get(patient) or PatientRecord(patient=None)

    def findings_of(self, patient: PatientRef) -> list[Finding]:
        """The patient's findings, sorted for stable output (none when not assessed)."""
        assessment = self.assessments.get(patient)
        return assessment.findings if assessment is not None else []

    @property
    def findings(self) -> list[Finding]:
        """Every finding, patient by patient."""
        return [f for a in self.assessments.values() for f in a.findings]

    @property
    def register(self) -> list[RegisterEntry]:
        """Every register line, patient by patient."""
        return [e for a in self.assessments.values() for e in a.register]

    @property
    def later(self) -> list[Skipped]:
        """Results dated after the as-of date: left out, never in silence."""
        return [s for a in self.assessments.values() for s in a.later]

    def warnings(self) -> list[str]:
        """What limits the whole run (``Evaluator.warnings``)."""
        return self.evaluator.warnings(len(self.later))


def map_records(rules: RuleSet, resources: Iterable[Resource], origin: str) -> MappedRecords:
    """One record per patient from ``resources`` (``origin`` names where they came from in a
    skip's reason). Prescriptions of products no rule reads are dropped as they are read."""
    builder = RecordBuilder(rules.catalogue, rules.medicines())
    add = builder.add
    for resource in resources:
        add(origin, resource)
    return MappedRecords(builder.finish(), builder.skipped, builder.unrecognised)


def assess_each(
    evaluator: Evaluator, records: dict[PatientRef, PatientRecord]
) -> Iterator[tuple[PatientRef, Assessment]]:
    """The per-patient step every evaluation shares: each record assessed, in patient order."""
    assess = evaluator.assess
    for ref in sorted(records):
        yield ref, assess(records[ref])


def evaluate_records(
    rules: RuleSet,
    resources: Iterable[Resource],
    as_of: date,
    *,
    window_days: int | None = None,
    origin: str = "server",
    select: Callable[[PatientRecord], bool] | None = None,
) -> Evaluation:
    """Map ``resources`` and assess every patient's record (only those ``select`` keeps, when
    given) with the rules in force on ``as_of`` (``window_days``: how far ahead a test counts
    as due; the catalogue's when None)."""
    evaluator = Evaluator.create(rules, as_of, window_days)
    mapped = map_records(rules, resources, origin)
    records = mapped.records
    if select is not None:
        records = {ref: record for ref, record in records.items() if select(record)}
    assessments = dict(assess_each(evaluator, records))
    return Evaluation(evaluator, records, assessments, mapped.skipped, mapped.unrecognised)


def unrecognised_products(counts: Counter[UnrecognisedKey]) -> list[Unrecognised]:
    """The products no group or class matched, most frequent first."""
    return [
        Unrecognised(text, codings, n)
        for (text, codings), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
