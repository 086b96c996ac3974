"""The synthetic-practice generator: determinism, population mix, edge cases and file layout."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir.cli.main import main
from hrm_fhir.synthetic.elements import nhs_check_digit
from hrm_fhir.synthetic.practice import generate_practice, write_practice

AS_OF = date(2026, 11, 27)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NOT_PRESCRIBED = {"entered-in-error", "cancelled", "draft"}
# Every ingredient the brief names for each group; checked by text and RxNorm code separately.
GROUPS: dict[str, dict[str, str]] = {
    "methotrexate": {"methotrexate": "6851"},
    "azathioprine": {"azathioprine": "1256"},
    "sulfasalazine": {"sulfasalazine": "9524"},
    "leflunomide": {"leflunomide": "27169"},
    "mycophenolate": {"mycophenolate": "68149"},
    "lithium": {"lithium": "42351"},
    "amiodarone": {"amiodarone": "703"},
    "warfarin": {"warfarin": "11289"},
    "doac": {"apixaban": "1364430", "rivaroxaban": "1114195", "edoxaban": "1599538",
             "dabigatran": "1037042"},
    "antipsychotic": {"olanzapine": "61381", "risperidone": "35636", "aripiprazole": "89013",
                      "quetiapine": "51272"},
    "opioid": {"oxycodone": "7804", "morphine": "7052", "codeine": "2670", "tramadol": "10689",
               "fentanyl": "4337", "buprenorphine": "1819"},
    "gabapentinoid": {"gabapentin": "25480", "pregabalin": "187832"},
}  # fmt: skip
MONITORED = {name for ingredients in GROUPS.values() for name in ingredients}


def _dump(resources: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in resources)


@pytest.fixture(scope="module")
def practice() -> list[dict[str, Any]]:
    return list(generate_practice(400, 11, AS_OF))


def _of(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == kind]


def _medication_concepts(resources: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(patient reference, medication concept) for every prescribed MedicationRequest."""
    medications = {f"Medication/{m['id']}": m for m in _of(resources, "Medication")}
    out = []
    for request in _of(resources, "MedicationRequest"):
        if request["status"] in NOT_PRESCRIBED or request["intent"] != "order":
            continue
        concept = request.get("medicationCodeableConcept")
        if concept is None:
            ref = request["medicationReference"]["reference"]
            medication = request["contained"][0] if ref == "#med" else medications[ref]
            concept = medication["code"]
        out.append((request.get("subject", {}).get("reference", ""), concept))
    return out


# ---------------------------------------------------------------- determinism
def test_same_arguments_give_byte_identical_output() -> None:
    first = _dump(list(generate_practice(300, 5, AS_OF)))
    second = _dump(list(generate_practice(300, 5, AS_OF)))
    assert first == second


def test_write_practice_is_byte_identical_across_runs(tmp_path: Path) -> None:
    write_practice(tmp_path / "a", 120, 5, AS_OF)
    write_practice(tmp_path / "b", 120, 5, AS_OF)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*json"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*json"))
    assert files_a == files_b
    assert files_a
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_different_seeds_differ() -> None:
    one = list(generate_practice(200, 1, AS_OF))
    two = list(generate_practice(200, 2, AS_OF))
    assert _dump(one) != _dump(two)
    numbers_one = {p["identifier"][0]["value"] for p in _of(one, "Patient")}
    numbers_two = {p["identifier"][0]["value"] for p in _of(two, "Patient")}
    assert not numbers_one & numbers_two
    assert {p["birthDate"] for p in _of(one, "Patient")} != {
        p["birthDate"] for p in _of(two, "Patient")
    }


def test_as_of_moves_the_dates() -> None:
    early = list(generate_practice(50, 1, date(2025, 1, 1)))
    late = list(generate_practice(50, 1, AS_OF))
    assert max(r["authoredOn"] for r in _of(early, "MedicationRequest") if "authoredOn" in r) <= (
        "2025-01-01"
    )
    assert _dump(early) != _dump(late)


def test_global_random_state_is_untouched() -> None:
    # S311: reading the global PRNG to prove the generator leaves it alone; no security use.
    random.seed(1234)
    expected = random.random()  # noqa: S311
    random.seed(1234)
    list(generate_practice(100, 3, AS_OF))
    assert random.random() == expected  # noqa: S311


# ---------------------------------------------------------------- population
def test_every_drug_group_appears_by_text_and_code(practice: list[dict[str, Any]]) -> None:
    concepts = _medication_concepts(practice)
    texts = " ".join(str(c.get("text", "")).lower() for _, c in concepts)
    codes = {
        coding["code"] for _, c in concepts for coding in c.get("coding", [])
        if coding["system"] == RXNORM
    }  # fmt: skip
    for group, ingredients in GROUPS.items():
        for name, rxnorm in ingredients.items():
            assert name in texts, f"{group}: no prescription names {name}"
            assert rxnorm in codes, f"{group}: no prescription carries RxNorm {rxnorm} ({name})"


