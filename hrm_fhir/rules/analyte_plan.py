"""How one pack reads each analyte on one as-of date: its thresholds, and how long a result is
acted on (the pack's maintenance interval for the test that carries it), worked out once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from hrm_fhir.rules.catalogue import Catalogue
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.judgement import TARGET_SIDE
from hrm_fhir.rules.model import RulePack, Threshold

_EPOCH = date(2001, 1, 1)


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
                targeted=any(t.op in TARGET_SIDE for t in thresholds),
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
