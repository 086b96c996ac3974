"""Evaluating files: the parallel path gives exactly what one process gives."""

from __future__ import annotations

import random
from dataclasses import astuple
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from hrm_fhir import offline
from hrm_fhir.adapters.fhir.files import expand_paths, iter_resources
from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.domain import Skipped
from hrm_fhir.evaluation import EvaluationRun
from hrm_fhir.offline import evaluate_paths
from hrm_fhir.rules.evaluate import Evaluator
from tests.builders import rules

PRACTICE = Path(__file__).resolve().parents[2] / "fixtures" / "practice" / "ndjson"
AS_OF = date(2026, 11, 27)


def _json(run: object) -> bytes:
    return orjson.dumps(
        {
            "findings": [f.to_json() for f in run.findings],  # type: ignore[attr-defined]
            "skipped": [(s.source, s.reason) for s in run.skipped],  # type: ignore[attr-defined]
            "patients": run.patients,  # type: ignore[attr-defined]
        }
    )


def _runs(paths: list[Path]) -> dict[int, tuple[bytes, list[tuple[str, str]]]]:
    """Output and reported problems for one, two and three workers, and (as 0) for one plain
    reader that maps every resource in order into one RecordBuilder."""
    runs = {workers: _run(paths, workers) for workers in (1, 2, 3)}
    runs[0] = _one_reader(paths)
    return runs


def _one_reader(paths: list[Path]) -> tuple[bytes, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    medicines = rules().medicines()
    builder = RecordBuilder(rules().catalogue, medicines)
    for origin, resource in iter_resources(expand_paths(paths), lambda *p: problems.append(p)):
        builder.add(origin, resource)
    records = builder.finish()
    evaluator = Evaluator.create(rules(), AS_OF)
    assessments = [evaluator.assess(records[key]) for key in sorted(records)]
    findings = [f for a in assessments for f in a.findings]
    findings.sort(key=lambda f: (f.patient, f.drug_group, f.kind.value, f.check, f.identifier))
    later = [s for a in assessments for s in a.later]
    skipped = sorted([*(Skipped(*p) for p in problems), *builder.skipped, *later], key=astuple)
    run = EvaluationRun(AS_OF, findings, skipped, len(records))
    return _json(run), problems


def _run(paths: list[Path], workers: int) -> tuple[bytes, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    run = evaluate_paths(
        paths, rules(), AS_OF, workers=workers, problem=lambda *p: problems.append(p)
    )
    return _json(run), problems


def test_partitioned_workers_give_the_same_findings_as_one_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(
        b'{"resourceType": "Observation"\n'
        b'{"resourceType":"Observation","subject":{"reference":"Patient/p-1-3"},"status":\n'
    )
    runs = _runs([PRACTICE, broken])
    single, problems = runs[1]
    assert b'"findings":[{' in single, "the bundled practice has findings"
    assert orjson.loads(single)["patients"] == 200
    assert runs[0] == runs[1] == runs[2] == runs[3]
    assert [where for where, _ in problems] == [f"{broken}:1", f"{broken}:2"]


def test_records_split_between_workers_are_joined_in_reading_order(tmp_path: Path) -> None:
    """Every resource in one shuffled file (so most patients are read by several workers), then
    a second file re-sending Observations, Medications and requests with other content: the copy
    one reader takes last must count (it maps requests that name a Medication last of all)."""
    lines = [
        line
        for path in sorted(PRACTICE.glob("*.ndjson"))
        for line in path.read_bytes().split(b"\n")
        if line
    ]
    random.Random(7).shuffle(lines)  # noqa: S311 - a fixed test order, not a secret
    resources = [orjson.loads(line) for line in lines]
    codes = {r["id"]: r["code"] for r in resources if r["resourceType"] == "Medication"}
    other_drug = set(sorted(codes)[::2])
    resent = [orjson.dumps(r) for r in (_changed(r, codes, other_drug) for r in resources) if r]
    bad_line = len(lines) * 3 // 4
    lines.insert(bad_line, b'{"resourceType": "Patient", "id": ')
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    first.write_bytes(b"\n".join(lines) + b"\n\n")
    second.write_bytes(b"\n".join(resent) + b"\n")

    runs = _runs([first, second])
    assert runs[0] == runs[1] == runs[2] == runs[3]
    assert [where for where, _ in runs[1][1]] == [f"{first}:{bad_line + 1}"]
    assert runs[1][0] != _run([first], 1)[0], "the re-sent copies change the findings"


def test_a_failing_worker_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, received: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(offline._Worker, "evaluate", broken)
    with pytest.raises(RuntimeError, match=r"(?s)worker failed.*ValueError: boom"):
        evaluate_paths([PRACTICE], rules(), AS_OF, workers=2)


def _changed(
    resource: dict[str, Any], codes: dict[str, Any], other_drug: set[str]
) -> dict[str, Any] | None:
    """Observations at three times their value; some Medications now another drug; requests
    naming one of the other Medications re-sent as stopped, naming the same drug by code."""
    kind = resource["resourceType"]
    if kind == "Observation" and "valueQuantity" in resource:
        resource["valueQuantity"]["value"] *= 3
        return resource
    if kind == "Medication" and resource["id"] in other_drug:
        return {**resource, "code": {"text": "Paracetamol 500mg tablets"}, "ingredient": []}
    medication = resource.get("medicationReference", {}).get("reference", "")
    if kind == "MedicationRequest" and medication.startswith("Medication/"):
        medication = medication.removeprefix("Medication/")
        if medication not in other_drug:
            del resource["medicationReference"]
            code = codes[medication]
            return {**resource, "status": "stopped", "medicationCodeableConcept": code}
    return None
