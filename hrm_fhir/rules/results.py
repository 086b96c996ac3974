"""Results read the way the laboratory meant them: out-of-range findings, and what was unreadable.

For each analyte a pack has thresholds for (or whose test it schedules), the newest results are
weighed (``Facts.newest``: results that could share a moment are weighed together, the worst
counts). They are acted on only while recent enough: the pack's maintenance interval for the
test that carries the analyte (``result_lookbacks``); an older abnormal result is described with
its age instead. A threshold relative to the laboratory range reads the result's own
``referenceRange``, else the laboratory's interpretation flag, else the catalogue's cited default
range (the finding says the laboratory range was absent); when none is there, or a value given
as a bound leaves a threshold open, or the unit cannot be read, an ``incomplete`` finding says
so, graded by the worst the value could mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from hrm_fhir.domain import Finding, FindingKind, LabResult, ResourceRef, Severity
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.facts import COMPARE, Facts, business_identifier, fell, meets, pack_finding
from hrm_fhir.rules.model import (
    RANGE_OPS,
    RISE_OPERATORS,
    Catalogue,
    Condition,
    RulePack,
    Threshold,
)
from hrm_fhir.rules.targets import Target, patient_target
from hrm_fhir.rules.therapy import Therapy

_SYMBOL = {"lt": "below", "le": "at or below", "gt": "above", "ge": "at or above"}
_FLAG_SIDE = {
    "H": "high",
    "HH": "high",
    "HU": "high",
    ">": "high",
    "L": "low",
    "LL": "low",
    "LU": "low",
    "<": "low",
    "N": "normal",
}
"""v3 ObservationInterpretation flags that say which side of the range a result is on (``A`` and
``AA``, abnormal without a side, do not)."""
_NO_RANGE = ("laboratory reference range", "interpretation flag")
_EPOCH = date(2001, 1, 1)


@dataclass(frozen=True, slots=True)
class Judgement:
    """Whether one result crosses one threshold, and how that was read."""

    hit: bool | None
    """None: cannot tell (no range of any kind, or a bound that leaves it open)."""
    limit: str
    """The limit in words, e.g. ``at or above 1.5 mmol/L``."""
    basis: str = ""
    """How the limit was found when the laboratory's range was absent."""
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnalytePlan:
    """How one pack reads one analyte on one as-of date, worked out once per run."""

    analyte: str
    thresholds: tuple[Threshold, ...]
    lookback: Duration
    acted_from: date
    """The oldest result date still acted on: ``lookback`` after it is on or after as-of."""
    coded: bool = False
    """A coded finding (no value): its thresholds fire on the record itself (``recorded``)."""
    targeted: bool = False
    """Some threshold compares with the patient's own target range."""


def result_plan(pack: RulePack, catalogue: Catalogue, as_of: date) -> tuple[AnalytePlan, ...]:
    """Every analyte the pack has thresholds for or whose test it schedules, with its
    thresholds and look-back, in analyte order."""
    plans = []
    for analyte, lookback in sorted(result_lookbacks(pack, catalogue).items()):
        thresholds = tuple(t for t in pack.thresholds if t.analyte == analyte)
        plans.append(
            AnalytePlan(
                analyte,
                thresholds,
                lookback,
                _acted_from(lookback, as_of),
                coded=any(t.op == "recorded" for t in thresholds),
                targeted=any(t.op in _TARGET_SIDE for t in thresholds),
            )
        )
    return tuple(plans)


def _acted_from(lookback: Duration, as_of: date) -> date:
    """The earliest day whose ``lookback`` later is on or after ``as_of`` (month ends clamp, so
    this is found from ``lookback.before`` and checked either side)."""
    one = timedelta(days=1)
    day = lookback.before(as_of)
    while lookback.after(day) < as_of:
        day += one
    while lookback.after(day - one) >= as_of:
        day -= one
    return day


def result_lookbacks(pack: RulePack, catalogue: Catalogue) -> dict[str, Duration]:
    """How long each analyte's result is acted on in this pack (``result_lookback``), for every
    analyte it has thresholds for or whose test it schedules."""
    analytes = {t.analyte for t in pack.thresholds} | {
        a for s in pack.schedules for test in s.tests for a in catalogue.tests[test].analytes
    }
    return {analyte: result_lookback(pack, catalogue, analyte)[0] for analyte in analytes}


