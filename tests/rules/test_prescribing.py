"""Prescribing-safety checks: methotrexate frequency, opioid OME and combinations, DOAC and
gabapentinoid renal dosing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.builders import (
    AS_OF,
    SNOMED,
    evaluate,
    observation,
    of_kind,
    patient,
    prescription,
    repeats,
)

LONG = AS_OF - timedelta(days=400)
RECENT = AS_OF - timedelta(days=7)
CREAT, WEIGHT, CRCL = "1000731000000107", "27113001", "968191000000100"


def _codes(found: list[Any]) -> set[str]:
    return {f.code for f in of_kind(found, "prescribing") if f.code}


def _on(text: str, **kw: Any) -> list[dict[str, Any]]:
    return repeats(text, LONG, RECENT, **kw)


@pytest.mark.parametrize(
    ("kw", "flagged"),
    [
        ({"timing": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, False),
        ({"timing": {"frequency": 1, "period": 1, "periodUnit": "d"}}, True),
        ({"dosage": "10mg once weekly on Mondays"}, False),
        ({"dosage": "2.5mg once daily"}, True),
        ({"dosage": "As directed"}, False),
    ],
)
def test_methotrexate_more_often_than_weekly_is_urgent(kw: dict[str, Any], flagged: bool) -> None:
    found = evaluate([patient(), *_on("Methotrexate 2.5mg tablets", **kw)])
    hits = [f for f in of_kind(found, "prescribing") if f.code == "methotrexate-not-weekly"]
    assert bool(hits) is flagged
    if flagged:
        assert hits[0].severity.value == "urgent"


def test_structured_tablet_dose_and_strength_give_the_ome() -> None:
    chain = _on(
        "Oxycodone 10mg modified-release tablets",
        timing={"frequency": 2, "period": 1, "periodUnit": "d"},
        dose={"value": 6, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
    )
    [high] = [
        f
        for f in of_kind(evaluate([patient(), *chain]), "prescribing")
        if f.code == "opioid-ome-120-or-more"
    ]
    assert "180 mg/day" in high.reason
    assert high.severity.value == "action"


@pytest.mark.parametrize(
    ("dosage", "flagged"), [("60mg twice daily", True), ("59.5mg twice daily", False)]
)
def test_ome_boundary_at_120_mg_per_day(dosage: str, flagged: bool) -> None:
    found = evaluate(
        [patient(), *_on("Morphine sulfate 30mg modified-release tablets", dosage=dosage)]
    )
    assert ("opioid-ome-120-or-more" in _codes(found)) is flagged


def test_patches_are_counted_by_micrograms_per_hour() -> None:
    patch = _on("Fentanyl 25micrograms/hour transdermal patches", dosage="one patch every 3 days")
    morphine = _on("Morphine sulfate 30mg tablets", dosage="30mg twice daily")
    assert "opioid-ome-120-or-more" not in _codes(evaluate([patient(), *patch]))
    [high] = [
        f
        for f in of_kind(evaluate([patient(), *patch, *morphine]), "prescribing")
        if f.code == "opioid-ome-120-or-more"
    ]
    assert "fentanyl 25 micrograms/hour" in high.reason


@pytest.mark.parametrize(
    ("other", "code"),
    [
        ("Diazepam 5mg tablets", "opioid-with-benzodiazepine"),
        ("Zopiclone 7.5mg tablets", "opioid-with-z-drug"),
        ("Pregabalin 75mg capsules", "opioid-with-gabapentinoid"),
    ],
)
def test_opioid_combinations_are_flagged(other: str, code: str) -> None:
    alone = evaluate([patient(), *_on("Codeine 30mg tablets", dosage="30mg four times a day")])
    assert code not in _codes(alone)
    both = evaluate(
        [patient(), *_on("Codeine 30mg tablets", dosage="30mg four times a day"), *_on(other)]
    )
    assert code in _codes(both)


@pytest.mark.parametrize(
    ("dosage", "flagged"), [("200mg twice daily", True), ("150mg twice daily", False)]
)
def test_pregabalin_over_300mg_with_an_opioid(dosage: str, flagged: bool) -> None:
    found = evaluate(
        [
            patient(),
            *_on("Pregabalin 150mg capsules", dosage=dosage),
            *_on("Tramadol 50mg capsules"),
        ]
    )
    assert ("pregabalin-over-300-with-opioid" in _codes(found)) is flagged


def _renal(creatinine: float, weight: float, crcl: float | None = None) -> list[dict[str, Any]]:
    day = AS_OF - timedelta(days=20)
    out = [
        observation(CREAT, creatinine, "umol/L", day),
        observation(WEIGHT, weight, "kg", day),
    ]
    if crcl is not None:
        out.append(observation(CRCL, crcl, "mL/min", day))
    return out


def test_dabigatran_with_cockcroft_gault_crcl_below_30_is_flagged() -> None:
    # (140 - 70) x 60 kg x 1.23 / 250 umol/L = 20.7 mL/min
    resources = [
        patient(born="1956-01-01", sex="male"),
        *_on("Dabigatran etexilate 110mg capsules"),
    ]
    found = evaluate(resources + _renal(250, 60))
    assert "dabigatran-crcl-below-30" in _codes(found)
    assert "dabigatran-crcl-below-30" not in _codes(evaluate(resources + _renal(90, 80)))


@pytest.mark.parametrize(("crcl", "flagged"), [(29.9, True), (30.0, False)])
def test_recorded_crcl_boundary_for_dabigatran(crcl: float, flagged: bool) -> None:
    resources = [
        patient(sex="male"),
        *_on("Dabigatran etexilate 110mg capsules"),
        *_renal(80, 80, crcl),
    ]
    assert ("dabigatran-crcl-below-30" in _codes(evaluate(resources))) is flagged


def test_crcl_cannot_be_computed_without_sex_or_weight_and_raises_nothing() -> None:
    resources = [
        patient(sex="unknown"),
        *_on("Dabigatran etexilate 110mg capsules"),
        *_renal(400, 40),
    ]
    assert _codes(evaluate(resources)) == set()


def test_apixaban_full_dose_with_two_reduction_criteria() -> None:
    old_light = [patient(born="1940-01-01", sex="female"), *_renal(90, 55)]
    full = evaluate(old_light + _on("Apixaban 5mg tablets", codes=((SNOMED, "703908001"),)))
    assert "apixaban-5mg-two-reduction-criteria" in _codes(full)
    reduced = evaluate(old_light + _on("Apixaban 2.5mg tablets"))
    assert "apixaban-5mg-two-reduction-criteria" not in _codes(reduced)
    one_criterion = evaluate(
        [patient(born="1940-01-01"), *_renal(90, 80), *_on("Apixaban 5mg tablets")]
    )
    assert "apixaban-5mg-two-reduction-criteria" not in _codes(one_criterion)


def test_methotrexate_with_trimethoprim() -> None:
    mtx = _on("Methotrexate 2.5mg tablets", dosage="10mg weekly")
    assert "methotrexate-with-trimethoprim" not in _codes(evaluate([patient(), *mtx]))
    both = evaluate(
        [patient(), *mtx, prescription("Trimethoprim 200mg tablets", AS_OF - timedelta(days=2))]
    )
    assert "methotrexate-with-trimethoprim" in _codes(both)


def _incomplete(found: list[Any], code: str) -> list[Any]:
    return [f for f in of_kind(found, "incomplete") if f.code == code]


MTX_TABLETS = "Methotrexate 2.5mg tablets"


@pytest.mark.parametrize(
    "dosage",
    ["every morning", "4 tablets a day", "10 mg per day", "OM", "ONE to be taken each day"],
)
def test_methotrexate_written_as_daily_is_flagged_whatever_the_phrasing(dosage: str) -> None:
    found = evaluate([patient(), *_on(MTX_TABLETS, dosage=dosage)])
    [hit] = [f for f in of_kind(found, "prescribing") if f.code == "methotrexate-not-weekly"]
    assert hit.severity.value == "urgent"
    assert "7 times a week" in hit.reason


@pytest.mark.parametrize(
    "dosage", ["10 mg once a week on Monday", "THREE to be taken once a week", "4 tablets weekly"]
)
def test_methotrexate_written_as_weekly_is_not_flagged(dosage: str) -> None:
    found = evaluate([patient(), *_on(MTX_TABLETS, dosage=dosage)])
    assert "methotrexate-not-weekly" not in {f.code for f in found}


@pytest.mark.parametrize("dosage", ["Take 4 tablets", "As directed", "THREE to be taken"])
def test_methotrexate_with_no_readable_frequency_says_frequency_not_stated(dosage: str) -> None:
    chain = _on(MTX_TABLETS, dosage=dosage)
    found = evaluate([patient(), *chain])
    assert "methotrexate-not-weekly" not in _codes(found)
    [hit] = _incomplete(found, "methotrexate-not-weekly")
    assert hit.severity.value == "urgent", "the worst it could mean: taken daily"
    assert "frequency not stated" in hit.reason
    assert dosage in hit.reason
    assert hit.missing == (
        f"dosage frequency of methotrexate (MedicationRequest/{chain[-1]['id']})",
    )
    assert hit.evidence == (f"MedicationRequest/{chain[-1]['id']}",)


def test_a_readable_weekly_request_does_not_excuse_an_unreadable_one() -> None:
    tablets = _on(MTX_TABLETS, dosage="10mg once weekly")
    injection = _on("Methotrexate 10mg/0.2ml solution for injection pre-filled syringes")
    found = evaluate([patient(), *tablets, *injection])
    [hit] = _incomplete(found, "methotrexate-not-weekly")
    assert hit.evidence == (f"MedicationRequest/{injection[-1]['id']}",)


@pytest.mark.parametrize(
    ("dosage", "flagged"),
    [
        ("TWO tablets twice a day", True),
        ("TWO to be taken twice a day", True),
        ("ONE to be taken twice a day", False),
    ],
)
def test_dm_d_label_phrasing_is_read_for_the_ome(dosage: str, flagged: bool) -> None:
    found = evaluate([patient(), *_on("Oxycodone 20mg modified-release tablets", dosage=dosage)])
    assert ("opioid-ome-120-or-more" in _codes(found)) is flagged


@pytest.mark.parametrize(
    ("immediate", "flagged"), [("5mg four times a day", True), ("5mg three times a day", False)]
)
def test_ome_adds_modified_and_immediate_release_of_the_same_drug(
    immediate: str, flagged: bool
) -> None:
    modified = _on("Oxycodone 30mg modified-release tablets", dosage="30mg twice a day")  # 90
    quick = _on("Oxycodone 5mg capsules", dosage=immediate)  # 30 or 22.5
    found = evaluate([patient(), *modified, *quick])
    assert ("opioid-ome-120-or-more" in _codes(found)) is flagged
    if flagged:
        [high] = [f for f in of_kind(found, "prescribing") if f.code == "opioid-ome-120-or-more"]
        assert "oxycodone 60 mg/day x 1.5; oxycodone 20 mg/day x 1.5" in high.reason
        assert set(high.evidence) == {
            f"MedicationRequest/{modified[-1]['id']}",
            f"MedicationRequest/{quick[-1]['id']}",
        }


def test_an_unreadable_opioid_dose_below_the_limit_is_incomplete() -> None:
    solution = _on("Morphine sulfate 10mg/5ml oral solution", dosage="as directed")
    tablets = _on("Morphine sulfate 30mg modified-release tablets", dosage="30mg twice a day")
    found = evaluate([patient(), *solution, *tablets])
    assert "opioid-ome-120-or-more" not in _codes(found)
    [hit] = _incomplete(found, "opioid-ome-120-or-more")
    assert hit.severity.value == "action"
    assert hit.missing == (f"daily dose of morphine (MedicationRequest/{solution[-1]['id']})",)
    assert "the readable part is 60 mg/day" in hit.reason


def test_an_unreadable_opioid_dose_above_the_limit_is_a_note_in_the_finding() -> None:
    solution = _on("Morphine sulfate 10mg/5ml oral solution", dosage="as directed")
    tablets = _on("Morphine sulfate 60mg modified-release tablets", dosage="60mg twice a day")
    found = evaluate([patient(), *solution, *tablets])
    assert _incomplete(found, "opioid-ome-120-or-more") == []
    [high] = [f for f in of_kind(found, "prescribing") if f.code == "opioid-ome-120-or-more"]
    assert "not counted, dose not stated: morphine (" in high.reason


def test_an_opioid_with_no_conversion_factor_is_named_not_reported_incomplete() -> None:
    methadone = _on("Methadone 1mg/ml oral solution", dosage="30ml once daily")
    assert _incomplete(evaluate([patient(), *methadone]), "opioid-ome-120-or-more") == []
    morphine = _on("Morphine sulfate 60mg modified-release tablets", dosage="60mg twice a day")
    found = evaluate([patient(), *methadone, *morphine])
    [high] = [f for f in of_kind(found, "prescribing") if f.code == "opioid-ome-120-or-more"]
    assert "not counted, no cited OME factor: methadone" in high.reason


def test_an_unreadable_pregabalin_dose_with_an_opioid_is_incomplete() -> None:
    pregabalin = _on("Pregabalin 150mg capsules", dosage="as directed")
    opioid = _on("Tramadol 50mg capsules", dosage="50mg four times a day")
    found = evaluate([patient(), *pregabalin, *opioid])
    [hit] = _incomplete(found, "pregabalin-over-300-with-opioid")
    assert hit.severity.value == "action"
    assert hit.missing == (f"daily dose of pregabalin (MedicationRequest/{pregabalin[-1]['id']})",)
    assert "already holds: also prescribed opioid" in hit.reason
    alone = evaluate([patient(), *pregabalin])
    assert _incomplete(alone, "pregabalin-over-300-with-opioid") == [], "no opioid: cannot matter"


def test_pregabalin_doses_of_two_strengths_add_up() -> None:
    big = _on("Pregabalin 150mg capsules", dosage="150mg twice a day")
    small = _on("Pregabalin 25mg capsules", dosage="25mg twice a day")
    opioid = _on("Tramadol 50mg capsules", dosage="50mg four times a day")
    found = evaluate([patient(), *big, *small, *opioid])
    assert "pregabalin-over-300-with-opioid" in _codes(found)


def test_an_unreadable_apixaban_strength_with_two_reduction_criteria_is_incomplete() -> None:
    old_light = [patient(born="1940-01-01", sex="female"), *_renal(90, 55)]
    unnamed = _on("Apixaban tablets", dosage="ONE tablet twice a day")
    [hit] = _incomplete(evaluate(old_light + unnamed), "apixaban-5mg-two-reduction-criteria")
    assert hit.missing == (f"strength of apixaban (MedicationRequest/{unnamed[-1]['id']})",)
    assert hit.severity.value == "action"
    one_criterion = [patient(born="1940-01-01"), *_renal(90, 80), *unnamed]
    assert _incomplete(evaluate(one_criterion), "apixaban-5mg-two-reduction-criteria") == []
