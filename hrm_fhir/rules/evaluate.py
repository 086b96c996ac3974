"""Pure evaluation of rule packs against one patient's record on an as-of date.

No clock, no I/O: the same record, rules and date always give the same findings, in the same
order, whatever order the resources arrived in. What the record says is read by ``facts``;
results are judged by ``results``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from hrm_fhir.domain import (
    Finding,
    FindingKind,
    LabResult,
    MonitoredElsewhere,
    PatientRecord,
    Prescription,
    RegisterEntry,
    ResourceRef,
    Skipped,
)
from hrm_fhir.rules.arrangements import monitored_elsewhere
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.facts import (
    COMPARE,
    DOSE_MEASURES,
    Facts,
    PackMeasure,
    business_identifier,
    holds_for_therapy,
    pack_finding,
    state_for_therapy,
)
from hrm_fhir.rules.model import (
    Baseline,
    Condition,
    Modifier,
    PrescribingCheck,
    RulePack,
    Schedule,
    Tolerance,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.results import (
    AnalytePlan,
    Stale,
    crossing,
    result_findings,
    result_plan,
    stale_notes,
)
from hrm_fhir.rules.therapy import (
    Currency,
    MedicationIndex,
    ProductRequest,
    Therapy,
    build_therapies,
    daily_dose_mg,
)

__all__ = [
    "RESULTS_NOT_SEEN",
    "UNISSUED_ACTIVE",
    "Assessment",
    "Engine",
    "Facts",
    "business_identifier",
]

UNISSUED_ACTIVE = "active-not-issued"
"""The check of the catalogue's "active but not issued" rule (``[unissued_active]``)."""
RESULTS_NOT_SEEN = "results-not-seen"
"""The check of the catalogue's monitored-elsewhere "no result has reached the practice" rule."""


@dataclass(frozen=True)
class Engine:
    """The rules in force on ``as_of``, compiled once for a run over many patients."""

    rules: RuleSet
    as_of: date
    window_days: int
    packs: tuple[RulePack, ...] = field(init=False)
    index: MedicationIndex = field(init=False)
    currency: Currency = field(init=False)
    restart_groups: frozenset[str] = field(init=False)
    result_plans: dict[str, tuple[AnalytePlan, ...]] = field(init=False)
    """Per pack (``id@version``): its analytes, their thresholds and look-backs."""
    fires: dict[str, frozenset[str]] = field(init=False)
    """Per pack: the thresholds its schedule modifiers' ``fires`` conditions read."""
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
            "result_plans": {p.ref: result_plan(p, catalogue, self.as_of) for p in packs},
            "monitored": frozenset(p.drug_group for p in packs),
            "after_stop": _after_stop(packs, self.as_of),
            "fires": {
                p.ref: frozenset(
                    c.fires
                    for s in p.schedules
                    for m in s.modifiers
                    for c in m.when
                    if c.fires is not None
                )
                for p in packs
            },
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
        for pack in self.packs:
            therapy = therapies.get(pack.drug_group)
            if therapy is None or pack.drug_group not in followed:
                continue
            plan = self.result_plans[pack.ref]
            wanted = self.fires[pack.ref]
            fired = crossing(pack, therapy, facts, plan, wanted) if wanted else None
            dues = _dues(pack, therapy, facts, fired)
            held = elsewhere.get(pack.drug_group)
            if therapy.current:
                entry = _register_entry(pack, therapy, facts, dues)
                register.append(entry if held is None else replace(entry, monitored_elsewhere=held))
            else:
                plan = _continuing(pack, facts, plan)
            results, stale = result_findings(pack, therapy, facts, plan)
            if held is None or held.lapsed:
                monitoring = _monitoring(pack, therapy, facts, dues, self.as_of, self.window_days)
            else:
                monitoring = _results_not_seen(pack, therapy, facts, dues, held)
            findings.extend(_with_notes(monitoring, stale, facts))
            findings.extend(results)
            if not therapy.current:
                continue
            findings.extend(_prescribing(pack, therapy, facts))
            findings.extend(_unissued(pack, therapy, facts))
        findings.sort(key=lambda f: (f.patient, f.drug_group, f.kind.value, f.check, f.identifier))
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