def result_lookback(pack: RulePack, catalogue: Catalogue, analyte: str) -> tuple[Duration, bool]:
    """(how long, whether from a schedule): the longest maintenance interval of the pack's
    schedules for the test that carries the analyte (its own test, or the test it is
    ``monitored_with``); the catalogue's ``result_lookback`` when no schedule asks for one."""
    tests = {t.id for t in catalogue.tests.values() if analyte in t.analytes}
    with_test = catalogue.analytes[analyte].monitored_with
    if with_test is not None:
        tests.add(with_test)
    intervals = [
        interval
        for s in pack.schedules
        if tests.intersection(s.tests) and (interval := s.phases[-1].interval) is not None
    ]
    if not intervals:
        return catalogue.result_lookback, False
    return max(intervals, key=lambda i: i.after(_EPOCH)), True


def baseline_of(threshold: Threshold, latest: LabResult, facts: Facts) -> LabResult | None:
    """The baseline in the window before the latest result: for a rise the lowest exact value
    ([D]: the notes say first or lowest), for a fall the highest (the more sensitive choice)."""
    assert threshold.baseline_window is not None  # noqa: S101 - schema checks
    since = threshold.baseline_window.before(latest.effective)
    earlier = [
        r
        for r in facts.results.get(threshold.analyte, ())
        if r.normalised
        and r.value is not None
        and r.comparator is None
        and since <= r.effective < latest.effective
    ]
    if not earlier:
        return None
    if threshold.op in RISE_OPERATORS:
        return min(earlier, key=lambda r: (r.value, r.effective))
    return max(earlier, key=lambda r: (r.value, r.effective))


def judge(
    threshold: Threshold, result: LabResult, facts: Facts, target: Target | None = None
) -> Judgement:
    """Whether ``result`` crosses ``threshold`` (its ``also`` conditions aside), against the
    patient's ``target`` range for the target operators. A result that does not cross it gets
    ``NOT_CROSSED``, with no words: that is the common case."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    op, unit = threshold.op, threshold.unit
    if op in COMPARE:
        hit = meets(result.value, result.comparator, op, threshold.value)
        return _judged(hit, lambda: f"{_SYMBOL[op]} {threshold.value:g} {unit}")
    if op in _TARGET_SIDE:
        assert target is not None  # noqa: S101 - result_findings works it out for these
        return _against_target(threshold, result, target)
    if op == "falling":
        return _falling(threshold, result, facts)
    if op == "fall_from_baseline":
        return _fall(threshold, result, facts)
    if op in RISE_OPERATORS:
        baseline = baseline_of(threshold, result, facts)
        if baseline is None or baseline.value is None:
            return NOT_CROSSED
        base = baseline.value
        at_least = op == "rise_pct_from_baseline_at_least"
        # rounded: 100 x 1.07 is 107.00000000000001, and 107 must be "7% or more" above 100
        rise_limit = round(base * (1 + threshold.value / 100), 9)
        hit = meets(result.value, result.comparator, "ge" if at_least else "gt", rise_limit)
        return _judged(
            hit,
            lambda: (
                f"{'at least' if at_least else 'more than'} {threshold.value:g}% above the "
                f"baseline {base:g} {unit} of {baseline.effective.isoformat()}"
            ),
        )
    high = op != "below_ref_low"
    times = threshold.value if op == "above_ref_high_times" else 1.0
    bound = result.ref_high if high else result.ref_low
    if bound is not None:
        hit = meets(result.value, result.comparator, "gt" if high else "lt", bound * times)
        return _judged(hit, lambda: _range_words(op, times, bound))
    flag = result.interpretation or ""
    flagged = _FLAG_SIDE.get(flag)
    if flagged is not None and (flagged != "high" or times == 1.0):
        if flagged != ("high" if high else "low"):
            return NOT_CROSSED
        words = f"flagged {flag} by the laboratory ({'above' if high else 'below'} its range)"
        return Judgement(True, words, "the laboratory range was absent: judged by its flag")
    analyte = facts.catalogue.analytes[threshold.analyte]
    default = analyte.default_range(facts.sex) if result.normalised else None
    limit = None if default is None else (default.high if high else default.low)
    if default is None or limit is None:
        sex = ("sex",) if analyte.reference_ranges and facts.sex is None else ()
        return Judgement(None, _range_words(op, times, None), missing=(*_NO_RANGE, *sex))
    hit = meets(result.value, result.comparator, "gt" if high else "lt", limit * times)
    citation = facts.catalogue.citations[default.citation]
    basis = (
        f"the laboratory range was absent: judged against the default adult range "
        f"{default.describe(unit)} ({citation.publisher}"
        f"{'' if default.verified else ', unverified'})"
    )
    return _judged(hit, lambda: _range_words(op, times, limit), basis)


NOT_CROSSED = Judgement(False, "")
_TARGET_SIDE = {"above_target": "gt", "below_target": "lt"}


def _against_target(threshold: Threshold, result: LabResult, target: Target) -> Judgement:
    """Above (or below) the patient's target range by more than ``value`` (0: at all)."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    above = threshold.op == "above_target"
    margin = threshold.value
    limit = target.high + margin if above else target.low - margin
    hit = meets(result.value, result.comparator, _TARGET_SIDE[threshold.op], limit)

    def words() -> str:
        side = "above" if above else "below"
        by = f"more than {margin:g} {side}" if margin else side
        return f"{by} the target range {target.range_text()} ({target.said})"

    return _judged(hit, words)


