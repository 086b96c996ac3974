"""Monitoring schedules: when each test a pack asks for is next due, and why; the due or
overdue finding, the severely-overdue grade, and, for a group another organisation monitors,
the finding that no result has reached the practice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import NamedTuple

from hrm_fhir.domain import Finding, FindingKind, LabResult, MonitoredElsewhere, RegisterEntry
from hrm_fhir.rules.analyte_plan import AnalytePlan
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.facts import (
    Facts,
    PackMeasure,
    business_identifier,
    holds_for_therapy,
    pack_finding,
)
from hrm_fhir.rules.model import Baseline, Modifier, RulePack, Schedule, Tolerance
from hrm_fhir.rules.ome import pack_measures
from hrm_fhir.rules.therapy import Therapy

RESULTS_NOT_SEEN = "results-not-seen"
"""The check of the catalogue's monitored-elsewhere "no result has reached the practice" rule."""


def stopped_on(therapy: Therapy, lookback: Duration) -> date:
    """The day a therapy that is no longer current counts as stopped: the last day its requests
    cover plus the issue look-back (an issue counts as current, and may still be taken from the
    supply at home, for that long)."""
    return lookback.after(therapy.last_cover)


class NextDue(NamedTuple):
    """When one test is next due, and why. (A named tuple: one is made per test per patient.)"""

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


def test_dues(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    fired: frozenset[str] | None,
    reads_ome: bool,
) -> dict[str, NextDue]:
    """The next due date of each test the pack's schedules in force ask for: on current
    therapy, every schedule and the baselines of a new start; once stopped, the schedules that
    continue after stopping, until they end."""
    catalogue = facts.catalogue
    dues: dict[str, NextDue] = {}
    stopped = None if therapy.current else stopped_on(therapy, catalogue.current_issue_lookback)
    measures = pack_measures(pack, therapy) if reads_ome else None
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
            entry = NextDue(test, due, last, schedule, interval, brought_forward, verified, until)
            if test not in dues or entry.due < dues[test].due:
                dues[test] = entry
    if stopped is None:
        for entry in _baseline_dues(pack, therapy, facts):
            if entry.test not in dues or entry.due <= dues[entry.test].due:
                dues[entry.test] = entry
    return dues


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


def _baseline_dues(pack: RulePack, therapy: Therapy, facts: Facts) -> list[NextDue]:
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
            out.append(NextDue(test, start, last, baseline, None, None, baseline.verified))
    return out


def continuing_plan(
    pack: RulePack, facts: Facts, plan: tuple[AnalytePlan, ...]
) -> tuple[AnalytePlan, ...]:
    """The part of a pack's result plan that still applies once the therapy has stopped: the
    analytes of the tests its continuing schedules ask for (a raised TSH after amiodarone)."""
    tests = {t for s in pack.schedules if s.continues_after_stop for t in s.tests}
    analytes = {a for t in tests for a in facts.catalogue.tests[t].analytes}
    return tuple(item for item in plan if item.analyte in analytes)


def register_entry(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    dues: dict[str, NextDue],
    order: dict[str, int],
) -> RegisterEntry:
    return RegisterEntry(
        patient=facts.patient,
        drug_group=pack.drug_group,
        medication=therapy.latest.ref,
        matched_by=therapy.method,
        course_start=therapy.start,
        next_due=tuple((d.test, d.due) for d in sorted(dues.values(), key=lambda d: order[d.test])),
    )


def monitoring_findings(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    dues: dict[str, NextDue],
    when: tuple[date, int],
    order: dict[str, int],
) -> list[Finding]:
    """The due or overdue finding: the tests due by ``when`` (the as-of date and the days
    ahead in which a test counts as due), in the catalogue's ``order``."""
    as_of, window_days = when
    horizon = as_of + timedelta(days=window_days)
    included = [d for d in dues.values() if d.due <= horizon]
    if not included:
        return []
    included.sort(key=lambda d: order[d.test])
    due_date = min(d.due for d in included)
    kind = FindingKind.OVERDUE if due_date < as_of else FindingKind.DUE
    severe = past_tolerance(included, therapy, as_of) if kind is FindingKind.OVERDUE else []
    reason = _monitoring_reason(pack, therapy, facts, included, due_date, kind, severe)
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


def _monitoring_reason(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    included: list[NextDue],
    due_date: date,
    kind: FindingKind,
    severe: list[tuple[NextDue, date]],
) -> str:
    """The due or overdue finding's reason: each test with its last result, due date and
    interval; the tests past their tolerance; what a shorter interval rests on; and, once
    stopped, that the monitoring continues after stopping."""
    catalogue = facts.catalogue
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
    return reason


def _tolerance_of(due: NextDue) -> Tolerance | None:
    """The severely-overdue tolerance of the schedule that set the due date (a baseline has
    none)."""
    return due.rule.severely_overdue if isinstance(due.rule, Schedule) else None


def _tolerance(due: NextDue) -> Tolerance:
    tolerance = _tolerance_of(due)
    assert tolerance is not None  # noqa: S101 - only called on tests past their tolerance
    return tolerance


def past_tolerance(
    dues: Iterable[NextDue], therapy: Therapy, as_of: date
) -> list[tuple[NextDue, date]]:
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


def results_not_seen(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    dues: dict[str, NextDue],
    held: MonitoredElsewhere,
) -> list[Finding]:
    """Monitored elsewhere, yet no result of an overdue test has reached the practice within
    its schedule's severely-overdue tolerance: the practice must see results before issuing."""
    shared = facts.catalogue.shared_care
    past = past_tolerance(dues.values(), therapy, facts.as_of)
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
