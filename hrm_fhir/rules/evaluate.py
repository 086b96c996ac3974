"""Pure evaluation of rule packs against one patient's record on an as-of date.

No clock, no I/O: the same record, rules and date always give the same findings, in the same
order, whatever order the resources arrived in. What the record says is read by ``facts``;
results are judged by ``results``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from hrm_fhir.domain import (
    Finding,
    FindingKind,
    LabResult,
    PatientRecord,
    Prescription,
    RegisterEntry,
    ResourceRef,
    Skipped,
)
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.facts import (
    DOSE_MEASURES,
    Facts,
    business_identifier,
    holds_for_therapy,
    pack_finding,
    state_for_therapy,
)
from hrm_fhir.rules.model import (
    Condition,
    Modifier,
    PrescribingCheck,
    RulePack,
    Schedule,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.results import AnalytePlan, Stale, result_findings, result_plan, stale_notes
from hrm_fhir.rules.therapy import MedicationIndex, Therapy, build_therapies, daily_dose_mg

__all__ = ["Assessment", "Engine", "Facts", "business_identifier"]


@dataclass(frozen=True)
class Engine:
    """The rules in force on ``as_of``, compiled once for a run over many patients."""

    rules: RuleSet
    as_of: date
    window_days: int
    packs: tuple[RulePack, ...] = field(init=False)
    index: MedicationIndex = field(init=False)
    lookback_start: date = field(init=False)
    course_gap_days: int = field(init=False)
    restart_groups: frozenset[str] = field(init=False)
    result_plans: dict[str, tuple[AnalytePlan, ...]] = field(init=False)
    """Per pack (``id@version``): its analytes, their thresholds and look-backs."""

    def __post_init__(self) -> None:
        catalogue = self.rules.catalogue
        packs = self.rules.in_force(self.as_of)
        derived = {
            "packs": packs,
            "index": MedicationIndex(packs, catalogue),
            "lookback_start": catalogue.current_issue_lookback.before(self.as_of),
            "course_gap_days": (self.as_of - catalogue.course_gap.before(self.as_of)).days,
            "restart_groups": frozenset(p.drug_group for p in packs if p.restart_on_dose_change),
            "result_plans": {p.ref: result_plan(p, catalogue, self.as_of) for p in packs},
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def create(cls, rules: RuleSet, as_of: date, window_days: int | None = None) -> Engine:
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
        return build_therapies(
            record.prescriptions,
            self.index,
            self.as_of,
            self.lookback_start,
            self.course_gap_days,
            self.restart_groups,
        )

    def latest_by_test(self, record: PatientRecord) -> dict[str, tuple[date, ResourceRef]]:
        """Per test id, the newest result on or before as-of that shows the test done."""
        facts = Facts.build(record, {}, self.rules.catalogue, self.as_of, self.lookback_start)
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
        if not any(t.current for t in therapies.values()):
            return Assessment([], [], later)
        facts = Facts.build(record, therapies, catalogue, self.as_of, self.lookback_start)
        findings: list[Finding] = []
        register: list[RegisterEntry] = []
        for pack in self.packs:
            therapy = therapies.get(pack.drug_group)
            if therapy is None or not therapy.current:
                continue
            dues = _dues(pack, therapy, facts)
            register.append(_register_entry(pack, therapy, facts, dues))
            results, stale = result_findings(pack, therapy, facts, self.result_plans[pack.ref])
            monitoring = _monitoring(pack, therapy, facts, dues, self.as_of, self.window_days)
            findings.extend(_with_notes(monitoring, stale, facts))
            findings.extend(results)
            findings.extend(_prescribing(pack, therapy, facts))
        findings.sort(key=lambda f: (f.patient, f.drug_group, f.kind.value, f.check, f.identifier))
        return Assessment(findings, register, later)


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


# ------------------------------------------------------------------ monitoring schedules


def _next_due(schedule: Schedule, anchor: date, base: date) -> tuple[date, Duration | None]:
    """Due date from the phase the base date falls in (checkpoint phases: due at their end)."""
    for phase in schedule.phases:
        end = phase.until.after(anchor) if phase.until is not None else None
        if end is None or base < end:
            if phase.interval is None:
                assert end is not None  # noqa: S101 - schema checks
                return end, None
            return phase.interval.after(base), phase.interval
    raise AssertionError("schema guarantees an open-ended last phase")  # pragma: no cover


def _modified_due(modifier: Modifier, facts: Facts, therapy: Therapy, base: date) -> date | None:
    if not all(holds_for_therapy(facts, c, therapy) for c in modifier.when):
        return None
    if modifier.interval is not None:
        return modifier.interval.after(base)
    source = modifier.interval_months_from
    assert source is not None  # noqa: S101 - schema checks
    value = facts.measure(source.measure, None)
    if value is None:
        return None
    months = max(1, int(value // source.divisor))
    return Duration(months, "M").after(base)


@dataclass(frozen=True, slots=True)
class _TestDue:
    test: str
    due: date
    last: LabResult | None
    schedule: Schedule
    interval: Duration | None
    modifier: Modifier | None
    """The modifier that brought the due date forward, if one did."""
    verified: bool

    def interval_text(self) -> str:
        if self.modifier is not None:
            return "more often: " + ", ".join(c.describe() for c in self.modifier.when)
        if self.interval is None:
            return "at the schedule checkpoint"
        return f"every {self.interval.describe()}"


def _dues(pack: RulePack, therapy: Therapy, facts: Facts) -> dict[str, _TestDue]:
    """The next due date of each test the pack's schedules in force ask for."""
    catalogue = facts.catalogue
    dues: dict[str, _TestDue] = {}
    for schedule in pack.schedules:
        if (
            schedule.ends_after is not None
            and schedule.ends_after.after(therapy.anchor) <= facts.as_of
        ):
            continue
        for test in schedule.tests:
            last = facts.last_done(catalogue.tests[test].analytes)
            base = max(last.effective, therapy.anchor) if last else therapy.anchor
            due, interval = _next_due(schedule, therapy.anchor, base)
            verified, brought_forward = schedule.verified, None
            for modifier in schedule.modifiers:
                modified = _modified_due(modifier, facts, therapy, base)
                if modified is not None and modified < due:
                    due, verified = modified, schedule.verified and modifier.verified
                    brought_forward = modifier
            entry = _TestDue(test, due, last, schedule, interval, brought_forward, verified)
            if test not in dues or entry.due < dues[test].due:
                dues[test] = entry
    return dues