def _falling(threshold: Threshold, result: LabResult, facts: Facts) -> Judgement:
    """Each of the last ``count`` exact results up to this one lower than the one before."""
    series = [r for r in facts.results.get(threshold.analyte, ()) if r.order <= result.order]
    if not fell(series, threshold.count):
        return NOT_CROSSED
    values = [r for r in series if r.normalised and r.value is not None and r.comparator is None]
    shown = ", ".join(
        f"{r.value:g} ({r.effective.isoformat()})" for r in values[-(threshold.count + 1) :]
    )
    return Judgement(True, f"falling at each of its last {threshold.count} results: {shown}")


def _fall(threshold: Threshold, result: LabResult, facts: Facts) -> Judgement:
    """At least ``value`` below the highest exact result in the baseline window before it."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    baseline = baseline_of(threshold, result, facts)
    if baseline is None or baseline.value is None:
        return NOT_CROSSED
    base, unit = baseline.value, threshold.unit
    hit = meets(result.value, result.comparator, "le", base - threshold.value)
    assert threshold.baseline_window is not None  # noqa: S101 - schema checks
    window = threshold.baseline_window.describe()
    return _judged(
        hit,
        lambda: (
            f"{threshold.value:g} {unit} or more below the highest result of the previous "
            f"{window} ({base:g} {unit} on {baseline.effective.isoformat()})"
        ),
    )


def _judged(hit: bool | None, words: Callable[[], str], basis: str = "") -> Judgement:
    """The judgement; its words are only worked out when the threshold is, or may be, crossed."""
    if hit is False:
        return NOT_CROSSED
    return Judgement(hit, words(), basis, () if hit is not None else ("exact value",))


def _range_words(op: str, times: float, bound: float | None) -> str:
    limit = "" if bound is None else f" ({'low' if op == 'below_ref_low' else 'high'} {bound:g})"
    if op == "below_ref_low":
        return f"below the reference range{limit}"
    if op == "above_ref_high":
        return f"above the reference range{limit}"
    return f"more than {times:g} x the upper reference limit{limit}"


def value_text(result: LabResult) -> str:
    """``1.6 mmol/L``, ``>8 {INR}`` or ``2.1 'mmol'`` (a unit that could not be read)."""
    unit = result.unit if result.normalised else repr(result.unit)
    return f"{result.comparator or ''}{result.value:g} {unit or ''}".rstrip()


def _age(since: date, until: date) -> str:
    months = (until.year - since.year) * 12 + until.month - since.month - (until.day < since.day)
    if months >= 24:
        return f"{months // 12} years"
    if months >= 1:
        return f"{months} month{'s' if months > 1 else ''}"
    days = (until - since).days
    return f"{days} day{'s' if days != 1 else ''}"


@dataclass
class _Reading:
    """What the newest results of one analyte gave under one pack."""

    fired: tuple[Threshold, LabResult, Judgement] | None = None
    open: dict[str, tuple[Threshold, LabResult, Judgement]] = field(default_factory=dict)
    """The worst threshold that could not be decided, per cause (``Judgement.missing``)."""


@dataclass(frozen=True, slots=True)
class StaleReading:
    """The newest results of an analyte, too old to act on, and how they are judged."""

    plan: AnalytePlan
    newest: list[LabResult]
    target: Target | None = None


Stale = list[StaleReading]
"""Newest results too old to act on, per analyte."""


def result_findings(
    pack: RulePack, therapy: Therapy, facts: Facts, plan: tuple[AnalytePlan, ...]
) -> tuple[list[Finding], Stale]:
    """Out-of-range and incomplete findings from the pack's analytes, and the newest results
    that are too old to act on (``stale_notes`` describes the abnormal ones)."""
    findings: list[Finding] = []
    stale: Stale = []
    present = facts.results
    for item in plan:
        if item.analyte not in present:
            continue
        if item.coded:
            findings.extend(_coded_findings(pack, therapy, facts, item, stale))
            continue
        newest = facts.newest(item.analyte)
        if not newest:
            continue
        target = _target(pack, therapy, facts, item)
        if newest[0].effective < item.acted_from:
            if item.thresholds:
                stale.append(StaleReading(item, newest, target))
            continue
        reading = _read(item.thresholds, newest, facts, target)
        if reading is not None:
            findings.extend(_findings(pack, therapy, facts, reading, target))
        for result in newest:
            if not result.normalised:
                findings.append(_unreadable(pack, therapy, facts, item.thresholds, result, target))
    return findings, stale


def _target(pack: RulePack, therapy: Therapy, facts: Facts, item: AnalytePlan) -> Target | None:
    """The patient's target range for the analyte, when a threshold compares with it."""
    if not item.targeted:
        return None
    return patient_target(pack.targets[item.analyte], facts.targets(item.analyte), therapy)


