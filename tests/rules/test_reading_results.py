"""Results read the way the laboratory meant them, probed as a sceptical pharmacist would.

Order by the moment the sample was taken (worst of equal moments), values written as text or as
a bound, statuses, results after the as-of date, units that cannot be read, results without a
range, results too old to act on, and the codes and units of Synthea and UK laboratories.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hrm_fhir.domain import Finding, Severity
from hrm_fhir.rules.evaluate import Evaluator
from tests.builders import (
    AS_OF,
    LOINC,
    evaluate,
    observation,
    of_kind,
    patient,
    reader,
    records,
    repeats,
    rules,
)

LITHIUM, INR, SODIUM = "1006681000000100", "6301-6", "1000661000000107"
HB, CALCIUM, EGFR = "1022431000000105", "1000691000000101", "1011481000000105"
LONG, RECENT = AS_OF - timedelta(days=800), AS_OF - timedelta(days=10)
DAY = AS_OF - timedelta(days=5)


def _lithium(**kw: Any) -> list[dict[str, Any]]:
    return [patient(born="1970-01-01"), *repeats("Priadel 400mg MR tablets", LONG, RECENT, **kw)]


def _warfarin() -> list[dict[str, Any]]:
    return [patient(born="1950-01-01"), *repeats("Warfarin 3mg tablets", LONG, RECENT)]


def _doac(sex: str = "female") -> list[dict[str, Any]]:
    return [patient(born="1950-01-01", sex=sex), *repeats("Apixaban 5mg tablets", LONG, RECENT)]


def _level(value: float | None, on: date = DAY, **kw: Any) -> dict[str, Any]:
    return observation(LITHIUM, value, "mmol/L", on, **kw)


def _inr(value: float | None, on: date = DAY, **kw: Any) -> dict[str, Any]:
    return observation(INR, value, "{INR}", on, system=LOINC, **kw)


def _one(found: list[Finding], kind: str, group: str, analyte: str | None = None) -> Finding:
    [finding] = [f for f in of_kind(found, kind, group) if analyte in (None, f.analyte)]
    return finding


# ------------------------------------------------------------------ order and equal moments


def test_a_toxic_evening_level_is_not_lost_behind_a_normal_morning_one() -> None:
    morning = _level(0.6, at="08:00:00+00:00", rid="z-morning")
    evening = _level(1.6, at="19:00:00+00:00", rid="a-evening")
    toxic = _one(evaluate(_lithium() + [morning, evening]), "out_of_range", "lithium", "lithium")
    assert (toxic.severity, toxic.check) == (Severity.URGENT, "lithium-toxic")
    assert toxic.evidence[0] == "Observation/a-evening"


def test_a_normal_level_taken_after_a_toxic_one_the_same_day_is_the_latest() -> None:
    morning = _level(1.6, at="08:00:00+00:00", rid="z-morning")
    evening = _level(0.6, at="19:00:00+00:00", rid="a-evening")
    assert of_kind(evaluate(_lithium() + [morning, evening]), "out_of_range") == []


def test_results_that_could_share_a_moment_count_as_the_worst() -> None:
    same_time = [_level(0.7, rid="z-normal"), _level(1.6, rid="a-toxic")]
    dated_only = [_level(1.6, at=None, rid="a-date-only"), _level(0.7, rid="z-timed")]
    for pair in (same_time, dated_only):
        toxic = _one(evaluate(_lithium() + pair), "out_of_range", "lithium", "lithium")
        assert toxic.severity is Severity.URGENT


def test_a_later_issue_of_the_same_sample_supersedes_the_earlier() -> None:
    first = _level(1.6, rid="z-first", issued=f"{DAY.isoformat()}T10:00:00+00:00")
    second = _level(0.6, rid="a-second", issued=f"{DAY.isoformat()}T15:00:00+00:00")
    assert of_kind(evaluate(_lithium() + [first, second]), "out_of_range") == []


# ------------------------------------------------------------------ text values and bounds


def test_an_inr_written_as_text_raises_its_urgent_finding_not_inr_overdue() -> None:
    found = evaluate(_warfarin() + [_inr(None, text="9.2")])
    urgent = _one(found, "out_of_range", "warfarin", "inr")
    assert (urgent.check, urgent.value, urgent.severity) == ("inr-8-or-more", 9.2, Severity.URGENT)
    assert of_kind(found, "overdue", "warfarin") == []


@pytest.mark.parametrize(
    ("observed", "check"),
    [
        ({"text": ">8.0"}, "inr-8-or-more"),
        ({"text": "> 8"}, "inr-8-or-more"),
        ({"value": 8, "comparator": ">"}, "inr-8-or-more"),
        ({"value": 8, "comparator": ">="}, "inr-8-or-more"),
        ({"value": 5, "comparator": ">="}, "inr-5-or-more"),
    ],
)
def test_a_bound_meets_a_threshold_when_every_value_it_allows_does(
    observed: dict[str, Any], check: str
) -> None:
    value = observed.pop("value", None)
    finding = _one(evaluate(_warfarin() + [_inr(value, **observed)]), "out_of_range", "warfarin")
    assert (finding.check, finding.severity) == (check, Severity.URGENT)
    assert ">" in finding.reason, "the comparator is kept in what the finding says"


@pytest.mark.parametrize("observed", [{"text": "<0.1 mmol/L"}, {"value": 0.1, "comparator": "<"}])
def test_a_lithium_below_the_detection_limit_is_below_0_4(observed: dict[str, Any]) -> None:
    value = observed.pop("value", None)
    found = evaluate(_lithium() + [_level(value, **observed)])
    low = _one(found, "out_of_range", "lithium")
    assert (low.check, low.severity) == ("lithium-low", Severity.REVIEW)
    assert "<0.1 mmol/L" in low.reason


def test_a_number_without_a_unit_is_read_only_where_no_unit_is_needed() -> None:
    """An INR needs no unit; a lithium level written "<0.1" with no unit cannot be read as
    mmol/L on trust: it is named, graded by what it would mean in mmol/L."""
    unread = _one(evaluate(_lithium() + [_level(None, text="<0.1")]), "incomplete", "lithium")
    assert (unread.code, unread.severity) == ("unit-unreadable", Severity.REVIEW)
    assert "lithium-low" in unread.reason


def test_a_bound_that_leaves_the_threshold_open_is_said_out_loud() -> None:
    """INR "<5" could be more than 0.5 outside the target range (action), or in it."""
    found = evaluate(_warfarin() + [_inr(None, text="<5")])
    assert of_kind(found, "out_of_range") == []
    unsure = _one(found, "incomplete", "warfarin")
    assert (unsure.code, unsure.missing) == ("value-not-exact", ("exact value",))
    assert unsure.severity is Severity.ACTION
    assert "recorded as <5" in unsure.reason
    assert "more than 0.5" in unsure.reason
    assert "target range 2.0-3.0" in unsure.reason


def test_an_egfr_above_90_counts_as_renal_function_done_and_is_not_low() -> None:
    done = observation(EGFR, 90, "mL/min/1.73m2", DAY, comparator=">")
    found = evaluate(_lithium() + [done])
    assert not [f for f in of_kind(found, "out_of_range") if f.analyte == "egfr"]
    assert not [f for f in found if f.kind.value in ("due", "overdue") and "renal" in f.tests]
    assert not [f for f in of_kind(found, "incomplete") if f.analyte == "egfr"]


def test_a_value_with_its_unit_written_in_the_text_is_read() -> None:
    toxic = _one(
        evaluate(_lithium() + [_level(None, text="1.6 mmol/L")]), "out_of_range", "lithium"
    )
    assert toxic.severity is Severity.URGENT


# ------------------------------------------------------------------ status


def test_a_preliminary_level_is_acted_on_but_is_not_the_test_done() -> None:
    old = _level(0.6, AS_OF - timedelta(days=220))
    found = evaluate(_lithium() + [old, _level(1.6, status="preliminary")])
    toxic = _one(found, "out_of_range", "lithium", "lithium")
    assert toxic.severity is Severity.URGENT
    assert "preliminary" in toxic.reason
    [overdue] = of_kind(found, "overdue", "lithium")
    assert "lithium" in overdue.tests


@pytest.mark.parametrize(
    ("status", "why"),
    [
        ("cancelled", "cancelled"),
        ("entered-in-error", "entered in error"),
        ("registered", "no result yet"),
        ("unknown", "'unknown' is not a result"),
    ],
)
def test_results_that_are_not_results_are_skipped_with_a_reason(status: str, why: str) -> None:
    read = reader(_lithium() + [_level(1.6, status=status, rid="odd")])
    [skip] = [s for s in read.skipped if s.source.startswith("Observation/odd")]
    assert why in skip.reason
    assert of_kind(evaluate(_lithium() + [_level(1.6, status=status)]), "out_of_range") == []


def test_amended_and_corrected_results_count() -> None:
    for status in ("amended", "corrected"):
        found = evaluate(_lithium() + [_level(1.6, status=status)])
        assert _one(found, "out_of_range", "lithium").severity is Severity.URGENT


# ------------------------------------------------------------------ units that cannot be read


def test_a_level_whose_unit_cannot_be_read_is_not_the_test_done_and_is_graded_by_its_worst() -> (
    None
):
    old = _level(0.6, AS_OF - timedelta(days=220))
    found = evaluate(_lithium() + [old, observation(LITHIUM, 2.1, "mmol", DAY, rid="odd")])
    assert of_kind(found, "out_of_range") == []
    [overdue] = of_kind(found, "overdue", "lithium")
    assert "lithium" in overdue.tests
    unread = _one(found, "incomplete", "lithium", "lithium")
    assert (unread.code, unread.missing, unread.severity) == (
        "unit-unreadable",
        ("unit",),
        Severity.URGENT,
    )
    assert (unread.value, unread.unit) == (2.1, "mmol")
    assert "'mmol'" in unread.reason


def test_an_unreadable_unit_that_no_reading_makes_abnormal_is_still_named() -> None:
    found = evaluate(_lithium() + [observation(LITHIUM, 0.6, "mmol", DAY)])
    unread = _one(found, "incomplete", "lithium", "lithium")
    assert unread.severity is Severity.REVIEW


# ------------------------------------------------------------------ ranges, flags, defaults


def _sodium(value: float, **kw: Any) -> dict[str, Any]:
    return observation(SODIUM, value, "mmol/L", DAY, **kw)


def test_without_a_range_the_cited_default_range_is_used_and_said() -> None:
    low = _one(evaluate(_lithium() + [_sodium(128)]), "out_of_range", "lithium", "sodium")
    assert (low.check, low.severity) == ("sodium-low", Severity.ACTION)
    assert "laboratory range was absent" in low.reason
    assert "133-146 mmol/L" in low.reason


def test_the_laboratory_flag_comes_before_the_default_range() -> None:
    assert of_kind(evaluate(_lithium() + [_sodium(131, flag="N")]), "out_of_range") == []
    flagged = _one(evaluate(_lithium() + [_sodium(136, flag="L")]), "out_of_range", "lithium")
    assert flagged.check == "sodium-low"
    assert "flagged L" in flagged.reason


def test_an_abnormal_flag_without_a_side_falls_back_to_the_default_range() -> None:
    high = _one(evaluate(_lithium() + [_sodium(150, flag="A")]), "out_of_range", "lithium")
    assert high.check == "sodium-high"


def test_the_laboratory_range_comes_first_even_when_a_default_exists() -> None:
    assert (
        of_kind(evaluate(_lithium() + [_sodium(131, ref_range=(130, 145))]), "out_of_range") == []
    )


def test_no_range_no_flag_and_no_default_is_an_incomplete_finding() -> None:
    """Haemoglobin's default range depends on sex: with the sex unknown there is none."""
    anaemic = observation(HB, 100, "g/L", DAY)
    found = evaluate(_doac(sex="unknown") + [anaemic])
    unsure = _one(found, "incomplete", "doac", "haemoglobin")
    assert unsure.code == "reference-range-missing"
    assert set(unsure.missing) >= {"laboratory reference range", "interpretation flag", "sex"}
    assert unsure.severity is Severity.ACTION
    low = _one(evaluate(_doac(sex="female") + [anaemic]), "out_of_range", "doac", "haemoglobin")
    assert low.check == "haemoglobin-low"