def test_about_forty_percent_are_on_no_monitored_drug(practice: list[dict[str, Any]]) -> None:
    patients = {f"Patient/{p['id']}" for p in _of(practice, "Patient")}
    monitored = {
        subject for subject, concept in _medication_concepts(practice)
        if any(name in str(concept.get("text", "")).lower() for name in MONITORED)
    }  # fmt: skip
    share = len(patients - monitored) / len(patients)
    assert 0.33 <= share <= 0.47
    texts = {str(c.get("text", "")) for _, c in _medication_concepts(practice)}
    assert any("Atorvastatin" in t for t in texts)
    assert any("Ramipril" in t for t in texts)


def test_resources_per_patient_stay_modest() -> None:
    kinds = Counter(r["resourceType"] for r in generate_practice(2000, 4, AS_OF))
    per_patient = (sum(kinds.values()) - kinds["Organization"]) / kinds["Patient"]
    assert 5.0 <= per_patient <= 7.5
    assert kinds["Organization"] == 1


def test_patients_are_synthetic_and_linked_to_the_practice(practice: list[dict[str, Any]]) -> None:
    organization = _of(practice, "Organization")
    assert [o["id"] for o in organization] == ["practice-11"]
    patients = _of(practice, "Patient")
    numbers = [p["identifier"][0]["value"] for p in patients]
    assert len(set(numbers)) == len(numbers)
    for patient, number in zip(patients, numbers, strict=True):
        assert patient["identifier"][0]["system"] == "https://fhir.nhs.uk/Id/nhs-number"
        assert re.fullmatch(r"999\d{7}", number)
        assert nhs_check_digit(number[:9]) == int(number[9])
        assert patient["name"][0]["family"] == "Testpatient"
        assert patient["generalPractitioner"] == [{"reference": "Organization/practice-11"}]
        assert patient["managingOrganization"] == {"reference": "Organization/practice-11"}


@pytest.mark.parametrize(
    ("nine", "check"),
    [("943476591", 9), ("401023213", 7), ("999000005", 0), ("999000000", None)],
)
def test_nhs_check_digit(nine: str, check: int | None) -> None:
    assert nhs_check_digit(nine) == check


def test_ids_are_unique_and_fhir_shaped(practice: list[dict[str, Any]]) -> None:
    seen: set[tuple[str, str]] = set()
    for resource in practice:
        rid = resource["id"]
        assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", rid)
        assert re.search(r"[A-Za-z]", rid)
        key = (resource["resourceType"], rid)
        assert key not in seen
        seen.add(key)


# ---------------------------------------------------------------- edge cases
def _values(practice: list[dict[str, Any]], code: str) -> set[float]:
    return {
        o["valueQuantity"]["value"] for o in _of(practice, "Observation")
        if "valueQuantity" in o and any(c["code"] == code for c in o["code"]["coding"])
    }  # fmt: skip


