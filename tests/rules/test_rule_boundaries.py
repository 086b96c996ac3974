"""Every threshold and every maintenance interval in the shipped packs, tested on both sides.

Cases are generated from the rule data itself and run through the real reader and engine, so a
new pack or a changed number is covered without editing this file, and a wrong comparison (``<``
where the pack says ``<=``), a unit slip or an off-by-one day fails here.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hrm_fhir.domain import Severity
from hrm_fhir.rules.analyte_plan import result_lookbacks
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.model import (
    RISE_OPERATORS,
    Baseline,
    Condition,
    Modifier,
    PrescribingCheck,
    RulePack,
    Schedule,
    Threshold,
)
from tests.builders import (
    AS_OF,
    assess,
    done,
    evaluate,
    observation,
    patient,
    prescription,
    repeats,
    rules,
)

START = AS_OF - timedelta(days=3 * 365)


def _code(analyte: str) -> str:
    return rules().catalogue.analytes[analyte].codes[0].code


def _system(analyte: str) -> str:
    return rules().catalogue.analytes[analyte].codes[0].system


def _on_drug(pack: RulePack) -> list[dict[str, Any]]:
    name = pack.ingredients[0].name
    return [
        patient(born="1976-06-15"),
        *repeats(f"{name} 10mg tablets", START, AS_OF - timedelta(days=7)),
    ]


def _result(analyte: str, value: float | None, unit: str, on: date, **kw: Any) -> dict[str, Any]:
    return observation(_code(analyte), value, unit, on, system=_system(analyte), **kw)


def _threshold_cases() -> list[Any]:
    cases = []
    for pack in rules().in_force(AS_OF):
        for th in pack.thresholds:
            cases.append(pytest.param(pack, th, id=f"{pack.id}-{th.id}"))
    return cases


Sides = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
WIDE = (0.0, 1000.0)
"""A laboratory range wide enough that no range threshold of the analyte fires."""


def _sides(th: Threshold, day: date = AS_OF - timedelta(days=3)) -> Sides:
    """(resources that must fire, must not fire at the boundary, must not fire inside), the
    result taken on ``day``; with the same-day results that make each ``also`` condition hold."""
    fire, boundary, calm = _own_sides(th, day)
    holding = [r for c in th.also for r in _condition_results(c, day, holds=True)]
    return fire + holding, boundary + holding, calm + holding


def _condition_results(cond: Condition, day: date, *, holds: bool) -> list[dict[str, Any]]:
    """A same-day result of the condition's analyte that makes it hold (or not)."""
    assert cond.measure is not None
    analyte = rules().catalogue.analytes[cond.measure]
    if cond.op in ("below_ref_low", "above_ref_high"):
        beyond = 5.0 if cond.op == "below_ref_low" else 25.0
        value = beyond if holds else 15.0
        return [_result(cond.measure, value, analyte.unit, day, ref_range=(10.0, 20.0))]
    assert cond.op is not None
    assert cond.value is not None
    eps = 0.001 * max(abs(cond.value), 1.0)
    above = cond.value + eps
    below = cond.value - eps
    value = (below if cond.op in ("lt", "le") else above) if holds else cond.value
    if not holds and cond.op in ("le", "ge"):
        value = above if cond.op == "le" else below
    return [_result(cond.measure, value, analyte.unit, day)]


