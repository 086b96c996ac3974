"""``hrm-fhir load`` against a real HAPI FHIR server: transactions on several connections, in
waves, idempotent, every refusal reported per resource, nothing lost."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.upload import load_paths
from hrm_fhir.cli.main import main
from tests.integration.practice import AS_OF, EGFR, Practice, Resource

pytestmark = pytest.mark.hapi


def _ndjson(folder: Path, name: str, resources: list[Resource]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    return path


def _practice(practice: Practice, patients: int) -> list[Resource]:
    """Records in the order an export writes them: results before the patients they name."""
    people = [practice.patient(f"p{i}") for i in range(patients)]
    results = [practice.result(f"p{i}", EGFR, 80 + i, "mL/min", AS_OF) for i in range(patients)]
    return [*results, *people, practice.organization()]


def _versions(gateway: FHIRGateway, resources: list[Resource]) -> dict[str, str | None]:
    found = {}
    for r in resources:
        read = gateway.read(r["resourceType"], r["id"])
        found[f"{r['resourceType']}/{r['id']}"] = (read or {}).get("meta", {}).get("versionId")
    return found


def test_load_sends_everything_in_waves_and_a_reload_changes_nothing(
    fhir_base: str, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    resources = _practice(practice, 7)
    _ndjson(tmp_path, "all.ndjson", resources)
    gateway = FHIRGateway(fhir_base)
    try:
        first = load_paths(gateway, [tmp_path], chunk_size=3, workers=3)
        versions = _versions(gateway, resources)
        again = load_paths(gateway, [tmp_path], chunk_size=3, workers=3)
        assert _versions(gateway, resources) == versions
    finally:
        gateway.close()
    assert (first.sent, first.failed, first.retried, first.errors) == (15, 0, 0, [])
    assert set(versions.values()) == {"1"}
    assert (again.sent, again.failed) == (15, 0)
    # transactions: one Bundle per chunk (the organization, 7 patients, 7 results by 3)
    assert first.bundles == 1 + 3 + 3


def test_a_refused_resource_is_reported_with_its_reason_and_the_rest_of_its_chunk_is_loaded(
    fhir_base: str, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    good = _practice(practice, 2)
    orphan = practice.result("nobody", EGFR, 50, "mL/min", AS_OF)
    path = _ndjson(tmp_path, "records.ndjson", [orphan, *good])
    gateway = FHIRGateway(fhir_base)
    try:
        report = load_paths(gateway, [path], chunk_size=10, workers=2)
        loaded = _versions(gateway, good)
        missing = gateway.read("Observation", orphan["id"])
    finally:
        gateway.close()
    assert (report.sent, report.failed, report.retried) == (6, 1, 1)
    assert set(loaded.values()) == {"1"}
    assert missing is None
    [error] = report.errors
    assert error.startswith(f"{path}:1: 400")
    assert f"Patient/{practice.pid('nobody')}" in error


def test_a_resource_pointing_at_one_loaded_beside_it_is_sent_again_and_loaded(
    fhir_base: str, run_id: str, tmp_path: Path
) -> None:
    """An Observation naming another (``hasMember``) that a later chunk of the same wave
    carries is refused at first, then loaded by the retry after the last wave."""
    practice = Practice(run_id)
    people = [practice.patient("p0"), practice.organization()]
    member = practice.result("p0", EGFR, 70, "mL/min", AS_OF)
    panel: dict[str, Any] = {
        **practice.result("p0", EGFR, 71, "mL/min", date(2026, 11, 20)),
        "hasMember": [{"reference": f"Observation/{member['id']}"}],
    }
    _ndjson(tmp_path, "records.ndjson", [*people, panel, member])
    gateway = FHIRGateway(fhir_base)
    try:
        report = load_paths(gateway, [tmp_path], chunk_size=1, workers=1)
        stored = gateway.read("Observation", panel["id"])
    finally:
        gateway.close()
    assert (report.sent, report.failed, report.retried) == (4, 0, 1)
    assert stored is not None
    assert stored["hasMember"] == panel["hasMember"]


def test_the_load_command_prints_a_summary_and_fails_when_a_resource_is_refused(
    fhir_base: str, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    orphan = practice.result("nobody", EGFR, 50, "mL/min", AS_OF)
    _ndjson(tmp_path, "a.ndjson", [*_practice(practice, 1), orphan])
    result = CliRunner().invoke(
        main, ["load", "--fhir-base", fhir_base, "--format", "summary", str(tmp_path)]
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("loaded 3 of 4 resources in ")
    assert lines[0].endswith("; 1 refused")
    assert lines[1].startswith(f"- refused {tmp_path / 'a.ndjson'}:4: 400")