def _read(
    thresholds: tuple[Threshold, ...],
    newest: list[LabResult],
    facts: Facts,
    target: Target | None = None,
) -> _Reading | None:
    """What the readable ones among the newest results cross; None when nothing (the usual).
    A threshold whose ``also`` conditions cannot be decided is left open, as one whose value
    or range cannot be."""
    reading: _Reading | None = None
    for threshold in thresholds:
        for result in newest:
            if not result.normalised:
                continue
            judgement = judge(threshold, result, facts, target)
            if judgement.hit is False:
                continue
            states = [also_state(c, result, facts) for c in threshold.also]
            if any(state is False for state, _ in states):
                continue
            reading = reading or _Reading()
            unknown = [
                (c, why)
                for c, (state, why) in zip(threshold.also, states, strict=True)
                if state is None
            ]
            if judgement.hit is True and not unknown:
                if reading.fired is None or _rank(threshold) > _rank(reading.fired[0]):
                    reading.fired = (threshold, result, judgement)
                continue
            if judgement.hit is True:
                cond, why = unknown[0]
                cause = f"{(cond.measure or 'condition').replace('_', '-')}-unknown"
                judgement = replace(
                    judgement,
                    hit=None,
                    limit=f"{judgement.limit} with {cond.describe()}",
                    missing=why,
                )
            else:
                cause = _cause(judgement)
            current = reading.open.get(cause)
            if current is None or _rank(threshold) > _rank(current[0]):
                reading.open[cause] = (threshold, result, judgement)
    return reading