def _units(practice: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(LOINC code, unit) over standalone and contained Observations."""
    observations = [
        *_of(practice, "Observation"),
        *(c for r in _of(practice, "DiagnosticReport") for c in r["contained"]),
    ]
    return {
        (c["code"], o["valueQuantity"]["unit"]) for o in observations if "valueQuantity" in o
        for c in o["code"]["coding"] if c["system"] == "http://loinc.org"
    }  # fmt: skip


def test_statuses_intents_and_stopped_therapy(practice: list[dict[str, Any]]) -> None:
    requests = _of(practice, "MedicationRequest")
    statuses = Counter(r["status"] for r in requests)
    for status in ("completed", "active", "stopped", "entered-in-error", "cancelled", "draft"):
        assert statuses[status], status
    assert any(r["intent"] == "proposal" for r in requests)
    assert any(p.get("deceasedDateTime") for p in _of(practice, "Patient"))
    for request in requests:
        assert request["courseOfTherapyType"]["coding"][0]["code"] in ("continuous", "acute")


def test_medication_representations_and_dosage(practice: list[dict[str, Any]]) -> None:
    requests = _of(practice, "MedicationRequest")
    assert any(r.get("medicationReference", {}).get("reference") == "#med" for r in requests)
    referenced = {
        r["medicationReference"]["reference"] for r in requests
        if r.get("medicationReference", {}).get("reference", "#").startswith("Medication/")
    }  # fmt: skip
    assert referenced
    assert referenced <= {f"Medication/{m['id']}" for m in _of(practice, "Medication")}
    assert any("coding" not in r.get("medicationCodeableConcept", {"coding": []}) for r in requests)
    dosages = [r["dosageInstruction"][0] for r in requests]
    texts = {d["text"] for d in dosages}
    for text in ("100mg once daily", "60mg twice daily", "1g at night", "As directed"):
        assert text in texts
    structured = [d for d in dosages if "doseAndRate" in d]
    assert any(d["doseAndRate"][0]["doseQuantity"]["code"] == "{tbl}" for d in structured)
    assert all(
        {"frequency", "period", "periodUnit"} <= set(d["timing"]["repeat"]) for d in structured
    )


def test_methotrexate_daily_and_dose_change(practice: list[dict[str, Any]]) -> None:
    requests = _of(practice, "MedicationRequest")

    def is_mtx(request: dict[str, Any]) -> bool:
        return "Methotrexate" in request.get("medicationCodeableConcept", {}).get("text", "")

    assert any(is_mtx(r) and r["dosageInstruction"][0]["text"].endswith("daily") for r in requests)
    doses: dict[str, set[str]] = {}
    for request in requests:
        if request["status"] not in NOT_PRESCRIBED:
            text = request["dosageInstruction"][0]["text"]
            doses.setdefault(request["subject"]["reference"], set()).add(text)
    assert any(len(texts) > 1 for texts in doses.values())


def test_out_of_range_results(practice: list[dict[str, Any]]) -> None:
    assert {1.3, 1.6} <= _values(practice, "14334-7")  # lithium
    assert {5.5, 8.4} <= _values(practice, "6301-6")  # INR
    assert any(v < 1.6 for v in _values(practice, "26499-4"))  # neutrophils
    assert any(v < 140 for v in _values(practice, "777-3"))  # platelets
    assert any(v > 100 for v in _values(practice, "1742-6"))  # ALT
    assert any(v < 60 for v in _values(practice, "62238-1"))  # eGFR
    assert 50 in _values(practice, "59261-8")  # HbA1c


def test_creatinine_rises_more_than_thirty_percent(practice: list[dict[str, Any]]) -> None:
    series: dict[str, list[tuple[str, float]]] = {}
    for o in _of(practice, "Observation"):
        codes = {c["code"] for c in o["code"]["coding"]}
        if "14682-9" in codes and "subject" in o and "effectiveDateTime" in o:
            series.setdefault(o["subject"]["reference"], []).append(
                (o["effectiveDateTime"], o["valueQuantity"]["value"])
            )
    assert any(
        len(points) > 1 and sorted(points)[-1][1] > 1.3 * sorted(points)[0][1]
        for points in series.values()
    )


def test_unit_variants(practice: list[dict[str, Any]]) -> None:
    units = _units(practice)
    assert ("2160-0", "mg/dL") in units
    assert ("4548-4", "%") in units
    assert ("14334-7", "meq/L") in units
    assert any(unit == "10*3/uL" for _, unit in units)
    assert any(unit == "furlongs" for _, unit in units)


def test_result_statuses_and_dates(practice: list[dict[str, Any]]) -> None:
    observations = _of(practice, "Observation")
    statuses = {o["status"] for o in observations}
    assert {"final", "preliminary", "entered-in-error"} <= statuses
    assert any(o.get("effectiveDateTime", "") > AS_OF.isoformat() + "T23" for o in observations)
    assert any("effectivePeriod" in o and "effectiveDateTime" not in o for o in observations)
    assert any(
        "issued" in o and "effectiveDateTime" not in o and "effectivePeriod" not in o
        for o in observations
    )
    for o in observations:
        if "effectiveDateTime" in o:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00\+00:00", o["effectiveDateTime"])


def test_diagnostic_reports_hold_contained_observations(practice: list[dict[str, Any]]) -> None:
    reports = _of(practice, "DiagnosticReport")
    assert reports
    for report in reports:
        assert report["status"] == "final"
        ids = {f"#{c['id']}" for c in report["contained"]}
        assert {r["reference"] for r in report["result"]} == ids
        assert all(c["resourceType"] == "Observation" for c in report["contained"])


def test_opioid_combinations_and_doac_risk(practice: list[dict[str, Any]]) -> None:
    by_patient: dict[str, str] = {}
    for subject, concept in _medication_concepts(practice):
        by_patient[subject] = by_patient.get(subject, "") + " " + str(concept["text"]).lower()
    opioids = ("oxycodone", "morphine", "codeine", "tramadol", "fentanyl", "buprenorphine")
    on_opioid = {s: t for s, t in by_patient.items() if any(o in t for o in opioids)}
    assert any("diazepam" in t for t in on_opioid.values())
    assert any("pregabalin" in t or "gabapentin" in t for t in on_opioid.values())
    ages = {
        f"Patient/{p['id']}": (AS_OF - date.fromisoformat(p["birthDate"])).days // 365
        for p in _of(practice, "Patient")
    }
    weights = {
        o["subject"]["reference"]: o["valueQuantity"]["value"] for o in _of(practice, "Observation")
        if "subject" in o and o["code"]["coding"][-1]["code"] == "29463-7"
    }  # fmt: skip
    doacs = ("apixaban", "rivaroxaban", "edoxaban", "dabigatran")
    assert any(
        any(d in t for d in doacs) and ages[s] >= 80 and weights.get(s, 99) <= 60
        for s, t in by_patient.items()
    )
    assert any("lithium" in t and ages[s] >= 65 for s, t in by_patient.items())


def test_malformed_share_is_small_but_present() -> None:
    resources = list(generate_practice(5000, 9, AS_OF))
    no_subject = [r for r in _of(resources, "Observation") if "subject" not in r]
    no_date = [
        r for r in _of(resources, "Observation")
        if not {"effectiveDateTime", "effectivePeriod", "issued"} & set(r)
    ]  # fmt: skip
    no_authored = [r for r in _of(resources, "MedicationRequest") if "authoredOn" not in r]
    assert no_subject
    assert no_date
    assert no_authored
    share = (len(no_subject) + len(no_date) + len(no_authored)) / len(resources)
    assert 0.0005 <= share <= 0.005


# ---------------------------------------------------------------- files
def test_ndjson_files_parse_line_by_line(tmp_path: Path) -> None:
    counts = write_practice(tmp_path, 300, 2, AS_OF)
    files = sorted((tmp_path / "ndjson").glob("*.ndjson"))
    assert {f.stem for f in files} == set(counts)
    for path in files:
        data = path.read_bytes()
        assert data.endswith(b"\n")
        lines = data.split(b"\n")[:-1]
        assert all(lines)
        for line in lines:
            resource = orjson.loads(line)
            assert resource["resourceType"] == path.stem


def test_counts_match_the_files(tmp_path: Path) -> None:
    counts = write_practice(tmp_path, 300, 2, AS_OF)
    on_disk = {
        p.stem: len(p.read_bytes().splitlines()) for p in (tmp_path / "ndjson").glob("*.ndjson")
    }
    assert counts == on_disk
    assert counts["Patient"] == 300
    assert counts["Organization"] == 1


def test_bundles_hold_the_same_resources(tmp_path: Path) -> None:
    counts = write_practice(tmp_path, 1100, 3, AS_OF)
    bundles = [orjson.loads(p.read_bytes()) for p in sorted((tmp_path / "bundles").glob("*.json"))]
    assert len(bundles) == 3
    in_bundles: Counter[tuple[str, str]] = Counter()
    for bundle in bundles:
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "collection"
        patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert len(patients) <= 500
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")
            in_bundles[(resource["resourceType"], resource["id"])] += 1
    assert sum(in_bundles.values()) == sum(counts.values())
    in_ndjson = Counter(
        (r["resourceType"], r["id"])
        for p in (tmp_path / "ndjson").glob("*.ndjson")
        for r in map(orjson.loads, p.read_bytes().splitlines())
    )
    assert in_bundles == in_ndjson


def test_rewriting_replaces_stale_files(tmp_path: Path) -> None:
    write_practice(tmp_path, 600, 1, AS_OF)
    counts = write_practice(tmp_path, 20, 1, AS_OF)
    assert len(list((tmp_path / "bundles").glob("*.json"))) == 1
    lines = sum(len(p.read_bytes().splitlines()) for p in (tmp_path / "ndjson").glob("*.ndjson"))
    assert lines == sum(counts.values())


def test_cli_generate_prints_counts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["fixtures", "generate", "--patients", "40", "--seed", "6", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    counts = orjson.loads(result.output)
    assert counts == write_practice(tmp_path / "again", 40, 6, AS_OF)
    assert counts["Patient"] == 40
    result = CliRunner().invoke(
        main,
        [
            "fixtures",
            "generate",
            "--out",
            str(tmp_path),
            "--as-of",
            "2025-02-03",
            "--patients",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == write_practice(tmp_path / "b", 5, 1, date(2025, 2, 3))


def test_bundled_practice_matches_the_generator(tmp_path: Path) -> None:
    bundled = Path(__file__).resolve().parents[2] / "fixtures" / "practice"
    write_practice(tmp_path, 200, 1, date(2026, 11, 27))
    for path in sorted((bundled / "ndjson").iterdir()):
        assert path.read_bytes() == (tmp_path / "ndjson" / path.name).read_bytes(), (
            f"{path.name} is stale: run `make practice`"
        )
