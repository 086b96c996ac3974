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