def test_a_range_in_another_unit_is_converted_with_the_value() -> None:
    """Calcium 11.0 mg/dL (2.74 mmol/L) against its laboratory range 8.5-10.2 mg/dL."""
    high = observation("49765-1", 11.0, "mg/dL", DAY, system=LOINC, ref_range=(8.5, 10.2))
    found = _one(evaluate(_lithium() + [high]), "out_of_range", "lithium", "calcium")
    assert found.check == "calcium-high"
    assert found.unit == "mmol/L"
    assert "high 2.54" in found.reason


# ------------------------------------------------------------------ staleness


def test_an_abnormal_result_from_2020_raises_nothing_today_but_is_shown_with_its_age() -> None:
    found = evaluate(_lithium() + [_level(2.1, date(2020, 3, 1))])
    assert of_kind(found, "out_of_range") == []
    [overdue] = of_kind(found, "overdue", "lithium")
    assert "2.1 mmol/L on 2020-03-01 (6 years old)" in overdue.reason
    assert "too old to act on" in overdue.reason


def test_an_abnormal_result_still_inside_its_test_interval_is_acted_on() -> None:
    recent = _level(2.1, AS_OF - timedelta(days=170))
    assert (
        _one(evaluate(_lithium() + [recent]), "out_of_range", "lithium").severity is Severity.URGENT
    )


