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

from hrm_fhir.domain import Finding, FindingKind, LabResult, Severity
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.facts import COMPARE, Facts, business_identifier, meets, pack_finding
from hrm_fhir.rules.model import RISE_OPERATORS, Catalogue, RulePack, Threshold
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


def result_plan(pack: RulePack, catalogue: Catalogue, as_of: date) -> tuple[AnalytePlan, ...]:
    """Every analyte the pack has thresholds for or whose test it schedules, with its
    thresholds and look-back, in analyte order."""
    return tuple(
        AnalytePlan(
            analyte,
            tuple(t for t in pack.thresholds if t.analyte == analyte),
            lookback,
            _acted_from(lookback, as_of),
        )
        for analyte, lookback in sorted(result_lookbacks(pack, catalogue).items())
    )


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
    """The lowest exact value in the window before the latest result ([D]: first or lowest)."""
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
    return min(earlier, key=lambda r: (r.value, r.effective)) if earlier else None


def judge(threshold: Threshold, result: LabResult, facts: Facts) -> Judgement:
    """Whether ``result`` crosses ``threshold`` (its ``also`` conditions aside). A result that
    does not cross it gets ``NOT_CROSSED``, with no words: that is the common case."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    op, unit = threshold.op, threshold.unit
    if op in COMPARE:
        hit = meets(result.value, result.comparator, op, threshold.value)
        return _judged(hit, lambda: f"{_SYMBOL[op]} {threshold.value:g} {unit}")
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


Stale = list[tuple[AnalytePlan, list[LabResult]]]
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
        newest = facts.newest(item.analyte)
        if not newest:
            continue
        if newest[0].effective < item.acted_from:
            if item.thresholds:
                stale.append((item, newest))
            continue
        reading = _read(item.thresholds, newest, facts)
        if reading is not None:
            findings.extend(_findings(pack, therapy, facts, reading))
        for result in newest:
            if not result.normalised:
                findings.append(_unreadable(pack, therapy, facts, item.thresholds, result))
    return findings, stale


def _read(
    thresholds: tuple[Threshold, ...], newest: list[LabResult], facts: Facts
) -> _Reading | None:
    """What the readable ones among the newest results cross; None when nothing (the usual)."""
    reading: _Reading | None = None
    for threshold in thresholds:
        for result in newest:
            if not result.normalised:
                continue
            judgement = judge(threshold, result, facts)
            if judgement.hit is False:
                continue
            states = [facts.state(c) for c in threshold.also]
            reading = reading or _Reading()
            if judgement.hit is True and all(s is True for s in states):
                if reading.fired is None or _rank(threshold) > _rank(reading.fired[0]):
                    reading.fired = (threshold, result, judgement)
            elif judgement.hit is None and False not in states:
                cause = _cause(judgement)
                current = reading.open.get(cause)
                if current is None or _rank(threshold) > _rank(current[0]):
                    reading.open[cause] = (threshold, result, judgement)
    return reading


def _rank(threshold: Threshold) -> int:
    return threshold.severity.rank


def _cause(judgement: Judgement) -> str:
    return "value-not-exact" if judgement.missing == ("exact value",) else "reference-range-missing"


def _findings(pack: RulePack, therapy: Therapy, facts: Facts, reading: _Reading) -> list[Finding]:
    out: list[Finding] = []
    fired_rank = 0
    if reading.fired is not None:
        threshold, result, judgement = reading.fired
        fired_rank = _rank(threshold)
        out.append(_out_of_range(pack, therapy, facts, threshold, result, judgement))
    for cause, (threshold, result, judgement) in sorted(reading.open.items()):
        if _rank(threshold) <= fired_rank:
            continue
        title = facts.catalogue.analytes[threshold.analyte].title
        if cause == "value-not-exact":
            what = (
                f"{title} recorded as {value_text(result)} on {result.effective.isoformat()}: "
                f"cannot tell whether it is {judgement.limit}"
            )
        else:
            what = (
                f"{title} {value_text(result)} on {result.effective.isoformat()} has no "
                f"laboratory reference range or flag, and there is no default range for it: "
                f"cannot tell whether it is {judgement.limit}"
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
) -> Finding:
    title = facts.catalogue.analytes[threshold.analyte].title
    basis = f" ({judgement.basis})" if judgement.basis else ""
    reason = (
        f"{title} {value_text(result)} on {result.effective.isoformat()}{_preliminary(result)} "
        f"is {judgement.limit}{basis} on {pack.title}: {threshold.advice}."
    )
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.OUT_OF_RANGE,
        check=threshold.id,
        reason=reason,
        source=pack.citations[threshold.citation].url,
        verified=threshold.verified,
        evidence=(result.ref, therapy.latest.ref),
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

        reading = replace(
            result,
            value=scaled(result.value),
            ref_low=scaled(result.ref_low),
            ref_high=scaled(result.ref_high),
            normalised=True,
        )
        for threshold in thresholds:
            judgement = judge(threshold, reading, facts)
            possible = judgement.hit is not False and all(
                facts.state(c) is not False for c in threshold.also
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
    for item, newest in stale:
        for result in newest:
            if not result.normalised:
                continue
            crossed = [
                (t, j)
                for t in item.thresholds
                if (j := judge(t, result, facts)).hit is True
                and all(facts.holds(c) for c in t.also)
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


def crossing(facts: Facts, plan: tuple[AnalytePlan, ...], wanted: frozenset[str]) -> frozenset[str]:
    """Which of the ``wanted`` thresholds the newest results still acted on cross (with their
    ``also`` conditions): what a schedule modifier's ``fires`` condition reads."""
    out = set()
    for item in plan:
        for threshold in item.thresholds:
            if threshold.id not in wanted:
                continue
            newest = facts.newest(item.analyte)
            if not newest or newest[0].effective < item.acted_from:
                continue
            if any(r.normalised and judge(threshold, r, facts).hit is True for r in newest) and all(
                facts.holds(c) for c in threshold.also
            ):
                out.add(threshold.id)
    return frozenset(out)
