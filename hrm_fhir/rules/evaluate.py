"""The ``Evaluator``: the rule packs in force on an as-of date, run over one patient's record.

No clock, no I/O: the same record, rules and date always give the same findings, in the same
order, whatever order the resources arrived in. What the record says is read by ``facts``; when
each test is due by ``monitoring``; results are judged by ``results``; prescriptions are checked
by ``prescribing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from hrm_fhir.domain import (
    FINDING_ORDER,
    Finding,
    LabResult,
    MonitoredElsewhere,
    PatientRecord,
    RegisterEntry,
    ResourceRef,
    Skipped,
)
from hrm_fhir.rules.analyte_plan import AnalytePlan, result_plan
from hrm_fhir.rules.arrangements import monitored_elsewhere
from hrm_fhir.rules.catalogue import Catalogue
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.facts import Facts
from hrm_fhir.rules.model import PrescribingCheck, RulePack
from hrm_fhir.rules.monitoring import (
    continuing_plan,
    monitoring_findings,
    register_entry,
    results_not_seen,
    stopped_on,
    test_dues,
)
from hrm_fhir.rules.ome import reads_ome
from hrm_fhir.rules.prescribing import prescribing_findings, unissued_findings
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.results import Stale, crossing, result_findings, stale_notes
from hrm_fhir.rules.therapy import Currency, MedicationIndex, Therapy, build_therapies


@dataclass(frozen=True, slots=True)
class PackRules:
    """What one pack in force needs on every patient, worked out once per run."""

    pack: RulePack
    plan: tuple[AnalytePlan, ...]
    """Its analytes, their thresholds and look-backs."""
    fires: frozenset[str]
    """The thresholds its schedule modifiers' ``fires`` conditions read."""
    schedules_read_ome: bool
    """Some schedule modifier's condition reads the total oral morphine equivalent."""
    checks: tuple[tuple[PrescribingCheck, bool], ...]
    """Its prescribing checks, each with whether its conditions read the OME."""

    @classmethod
    def of(cls, pack: RulePack, catalogue: Catalogue, as_of: date) -> PackRules:
        conditions = [c for s in pack.schedules for m in s.modifiers for c in m.when]
        return cls(
            pack,
            result_plan(pack, catalogue, as_of),
            frozenset(c.fires for c in conditions if c.fires is not None),
            reads_ome(conditions),
            tuple((c, reads_ome((*c.requires, *c.criteria))) for c in pack.prescribing),
        )