# ------------------------------------------------------------------ results after the as-of date


def test_a_result_after_the_as_of_date_is_skipped_with_a_reason() -> None:
    later = _level(1.6, AS_OF + timedelta(days=2), rid="later")
    [record] = records(_lithium() + [later]).values()
    assessment = Evaluator.create(rules(), AS_OF).assess(record)
    assert [s.source for s in assessment.later] == ["Observation/later"]
    assert "after the as-of date" in assessment.later[0].reason
    assert of_kind(assessment.findings, "out_of_range") == []


# ------------------------------------------------------------------ Synthea and UK codes and units


@pytest.mark.parametrize(
    ("code", "value", "unit", "analyte", "canonical"),
    [
        ("38483-4", 1.2, "mg/dL", "creatinine", 106.104),
        ("2947-0", 139, "mmol/L", "sodium", 139),
        ("6298-4", 4.1, "mmol/L", "potassium", 4.1),
        ("49765-1", 9.6, "mg/dL", "calcium", 2.3952),
        ("2085-9", 50, "mg/dL", "hdl", 1.293),
        ("18262-6", 100, "mg/dL", "ldl", 2.586),
        ("2571-8", 150, "mg/dL", "triglycerides", 1.6935),
        ("2093-3", 200, "mg/dL", "cholesterol", 5.172),
        ("1558-6", 99, "mg/dL", "fasting_glucose", 5.49549),
        ("33914-3", 75, "mL/min", "egfr", 75),
        ("33914-3", 75, "ml/min/1.73m2", "egfr", 75),
        ("33914-3", 75, "mL/min/{1.73_m2}", "egfr", 75),
    ],
)
def test_synthea_and_uk_codes_and_units_are_read(
    code: str, value: float, unit: str, analyte: str, canonical: float
) -> None:
    [record] = records([patient(), observation(code, value, unit, DAY, system=LOINC)]).values()
    [result] = record.results
    assert (result.analyte, result.normalised) == (analyte, True)
    assert result.value == pytest.approx(canonical)


def test_a_fasting_glucose_counts_as_the_hba1c_test() -> None:
    on_olanzapine = [patient(), *repeats("Olanzapine 10mg tablets", LONG, RECENT)]
    glucose = observation("1558-6", 5.1, "mmol/L", DAY, system=LOINC)
    found = evaluate(on_olanzapine + [glucose])
    assert not [f for f in found if f.kind.value in ("due", "overdue") and "hba1c" in f.tests]