def _register_entry(
    pack: RulePack, therapy: Therapy, facts: Facts, dues: dict[str, _TestDue]
) -> RegisterEntry:
    order = {test: n for n, test in enumerate(facts.catalogue.tests)}
    return RegisterEntry(
        patient=facts.patient,
        drug_group=pack.drug_group,
        medication=therapy.latest.ref,
        matched_by=therapy.method,
        course_start=therapy.start,
        next_due=tuple((d.test, d.due) for d in sorted(dues.values(), key=lambda d: order[d.test])),
    )


def _monitoring(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    dues: dict[str, _TestDue],
    as_of: date,
    window_days: int,
) -> list[Finding]:
    catalogue = facts.catalogue
    horizon = as_of + timedelta(days=window_days)
    included = [d for d in dues.values() if d.due <= horizon]
    if not included:
        return []
    order = {test: n for n, test in enumerate(catalogue.tests)}
    included.sort(key=lambda d: order[d.test])
    due_date = min(d.due for d in included)
    kind = FindingKind.OVERDUE if due_date < as_of else FindingKind.DUE
    parts = []
    for d in included:
        done = f"last {d.last.effective.isoformat()}" if d.last else "no result on record"
        title = catalogue.tests[d.test].title
        parts.append(f"{title} ({done}; due {d.due.isoformat()}; {d.interval_text()})")
    state = (
        f"overdue since {due_date.isoformat()}"
        if kind is FindingKind.OVERDUE
        else f"due by {due_date.isoformat()}"
    )
    reason = f"{pack.title} monitoring {state}: " + "; ".join(parts) + "."
    evidence = [therapy.latest.ref, *(d.last.ref for d in included if d.last)]
    schedule = included[0].schedule
    return [
        pack_finding(
            pack,
            therapy,
            facts,
            kind,
            check=",".join(sorted({d.schedule.id for d in included})),
            reason=reason,
            source=pack.citations[schedule.citation].url,
            verified=all(d.verified for d in included),
            evidence=tuple(dict.fromkeys(evidence)),
            identifier=business_identifier(
                facts.patient, pack.id, "monitoring", due_date.isoformat()
            ),
            tests=tuple(d.test for d in included),
            due_date=due_date,
        )
    ]


