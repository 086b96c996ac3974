"""Never silent: a check that record data kept from being assessed says so (an ``incomplete``
finding naming the missing data, graded by the worst it could mean), and a date the rule packs
do not cover is reported, never an empty answer."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from hrm_fhir.cli.main import main
from hrm_fhir.domain import Severity
from hrm_fhir.rules.evaluate import Evaluator
from tests.builders import (
    AS_OF,
    assess,
    evaluate,
    observation,
    of_kind,
    patient,
    repeats,
    rules,
)

LONG, RECENT = AS_OF - timedelta(days=400), AS_OF - timedelta(days=7)
CREAT, WEIGHT = "1000731000000107", "27113001"
DAY = AS_OF - timedelta(days=20)


def _dabigatran(sex: str = "male") -> list[dict[str, Any]]:
    return [
        patient(born="1956-01-01", sex=sex),
        *repeats("Dabigatran etexilate 110mg capsules", LONG, RECENT),
    ]


def test_dabigatran_without_a_weight_says_crcl_could_not_be_worked_out() -> None:
    found = evaluate(_dabigatran() + [observation(CREAT, 250, "umol/L", DAY)])
    [unsure] = of_kind(found, "incomplete", "doac")
    assert (unsure.code, unsure.missing, unsure.severity) == (
        "crcl-unknown",
        ("weight",),
        Severity.ACTION,
    )
    assert "dabigatran-crcl-below-30" in unsure.check.split(",")
    assert "monitoring interval" in unsure.reason, "the CrCl/10-month interval was not set"


def test_dabigatran_with_the_sex_not_recorded_names_the_sex() -> None:
    results = [observation(CREAT, 250, "umol/L", DAY), observation(WEIGHT, 60, "kg", DAY)]
    [unsure] = of_kind(evaluate(_dabigatran(sex="unknown") + results), "incomplete", "doac")
    assert unsure.missing == ("sex",)


def test_dabigatran_with_every_input_is_assessed_and_nothing_is_incomplete() -> None:
    results = [observation(CREAT, 250, "umol/L", DAY), observation(WEIGHT, 60, "kg", DAY)]
    found = evaluate(_dabigatran() + results)
    assert of_kind(found, "incomplete") == []
    assert [f.code for f in of_kind(found, "prescribing")] == ["dabigatran-crcl-below-30"]


def test_pregabalin_above_every_renal_band_with_no_crcl_is_incomplete() -> None:
    on = [
        patient(),
        *repeats("Pregabalin 300mg capsules", LONG, RECENT, dosage="300mg twice daily"),
    ]
    [unsure] = of_kind(evaluate(on), "incomplete", "gabapentinoid")
    assert set(unsure.missing) == {"creatinine", "weight"}
    assert unsure.severity is Severity.ACTION
    assert "pregabalin-crcl-30-59" in unsure.check


def test_a_dose_no_renal_band_can_exceed_needs_no_crcl() -> None:
    on = [patient(), *repeats("Pregabalin 25mg capsules", LONG, RECENT, dosage="25mg twice daily")]
    assert of_kind(evaluate(on), "incomplete") == []


def test_apixaban_criteria_that_cannot_add_up_to_two_are_not_incomplete() -> None:
    """Age 50 and creatinine 80: with the weight unknown, one criterion at most: decided."""
    on = [patient(born="1976-01-01"), *repeats("Apixaban 5mg tablets", LONG, RECENT)]
    found = evaluate(on + [observation(CREAT, 80, "umol/L", DAY)])
    assert not [f for f in of_kind(found, "incomplete") if "two-reduction" in f.check]


def test_an_unreadable_pregabalin_dose_with_no_crcl_is_one_finding_naming_both() -> None:
    """Both the dose and CrCl stand between the record and the renal-band checks: one
    incomplete finding names every gap, and no check raises a second one."""
    chain = repeats("Pregabalin 150mg capsules", LONG, RECENT, dosage="as directed")
    found = of_kind(evaluate([patient(), *chain]), "incomplete", "gabapentinoid")
    [unsure] = found
    assert unsure.code == "crcl-unknown"
    assert unsure.missing == (
        "creatinine",
        "weight",
        f"daily dose of pregabalin (MedicationRequest/{chain[-1]['id']})",
    )
    assert "pregabalin-crcl-30-59" in unsure.check.split(",")


def test_a_criteria_check_names_only_the_gaps_that_could_change_its_answer() -> None:
    """Age 86 and creatinine 150 already make two apixaban reduction criteria: the missing
    weight cannot matter to that check, only the unreadable strength does."""
    unnamed = repeats("Apixaban tablets", LONG, RECENT, dosage="ONE tablet twice a day")
    found = evaluate([patient(born="1940-01-01"), *unnamed, observation(CREAT, 150, "umol/L", DAY)])
    [reduction] = [f for f in of_kind(found, "incomplete") if f.code.startswith("apixaban-5mg-two")]
    assert reduction.missing == (f"strength of apixaban (MedicationRequest/{unnamed[-1]['id']})",)
    [crcl] = [f for f in of_kind(found, "incomplete") if f.code == "crcl-unknown"]
    assert "apixaban-5mg-two-reduction-criteria" not in crcl.check.split(",")
    assert "weight" in crcl.missing


# ------------------------------------------------------------------ dates the packs cover


def test_every_pack_takes_effect_from_its_guidance_so_past_months_evaluate() -> None:
    """A month before the service existed (October 2026) is evaluated and audited."""
    day = date(2026, 10, 1)
    assert {p.id for p in rules().in_force(day)} == {p.id for p in rules().packs}
    assert Evaluator.create(rules(), day).warnings() == []
    on = [patient(), *repeats("Warfarin 3mg tablets", day - timedelta(days=400), day)]
    assert of_kind(evaluate(on, as_of=day), "overdue", "warfarin")


def test_second_versions_take_effect_with_the_first_so_earlier_months_see_every_product() -> None:
    """opioid@2 and antipsychotic@2 only recognise more products (and later versions keep
    them): in force from version 1's date, the highest version is used, so a hydrocodone
    patient is monitored in 2023 too."""
    day = date(2023, 6, 1)
    for rule_id in ("opioid", "antipsychotic"):
        first = rules().get(rule_id, 1).effective_from
        assert all(p.effective_from == first for p in rules().packs if p.id == rule_id)
    versions = {p.id: p.version for p in rules().in_force(day)}
    highest = (rules().get("opioid").version, rules().get("antipsychotic").version)
    assert (versions["opioid"], versions["antipsychotic"]) == highest
    hydrocodone = repeats(
        "Hydrocodone bitartrate 10 MG Oral Tablet", day - timedelta(days=400), day
    )
    [entry] = assess([patient(), *hydrocodone], as_of=day).register
    assert entry.drug_group == "opioid"
    rules_used = {f.rule for f in evaluate([patient(), *hydrocodone], as_of=day)}
    assert rules_used == {f"opioid@{highest[0]}"}


def test_a_date_no_version_covers_is_said_on_stderr_and_in_json(tmp_path: Path) -> None:
    on = [patient(), *repeats("Warfarin 3mg tablets", date(2017, 1, 1), date(2018, 1, 1))]
    (tmp_path / "x.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in on))
    result = CliRunner().invoke(main, ["evaluate", "--as-of", "2018-01-10", str(tmp_path)])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["findings"] == []
    [warning] = doc["warnings"]
    assert "is in force on 2018-01-10" in warning
    assert "warfarin" in warning
    assert f"warning: {warning}" in result.stderr


def test_a_result_after_the_as_of_date_is_skipped_and_warned(tmp_path: Path) -> None:
    on = [patient(), *repeats("Warfarin 3mg tablets", LONG, RECENT)]
    later = observation(
        "6301-6", 9.0, "{INR}", AS_OF + timedelta(days=3), system="http://loinc.org"
    )
    (tmp_path / "x.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in [*on, later]))
    result = CliRunner().invoke(main, ["evaluate", "--as-of", AS_OF.isoformat(), str(tmp_path)])
    doc = json.loads(result.stdout)
    [skip] = [s for s in doc["skipped"] if s["source"] == f"Observation/{later['id']}"]
    assert "after the as-of date" in skip["reason"]
    assert any("1 result(s) dated after the as-of date" in w for w in doc["warnings"])
    assert "dated after the as-of date" in result.stderr
    assert not any(f["kind"] == "out_of_range" for f in doc["findings"])