def _own_sides(th: Threshold, day: date) -> Sides:
    eps = 0.001 * max(abs(th.value), 1.0)
    if th.op == "falling":
        return _falling_sides(th, day)
    if th.op == "fall_from_baseline":
        return _fall_sides(th, day)
    if th.op == "recorded":
        return _recorded_sides(th, day)
    if th.op in ("above_target", "below_target"):
        target = _pack_of(th).targets[th.analyte]
        above = th.op == "above_target"
        edge = target.high + th.value if above else target.low - th.value
        step = eps if above else -eps
        mk = lambda v: [_result(th.analyte, v, th.unit, day)]  # noqa: E731
        return mk(edge + step), mk(edge), mk((target.low + target.high) / 2)
    if th.op in ("lt", "le", "gt", "ge"):
        outside = th.value - eps if th.op in ("lt", "le") else th.value + eps
        inside = th.value + eps if th.op in ("lt", "le") else th.value - eps
        at = th.value
        fire = [_result(th.analyte, outside, th.unit, day)]
        boundary = [_result(th.analyte, at, th.unit, day)]
        calm = [_result(th.analyte, inside, th.unit, day)]
        if th.op in ("le", "ge"):
            fire, boundary = boundary, calm
        return fire, boundary, calm
    if th.op in ("below_ref_low", "above_ref_high"):
        low, high = 10.0, 20.0
        edge = low if th.op == "below_ref_low" else high
        step = -eps if th.op == "below_ref_low" else eps
        mk = lambda v: [_result(th.analyte, v, th.unit, day, ref_range=(low, high))]  # noqa: E731
        return mk(edge + step), mk(edge), mk(15.0)
    if th.op == "above_ref_high_times":
        limit = 40.0 * th.value
        mk = lambda v: [_result(th.analyte, v, th.unit, day, ref_range=(5.0, 40.0))]  # noqa: E731
        return mk(limit + eps), mk(limit), mk(limit - eps)
    assert th.op in RISE_OPERATORS
    base_day = day - timedelta(days=90)
    limit = 100.0 + th.value  # the baseline is 100

    def mk(v: float) -> list[dict[str, Any]]:
        return [_result(th.analyte, 100.0, th.unit, base_day), _result(th.analyte, v, th.unit, day)]

    if th.op == "rise_pct_from_baseline_at_least":
        return mk(limit), mk(limit - 0.1), mk(100.0)
    return mk(limit + 0.1), mk(limit), mk(100.0)


def _falling_sides(th: Threshold, day: date) -> Sides:
    """Each of the last ``count`` results lower than the one before; the boundary repeats the
    last value (no fall), the inside rises."""

    def mk(values: list[float]) -> list[dict[str, Any]]:
        n = len(values)
        return [
            _result(th.analyte, v, th.unit, day - timedelta(days=30 * (n - 1 - i)), ref_range=WIDE)
            for i, v in enumerate(values)
        ]

    falls = [100.0 - i for i in range(th.count + 1)]
    return mk(falls), mk([*falls[:-1], falls[-2]]), mk(sorted(falls))


def _fall_sides(th: Threshold, day: date) -> Sides:
    """A fall of exactly ``value`` from the baseline fires (at least); a hair less does not;
    none does not."""
    base = 100.0
    limit = base - th.value
    eps = 0.001 * max(abs(limit), 1.0)
    base_day = day - timedelta(days=90)

    def mk(v: float) -> list[dict[str, Any]]:
        return [
            _result(th.analyte, base, th.unit, base_day, ref_range=WIDE),
            _result(th.analyte, v, th.unit, day, ref_range=WIDE),
        ]

    return mk(limit), mk(limit + eps), mk(base)


def _recorded_sides(th: Threshold, day: date) -> Sides:
    """The coded finding on record fires; superseded by a later result of the test it is
    monitored with it does not; absent it does not."""
    coded = [_result(th.analyte, None, "1", day)]
    test = rules().catalogue.analytes[th.analyte].monitored_with
    assert test is not None, f"{th.analyte}: a coded finding needs monitored_with"
    later = done((test,), day + timedelta(days=1))
    return coded, coded + later, []


def _pack_of(th: Threshold) -> RulePack:
    return next(p for p in rules().in_force(AS_OF) if th in p.thresholds)


def _hits(pack: RulePack, threshold: Threshold, extra: list[dict[str, Any]]) -> list[Any]:
    return [
        f
        for f in evaluate(_on_drug(pack) + extra)
        if f.kind.value == "out_of_range"
        and f.drug_group == pack.drug_group
        and f.analyte == threshold.analyte
    ]


@pytest.mark.parametrize(("pack", "threshold"), _threshold_cases())
def test_threshold_fires_only_beyond_its_boundary(pack: RulePack, threshold: Threshold) -> None:
    fire, boundary, calm = _sides(threshold)

    def hits(extra: list[dict[str, Any]]) -> list[Any]:
        return _hits(pack, threshold, extra)

    fired = hits(fire)
    assert fired, f"{threshold.id} did not fire beyond its boundary"
    assert fired[0].severity is not None
    assert fired[0].severity.rank >= threshold.severity.rank
    assert fired[0].source.startswith("http")
    for quiet in (boundary, calm):
        assert all(f.check != threshold.id for f in hits(quiet)), f"{threshold.id} fired inside"