# ------------------------------------------------------------------ prescribing safety


_Outcome = tuple[str, tuple[ResourceRef, ...], bool]
"""A check that holds: what it found, the requests it rests on, whether that is verified."""


def _prescribing(pack: RulePack, therapy: Therapy, facts: Facts) -> list[Finding]:
    current = therapy.current_by_ingredient(facts.as_of, facts.lookback_start)
    findings = []
    undecided: list[tuple[PrescribingCheck, tuple[Condition, ...]]] = []
    for check in pack.prescribing:
        if check.check == "criteria":
            outcome, unknown = _criteria_check(pack, check, current, facts, therapy)
            if unknown:
                undecided.append((check, unknown))
        else:
            outcome = _run_check(pack, check, current, facts, therapy)
        if outcome is None:
            continue
        detail, evidence, verified = outcome
        findings.append(
            pack_finding(
                pack,
                therapy,
                facts,
                FindingKind.PRESCRIBING,
                check=check.id,
                reason=f"{detail}: {check.advice}.",
                source=pack.citations[check.citation].url,
                verified=verified and check.verified,
                evidence=evidence,
                identifier=business_identifier(
                    facts.patient, pack.id, "prescribing", check.code, therapy.start.isoformat()
                ),
                code=check.code,
                severity=check.severity,
            )
        )
    if undecided:
        findings.extend(_undecided(pack, therapy, facts, current, undecided))
    return findings


def _run_check(
    pack: RulePack,
    check: PrescribingCheck,
    current: dict[str, Prescription],
    facts: Facts,
    therapy: Therapy,
) -> _Outcome | None:
    if check.ingredient is not None:
        only = current.get(check.ingredient)
        current = {} if only is None else {check.ingredient: only}
    if not current:
        return None
    if check.check == "max_frequency":
        assert check.value is not None  # noqa: S101 - schema checks
        for name, request in sorted(current.items()):
            per_day = request.dosage.per_day
            if per_day is not None and per_day * 7 > check.value + 1e-9:
                times = per_day * 7
                return (
                    f"{name.capitalize()} prescribed {times:g} times a week "
                    f'("{request.dosage.text}"), more than {check.value:g} a week',
                    (request.ref,),
                    True,
                )
        return None
    return _ome(pack, check, current)


def _criteria_check(
    pack: RulePack,
    check: PrescribingCheck,
    current: dict[str, Prescription],
    facts: Facts,
    therapy: Therapy,
) -> tuple[_Outcome | None, tuple[Condition, ...]]:
    """A ``criteria`` check: what it found when it holds; when it does not, the conditions whose
    missing data kept it from being decided (none when it is known not to hold)."""
    if check.ingredient is not None:
        only = current.get(check.ingredient)
        current = {} if only is None else {check.ingredient: only}
    if not current:
        return None, ()
    request = current.get(check.ingredient) if check.ingredient else therapy.latest
    unknown: list[Condition] = []
    for cond in check.requires:
        state = state_for_therapy(facts, cond, therapy, request)
        if state is False:
            return None, ()
        if state is None:
            unknown.append(cond)
    held: list[Condition] = []
    for cond in check.criteria:
        state = state_for_therapy(facts, cond, therapy, request)
        if state:
            held.append(cond)
        elif state is None:
            unknown.append(cond)
    needed = check.min_match or len(check.criteria)
    open_criteria = sum(c not in check.requires for c in unknown)
    if len(held) + open_criteria < needed:
        return None, ()
    if unknown and (len(held) < needed or open_criteria < len(unknown)):
        return None, tuple(unknown)
    subject = check.ingredient or pack.title
    detail = f"{subject.capitalize()}: " + ", ".join(c.describe() for c in (*check.requires, *held))
    return (detail, tuple(sorted(r.ref for r in current.values())), True), ()


