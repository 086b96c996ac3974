"""One result against one threshold: whether it crosses it, and the limit in words.

A threshold relative to the laboratory range reads the result's own ``referenceRange``, else the
laboratory's interpretation flag, else the catalogue's cited default range (the judgement says
the laboratory range was absent); when none is there, or a value given as a bound leaves the
threshold open, the judgement cannot tell (``hit`` None) and names what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hrm_fhir.domain import LabResult, Severity
from hrm_fhir.rules.facts import COMPARE, Facts, fell, meets
from hrm_fhir.rules.model import RANGE_OPS, RISE_OPERATORS, Condition, Threshold
from hrm_fhir.rules.targets import Target

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


TARGET_SIDE = {"above_target": "gt", "below_target": "lt"}


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


NOT_CROSSED = Judgement(False, "")


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
    if op in TARGET_SIDE:
        assert target is not None  # noqa: S101 - result_findings works it out for these
        return _against_target(threshold, result, target)
    if op == "falling":
        return _falling(threshold, result, facts)
    if op == "fall_from_baseline":
        return _fall(threshold, result, facts)
    if op in RISE_OPERATORS:
        return _rise(threshold, result, facts)
    return _against_range(threshold, result, facts)


def _rise(threshold: Threshold, result: LabResult, facts: Facts) -> Judgement:
    """More than (or at least) ``value`` % above the lowest exact result of the baseline window."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    op, unit = threshold.op, threshold.unit
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


def _against_range(threshold: Threshold, result: LabResult, facts: Facts) -> Judgement:
    """Below the low or above the high (times ``value``) limit of the result's own reference
    range; else as its interpretation flag says; else against the catalogue's default range."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    op, unit = threshold.op, threshold.unit
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


def _against_target(threshold: Threshold, result: LabResult, target: Target) -> Judgement:
    """Above (or below) the patient's target range by more than ``value`` (0: at all)."""
    assert result.value is not None  # noqa: S101 - callers pass valued results
    above = threshold.op == "above_target"
    margin = threshold.value
    limit = target.high + margin if above else target.low - margin
    hit = meets(result.value, result.comparator, TARGET_SIDE[threshold.op], limit)

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


def value_text(result: LabResult) -> str:
    """``1.6 mmol/L``, ``>8 {INR}`` or ``2.1 'mmol'`` (a unit that could not be read)."""
    unit = result.unit if result.normalised else repr(result.unit)
    return f"{result.comparator or ''}{result.value:g} {unit or ''}".rstrip()