def also_state(
    cond: Condition, result: LabResult, facts: Facts
) -> tuple[bool | None, tuple[str, ...]]:
    """Whether one of a threshold's ``also`` conditions holds for ``result``, and when that
    cannot be told, what is missing. A condition on another analyte reads that analyte's
    result of the same day (the same sample: FT4 with the TSH it explains), compared with a
    value or, for a range operator, with its own reference range (as thresholds read it)."""
    catalogue = facts.catalogue
    analyte = catalogue.analytes.get(cond.measure or "")
    if analyte is None:
        state = facts.state(cond)
        missing = facts.missing_for(cond.measure) if cond.measure else ()
        return state, (missing if state is None else ())
    same_day = [
        r
        for r in facts.results.get(analyte.id, ())
        if r.effective == result.effective and r.value is not None and r.normalised
    ]
    if not same_day:
        return None, (f"{analyte.title.lower()} of the same day",)
    other = same_day[-1]
    assert other.value is not None  # noqa: S101 - filtered above
    if cond.op in RANGE_OPS:
        proxy = Threshold(
            id="also",
            analyte=analyte.id,
            op=cond.op,
            value=1.0,
            unit=analyte.unit,
            severity=Severity.REVIEW,
            advice="",
            citation="",
            verified=False,
        )
        judged = judge(proxy, other, facts)
        return judged.hit, judged.missing
    assert cond.op is not None  # noqa: S101 - schema checks
    assert cond.value is not None  # noqa: S101 - schema checks
    state = meets(other.value, other.comparator, cond.op, cond.value)
    return state, (("exact value",) if state is None else ())


def _rank(threshold: Threshold) -> int:
    return threshold.severity.rank


def _cause(judgement: Judgement) -> str:
    return "value-not-exact" if judgement.missing == ("exact value",) else "reference-range-missing"


def _findings(
    pack: RulePack, therapy: Therapy, facts: Facts, reading: _Reading, target: Target | None
) -> list[Finding]:
    out: list[Finding] = []
    fired_rank = 0
    if reading.fired is not None:
        threshold, result, judgement = reading.fired
        fired_rank = _rank(threshold)
        out.append(_out_of_range(pack, therapy, facts, threshold, result, judgement, target))
    for cause, (threshold, result, judgement) in sorted(reading.open.items()):
        if _rank(threshold) <= fired_rank:
            continue
        title = facts.catalogue.analytes[threshold.analyte].title
        if cause == "value-not-exact":
            what = (
                f"{title} recorded as {value_text(result)} on {result.effective.isoformat()}: "
                f"cannot tell whether it is {judgement.limit}"
            )
        elif cause == "reference-range-missing":
            what = (
                f"{title} {value_text(result)} on {result.effective.isoformat()} has no "
                f"laboratory reference range or flag, and there is no default range for it: "
                f"cannot tell whether it is {judgement.limit}"
            )
        else:
            what = (
                f"{title} {value_text(result)} on {result.effective.isoformat()}: cannot tell "
                f"whether it is {judgement.limit} (not on record or not usable: "
                f"{', '.join(judgement.missing)})"
            )
        reason = (
            f"{what}{_preliminary(result)} ({threshold.id} not assessed on {pack.title}); "
            f"if it is: {threshold.advice}."
        )
        out.append(
            _incomplete(
                pack,
                therapy,
                facts,
                result,
                code=cause,
                check=threshold.id,
                reason=reason,
                missing=judgement.missing,
                severity=threshold.severity,
                cited=(pack.citations[threshold.citation].url, threshold.verified),
            )
        )
    return out


def _preliminary(result: LabResult) -> str:
    return " (a preliminary result: confirm with the final one)" if result.preliminary else ""


def _out_of_range(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    threshold: Threshold,
    result: LabResult,
    judgement: Judgement,
    target: Target | None = None,
) -> Finding:
    title = facts.catalogue.analytes[threshold.analyte].title
    basis = f" ({judgement.basis})" if judgement.basis else ""
    reason = (
        f"{title} {value_text(result)} on {result.effective.isoformat()}{_preliminary(result)} "
        f"is {judgement.limit}{basis} on {pack.title}: {threshold.advice}."
    )
    if threshold.op in _TARGET_SIDE and target is not None:
        if target.source is not None:
            return _result_finding(pack, therapy, facts, threshold, result, reason, target.source)
        verified = threshold.verified and pack.targets[threshold.analyte].verified
        return _result_finding(pack, therapy, facts, threshold, result, reason, verified=verified)
    return _result_finding(pack, therapy, facts, threshold, result, reason)


