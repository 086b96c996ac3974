"""The ``hrm-fhir`` command line: input formats, bad input, output formats, rule listings."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle

from hrm_fhir.cli.main import main
from tests.builders import (
    AS_OF,
    evaluate,
    observation,
    of_kind,
    patient,
    prescription,
    repeats,
    rules,
)

MTX = "Methotrexate 2.5mg tablets"
NEUT = "1022551000000104"
LITHIUM = "1006681000000100"


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _practice() -> list[dict[str, Any]]:
    chain = repeats(
        MTX, AS_OF - timedelta(days=500), AS_OF - timedelta(days=5), dosage="10mg weekly"
    )
    return [patient(), *chain, observation(NEUT, 1.2, "10*9/L", AS_OF - timedelta(days=3))]


def _write_ndjson(path: Path, resources: list[dict[str, Any]], extra: bytes = b"") -> None:
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n" + extra)


def test_evaluate_prints_the_json_contract(tmp_path: Path) -> None:
    _write_ndjson(tmp_path / "export.ndjson", _practice())
    result = _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "json", str(tmp_path))
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["as_of"] == "2026-11-27"
    kinds = {f["kind"] for f in doc["findings"]}
    assert kinds == {"overdue", "out_of_range"}
    oor = next(f for f in doc["findings"] if f["kind"] == "out_of_range")
    assert oor["patient"] == "Patient/p1"
    assert (oor["analyte"], oor["value"], oor["unit"], oor["severity"]) == (
        "neutrophils",
        1.2,
        "10*9/L",
        "action",
    )
    assert oor["rule"] == rules().get("methotrexate").ref
    assert oor["source"].startswith("https://")
    assert any(e.startswith("Observation/") for e in oor["evidence"])
    overdue = next(f for f in doc["findings"] if f["kind"] == "overdue")
    assert overdue["tests"]
    assert overdue["due_date"]


def test_bad_ndjson_line_is_named_and_the_rest_still_evaluated(tmp_path: Path) -> None:
    _write_ndjson(tmp_path / "export.ndjson", _practice(), extra=b'{"resourceType": "Observ\n')
    result = CliRunner().invoke(main, ["evaluate", "--as-of", "2026-11-27", str(tmp_path)])
    assert result.exit_code == 0
    lines = len(_practice()) + 1
    assert f"export.ndjson:{lines}: not valid JSON" in result.stderr
    doc = json.loads(result.stdout)
    assert any(f["kind"] == "out_of_range" for f in doc["findings"])
    assert any(s["source"].endswith(f"export.ndjson:{lines}") for s in doc["skipped"])


def test_malformed_resource_is_skipped_with_a_reason(tmp_path: Path) -> None:
    broken = observation(NEUT, 0.5, "10*9/L", AS_OF)
    del broken["subject"]
    undated = observation(NEUT, 0.5, "10*9/L", AS_OF)
    del undated["effectiveDateTime"]
    _write_ndjson(tmp_path / "x.ndjson", [*_practice(), broken, undated])
    doc = json.loads(_run("evaluate", "--as-of", "2026-11-27", str(tmp_path)).stdout)
    reasons = {s["reason"] for s in doc["skipped"]}
    assert "Observation has no Patient subject" in reasons
    assert "Observation has no usable effective date or issued time" in reasons
    assert any(f["kind"] == "out_of_range" for f in doc["findings"])


def test_missing_path_exits_2_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.output


def test_unreadable_json_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    result = CliRunner().invoke(main, ["evaluate", "--as-of", "2026-11-27", str(tmp_path)])
    assert result.exit_code == 0
    assert "bad.json: not valid JSON" in result.stderr


@pytest.mark.parametrize("bundle_type", ["collection", "searchset", "transaction", "batch"])
def test_bundles_of_any_type_are_read(tmp_path: Path, bundle_type: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [{"resource": r} for r in _practice()],
    }
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle))
    doc = json.loads(_run("evaluate", "--as-of", "2026-11-27", str(tmp_path / "b.json")).stdout)
    assert {f["kind"] for f in doc["findings"]} == {"overdue", "out_of_range"}


def test_medication_reference_contained_and_separate() -> None:
    separate = prescription("", AS_OF - timedelta(days=10))
    del separate["medicationCodeableConcept"]
    separate["medicationReference"] = {"reference": "Medication/lith"}
    medication = {
        "resourceType": "Medication",
        "id": "lith",
        "code": {"text": "Lithium carbonate 400mg MR tablets"},
    }
    contained = prescription("", AS_OF - timedelta(days=10), pid="p2")
    del contained["medicationCodeableConcept"]
    contained["medicationReference"] = {"reference": "#m"}
    contained["contained"] = [
        {"resourceType": "Medication", "id": "m", "code": {"text": "Methotrexate 2.5mg tablets"}}
    ]
    found = evaluate([separate, medication, contained, patient(), patient("p2")])
    monitoring = of_kind(found, "overdue") + of_kind(found, "due")
    assert {(f.patient, f.drug_group) for f in monitoring} == {
        ("Patient/p1", "lithium"),
        ("Patient/p2", "methotrexate"),
    }


def test_diagnostic_report_with_contained_results() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": {"text": "Lithium level"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": (AS_OF - timedelta(days=2)).isoformat(),
        "contained": [observation(LITHIUM, 1.6, "mmol/L", AS_OF, rid="r1")],
    }
    del report["contained"][0]["effectiveDateTime"]
    del report["contained"][0]["subject"]
    chain = repeats(
        "Lithium carbonate 400mg tablets", AS_OF - timedelta(days=700), AS_OF - timedelta(days=5)
    )
    [finding] = of_kind(evaluate([patient(), *chain, report]), "out_of_range")
    assert (finding.analyte, finding.value, finding.severity.value) == ("lithium", 1.6, "urgent")
    assert finding.observed_on == AS_OF - timedelta(days=2)


def test_effective_period_and_issued_give_the_result_date() -> None:
    chain = repeats(
        "Lithium carbonate 400mg tablets", AS_OF - timedelta(days=700), AS_OF - timedelta(days=5)
    )
    by_period = observation(LITHIUM, 1.6, "mmol/L", AS_OF)
    by_period["effectivePeriod"] = {"start": (AS_OF - timedelta(days=4)).isoformat()}
    del by_period["effectiveDateTime"]
    [finding] = of_kind(evaluate([patient(), *chain, by_period]), "out_of_range")
    assert finding.observed_on == AS_OF - timedelta(days=4)
    by_issued = observation(LITHIUM, 1.6, "mmol/L", AS_OF)
    by_issued["issued"] = f"{(AS_OF - timedelta(days=6)).isoformat()}T23:30:00Z"
    del by_issued["effectiveDateTime"]
    [finding] = of_kind(evaluate([patient(), *chain, by_issued]), "out_of_range")
    assert finding.observed_on == AS_OF - timedelta(days=6)


def test_fhir_format_is_a_valid_bundle_of_tasks_and_flags(tmp_path: Path) -> None:
    _write_ndjson(tmp_path / "e.ndjson", _practice())
    out = _run("evaluate", "--as-of", "2026-11-27", "--format", "fhir", str(tmp_path)).stdout
    bundle = Bundle.model_validate_json(out)
    kinds = sorted(e.resource.get_resource_type() for e in bundle.entry)
    assert kinds == ["Flag", "Task"]
    again = _run("evaluate", "--as-of", "2026-11-27", "--format", "fhir", str(tmp_path)).stdout
    assert again == out, "the same input gives byte-identical resources"
    for entry in bundle.entry:
        resource = entry.resource
        assert resource.id == resource.identifier[0].value
        assert resource.id.startswith("hrm-")


def test_rules_list_and_show_read_as_a_schedule() -> None:
    listing = _run("rules", "list").stdout
    assert "methotrexate@1" in listing
    assert "lithium@1" in listing
    assert "from 2021-04-01" in listing, "each pack says from when it is in force"
    shown = _run("rules", "show", "methotrexate").stdout
    assert "every 2 weeks until 6 weeks" in shown
    assert "every 12 weeks thereafter" in shown
    assert "https://www.sps.nhs.uk/monitorings/methotrexate-monitoring/" in shown
    assert "NOT CLINICALLY SIGNED OFF" in shown
    missing = CliRunner().invoke(main, ["rules", "show", "nothing"])
    assert missing.exit_code == 2
    assert "known rules" in missing.stderr


def test_summary_format_is_readable(tmp_path: Path) -> None:
    _write_ndjson(tmp_path / "e.ndjson", _practice())
    out = _run("evaluate", "--as-of", "2026-11-27", "--format", "summary", str(tmp_path)).stdout
    assert "hrm-fhir evaluation as of 2026-11-27" in out
    assert "methotrexate" in out


def test_a_unit_that_cannot_be_normalised_is_reported(tmp_path: Path) -> None:
    odd = observation(NEUT, 1.2, "furlongs", AS_OF - timedelta(days=3), rid="odd")
    _write_ndjson(tmp_path / "x.ndjson", [*_practice()[:-1], odd])
    doc = json.loads(_run("evaluate", "--as-of", "2026-11-27", str(tmp_path)).stdout)
    assert [s["source"] for s in doc["skipped"]] == ["Observation/odd"]
    assert "'furlongs'" in doc["skipped"][0]["reason"]
    assert not any(f["kind"] == "out_of_range" for f in doc["findings"])


def test_evaluate_json_lists_the_register_and_what_it_could_not_place(tmp_path: Path) -> None:
    statin = prescription("Atorvastatin 20mg tablets", AS_OF - timedelta(days=30))
    _write_ndjson(tmp_path / "export.ndjson", [*_practice(), statin, dict(statin, id="again")])
    result = _run("evaluate", "--as-of", AS_OF.isoformat(), str(tmp_path))
    doc = json.loads(result.stdout)
    assert doc["warnings"] == []
    [line] = doc["monitored"]
    assert (line["patient"], line["drug_group"], line["matched_by"]) == (
        "Patient/p1",
        "methotrexate",
        "text",
    )
    assert line["course_start"] == (AS_OF - timedelta(days=500)).isoformat()
    assert set(line["next_due"]) == {"fbc", "lft", "renal"}
    [statins] = doc["unrecognised"]
    assert statins["count"] == 2
    assert "atorvastatin" in statins["text"]


def test_evaluate_csv_writes_one_register_row_per_test(tmp_path: Path) -> None:
    _write_ndjson(tmp_path / "export.ndjson", _practice())
    result = _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "csv", str(tmp_path))
    assert result.exit_code == 0
    rows = result.stdout.splitlines()  # CRLF rows
    assert rows[0] == (
        "patient,drug_group,medication,matched_by,course_start,test,next_due,"
        "monitored_elsewhere_by,review_on"
    )
    assert sorted(row.split(",")[5] for row in rows[1:]) == ["fbc", "lft", "renal"]
    assert all(row.startswith("Patient/p1,methotrexate,MedicationRequest/") for row in rows[1:])
    assert all(row.endswith(",,") for row in rows[1:]), "the practice monitors"


def test_the_register_names_who_monitors_a_hospital_prescribed_drug(tmp_path: Path) -> None:
    practice = _practice()
    for resource in practice:
        if resource["resourceType"] == "MedicationRequest":
            resource["requester"] = {"display": "Rheumatology, Oakfield Hospital"}
            resource["extension"] = [
                {
                    "url": "https://fhir.hl7.org.uk/StructureDefinition/"
                    "Extension-UKCore-MedicationPrescribingOrganizationType",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "https://fhir.hl7.org.uk/CodeSystem/"
                                "UKCore-MedicationPrescribingOrganizationType",
                                "code": "prescribed-by-another-organisation",
                            }
                        ]
                    },
                }
            ]
    _write_ndjson(tmp_path / "export.ndjson", practice)
    csv_run = _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "csv", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(csv_run.stdout)))
    assert {row["monitored_elsewhere_by"] for row in rows} == {"Rheumatology, Oakfield Hospital"}
    doc = json.loads(
        _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "json", str(tmp_path)).stdout
    )
    [line] = doc["monitored"]
    assert line["monitored_elsewhere"]["by"] == "Rheumatology, Oakfield Hospital"
    kinds = {f["kind"] for f in doc["findings"]}
    assert kinds.isdisjoint({"due", "overdue"}), "no routine monitoring"
    assert "out_of_range" in kinds, "results that reach the practice are still read"
    [ask] = [f for f in doc["findings"] if f["kind"] == "prescribing"]
    assert ask["code"] == "shared-care-results-not-seen", "the old bloods: ask for the results"
    summary = _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "summary", str(tmp_path))
    assert "(1 monitored elsewhere)" in summary.stdout


def test_evaluate_summary_counts_the_register_and_the_unrecognised(tmp_path: Path) -> None:
    statin = prescription("Atorvastatin 20mg tablets", AS_OF - timedelta(days=30))
    _write_ndjson(tmp_path / "export.ndjson", [*_practice(), statin])
    result = _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "summary", str(tmp_path))
    assert "1 patient drug groups on monitored therapy" in result.stdout
    assert "1 medication entries not recognised" in result.stdout


def test_the_summary_puts_urgent_findings_first_with_the_patient_and_explains_each_skip(
    tmp_path: Path,
) -> None:
    chain = repeats(MTX, AS_OF - timedelta(days=500), AS_OF - timedelta(days=5), dosage="weekly")
    low = observation(NEUT, 0.4, "10*9/L", AS_OF - timedelta(days=3))
    odd = observation(NEUT, 1.2, "furlongs", AS_OF - timedelta(days=30), rid="odd")
    _write_ndjson(tmp_path / "e.ndjson", [patient(), *chain, low, odd])
    out = _run("evaluate", "--as-of", AS_OF.isoformat(), "--format", "summary", str(tmp_path))
    lines = out.stdout.splitlines()
    urgent = lines.index("URGENT (same working day): 1")
    assert urgent < next(i for i, line in enumerate(lines) if line.startswith("DRUG GROUP"))
    assert lines[urgent + 1].startswith(
        "- Patient/p1 [methotrexate] Neutrophil count 0.4 ×10⁹/L on"
    )
    assert "10*9/L" not in out.stdout
    assert lines[-1] == (
        "- 1 x unit 'furlongs' for neutrophils cannot be read: not counted as the test done, "
        "never compared with a threshold (an incomplete finding names it) (e.g. Observation/odd)"
    )
    assert lines[-2].startswith("SKIPPED: 1 resources or lines left out of the evaluation")


def test_rules_show_prints_tolerances_and_rules_shared_care_the_codes() -> None:
    shown = _run("rules", "show", "lithium").stdout
    assert "severely overdue when a test has not been done on therapy for 3 months" in shown
    assert "PINCER" in shown
    opioid = _run("rules", "show", "opioid").stdout
    assert "severely overdue: no tolerance in the reference (never graded severe)" in opioid
    shared = _run("rules", "shared-care")
    assert shared.exit_code == 0
    assert "prescribed-by-another-organisation" in shared.stdout
    assert "394828003" in shared.stdout
    assert "none listed: a practice adds the codes its templates record" in shared.stdout
    assert "[UNVERIFIED]" in shared.stdout