def _conditioned_cases() -> list[Any]:
    return [
        pytest.param(pack, th, id=f"{pack.id}-{th.id}")
        for pack in rules().in_force(AS_OF)
        for th in pack.thresholds
        if th.also
    ]


@pytest.mark.parametrize(("pack", "threshold"), _conditioned_cases())
def test_a_threshold_with_conditions_fires_only_when_they_hold_and_says_when_it_cannot_tell(
    pack: RulePack, threshold: Threshold
) -> None:
    """Beyond its boundary, a threshold with ``also`` conditions does not fire when the
    same-day result of the other analyte does not meet them, and is an incomplete finding of
    its own severity when there is no such result."""
    day = AS_OF - timedelta(days=3)
    own = _own_sides(threshold, day)[0]
    failing = [r for c in threshold.also for r in _condition_results(c, day, holds=False)]
    assert all(f.check != threshold.id for f in _hits(pack, threshold, own + failing))
    unsure = [
        f
        for f in evaluate(_on_drug(pack) + own)
        if f.kind.value == "incomplete" and f.check == threshold.id
    ]
    assert unsure, f"{threshold.id}: no incomplete finding without the other analyte"
    assert unsure[0].severity is threshold.severity
    assert unsure[0].code == f"{threshold.also[0].measure}-unknown"
    other_day = [
        r
        for c in threshold.also
        for r in _condition_results(c, day - timedelta(days=1), holds=True)
    ]
    assert all(f.check != threshold.id for f in _hits(pack, threshold, own + other_day)), (
        "an other-analyte result of another day decided the condition"
    )


@pytest.mark.parametrize(("pack", "threshold"), _threshold_cases())
def test_a_result_is_acted_on_for_its_look_back_and_not_a_day_longer(
    pack: RulePack, threshold: Threshold
) -> None:
    """Taken exactly the look-back before the as-of date it still fires; a day earlier it is
    too old to act on (and is shown with its age instead)."""
    lookback = result_lookbacks(pack, rules().catalogue)[threshold.analyte]
    edge = lookback.before(AS_OF)
    assert any(f.check == threshold.id for f in _hits(pack, threshold, _sides(threshold, edge)[0]))
    older = _sides(threshold, edge - timedelta(days=1))[0]
    assert _hits(pack, threshold, older) == []


def _default_range_cases() -> list[Any]:
    cases = []
    for pack in rules().in_force(AS_OF):
        for th in pack.thresholds:
            analyte = rules().catalogue.analytes[th.analyte]
            if th.op in ("below_ref_low", "above_ref_high") and analyte.default_range("female"):
                cases.append(pytest.param(pack, th, id=f"{pack.id}-{th.id}"))
    return cases


@pytest.mark.parametrize(("pack", "threshold"), _default_range_cases())
def test_without_a_laboratory_range_the_default_range_has_the_same_boundary(
    pack: RulePack, threshold: Threshold
) -> None:
    default = rules().catalogue.analytes[threshold.analyte].default_range("female")
    assert default is not None
    low = threshold.op == "below_ref_low"
    edge = default.low if low else default.high
    assert edge is not None
    eps = 0.001 * max(abs(edge), 1.0)
    day = AS_OF - timedelta(days=3)

    def hits(value: float) -> list[Any]:
        result = _result(threshold.analyte, value, threshold.unit, day)
        return [f for f in _hits(pack, threshold, [result]) if f.check == threshold.id]

    [fired] = hits(edge - eps if low else edge + eps)
    assert "laboratory range was absent" in fired.reason
    assert hits(edge) == []


def _schedule_cases() -> list[Any]:
    cases = []
    for pack in rules().in_force(AS_OF):
        for schedule in pack.schedules:
            if schedule.ends_after is None:
                cases.append(pytest.param(pack, schedule, id=f"{pack.id}-{schedule.id}"))
    return cases