def _result_finding(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    threshold: Threshold,
    result: LabResult,
    reason: str,
    *also: ResourceRef,
    verified: bool | None = None,
) -> Finding:
    """The out-of-range finding of ``threshold`` on ``result`` (a value or a coded finding),
    with ``also`` as further evidence (the Goal that set a target range)."""
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.OUT_OF_RANGE,
        check=threshold.id,
        reason=reason,
        source=pack.citations[threshold.citation].url,
        verified=threshold.verified if verified is None else verified,
        evidence=tuple(dict.fromkeys((result.ref, therapy.latest.ref, *also))),
        identifier=business_identifier(
            facts.patient, pack.id, "result", threshold.analyte, result.ref
        ),
        analyte=threshold.analyte,
        value=result.value,
        unit=result.unit,
        observed_on=result.effective,
        severity=threshold.severity,
    )


def _unreadable(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    thresholds: tuple[Threshold, ...],
    result: LabResult,
    target: Target | None = None,
) -> Finding:
    """The incomplete finding for a result whose unit cannot be read, graded by the worst any
    reading of its number could mean: as the canonical unit, through each listed conversion,
    and against its own range and flag (which are in its own unit)."""
    analyte = facts.catalogue.analytes[result.analyte]
    worst: tuple[Threshold, Judgement] | None = None
    readings = [(1.0, 0.0)] + [(c.factor, c.offset) for c in analyte.conversions]
    for factor, offset in readings:

        def scaled(value: float | None, f: float = factor, o: float = offset) -> float | None:
            return None if value is None else (value + o) * f

        reading = result._replace(
            value=scaled(result.value),
            ref_low=scaled(result.ref_low),
            ref_high=scaled(result.ref_high),
            normalised=True,
        )
        for threshold in thresholds:
            judgement = judge(threshold, reading, facts, target)
            possible = judgement.hit is not False and all(
                also_state(c, reading, facts)[0] is not False for c in threshold.also
            )
            if possible and (worst is None or _rank(threshold) > _rank(worst[0])):
                worst = (threshold, judgement)
    head = (
        f"{analyte.title} {value_text(result)} on {result.effective.isoformat()}"
        f"{_preliminary(result)}: the unit cannot be read, so it is not compared with the "
        f"thresholds and does not count as the test done"
    )
    if worst is None:
        severity, check = Severity.REVIEW, result.analyte
        tail = "; check the unit with the laboratory and record the result again."
        cited = _schedule_source(pack, facts, result.analyte)
    else:
        threshold, judgement = worst
        severity, check = threshold.severity, threshold.id
        tail = (
            f"; read as {analyte.unit} or a listed unit it could be {judgement.limit} "
            f"({threshold.id}): {threshold.advice}."
        )
        cited = (pack.citations[threshold.citation].url, threshold.verified)
    return _incomplete(
        pack,
        therapy,
        facts,
        result,
        code="unit-unreadable",
        check=check,
        reason=head + tail,
        missing=("unit",),
        severity=severity,
        cited=cited,
    )


def _schedule_source(pack: RulePack, facts: Facts, analyte: str) -> tuple[str, bool]:
    """The citation of a schedule that asks for a test this analyte counts for."""
    for schedule in pack.schedules:
        if any(analyte in facts.catalogue.tests[t].analytes for t in schedule.tests):
            return pack.citations[schedule.citation].url, schedule.verified
    first = next(iter(pack.citations.values()))
    return first.url, False


def _incomplete(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    result: LabResult,
    *,
    code: str,
    check: str,
    reason: str,
    missing: tuple[str, ...],
    severity: Severity,
    cited: tuple[str, bool],
) -> Finding:
    """An incomplete finding about one result; ``cited`` is (source URL, verified)."""
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.INCOMPLETE,
        check=check,
        reason=reason,
        source=cited[0],
        verified=cited[1],
        evidence=(result.ref, therapy.latest.ref),
        identifier=business_identifier(
            facts.patient, pack.id, "incomplete", code, result.analyte, result.ref
        ),
        analyte=result.analyte,
        value=result.value,
        unit=result.unit,
        observed_on=result.effective,
        severity=severity,
        code=code,
        missing=missing,
    )


