"""The severely-overdue grade: each schedule's tolerance, tested on both sides, from the data.

An overdue finding is severely overdue when one of its overdue tests has gone undone on therapy
for the schedule's tolerance (reference sections 1, 9 and 10: the kind of window CQC and PINCER
searches use). Cases are generated from the shipped packs, so a changed tolerance is covered
without editing this file.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hrm_fhir.domain import LabResult, PatientRef, ResourceRef
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.model import RulePack, Schedule
from hrm_fhir.rules.monitoring import NextDue, past_tolerance
from hrm_fhir.rules.therapy import Therapy
from tests.builders import AS_OF, evaluate, of_kind, patient, records, repeats, rules
from tests.builders import done as _done

LONG_AGO = AS_OF - timedelta(days=3 * 365)


def _tolerance_cases() -> list[Any]:
    return [
        pytest.param(pack, schedule, id=f"{pack.id}-{schedule.id}")
        for pack in rules().in_force(AS_OF)
        for schedule in pack.schedules
        if schedule.severely_overdue is not None
    ]


def _start(schedule: Schedule) -> date:
    """A course start in the schedule's last (maintenance) phase, before it ends if it does."""
    if schedule.ends_after is None:
        return LONG_AGO
    return schedule.ends_after.before(AS_OF) + timedelta(days=30)


def _monitoring(pack: RulePack, schedule: Schedule, last: date) -> list[Any]:
    others = tuple(
        t for s in pack.schedules if s is not schedule for t in s.tests if t not in schedule.tests
    )
    drug = pack.ingredients[0].name
    resources = [
        patient(born="1976-06-15"),
        *repeats(f"{drug} 10mg tablets", _start(schedule), AS_OF - timedelta(days=7)),
        *_done(others, AS_OF),
        *_done(schedule.tests, last),
    ]
    return [
        f
        for f in evaluate(resources)
        if f.kind.value in ("due", "overdue") and f.drug_group == pack.drug_group
    ]


@pytest.mark.parametrize(("pack", "schedule"), _tolerance_cases())
def test_severely_overdue_from_the_first_day_past_the_tolerance(
    pack: RulePack, schedule: Schedule
) -> None:
    """The last day a result can have been taken for the finding to be severe, and the day
    after. Where the tolerance is no longer than the interval, the first overdue day is already
    past it, so the edge is the overdue one."""
    tolerance = schedule.severely_overdue
    interval = schedule.phases[-1].interval
    assert tolerance is not None
    assert isinstance(interval, Duration)
    last_overdue = interval.before(AS_OF) - timedelta(days=1)
    edge = min(tolerance.after.before(AS_OF), last_overdue)

    [severe] = _monitoring(pack, schedule, edge)
    assert severe.kind.value == "overdue"
    assert severe.severely_overdue is True
    assert "Severely overdue" in severe.reason
    assert severe.to_json()["severely_overdue"] is True
    if not tolerance.verified:
        assert severe.verified is False, "an unverified tolerance makes the grade unverified"

    assert all(not f.severely_overdue for f in _monitoring(pack, schedule, edge + timedelta(1)))


@pytest.mark.parametrize(("pack", "schedule"), _tolerance_cases())
def test_tolerance_arithmetic_on_both_sides(pack: RulePack, schedule: Schedule) -> None:
    """The tolerance itself, apart from the interval: an overdue test whose last result is
    exactly the tolerance back is past it; one a day later is not."""
    tolerance = schedule.severely_overdue
    assert tolerance is not None
    test = schedule.tests[0]
    therapy = _therapy(LONG_AGO)

    def past(last: date) -> bool:
        result = LabResult(
            ResourceRef("Observation/o"), PatientRef("Patient/p1"), test, last, 1.0, "1", True
        )
        due = NextDue(test, AS_OF - timedelta(days=1), result, schedule, None, None, True)
        return bool(past_tolerance([due], therapy, AS_OF))

    at = tolerance.after.before(AS_OF)
    assert past(at)
    assert not past(at + timedelta(days=1))


def test_a_test_not_yet_overdue_is_never_severe() -> None:
    schedule = rules().get("lithium").schedules[0]
    result = LabResult(
        ResourceRef("Observation/o"),
        PatientRef("Patient/p1"),
        "lithium",
        LONG_AGO,
        0.6,
        "mmol/L",
        True,
    )
    due = NextDue("lithium", AS_OF, result, schedule, None, None, True)
    assert past_tolerance([due], _therapy(LONG_AGO), AS_OF) == []


def test_the_tolerance_runs_from_the_course_start_when_the_last_result_predates_it() -> None:
    """A result from before the course does not make a new start severely overdue at once."""
    start = AS_OF - timedelta(days=60)
    old_fbc = AS_OF - timedelta(days=400)
    resources = [
        patient(born="1976-06-15"),
        *repeats("methotrexate 2.5mg tablets", start, AS_OF - timedelta(days=7)),
        *_done(("fbc", "lft", "renal"), old_fbc),
    ]
    [finding] = of_kind(evaluate(resources), "overdue", "methotrexate")
    assert finding.severely_overdue is False
    later = evaluate(resources, as_of=start + timedelta(days=92))
    [severe] = of_kind(later, "overdue", "methotrexate")
    assert severe.severely_overdue is True
    assert f"since {start.isoformat()}" in severe.reason


def test_a_schedule_without_a_tolerance_is_never_graded_severe() -> None:
    """Opioid reviews: the reference gives no tolerance ("—")."""
    pack = rules().get("opioid")
    assert all(s.severely_overdue is None for s in pack.schedules)
    resources = [
        patient(born="1976-06-15"),
        *repeats("morphine 10mg tablets", LONG_AGO, AS_OF - timedelta(days=7)),
    ]
    [finding] = of_kind(evaluate(resources), "overdue", "opioid")
    assert finding.severely_overdue is False
    assert finding.to_json()["severely_overdue"] is False


def _therapy(start: date) -> Therapy:
    """A real lithium course from ``start``, current on AS_OF."""
    resources = [patient(), *repeats("lithium carbonate 400mg tablets", start, AS_OF)]
    [record] = records(resources).values()
    therapy = Evaluator.create(rules(), AS_OF).therapies(record)["lithium"]
    assert (therapy.start, therapy.current) == (start, True)
    return therapy
