"""Which prescriptions and results count, and how monitoring follows the course of therapy."""

from __future__ import annotations

from datetime import timedelta

from tests.builders import (
    AS_OF,
    SNOMED,
    baseline,
    bloods,
    evaluate,
    observation,
    of_kind,
    patient,
    prescription,
    repeats,
    rules,
)

MTX = "Methotrexate 2.5mg tablets"
WEEKLY = {"frequency": 1, "period": 1, "periodUnit": "wk"}
NEUT = "1022551000000104"


def _established(**kw):
    return [
        patient(),
        *repeats(MTX, AS_OF - timedelta(days=800), AS_OF - timedelta(days=10), timing=WEEKLY, **kw),
    ]


def test_flags_overdue_monitoring_when_last_result_predates_interval() -> None:
    found = evaluate(_established() + bloods(AS_OF - timedelta(days=120)))
    [overdue] = of_kind(found, "overdue", "methotrexate")
    assert overdue.tests == ("fbc", "lft", "renal")
    assert overdue.due_date == AS_OF - timedelta(days=120) + timedelta(weeks=12)
    assert overdue.rule == rules().get("methotrexate").ref


def test_in_range_result_inside_interval_removes_the_overdue_finding() -> None:
    stale = _established() + bloods(AS_OF - timedelta(days=120))
    assert of_kind(evaluate(stale), "overdue")
    fresh = stale + bloods(AS_OF - timedelta(days=5))
    assert of_kind(evaluate(fresh), "overdue") == []
    assert of_kind(evaluate(fresh), "due") == []


def test_results_dated_after_as_of_are_ignored() -> None:
    resources = (
        _established() + bloods(AS_OF - timedelta(days=120)) + bloods(AS_OF + timedelta(days=2))
    )
    assert of_kind(evaluate(resources), "overdue", "methotrexate")


def test_entered_in_error_and_preliminary_results_never_count() -> None:
    base = _established() + bloods(AS_OF - timedelta(days=120))
    for status in ("entered-in-error", "cancelled", "preliminary"):
        resources = base + bloods(AS_OF - timedelta(days=5), status=status)
        assert of_kind(evaluate(resources), "overdue", "methotrexate"), status
    amended = base + bloods(AS_OF - timedelta(days=5), status="amended")
    assert of_kind(evaluate(amended), "overdue", "methotrexate") == []


def test_stopped_course_raises_nothing() -> None:
    chain = repeats(MTX, AS_OF - timedelta(days=900), AS_OF - timedelta(days=400), timing=WEEKLY)
    chain[-1]["status"] = "stopped"
    assert evaluate([patient(), *chain]) == []


def test_completed_issue_counts_as_current_only_within_three_months() -> None:
    recent = [
        patient(),
        prescription(MTX, AS_OF - timedelta(days=60), status="completed", timing=WEEKLY),
    ]
    assert of_kind(evaluate(recent), "overdue", "methotrexate")
    old = [
        patient(),
        prescription(MTX, AS_OF - timedelta(days=120), status="completed", timing=WEEKLY),
    ]
    assert evaluate(old) == []


def test_erroneous_draft_and_proposed_requests_are_ignored() -> None:
    for kw in (
        {"status": "entered-in-error"},
        {"status": "cancelled"},
        {"status": "draft"},
        {"intent": "proposal"},
        {"intent": "option"},
    ):
        resources = [patient(), prescription(MTX, AS_OF - timedelta(days=20), timing=WEEKLY, **kw)]
        assert evaluate(resources) == [], kw


def test_deceased_patient_raises_nothing() -> None:
    resources = _established() + bloods(AS_OF - timedelta(days=200))
    resources[0] = patient(deceasedDateTime=(AS_OF - timedelta(days=30)).isoformat())
    assert evaluate(resources) == []
    resources[0] = patient(deceasedDateTime=(AS_OF + timedelta(days=30)).isoformat())
    assert evaluate(resources), "a death recorded after the as-of date does not apply yet"


def test_new_start_follows_the_initiation_schedule() -> None:
    start = AS_OF - timedelta(days=20)
    resources = [patient(), prescription(MTX, start, timing=WEEKLY)] + baseline(
        "methotrexate", start - timedelta(days=3)
    )
    [finding] = of_kind(evaluate(resources), "overdue", "methotrexate")
    assert finding.due_date == start + timedelta(weeks=2)


def test_dose_change_restarts_the_initiation_schedule() -> None:
    chain = repeats(
        MTX, AS_OF - timedelta(days=800), AS_OF - timedelta(days=40), dosage="10mg once weekly"
    )
    changed = AS_OF - timedelta(days=12)
    chain.append(prescription(MTX, changed, dosage="15mg once weekly"))
    chain[-2]["status"] = "completed"
    resources = [patient(), *chain, *bloods(AS_OF - timedelta(days=30))]
    [finding] = of_kind(evaluate(resources), "due", "methotrexate")
    assert finding.due_date == changed + timedelta(weeks=2)
    unchanged = [patient(), *chain[:-1], *bloods(AS_OF - timedelta(days=30))]
    unchanged[-4]["status"] = "active"
    assert of_kind(evaluate(unchanged), "due") == []


def test_due_window_is_configurable() -> None:
    resources = _established() + bloods(AS_OF - timedelta(weeks=12) + timedelta(days=20))
    assert of_kind(evaluate(resources), "due") == []
    [due] = of_kind(evaluate(resources, window_days=30), "due")
    assert due.due_date == AS_OF + timedelta(days=20)


def test_medication_matched_by_text_when_no_code_is_known() -> None:
    resources = [
        patient(),
        prescription("METHOTREXATE 10mg/ml injection", AS_OF - timedelta(days=30)),
    ]
    [finding] = of_kind(evaluate(resources), "overdue", "methotrexate")
    assert finding.medication.startswith("MedicationRequest/")


def test_medication_matched_by_code_without_text() -> None:
    resources = [
        patient(),
        prescription("", AS_OF - timedelta(days=30), codes=((SNOMED, "68887009"),)),
    ]
    assert of_kind(evaluate(resources), "overdue", "methotrexate")


def test_unit_that_cannot_be_normalised_is_reported_not_compared() -> None:
    resources = _established() + [observation(NEUT, 0.2, "furlongs", AS_OF - timedelta(days=2))]
    assert of_kind(evaluate(resources), "out_of_range") == []
    low = _established() + [observation(NEUT, 0.2, "10*3/uL", AS_OF - timedelta(days=2))]
    [finding] = of_kind(evaluate(low), "out_of_range")
    assert (finding.analyte, finding.value, finding.unit) == ("neutrophils", 0.2, "10*9/L")
