"""``hrm-fhir export`` against the real HAPI sandbox, whose Bulk Data export is enabled: system,
group and patient level, ``--since``, and the manifest's checksums of what arrived."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir.adapters.fhir.bulk_job import MANIFEST
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.cli.main import main
from tests.integration.practice import AS_OF, LITHIUM, Practice, Resource, starter

pytestmark = pytest.mark.hapi
RECORD = "Patient,MedicationRequest,Observation"


@pytest.fixture
def gateway(fhir_base: str) -> Iterator[FHIRGateway]:
    gw = FHIRGateway(fhir_base)
    yield gw
    gw.close()


def upload(gateway: FHIRGateway, resources: list[Resource]) -> None:
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources
    ]
    reply = gateway.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert all(e["response"]["status"].startswith("2") for e in reply["entry"])


def export(fhir_base: str, out: Path, *options: str) -> dict[str, Any]:
    """Run the command; its manifest."""
    args = ["export", "--fhir-base", fhir_base, "--out", str(out), "--poll-ceiling", "2"]
    result = CliRunner().invoke(main, [*args, *options])
    assert result.exit_code == 0, result.output
    manifest: dict[str, Any] = orjson.loads((out / MANIFEST).read_bytes())
    return manifest


def exported(out: Path, manifest: dict[str, Any]) -> dict[tuple[str, str], Resource]:
    """Every resource in the output files, by type and id."""
    found: dict[tuple[str, str], Resource] = {}
    for record in manifest["output"]:
        for line in (out / record["file"]).read_bytes().splitlines():
            resource = orjson.loads(line)
            found[(resource["resourceType"], resource["id"])] = resource
    return found


def keys(resources: list[Resource]) -> set[tuple[str, str]]:
    return {(r["resourceType"], r["id"]) for r in resources}


def ours(found: dict[tuple[str, str], Resource], run_id: str) -> set[tuple[str, str]]:
    return {key for key in found if key[1].startswith(run_id)}


def group(practice: Practice, *names: str) -> Resource:
    members = [{"entity": {"reference": f"Patient/{practice.pid(name)}"}} for name in names]
    return {
        "resourceType": "Group",
        "id": f"{practice.run}-group",
        "type": "person",
        "actual": True,
        "member": members,
    }


def test_a_system_export_gives_every_resource_of_the_loaded_practice(
    fhir_base: str, gateway: FHIRGateway, run_id: str, tmp_path: Path
) -> None:
    loaded = starter(Practice(run_id))
    upload(gateway, loaded)

    manifest = export(fhir_base, tmp_path / "out", "--type", f"{RECORD},Organization")
    found = exported(tmp_path / "out", manifest)

    assert ours(found, run_id) == keys(loaded)
    for resource in loaded:
        kind, id_ = resource["resourceType"], resource["id"]
        assert found[(kind, id_)] == gateway.read(kind, id_)  # as the server holds it
    for record in manifest["output"]:
        body = (tmp_path / "out" / record["file"]).read_bytes()
        assert record["sha256"] == hashlib.sha256(body).hexdigest()
        assert record["lines"] == len(body.splitlines())
    assert manifest["status"] == "complete"
    assert manifest["job"] in ("deleted", "gone")


def test_a_group_export_gives_its_members_records_only(
    fhir_base: str, gateway: FHIRGateway, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    loaded = starter(practice)
    upload(gateway, [*loaded, group(practice, "mtx", "lith")])
    members = {practice.pid("mtx"), practice.pid("lith")}

    manifest = export(fhir_base, tmp_path / "out", "--group", f"{run_id}-group", "--type", RECORD)
    found = exported(tmp_path / "out", manifest)

    expected = {
        (r["resourceType"], r["id"])
        for r in loaded
        if r["resourceType"] != "Organization"
        and (r["id"] in members or r.get("subject", {}).get("reference", "")[8:] in members)
    }
    assert set(found) == expected
    assert manifest["level"] == "group"


def test_since_gives_only_what_changed_after_the_last_export(
    fhir_base: str, gateway: FHIRGateway, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    loaded = starter(practice)
    upload(gateway, [*loaded, group(practice, "mtx", "lith", "opioid", "statin")])
    first = export(fhir_base, tmp_path / "first", "--group", f"{run_id}-group", "--type", RECORD)
    lith = next(r for r in loaded if r["id"] == practice.pid("lith"))
    changed = [
        {**lith, "birthDate": "1970-05-06"},
        practice.result("mtx", LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=1)),
    ]
    upload(gateway, changed)

    since = export(
        fhir_base,
        tmp_path / "since",
        "--group",
        f"{run_id}-group",
        "--type",
        RECORD,
        "--since",
        first["transaction_time"],
    )

    assert set(exported(tmp_path / "since", since)) == keys(changed)
    assert len(exported(tmp_path / "first", first)) == len(loaded) - 1  # all but the practice


def test_a_patient_level_export_of_named_patients(
    fhir_base: str, gateway: FHIRGateway, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    loaded = starter(practice)
    upload(gateway, loaded)

    manifest = export(
        fhir_base, tmp_path / "out", "--patient", practice.pid("opioid"), "--type", RECORD
    )

    found = exported(tmp_path / "out", manifest)
    assert {r["id"] for r in found.values() if r["resourceType"] == "Patient"} == {
        practice.pid("opioid")
    }
    assert {r["subject"]["reference"] for r in found.values() if "subject" in r} == {
        f"Patient/{practice.pid('opioid')}"
    }


def test_a_terminated_export_deletes_its_job_and_says_so(
    fhir_base: str, gateway: FHIRGateway, run_id: str, tmp_path: Path
) -> None:
    upload(gateway, starter(Practice(run_id)))
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("hrm-fhir")), "export", "--fhir-base", fhir_base]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--type", RECORD, "--poll-ceiling", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # kicked off; HAPI takes 10 s or more to finish any job
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)

    manifest = orjson.loads((out / MANIFEST).read_bytes())
    assert process.returncode != 0
    assert (manifest["status"], manifest["job"]) == ("interrupted", "deleted")
    assert manifest["output"] == []
