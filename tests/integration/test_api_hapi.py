"""The HTTP API against a real HAPI FHIR server: readiness, live patient monitoring, sweeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.web.app import create_app
from hrm_fhir.web.state import service_state
from tests.integration.practice import AS_OF, Practice, Resource, starter

pytestmark = pytest.mark.hapi

READ = {"X-API-Key": "read-key"}
OPERATOR = {"X-API-Key": "operator-key"}


def _upload(base: str, resources: list[Resource]) -> None:
    gateway = FHIRGateway(base)
    try:
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ]
        reply = gateway.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
    finally:
        gateway.close()
    assert all(e["response"]["status"].startswith("2") for e in reply["entry"])


@pytest.fixture
def practice(fhir_base: str, run_id: str) -> Practice:
    practice = Practice(run_id)
    _upload(fhir_base, starter(practice))
    return practice


def _app(fhir_base: str, practice: Practice, tmp_path: Path, **config: object) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "fhir_base_url": fhir_base,
            "database_url": f"sqlite:///{tmp_path / 'hrm.db'}",
            "practice": practice.org,
            "api_keys": {"read-key": "read", "operator-key": "operator"},
            **config,
        }
    )


@pytest.fixture
def app(fhir_base: str, practice: Practice, tmp_path: Path) -> Iterator[Flask]:
    app = _app(fhir_base, practice, tmp_path, SWEEP_BACKGROUND=False)
    yield app
    service_state(app).close(timeout=120)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _monitoring(client: FlaskClient, practice: Practice, name: str) -> dict[str, object]:
    response = client.get(
        f"/api/v1/patients/{practice.pid(name)}/monitoring?as_of={AS_OF}", headers=READ
    )
    assert response.status_code == 200, response.json
    assert isinstance(response.json, dict)
    return response.json


def test_ready_when_database_and_server_answer(client: FlaskClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json == {"database": "ok", "fhir": "ok"}


def test_patient_monitoring_is_evaluated_live(client: FlaskClient, practice: Practice) -> None:
    mtx = _monitoring(client, practice, "mtx")
    assert mtx["patient"] == f"Patient/{practice.pid('mtx')}"
    assert mtx["as_of"] == AS_OF.isoformat()
    [therapy] = mtx["therapies"]  # type: ignore[misc]
    assert therapy["drug_group"] == "methotrexate"
    assert therapy["current"] is True
    assert therapy["medication"].startswith("MedicationRequest/")
    kinds = {(f["drug_group"], f["kind"]) for f in mtx["findings"]}  # type: ignore[attr-defined]
    assert ("methotrexate", "overdue") in kinds
    assert mtx["open_tasks"] == []
    assert mtx["skipped"] == []
    lith = _monitoring(client, practice, "lith")
    assert any(
        f["kind"] == "out_of_range" and f["severity"] == "urgent"
        for f in lith["findings"]  # type: ignore[attr-defined]
    )
    statin = _monitoring(client, practice, "statin")
    assert (statin["therapies"], statin["findings"]) == ([], [])


def test_an_unknown_patient_is_404(client: FlaskClient, practice: Practice) -> None:
    response = client.get(f"/api/v1/patients/{practice.pid('nobody')}/monitoring", headers=READ)
    assert response.status_code == 404


def test_a_sweep_started_through_the_api_writes_back_and_fills_the_ledger(
    client: FlaskClient, practice: Practice
) -> None:
    started = client.post("/api/v1/sweeps", headers=OPERATOR, json={"as_of": AS_OF.isoformat()})
    assert started.status_code == 202, started.json
    assert started.json is not None
    sweep_id = started.json["sweep"]
    assert started.json["status"] == "completed"
    sweep = client.get(f"/api/v1/sweeps/{sweep_id}", headers=READ).json
    assert sweep is not None
    assert (sweep["status"], sweep["mode"], sweep["scope"]) == (
        "completed",
        "full",
        f"Organization/{practice.org}",
    )
    assert sweep["created"] >= 4
    assert sweep["errors"] == 0
    rows = client.get(f"/api/v1/findings?practice={practice.org}&state=open", headers=READ).json
    assert rows is not None
    assert len(rows["findings"]) == sweep["created"]
    assert {r["resource_type"] for r in rows["findings"]} == {"Task", "Flag"}
    urgent = client.get("/api/v1/findings?severity=urgent", headers=READ).json
    assert urgent is not None
    assert [r["patient"] for r in urgent["findings"]] == [f"Patient/{practice.pid('lith')}"]
    mtx = _monitoring(client, practice, "mtx")
    assert {t["drug_group"] for t in mtx["open_tasks"]} == {"methotrexate"}  # type: ignore[attr-defined]
    again = client.post("/api/v1/sweeps", headers=OPERATOR, json={"as_of": AS_OF.isoformat()})
    assert again.json is not None
    second = client.get(f"/api/v1/sweeps/{again.json['sweep']}", headers=READ).json
    assert second is not None
    assert (second["mode"], second["created"], second["updated"]) == ("incremental", 0, 0)


def test_a_background_sweep_uses_the_live_runner(
    fhir_base: str, practice: Practice, tmp_path: Path
) -> None:
    app = _app(fhir_base, practice, tmp_path)
    client = app.test_client()
    try:
        body = {"as_of": AS_OF.isoformat(), "dry_run": True}
        started = client.post("/api/v1/sweeps", headers=OPERATOR, json=body)
        assert started.status_code == 202
        assert started.json == {"sweep": None, "status": "started"}
        service_state(app).sweeps.join(120)
        listed = client.get("/api/v1/sweeps", headers=READ).json
        assert listed is not None
        [sweep] = listed["sweeps"]
        assert (sweep["status"], sweep["dry_run"]) == ("completed", True)
        assert client.get("/api/v1/findings", headers=READ).json == {"findings": []}
    finally:
        service_state(app).close(timeout=120)


def test_a_key_bound_to_a_practice_sees_only_its_patients(
    fhir_base: str, practice: Practice, tmp_path: Path
) -> None:
    """Issue 11: a read key read any practice's patient monitoring. Bound to a practice, it gets
    its own patients; another practice's patient is a 404 exactly like a patient that does not
    exist."""
    keys = {"own-key": f"read:{practice.org}", "other-key": "read:another-practice"}
    app = _app(fhir_base, practice, tmp_path, api_keys=keys)
    client = app.test_client()
    try:
        url = f"/api/v1/patients/{practice.pid('mtx')}/monitoring?as_of={AS_OF}"
        own = client.get(url, headers={"X-API-Key": "own-key"})
        assert own.status_code == 200, own.json
        assert own.headers["Cache-Control"] == "no-store"
        hidden = client.get(url, headers={"X-API-Key": "other-key"})
        missing = client.get(
            f"/api/v1/patients/{practice.run}-nobody/monitoring", headers={"X-API-Key": "other-key"}
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json == missing.json
    finally:
        service_state(app).close(timeout=30)