def _modified_due(
    modifier: Modifier,
    facts: Facts,
    therapy: Therapy,
    base: date,
    fired: frozenset[str] | None,
    measures: dict[str, PackMeasure | None] | None = None,
) -> date | None:
    """The modifier's due date from the base, when its conditions hold. Time on therapy is
    judged on the base date, as phases are: a test due in the first weeks and never done stays
    due from then (warfarin started 8 weeks ago with no INR was due 2 days after the start).
    A ``fires`` condition holds when that threshold of the pack is among ``fired``."""
    for cond in modifier.when:
        if cond.fires is not None:
            if fired is None or cond.fires not in fired:
                return None
        elif not holds_for_therapy(facts, cond, therapy, base, measures):
            return None
    if modifier.interval is not None:
        return modifier.interval.after(base)
    source = modifier.interval_months_from
    assert source is not None  # noqa: S101 - schema checks
    value = facts.measure(source.measure)
    if value is None:
        return None
    months = max(1, int(value // source.divisor))
    return Duration(months, "M").after(base)


def _reads_crcl(modifier: Modifier) -> bool:
    """Whether the modifier's interval or conditions rest on the patient's CrCl."""
    source = modifier.interval_months_from
    return (source is not None and source.measure == "crcl") or any(
        c.measure == "crcl" for c in modifier.when
    )


def stopped_on(therapy: Therapy, lookback: Duration) -> date:
    """The day a therapy that is no longer current counts as stopped: the last day its requests
    cover plus the issue look-back (an issue counts as current, and may still be taken from the
    supply at home, for that long)."""
    return lookback.after(therapy.last_cover)


@dataclass(frozen=True, slots=True)
class _TestDue:
    test: str
    due: date
    last: LabResult | None
    rule: Schedule | Baseline
    """The schedule (or the baseline) that set the due date."""
    interval: Duration | None
    modifier: Modifier | None
    """The modifier that brought the due date forward, if one did."""
    verified: bool
    until: date | None = None
    """Set when the therapy has stopped: the schedule continues until this day."""

    def interval_text(self) -> str:
        if isinstance(self.rule, Baseline):
            return "baseline at the start of the course"
        if self.modifier is not None:
            text = "more often: " + ", ".join(c.describe() for c in self.modifier.when)
        elif self.interval is None:
            text = "at the schedule checkpoint"
        else:
            text = f"every {self.interval.describe()}"
        if self.until is not None:
            text += f"; continues after stopping, until {self.until.isoformat()}"
        return text


def _dues(
    pack: RulePack, therapy: Therapy, facts: Facts, fired: frozenset[str] | None
) -> dict[str, _TestDue]:
    """The next due date of each test the pack's schedules in force ask for: on current
    therapy, every schedule and the baselines of a new start; once stopped, the schedules that
    continue after stopping, until they end."""
    catalogue = facts.catalogue
    dues: dict[str, _TestDue] = {}
    stopped = None if therapy.current else stopped_on(therapy, catalogue.current_issue_lookback)
    measures = _pack_measures(
        pack, therapy, (c for s in pack.schedules for m in s.modifiers for c in m.when)
    )
    for schedule in pack.schedules:
        until = None
        if stopped is not None:
            if schedule.continues_after_stop is None:
                continue
            until = schedule.continues_after_stop.after(stopped)
            if until < facts.as_of:
                continue
        elif (
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
                modified = _modified_due(modifier, facts, therapy, base, fired, measures)
                if modified is not None and modified < due:
                    due, verified = modified, schedule.verified and modifier.verified
                    brought_forward = modifier
            if until is not None and due > until:
                continue
            entry = _TestDue(test, due, last, schedule, interval, brought_forward, verified, until)
            if test not in dues or entry.due < dues[test].due:
                dues[test] = entry
    if stopped is None:
        for entry in _baseline_dues(pack, therapy, facts):
            if entry.test not in dues or entry.due <= dues[entry.test].due:
                dues[entry.test] = entry
    return dues


def _baseline_dues(pack: RulePack, therapy: Therapy, facts: Facts) -> list[_TestDue]:
    """The baseline tests a new start has no result for: due on the course start. A course
    started ``[baseline].new_start_for`` or longer before the as-of date is not a new start
    and raises none (someone on therapy for ten years gets no baseline task); a result from
    ``[baseline].before_start`` before the start, or any time since, is the baseline (any
    earlier result for a test done ``once``, such as TPMT)."""
    if not pack.baselines:
        return []
    rules = facts.catalogue.baseline
    start = therapy.start
    if rules.new_start_for.after(start) <= facts.as_of:
        return []
    window = rules.before_start.before(start)
    out = []
    for baseline in pack.baselines:
        for test in baseline.tests:
            last = facts.last_done(facts.catalogue.tests[test].analytes)
            if last is not None and (baseline.once or last.effective >= window):
                continue
            out.append(_TestDue(test, start, last, baseline, None, None, baseline.verified))
    return out


def _continuing(
    pack: RulePack, facts: Facts, plan: tuple[AnalytePlan, ...]
) -> tuple[AnalytePlan, ...]:
    """The part of a pack's result plan that still applies once the therapy has stopped: the
    analytes of the tests its continuing schedules ask for (a raised TSH after amiodarone)."""
    tests = {t for s in pack.schedules if s.continues_after_stop for t in s.tests}
    analytes = {a for t in tests for a in facts.catalogue.tests[t].analytes}
    return tuple(item for item in plan if item.analyte in analytes)


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
    severe = _past_tolerance(included, therapy, as_of) if kind is FindingKind.OVERDUE else []
    if severe:
        reason += " Severely overdue: " + "; ".join(
            f"{catalogue.tests[d.test].title} not done for {_tolerance(d).after.describe()} "
            f"or more (since {since.isoformat()})"
            for d, since in severe
        )
        reason += "."
    if any(d.modifier is not None and _reads_crcl(d.modifier) for d in included):
        reason += f" The shorter interval rests on the {facts.crcl_basis()}."
    if not therapy.current:
        reason = (
            f"{pack.title} is no longer prescribed (last issued or covered "
            f"{therapy.last_cover.isoformat()}), but its monitoring continues after stopping. "
            + reason
        )
    evidence = [therapy.latest.ref, *(d.last.ref for d in included if d.last)]
    rule = included[0].rule
    return [
        pack_finding(
            pack,
            therapy,
            facts,
            kind,
            check=",".join(sorted({d.rule.id for d in included})),
            reason=reason,
            source=pack.citations[rule.citation].url,
            verified=all(d.verified for d in included)
            and all(_tolerance(d).verified for d, _ in severe),
            evidence=tuple(dict.fromkeys(evidence)),
            identifier=business_identifier(
                facts.patient, pack.id, "monitoring", due_date.isoformat()
            ),
            tests=tuple(d.test for d in included),
            due_date=due_date,
            severely_overdue=bool(severe),
        )
    ]


def _tolerance_of(due: _TestDue) -> Tolerance | None:
    """The severely-overdue tolerance of the schedule that set the due date (a baseline has
    none)."""
    return due.rule.severely_overdue if isinstance(due.rule, Schedule) else None


def _tolerance(due: _TestDue) -> Tolerance:
    tolerance = _tolerance_of(due)
    assert tolerance is not None  # noqa: S101 - only called on tests past their tolerance
    return tolerance


def _past_tolerance(
    dues: Iterable[_TestDue], therapy: Therapy, as_of: date
) -> list[tuple[_TestDue, date]]:
    """The overdue tests whose schedule's severely-overdue tolerance has run out, each with the
    date it is counted from: the later of its last result and the course start."""
    past = []
    for due in dues:
        tolerance = _tolerance_of(due)
        if tolerance is None or due.due >= as_of:
            continue
        since = max(due.last.effective, therapy.start) if due.last else therapy.start
        if tolerance.after.after(since) <= as_of:
            past.append((due, since))
    return past


def _results_not_seen(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    dues: dict[str, _TestDue],
    held: MonitoredElsewhere,
) -> list[Finding]:
    """Monitored elsewhere, yet no result of an overdue test has reached the practice within
    its schedule's severely-overdue tolerance: the practice must see results before issuing."""
    shared = facts.catalogue.shared_care
    past = _past_tolerance(dues.values(), therapy, facts.as_of)
    if shared is None or not past:
        return []
    check = shared.results_not_seen
    catalogue = facts.catalogue
    missing = "; ".join(
        f"{catalogue.tests[d.test].title} since {since.isoformat()} "
        f"({_tolerance(d).after.describe()} or more)"
        for d, since in past
    )
    reason = (
        f"{pack.title} is monitored by {held.by} (since {held.since.isoformat()}), but no result "
        f"has reached the practice: {missing}: {check.advice}."
    )
    evidence = [therapy.latest.ref, held.evidence, *(d.last.ref for d, _ in past if d.last)]
    code = "shared-care-results-not-seen"
    return [
        Finding(
            patient=facts.patient,
            kind=FindingKind.PRESCRIBING,
            drug_group=pack.drug_group,
            medication=therapy.latest.ref,
            matched_by=therapy.method,
            rule=pack.ref,
            check=RESULTS_NOT_SEEN,
            reason=reason,
            source=catalogue.citations[check.citation].url,
            verified=check.verified and all(_tolerance(d).verified for d, _ in past),
            evidence=tuple(dict.fromkeys(evidence)),
            identifier=business_identifier(
                facts.patient, pack.id, "prescribing", code, therapy.start.isoformat()
            ),
            code=code,
            severity=check.severity,
        )
    ]


# ------------------------------------------------------------------ prescribing safety


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one prescribing check found."""

    detail: str
    evidence: tuple[ResourceRef, ...]
    verified: bool = True
    missing: tuple[str, ...] = ()
    """Set when the check could not be assessed: the data it lacks (an incomplete finding)."""

    def reason(self, advice: str) -> str:
        if self.missing:
            return f"{self.detail}; if so: {advice}."
        return f"{self.detail}: {advice}."


@dataclass(frozen=True, slots=True)
class _Undecided:
    """A criteria check that missing record data (CrCl and its inputs, weight, age, a result)
    kept from being decided: the conditions left open, and the products its doses are read from."""

    check: PrescribingCheck
    unknown: tuple[Condition, ...]
    dosed: tuple[ProductRequest, ...]


def _prescribing(pack: RulePack, therapy: Therapy, facts: Facts) -> list[Finding]:
    if not pack.prescribing:
        return []
    by_ingredient: dict[str | None, tuple[ProductRequest, ...]] = {None: therapy.products}
    for product in therapy.products:
        by_ingredient[product.ingredient] = (*by_ingredient.get(product.ingredient, ()), product)
    findings = []
    undecided: list[_Undecided] = []
    for check in pack.prescribing:
        products = by_ingredient.get(check.ingredient, ())
        if not products:
            continue
        outcome = _run_check(pack, check, products, facts, therapy)
        if outcome is None:
            continue
        if isinstance(outcome, _Undecided):
            undecided.append(outcome)
            continue
        kind = FindingKind.INCOMPLETE if outcome.missing else FindingKind.PRESCRIBING
        findings.append(
            pack_finding(
                pack,
                therapy,
                facts,
                kind,
                check=check.id,
                reason=outcome.reason(check.advice),
                source=pack.citations[check.citation].url,
                verified=outcome.verified and check.verified,
                evidence=outcome.evidence,
                identifier=business_identifier(
                    facts.patient,
                    pack.id,
                    "incomplete" if outcome.missing else "prescribing",
                    check.code,
                    therapy.start.isoformat(),
                ),
                code=check.code,
                severity=check.severity,
                missing=outcome.missing,
            )
        )
    if undecided:
        findings.append(_undecided(pack, therapy, facts, undecided))
    return findings


def _run_check(
    pack: RulePack,
    check: PrescribingCheck,
    products: tuple[ProductRequest, ...],
    facts: Facts,
    therapy: Therapy,
) -> _Outcome | _Undecided | None:
    if check.check == "max_frequency":
        return _max_frequency(check, products)
    if check.check == "ome_at_least":
        return _ome(pack, check, products)
    return _criteria(pack, check, products, facts, therapy)


def _said(request: Prescription) -> str:
    """The dosage as written, for a reason."""
    text = request.dosage.text.strip()
    return f'"{text}" on {request.ref}' if text else f"no dosage text on {request.ref}"


def _max_frequency(
    check: PrescribingCheck, products: tuple[ProductRequest, ...]
) -> _Outcome | None:
    """More administrations a week than allowed, on any current request of the ingredient; an
    unreadable frequency is reported, never read as compliant."""
    assert check.value is not None  # noqa: S101 - schema checks
    unread: list[ProductRequest] = []
    for product in products:
        request = product.request
        per_day = request.dosage.per_day
        if per_day is None:
            unread.append(product)
        elif per_day * 7 > check.value + 1e-9:
            return _Outcome(
                f"{product.ingredient.capitalize()} prescribed {per_day * 7:g} times a week "
                f'("{request.dosage.text}"), more than {check.value:g} a week',
                (request.ref,),
            )
    if not unread:
        return None
    name = unread[0].ingredient
    return _Outcome(
        f"{name.capitalize()} frequency not stated ({'; '.join(_said(p.request) for p in unread)})"
        f": cannot tell whether it is taken more than {check.value:g} a week",
        tuple(p.request.ref for p in unread),
        missing=tuple(f"dosage frequency of {p.ingredient} ({p.request.ref})" for p in unread),
    )


@dataclass(frozen=True, slots=True)
class _OmeTotal:
    """The oral morphine equivalent over a therapy's current products, and what it left out."""

    total: float
    parts: tuple[str, ...]
    unread: tuple[ProductRequest, ...]
    """Products of an ingredient with a factor whose dose cannot be read."""
    no_factor: tuple[str, ...]
    verified: bool


def _ome_total(pack: RulePack, products: tuple[ProductRequest, ...]) -> _OmeTotal:
    """Total oral morphine equivalent over every current product of every opioid (modified and
    immediate release of one drug both count), with the pack's factors."""
    factors = {i.name: i.ome for i in pack.ingredients if i.ome is not None}
    total, parts, verified = 0.0, [], True
    unread: list[ProductRequest] = []
    no_factor: list[str] = []
    for product in products:
        name, request = product.ingredient, product.request
        ome = factors.get(name)
        if ome is None:
            no_factor.append(name)
            continue
        if ome.per == "ug/h":
            if request.strength_unit is None:
                unread.append(product)
                continue
            if request.strength_unit != "ug/h" or not request.strength:
                no_factor.append(f"{name} (not a patch)")
                continue
            patches = request.dosage.dose_value if request.dosage.dose_unit == "unit" else 1.0
            amount = request.strength * (patches or 1.0)
            total += amount * ome.factor
            parts.append(f"{name} {amount:g} micrograms/hour x {ome.factor:g}")
        else:
            dose = daily_dose_mg(request)
            if dose is None:
                unread.append(product)
                continue
            total += dose * ome.factor
            parts.append(f"{name} {dose:g} mg/day x {ome.factor:g}")
        verified = verified and ome.verified
    return _OmeTotal(total, tuple(parts), tuple(unread), tuple(no_factor), verified)


def _pack_measures(
    pack: RulePack, therapy: Therapy, conditions: Iterable[Condition]
) -> dict[str, PackMeasure | None] | None:
    """The measures only the pack can work out, when its ``conditions`` ask for one: ``ome``
    (a lower bound when a dose could not be read)."""
    if not any(c.measure == "ome" for c in conditions):
        return None
    found = _ome_total(pack, therapy.products)
    return {"ome": PackMeasure(found.total, lower_bound=bool(found.unread))}


def _ome(
    pack: RulePack, check: PrescribingCheck, products: tuple[ProductRequest, ...]
) -> _Outcome | None:
    """The OME check: a dose that cannot be read makes it incomplete unless the readable part
    already reaches the limit; an ingredient or form with no conversion factor is named in the
    reason only (a gap in the rule, not in the record)."""
    assert check.value is not None  # noqa: S101 - schema checks
    found = _ome_total(pack, products)
    total, parts, unread, no_factor = found.total, found.parts, found.unread, found.no_factor
    verified = found.verified
    if total < check.value and not unread:
        return None
    evidence = tuple(sorted({p.request.ref for p in products}))
    counted = f"({'; '.join(parts)})" if parts else "(nothing readable)"
    not_stated = ", ".join(f"{p.ingredient} ({_said(p.request)})" for p in unread)
    no_cited = f" (not counted, no cited OME factor: {', '.join(no_factor)})" if no_factor else ""
    if total >= check.value:
        detail = (
            f"Oral morphine equivalent {total:g} mg/day {counted} is at or above "
            f"{check.value:g} mg/day"
        )
        if unread:
            detail += f" (not counted, dose not stated: {not_stated})"
        return _Outcome(detail + no_cited, evidence, verified)
    detail = (
        f"Oral morphine equivalent cannot be totalled, dose not stated: {not_stated}; the "
        f"readable part is {total:g} mg/day {counted}, below {check.value:g} mg/day{no_cited}"
    )
    missing = tuple(f"daily dose of {p.ingredient} ({p.request.ref})" for p in unread)
    return _Outcome(detail, evidence, verified, missing)


def _criteria(
    pack: RulePack,
    check: PrescribingCheck,
    products: tuple[ProductRequest, ...],
    facts: Facts,
    therapy: Therapy,
) -> _Outcome | _Undecided | None:
    """Conditions that must hold together. A condition whose data is missing (a dose that
    cannot be read, CrCl that cannot be had, a result given as a bound) matters only when it
    stands between the record and the finding, and only those that do are named. An unreadable
    dose alone makes this check incomplete; missing record data is left to the pack's one
    incomplete finding (``_undecided``), which names the doses too."""
    dosed = products if check.ingredient else products[-1:]
    open_required: list[Condition] = []
    as_of = facts.as_of
    measures = _pack_measures(pack, therapy, (*check.requires, *check.criteria))

    def state(cond: Condition) -> bool | None:
        if cond.measure in DOSE_MEASURES:
            return _dose_holds(cond, dosed)
        return state_for_therapy(
            facts, cond, therapy, as_of, ingredient=check.ingredient, measures=measures
        )

    for cond in check.requires:
        held = state(cond)
        if held is False:
            return None
        if held is None:
            open_required.append(cond)
    held_criteria: list[Condition] = []
    open_criteria: list[Condition] = []
    for cond in check.criteria:
        held = state(cond)
        if held:
            held_criteria.append(cond)
        elif held is None:
            open_criteria.append(cond)
    needed = check.min_match or len(check.criteria)
    enough = len(held_criteria) >= needed
    if not enough and len(held_criteria) + len(open_criteria) < needed:
        return None
    subject = (check.ingredient or pack.title).capitalize()
    evidence = tuple(sorted(p.request.ref for p in products))
    if enough and not open_required:
        used = (*check.requires, *held_criteria)
        described = ", ".join(c.describe() for c in used)
        if any(c.measure == "crcl" for c in used):
            described += f"; {facts.crcl_basis()}"
        return _Outcome(f"{subject}: {described}", evidence)
    # what stands between the record and the finding (criteria already met need no more)
    unknown = open_required if enough else [*open_required, *open_criteria]
    if any(c.measure not in DOSE_MEASURES for c in unknown):
        return _Undecided(check, tuple(unknown), dosed)
    known = [c.describe() for c in (*check.requires, *held_criteria) if c not in unknown]
    detail = (
        f"{subject}: cannot tell whether {', '.join(c.describe() for c in unknown)} "
        f"({'; '.join(_said(p.request) for p in dosed)})"
    )
    if known:
        detail += f"; already holds: {', '.join(known)}"
    return _Outcome(detail, evidence, missing=_dose_missing(unknown, dosed))


def _dose_missing(
    conditions: Iterable[Condition], dosed: tuple[ProductRequest, ...]
) -> tuple[str, ...]:
    """In words, the doses or strengths the dose conditions could not read, per product."""
    missing = (
        f"{'strength' if c.measure == 'strength_mg' else 'daily dose'} of "
        f"{p.ingredient} ({p.request.ref})"
        for c in conditions
        if c.measure in DOSE_MEASURES
        for p in dosed
        if _dose_measure(c.measure, (p,))[0] is None
    )
    return tuple(dict.fromkeys(missing))


def _undecided(
    pack: RulePack, therapy: Therapy, facts: Facts, undecided: list[_Undecided]
) -> Finding:
    """One incomplete finding for the checks that missing record data (CrCl and its inputs,
    weight, age, a result) kept from being decided, graded by the worst of them; a dose those
    checks could not read either is named with it."""
    measures = list(dict.fromkeys(c.measure or "" for u in undecided for c in u.unknown))
    recorded = [m for m in measures if m not in DOSE_MEASURES]
    missing = tuple(
        dict.fromkeys(
            [
                *(m for name in recorded for m in facts.missing_for(name)),
                *(m for u in undecided for m in _dose_missing(u.unknown, u.dosed)),
            ]
        )
    )
    worst = max((u.check for u in undecided), key=lambda c: c.severity.rank)
    intervals = [
        m
        for s in pack.schedules
        for m in s.modifiers
        if any(c.measure in recorded for c in m.when)
        or (m.interval_months_from is not None and m.interval_months_from.measure in recorded)
    ]
    reason = (
        f"{pack.title}: not recorded or not usable: {', '.join(missing)}; so "
        f"{', '.join(u.check.id for u in undecided)} could not be assessed"
        + (" and the monitoring interval that depends on it was not applied" if intervals else "")
        + f". At worst ({worst.severity.value}): {worst.advice}."
    )
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.INCOMPLETE,
        check=",".join(u.check.id for u in undecided),
        reason=reason,
        source=pack.citations[worst.citation].url,
        verified=worst.verified,
        evidence=tuple(sorted({p.request.ref for p in therapy.products})),
        identifier=business_identifier(
            facts.patient, pack.id, "incomplete", recorded[0], therapy.start.isoformat()
        ),
        code=f"{recorded[0].replace('_', '-')}-unknown",
        severity=worst.severity,
        missing=missing,
    )


def _dose_holds(cond: Condition, products: tuple[ProductRequest, ...]) -> bool | None:
    """A dose condition over the products: None when the answer rests on an unreadable dose."""
    assert cond.measure is not None  # noqa: S101 - only dose measures come here
    assert cond.op is not None  # noqa: S101 - schema checks
    assert cond.value is not None  # noqa: S101 - schema checks
    value, unread = _dose_measure(cond.measure, products)
    confirmed = value is not None and COMPARE[cond.op](value, cond.value)
    if confirmed and (not unread or cond.op in ("gt", "ge")):
        return True
    return None if unread else False


def _dose_measure(measure: str, products: tuple[ProductRequest, ...]) -> tuple[float | None, bool]:
    """The ingredient's total daily dose in mg (or its highest strength in mg) over the readable
    products, and whether some product's could not be read."""
    readable: list[float] = []
    for product in products:
        request = product.request
        if measure == "daily_dose_mg":
            value = daily_dose_mg(request)
        else:
            value = request.strength if request.strength_unit == "mg" else None
        if value is not None:
            readable.append(value)
    unread = len(readable) < len(products)
    if not readable:
        return None, unread
    return (sum(readable) if measure == "daily_dose_mg" else max(readable)), unread


def _unissued(pack: RulePack, therapy: Therapy, facts: Facts) -> list[Finding]:
    """An active request current only because it was never stopped, with nothing of its
    product issued or authored for longer than the catalogue's limit: counted, and said."""
    stale = [p for p in therapy.products if p.unissued_since is not None]
    if not stale:
        return []
    rule = facts.catalogue.unissued_active
    since = min(p.unissued_since for p in stale if p.unissued_since is not None)
    listed = "; ".join(
        f"{p.request.ref} ({p.ingredient}, last issued or authored {p.unissued_since})"
        for p in stale
    )
    reason = (
        f"{pack.title}: active but not issued since {since.isoformat()} ({listed}); monitoring "
        f"still follows it: confirm the patient still takes it, or end the prescription."
    )
    return [
        pack_finding(
            pack,
            therapy,
            facts,
            FindingKind.PRESCRIBING,
            stale[-1],
            check=UNISSUED_ACTIVE,
            reason=reason,
            source=facts.catalogue.citations[rule.citation].url,
            verified=rule.verified,
            evidence=tuple(p.request.ref for p in stale),
            identifier=business_identifier(
                facts.patient, pack.id, "prescribing", "active-not-issued", since.isoformat()
            ),
            code="active-not-issued",
            severity=rule.severity,
        )
    ]