@pytest.mark.parametrize(("pack", "schedule"), _schedule_cases())
def test_maintenance_interval_boundary(pack: RulePack, schedule: Schedule) -> None:
    interval = schedule.phases[-1].interval
    assert isinstance(interval, Duration)
    others = tuple(
        t for s in pack.schedules if s is not schedule for t in s.tests if t not in schedule.tests
    )
    base = _on_drug(pack) + done(others, AS_OF)
    window = rules().catalogue.due_window_days

    def monitoring(last: date) -> list[Any]:
        found = evaluate(base + done(schedule.tests, last))
        return [
            f
            for f in found
            if f.kind.value in ("due", "overdue") and f.drug_group == pack.drug_group
        ]

    due_today = interval.before(AS_OF)
    [on_due_date] = monitoring(due_today)
    assert on_due_date.kind.value == "due"
    assert on_due_date.due_date == AS_OF
    assert set(schedule.tests) <= set(on_due_date.tests)

    [late] = monitoring(due_today - timedelta(days=1))
    assert late.kind.value == "overdue"
    assert late.due_date == AS_OF - timedelta(days=1)

    edge = interval.before(AS_OF + timedelta(days=window))
    [edge_finding] = monitoring(edge)
    assert edge_finding.kind.value == "due"
    assert monitoring(edge + timedelta(days=1)) == []


def test_every_pack_has_cited_sources_and_severities() -> None:
    for pack in rules().packs:
        for th in pack.thresholds:
            assert th.severity in Severity
            assert pack.citations[th.citation].url.startswith("http")
        for s in pack.schedules:
            assert pack.citations[s.citation].url.startswith("http")


# ------------------------------------------------------------------ baselines at initiation


def _baseline_cases() -> list[Any]:
    return [
        pytest.param(pack, baseline, id=f"{pack.id}-{baseline.id}")
        for pack in rules().in_force(AS_OF)
        for baseline in pack.baselines
    ]


def _started(pack: RulePack, start: date) -> list[dict[str, Any]]:
    """A patient whose course of the pack's first ingredient started on ``start``."""
    name = pack.ingredients[0].name
    return [patient(born="1976-06-15"), *repeats(f"{name} 10mg tablets", start, start, 28)]


def _next_due(resources: list[dict[str, Any]], group: str) -> dict[str, date]:
    [entry] = [e for e in assess(resources).register if e.drug_group == group]
    return dict(entry.next_due)


@pytest.mark.parametrize(("pack", "baseline"), _baseline_cases())
def test_a_new_start_is_due_for_its_baseline_unless_a_result_is_in_the_window(
    pack: RulePack, baseline: Baseline
) -> None:
    """A course that started 10 days ago with no result on record is due for each baseline
    test from its start; a result exactly ``before_start`` before the start is the baseline, a
    day older is not (for a test done ``once``, any earlier result is)."""
    start = AS_OF - timedelta(days=10)
    rules_ = rules().catalogue.baseline
    due = _next_due(_started(pack, start), pack.drug_group)
    assert all(due[t] == start for t in baseline.tests), due
    [finding] = [
        f
        for f in evaluate(_started(pack, start))
        if f.kind.value == "overdue" and f.drug_group == pack.drug_group
    ]
    assert set(baseline.tests) <= set(finding.tests)
    assert finding.due_date == start
    edge = rules_.before_start.before(start)
    in_window = _next_due(_started(pack, start) + done(baseline.tests, edge), pack.drug_group)
    assert all(in_window.get(t) != start for t in baseline.tests), in_window
    older = edge - timedelta(days=1 if not baseline.once else 3650)
    before = _next_due(_started(pack, start) + done(baseline.tests, older), pack.drug_group)
    if baseline.once:
        assert all(before.get(t) != start for t in baseline.tests), before
    else:
        assert all(before[t] == start for t in baseline.tests), before