def _undecided(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    current: dict[str, Prescription],
    undecided: list[tuple[PrescribingCheck, tuple[Condition, ...]]],
) -> list[Finding]:
    """One incomplete finding for the checks that record data (CrCl and its inputs, weight,
    age, a result) kept from being decided, graded by the worst of them."""
    checks = [
        (check, unknown)
        for check, unknown in undecided
        if any((c.measure or "") not in DOSE_MEASURES for c in unknown)
    ]
    if not checks:
        return []
    measures = list(dict.fromkeys(c.measure or "" for _, unknown in checks for c in unknown))
    missing = tuple(dict.fromkeys(m for name in measures for m in facts.missing_for(name)))
    worst = max((check for check, _ in checks), key=lambda c: c.severity.rank)
    first = next(m for m in measures if m not in DOSE_MEASURES)
    intervals = [
        m
        for s in pack.schedules
        for m in s.modifiers
        if any(c.measure in measures for c in m.when)
        or (m.interval_months_from is not None and m.interval_months_from.measure in measures)
    ]
    reason = (
        f"{pack.title}: not recorded or not usable: {', '.join(missing)}; so "
        f"{', '.join(c.id for c, _ in checks)} could not be assessed"
        + (" and the monitoring interval that depends on it was not applied" if intervals else "")
        + f". At worst ({worst.severity.value}): {worst.advice}."
    )
    return [
        pack_finding(
            pack,
            therapy,
            facts,
            FindingKind.INCOMPLETE,
            check=",".join(c.id for c, _ in checks),
            reason=reason,
            source=pack.citations[worst.citation].url,
            verified=worst.verified,
            evidence=tuple(sorted(r.ref for r in current.values())),
            identifier=business_identifier(
                facts.patient, pack.id, "incomplete", first, therapy.start.isoformat()
            ),
            code=f"{first.replace('_', '-')}-unknown",
            severity=worst.severity,
            missing=missing,
        )
    ]


def _ome(
    pack: RulePack, check: PrescribingCheck, current: dict[str, Prescription]
) -> tuple[str, tuple[ResourceRef, ...], bool] | None:
    assert check.value is not None  # noqa: S101 - schema checks
    factors = {i.name: i.ome for i in pack.ingredients if i.ome is not None}
    total, parts, verified, unknown = 0.0, [], True, []
    for name, request in sorted(current.items()):
        ome = factors.get(name)
        if ome is None:
            unknown.append(name)
            continue
        if ome.per == "ug/h":
            if request.strength_unit != "ug/h" or not request.strength:
                unknown.append(name)
                continue
            patches = request.dosage.dose_value if request.dosage.dose_unit == "unit" else 1.0
            amount = request.strength * (patches or 1.0)
            contribution = amount * ome.factor
            parts.append(f"{name} {amount:g} micrograms/hour x {ome.factor:g}")
        else:
            dose = daily_dose_mg(request)
            if dose is None:
                unknown.append(name)
                continue
            contribution = dose * ome.factor
            parts.append(f"{name} {dose:g} mg/day x {ome.factor:g}")
        total += contribution
        verified = verified and ome.verified
    if total < check.value:
        return None
    detail = (
        f"Oral morphine equivalent {total:g} mg/day ({'; '.join(parts)}) "
        f"is at or above {check.value:g} mg/day"
    )
    if unknown:
        detail += f" (not counted, dose unknown: {', '.join(unknown)})"
    return detail, tuple(sorted(r.ref for r in current.values())), verified