def stale_notes(stale: Stale, facts: Facts) -> list[str]:
    """One sentence per older abnormal result: what it was, and how old."""
    notes = []
    for entry in stale:
        item = entry.plan
        for result in entry.newest:
            if result.value is None:
                notes.extend(_coded_note(item, result, facts))
                continue
            if not result.normalised:
                continue
            crossed = [
                (t, j)
                for t in item.thresholds
                if (j := judge(t, result, facts, entry.target)).hit is True
                and all(also_state(c, result, facts)[0] is True for c in t.also)
            ]
            if not crossed:
                continue
            threshold, judgement = max(crossed, key=lambda pair: _rank(pair[0]))
            title = facts.catalogue.analytes[result.analyte].title
            notes.append(
                f"{title} {value_text(result)} on {result.effective.isoformat()} "
                f"({_age(result.effective, facts.as_of)} old) was {judgement.limit} "
                f"({threshold.id}, {threshold.severity.value}): too old to act on, as results "
                f"are acted on for {item.lookback.describe()}."
            )
    return notes


def crossing(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    plan: tuple[AnalytePlan, ...],
    wanted: frozenset[str],
) -> frozenset[str]:
    """Which of the ``wanted`` thresholds the newest results still acted on cross, with their
    ``also`` conditions holding (read as a result finding reads them): what a schedule
    modifier's ``fires`` condition reads. A coded finding crosses its ``recorded`` threshold
    while it is acted on and not superseded."""
    out: set[str] = set()
    for item in plan:
        ids = {t.id for t in item.thresholds} & wanted
        if not ids or item.analyte not in facts.results:
            continue
        if item.coded:
            record = facts.results[item.analyte][-1]
            if record.effective >= item.acted_from and not _superseded(record, facts):
                out |= ids
            continue
        newest = facts.newest(item.analyte)
        if not newest or newest[0].effective < item.acted_from:
            continue
        target = _target(pack, therapy, facts, item)
        for threshold in item.thresholds:
            if threshold.id in ids:
                reading = _read((threshold,), newest, facts, target)
                if reading is not None and reading.fired is not None:
                    out.add(threshold.id)
    return frozenset(out)


def _coded_findings(
    pack: RulePack, therapy: Therapy, facts: Facts, item: AnalytePlan, stale: Stale
) -> list[Finding]:
    """A coded finding ("lithium level high - toxic") fires its ``recorded`` threshold while it
    is recent enough to act on and no later result has shown its test done again (the analyte
    it is ``monitored_with`` in the catalogue); an older one is described with its age."""
    record = facts.results[item.analyte][-1]
    if _superseded(record, facts):
        return []
    if record.effective < item.acted_from:
        stale.append(StaleReading(item, [record]))
        return []
    threshold = max(item.thresholds, key=_rank)
    title = facts.catalogue.analytes[item.analyte].title
    reason = (
        f"{title} recorded on {record.effective.isoformat()}{_preliminary(record)} on "
        f"{pack.title}: {threshold.advice}."
    )
    return [_result_finding(pack, therapy, facts, threshold, record, reason)]


def _superseded(record: LabResult, facts: Facts) -> bool:
    """Whether a later result shows the coded finding's test done again (a new lithium level
    after "lithium level high - toxic"); one that could share its moment does not."""
    test = facts.catalogue.analytes[record.analyte].monitored_with
    if test is None:
        return False
    done = facts.last_done(facts.catalogue.tests[test].analytes)
    return done is not None and done.order > record.order and not done.same_moment(record)


def _coded_note(item: AnalytePlan, record: LabResult, facts: Facts) -> list[str]:
    """The sentence for a coded finding too old to act on."""
    if not item.thresholds:
        return []
    threshold = max(item.thresholds, key=_rank)
    title = facts.catalogue.analytes[record.analyte].title
    return [
        f"{title} recorded on {record.effective.isoformat()} "
        f"({_age(record.effective, facts.as_of)} old; {threshold.id}, "
        f"{threshold.severity.value}): too old to act on, as results are acted on for "
        f"{item.lookback.describe()}."
    ]