@pytest.mark.parametrize(("pack", "baseline"), _baseline_cases())
def test_a_course_is_a_new_start_for_its_first_months_only(
    pack: RulePack, baseline: Baseline
) -> None:
    """A course started exactly ``new_start_for`` ago is established: no baseline is due (the
    routine schedule alone runs); one started a day later still is a new start."""
    span = rules().catalogue.baseline.new_start_for
    established = span.before(AS_OF)
    assert span.after(established) == AS_OF
    due = _next_due(_started(pack, established), pack.drug_group)
    assert all(due.get(t) != established for t in baseline.tests), due
    recent = established + timedelta(days=1)
    due = _next_due(_started(pack, recent), pack.drug_group)
    assert all(due[t] == recent for t in baseline.tests), due


# ------------------------------------------------------------------ monitoring after stopping


def _after_stop_cases() -> list[Any]:
    return [
        pytest.param(pack, schedule, id=f"{pack.id}-{schedule.id}")
        for pack in rules().in_force(AS_OF)
        for schedule in pack.schedules
        if schedule.continues_after_stop is not None
    ]


@pytest.mark.parametrize(("pack", "schedule"), _after_stop_cases())
def test_a_schedule_continues_after_stopping_for_its_span_and_not_a_day_longer(
    pack: RulePack, schedule: Schedule
) -> None:
    """Stopped (last issue) so that the span after stopping ends today: the schedule's tests
    are still overdue, alone; a day earlier they are not (and nothing else of the pack is)."""
    span = schedule.continues_after_stop
    assert span is not None
    lookback = rules().catalogue.current_issue_lookback
    last = span.before(lookback.before(AS_OF))
    while span.after(lookback.after(last + timedelta(days=1))) <= AS_OF:
        last += timedelta(days=1)
    while span.after(lookback.after(last)) < AS_OF:
        last += timedelta(days=1)
    assert span.after(lookback.after(last - timedelta(days=1))) < AS_OF

    def monitoring(last_issue: date) -> list[Any]:
        name = pack.ingredients[0].name
        chain = repeats(f"{name} 10mg tablets", last_issue - timedelta(days=28 * 32), last_issue)
        chain[-1]["status"] = "completed"
        found = evaluate([patient(born="1976-06-15"), *chain])
        return [
            f
            for f in found
            if f.kind.value in ("due", "overdue") and f.drug_group == pack.drug_group
        ]

    [finding] = monitoring(last)
    assert set(finding.tests) == set(schedule.tests)
    assert "no longer prescribed" in finding.reason
    assert monitoring(last - timedelta(days=1)) == []


def _naive_cases() -> list[Any]:
    return [
        pytest.param(pack, check, cond, id=f"{pack.id}-{check.id}")
        for pack in rules().in_force(AS_OF)
        for check in pack.prescribing
        for cond in check.criteria
        if cond.no_other_ingredient_before is not None
    ]


@pytest.mark.parametrize(("pack", "check", "cond"), _naive_cases())
def test_a_look_back_before_an_ingredient_started_ends_on_its_boundary(
    pack: RulePack, check: PrescribingCheck, cond: Condition
) -> None:
    """Another ingredient of the group issued exactly the look-back before the check's
    ingredient started counts as prior therapy; a day earlier it does not."""
    assert cond.no_other_ingredient_before is not None
    assert check.ingredient is not None
    start = AS_OF - timedelta(days=30)
    other = next(i.name for i in pack.ingredients if i.name != check.ingredient)
    edge = cond.no_other_ingredient_before.before(start)

    def fired(last_other: date) -> bool:
        earlier = prescription(f"{other} 10mg tablets", last_other, status="completed")
        current = repeats(f"{check.ingredient} 10mg tablets", start, AS_OF - timedelta(days=2))
        found = evaluate([patient(born="1976-06-15"), earlier, *current])
        return any(f.check == check.id for f in found)

    assert not fired(edge)
    assert fired(edge - timedelta(days=1))


def _ome_modifier_cases() -> list[Any]:
    return [
        pytest.param(pack, schedule, modifier, id=f"{pack.id}-{schedule.id}")
        for pack in rules().in_force(AS_OF)
        for schedule in pack.schedules
        for modifier in schedule.modifiers
        if any(c.measure == "ome" for c in modifier.when)
    ]


