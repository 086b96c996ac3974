"""Evaluating files: the parallel path gives exactly what one process gives."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson

from hrm_fhir.offline import evaluate_paths
from tests.builders import rules

PRACTICE = Path(__file__).resolve().parents[2] / "fixtures" / "practice" / "ndjson"


def _json(run: object) -> bytes:
    return orjson.dumps(
        {
            "findings": [f.to_json() for f in run.findings],  # type: ignore[attr-defined]
            "skipped": [(s.source, s.reason) for s in run.skipped],  # type: ignore[attr-defined]
            "patients": run.patients,  # type: ignore[attr-defined]
        }
    )


def test_partitioned_workers_give_the_same_findings_as_one_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(
        b'{"resourceType": "Observation"\n'
        b'{"resourceType":"Observation","subject":{"reference":"Patient/p-1-3"},"status":\n'
    )
    paths = [PRACTICE, broken]
    problems: list[tuple[str, str]] = []
    single = evaluate_paths(
        paths, rules(), date(2026, 11, 27), workers=1, problem=lambda w, p: problems.append((w, p))
    )
    double = evaluate_paths(paths, rules(), date(2026, 11, 27), workers=2)
    triple = evaluate_paths(paths, rules(), date(2026, 11, 27), workers=3)
    assert single.findings, "the bundled practice has findings"
    assert single.patients == 200
    assert _json(double) == _json(single)
    assert _json(triple) == _json(single)
    assert [where for where, _ in problems] == [f"{broken}:1", f"{broken}:2"]
    for run in (double, triple):
        for line in (1, 2):
            assert sum(1 for s in run.skipped if s.source == f"{broken}:{line}") == 1