@dataclass(frozen=True)
class Evaluator:
    """The rules in force on ``as_of``, compiled once for a run over many patients."""

    rules: RuleSet
    as_of: date
    window_days: int
    packs: tuple[RulePack, ...] = field(init=False)
    index: MedicationIndex = field(init=False)
    currency: Currency = field(init=False)
    restart_groups: frozenset[str] = field(init=False)
    pack_rules: tuple[PackRules, ...] = field(init=False)
    """What each pack in force needs on every patient, in the order of ``packs``."""
    pack_index: dict[str, tuple[int, ...]] = field(init=False)
    """Per drug group: where its packs are in ``packs``."""
    test_order: dict[str, int] = field(init=False)
    """The catalogue's order of tests, in which findings and the register list them."""
    monitored: frozenset[str] = field(init=False)
    """The drug groups of the packs in force."""
    after_stop: dict[str, Duration] = field(init=False)
    """Per drug group: the longest a schedule of its pack continues after stopping."""

    def __post_init__(self) -> None:
        catalogue = self.rules.catalogue
        packs = self.rules.in_force(self.as_of)
        long_interval = self.as_of - catalogue.long_dosing_interval.before(self.as_of)
        derived = {
            "packs": packs,
            "index": MedicationIndex(packs, catalogue),
            "currency": Currency(
                as_of=self.as_of,
                lookback_start=catalogue.current_issue_lookback.before(self.as_of),
                unissued_before=catalogue.unissued_active.after.before(self.as_of),
                course_gap=self.as_of - catalogue.course_gap.before(self.as_of),
                rarer_than=1 / long_interval.days,
            ),
            "restart_groups": frozenset(p.drug_group for p in packs if p.restart_on_dose_change),
            "pack_rules": tuple(PackRules.of(p, catalogue, self.as_of) for p in packs),
            "pack_index": {
                group: tuple(n for n, p in enumerate(packs) if p.drug_group == group)
                for group in {p.drug_group for p in packs}
            },
            "test_order": {test: n for n, test in enumerate(catalogue.tests)},
            "monitored": frozenset(p.drug_group for p in packs),
            "after_stop": _after_stop(packs, self.as_of),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def create(cls, rules: RuleSet, as_of: date, window_days: int | None = None) -> Evaluator:
        days = rules.catalogue.due_window_days if window_days is None else window_days
        return cls(rules=rules, as_of=as_of, window_days=days)

    def warnings(self, later: int = 0) -> list[str]:
        """What limits a whole run on this date: rule packs no version covers, and ``later``
        results dated after the as-of date (left out, and listed as skipped)."""
        out = []
        coverage = self.rules.coverage_warning(self.as_of)
        if coverage is not None:
            out.append(coverage)
        if later:
            out.append(
                f"{later} result(s) dated after the as-of date {self.as_of.isoformat()} were not "
                "used (listed under skipped)"
            )
        return out

    def therapies(self, record: PatientRecord) -> dict[str, Therapy]:
        """The patient's courses per drug group (and co-medication class) on the as-of date."""
        return build_therapies(record.prescriptions, self.index, self.currency, self.restart_groups)

    def followed(self, therapies: dict[str, Therapy]) -> frozenset[str]:
        """The drug groups whose monitoring runs on the as-of date: those on current therapy,
        and those stopped within a schedule's ``continues_after_stop`` (amiodarone's thyroid
        function for 12 months after stopping)."""
        lookback = self.rules.catalogue.current_issue_lookback
        return frozenset(
            group
            for group, therapy in therapies.items()
            if group in self.monitored
            and (
                therapy.current
                or (
                    group in self.after_stop
                    and self.as_of <= self.after_stop[group].after(stopped_on(therapy, lookback))
                )
            )
        )

    def monitored_elsewhere(
        self, record: PatientRecord, therapies: dict[str, Therapy] | None = None
    ) -> dict[str, MonitoredElsewhere]:
        """The patient's drug groups another organisation monitors on the as-of date."""
        return monitored_elsewhere(
            record,
            self.therapies(record) if therapies is None else therapies,
            self.index,
            self.rules.catalogue.shared_care,
            self.currency,
        )

    def latest_by_test(self, record: PatientRecord) -> dict[str, tuple[date, ResourceRef]]:
        """Per test id, the newest result on or before as-of that shows the test done."""
        facts = Facts.build(record, {}, self.rules.catalogue, self.as_of)
        out: dict[str, tuple[date, ResourceRef]] = {}
        for test in self.rules.catalogue.tests.values():
            last = facts.last_done(test.analytes)
            if last is not None:
                out[test.id] = (last.effective, last.ref)
        return out

    def evaluate(self, record: PatientRecord) -> list[Finding]:
        """Every finding for one patient, sorted for stable output."""
        return self.assess(record).findings

    def assess(self, record: PatientRecord) -> Assessment:
        """Every finding for one patient, sorted for stable output, and the patient's register
        lines: one per drug group on current therapy, with the next due date of each test; and
        the results dated after the as-of date, left out with a reason."""
        later = _later(record.results, self.as_of)
        patient = record.patient
        if patient is not None and not patient.is_alive_on(self.as_of):
            return Assessment([], [], later)
        if not record.prescriptions:
            return Assessment([], [], later)
        catalogue = self.rules.catalogue
        therapies = self.therapies(record)
        followed = self.followed(therapies)
        if not followed:
            return Assessment([], [], later)
        facts = Facts.build(record, therapies, catalogue, self.as_of)
        elsewhere = self.monitored_elsewhere(record, therapies) if record.arrangements else {}
        findings: list[Finding] = []
        register: list[RegisterEntry] = []
        order = self.test_order
        for index in sorted(n for group in followed for n in self.pack_index[group]):
            rules = self.pack_rules[index]
            pack, plan, wanted = rules.pack, rules.plan, rules.fires
            therapy = therapies[pack.drug_group]
            fired = crossing(pack, therapy, facts, plan, wanted) if wanted else None
            dues = test_dues(pack, therapy, facts, fired, rules.schedules_read_ome)
            held = elsewhere.get(pack.drug_group)
            if therapy.current:
                entry = register_entry(pack, therapy, facts, dues, order)
                register.append(entry if held is None else replace(entry, monitored_elsewhere=held))
            else:
                plan = continuing_plan(pack, facts, plan)
            results, stale = result_findings(pack, therapy, facts, plan)
            if held is None or held.lapsed:
                monitoring = monitoring_findings(
                    pack, therapy, facts, dues, (self.as_of, self.window_days), order
                )
            else:
                monitoring = results_not_seen(pack, therapy, facts, dues, held)
            findings.extend(_with_notes(monitoring, stale, facts))
            findings.extend(results)
            if not therapy.current:
                continue
            findings.extend(prescribing_findings(pack, rules.checks, therapy, facts))
            findings.extend(unissued_findings(pack, therapy, facts))
        findings.sort(key=FINDING_ORDER)
        return Assessment(findings, register, later)


def _after_stop(packs: tuple[RulePack, ...], day: date) -> dict[str, Duration]:
    """Per drug group, the longest any schedule of its pack continues after stopping."""
    out: dict[str, Duration] = {}
    for pack in packs:
        for schedule in pack.schedules:
            span = schedule.continues_after_stop
            if span is not None and (
                pack.drug_group not in out or span.after(day) > out[pack.drug_group].after(day)
            ):
                out[pack.drug_group] = span
    return out


@dataclass(frozen=True, slots=True)
class Assessment:
    """What one patient's record gave: findings, register lines, and what was left out."""

    findings: list[Finding]
    register: list[RegisterEntry]
    later: list[Skipped] = field(default_factory=list)
    """Results dated after the as-of date: never used, never dropped in silence."""


def _later(results: list[LabResult], as_of: date) -> list[Skipped]:
    """One skip per Observation dated after ``as_of`` (its components share it)."""
    seen: dict[ResourceRef, Skipped] = {}
    for result in results:
        if result.effective > as_of and result.ref not in seen:
            seen[result.ref] = Skipped(
                source=result.ref,
                reason=f"dated after the as-of date: {result.analyte} result of "
                f"{result.effective.isoformat()} is after {as_of.isoformat()}, not used",
            )
    return list(seen.values())


def _with_notes(monitoring: list[Finding], stale: Stale, facts: Facts) -> list[Finding]:
    """The monitoring finding's reason, followed by the older abnormal results (with ages)."""
    notes = stale_notes(stale, facts) if monitoring and stale else []
    if not notes:
        return monitoring
    extra = " Older abnormal results, too old to act on: " + " ".join(notes)
    return [replace(f, reason=f.reason + extra) for f in monitoring]