@pytest.mark.parametrize(("pack", "schedule", "modifier"), _ome_modifier_cases())
def test_a_schedule_interval_by_ome_band_changes_on_its_boundary(
    pack: RulePack, schedule: Schedule, modifier: Modifier
) -> None:
    """At the OME limit the shorter interval applies; a milligram below it does not."""
    [cond] = [c for c in modifier.when if c.measure == "ome"]
    assert cond.value is not None
    assert cond.op == "ge"
    assert modifier.interval is not None
    oral = next(i for i in pack.ingredients if i.ome is not None and i.ome.per == "mg")
    assert oral.ome is not None
    last = modifier.interval.before(AS_OF) - timedelta(days=1)

    def due(ome: float) -> list[Any]:
        dose = ome / oral.ome.factor
        chain = repeats(
            f"{oral.name} 1mg tablets", START, AS_OF - timedelta(days=7), dosage=f"{dose:g}mg daily"
        )
        review = done(schedule.tests, last)
        found = evaluate([patient(born="1976-06-15"), *chain, *review])
        return [f for f in found if f.kind.value in ("due", "overdue")]

    [overdue] = due(cond.value)
    assert overdue.due_date == AS_OF - timedelta(days=1)
    assert due(cond.value - 1) == []


# ------------------------------------------------------------------ schedule modifiers (issue 10)


def _modifier_cases(kind: str) -> list[Any]:
    """Every schedule modifier of a pack in force with a condition of ``kind``."""
    return [
        pytest.param(pack, schedule, modifier, cond, id=f"{pack.id}-{schedule.id}-{n}")
        for pack in rules().in_force(AS_OF)
        for schedule in pack.schedules
        for n, modifier in enumerate(schedule.modifiers)
        for cond in modifier.when
        if getattr(cond, kind) is not None
    ]


def _schedule_due(
    pack: RulePack, schedule: Schedule, extra: list[dict[str, Any]], base: date
) -> dict[str, date]:
    """The register's next due date of each of the schedule's tests, all done on ``base``."""
    due = _next_due(_on_drug(pack) + done(schedule.tests, base) + extra, pack.drug_group)
    return {test: due[test] for test in schedule.tests}


@pytest.mark.parametrize(("pack", "schedule", "modifier", "cond"), _modifier_cases("fires"))
def test_a_modifier_on_a_firing_threshold_applies_only_beyond_the_threshold_boundary(
    pack: RulePack, schedule: Schedule, modifier: Modifier, cond: Condition
) -> None:
    """A result just beyond the threshold's boundary brings the schedule's tests forward to the
    modifier's interval; one on the boundary leaves them on the schedule's own interval."""
    [threshold] = [t for t in pack.thresholds if t.id == cond.fires]
    assert modifier.interval is not None
    base = AS_OF - timedelta(days=3)
    fire, boundary, _ = _sides(threshold, base)
    shorter = modifier.interval.after(base)
    assert _schedule_due(pack, schedule, fire, base) == dict.fromkeys(schedule.tests, shorter)
    assert all(d > shorter for d in _schedule_due(pack, schedule, boundary, base).values())


@pytest.mark.parametrize(
    ("pack", "schedule", "modifier", "cond"), _modifier_cases("together_less_than")
)
def test_a_modifier_for_two_drugs_together_applies_for_its_span_and_not_a_day_longer(
    pack: RulePack, schedule: Schedule, modifier: Modifier, cond: Condition
) -> None:
    """Judged on the date of the last bloods: the co-prescribed drug started so that the two
    have been taken together a day less than the span brings the tests forward to the
    modifier's interval; started a day earlier (the full span) it does not."""
    span = cond.together_less_than
    assert span is not None
    assert modifier.interval is not None
    [other] = [p for p in rules().in_force(AS_OF) if p.drug_group == cond.co_prescribed]
    base = AS_OF - timedelta(days=3)
    started = span.before(base)
    while span.after(started + timedelta(days=1)) <= base:
        started += timedelta(days=1)
    assert span.after(started) <= base < span.after(started + timedelta(days=1))

    def due(start: date) -> dict[str, date]:
        name = other.ingredients[0].name
        return _schedule_due(pack, schedule, repeats(f"{name} 10mg tablets", start, base), base)

    shorter = modifier.interval.after(base)
    assert due(started + timedelta(days=1)) == dict.fromkeys(schedule.tests, shorter)
    assert all(d > shorter for d in due(started).values())
