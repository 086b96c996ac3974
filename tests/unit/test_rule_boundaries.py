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
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.model import RISE_OPERATORS, Baseline, RulePack, Schedule, Threshold
from hrm_fhir.rules.results import result_lookbacks
from tests.builders import AS_OF, assess, done, evaluate, observation, patient, repeats, rules

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
            if not th.also:
                cases.append(pytest.param(pack, th, id=f"{pack.id}-{th.id}"))
    return cases


def _sides(
    th: Threshold, day: date = AS_OF - timedelta(days=3)
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(resources that must fire, must not fire at the boundary, must not fire inside), the
    result taken on ``day``."""
    eps = 0.001 * max(abs(th.value), 1.0)
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
