"""The workflow API against a real HAPI FHIR server: the lists, an action, and each refusal (unknown
Task, stale version, another practice, a role that may not, a key that may not name a person)
changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.web.app import create_app
from hrm_fhir.web.state import service_state
from tests.integration.practice import AS_OF, Practice, starter
from tests.integration.test_api_hapi import _upload
from tests.web.api.conftest import KEYS, OPERATOR, READ
from tests.web.api.test_api_workflow import add_user

pytestmark = pytest.mark.hapi


@pytest.fixture
def practice(fhir_base: str, run_id: str) -> Practice:
    practice = Practice(run_id)
    _upload(fhir_base, starter(practice))
    return practice


@pytest.fixture
def app(fhir_base: str, practice: Practice, database_url: str) -> Iterator[Flask]:
    """The workflow API on SQLite and on PostgreSQL."""
    app = create_app(
        {
            "TESTING": True,
            "fhir_base_url": fhir_base,
            "database_url": database_url,
            "practice": practice.org,
            "api_keys": KEYS,
            "SWEEP_BACKGROUND": False,
        }
    )
    yield app
    service_state(app).close(timeout=120)


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.json
    return response.json


def test_lists_and_actions_through_the_api(app: Flask, practice: Practice, fhir_base: str) -> None:
    client: FlaskClient = app.test_client()
    swept = client.post("/api/v1/sweeps", headers=OPERATOR, json={"as_of": AS_OF.isoformat()})
    assert swept.status_code == 202
    tech = add_user(app, "tess", "technician", practice=practice.org)
    pharmacist = add_user(app, "phil", "pharmacist", practice=practice.org)
    stranger = add_user(app, "olga", "technician", practice="another-org")
    add_user(app, "ada", "admin", practice=None)
    as_tech = tech

    worklist = _ok(client.get(f"/api/v1/worklist?as_of={AS_OF}", headers=as_tech))
    [entry] = [e for e in worklist["entries"] if e["patient"].endswith("-mtx")]
    assert (entry["stage"], entry["priority"], entry["next_chase"]) == (
        "to-contact",
        "severely overdue",
        "invite",
    )
    [task] = entry["tasks"]
    task_id, version = task["task_id"], task["version"]
    gateway = FHIRGateway(fhir_base)

    def unchanged() -> None:
        found = gateway.read("Task", task_id)
        assert found is not None
        assert found["meta"]["versionId"] == version
        assert len(
            _ok(
                client.get(
                    f"/api/v1/patients/{practice.pid('mtx')}/card?as_of={AS_OF}", headers=as_tech
                )
            )["contacts"]
        ) == len(done)

    done: list[Any] = []
    contact = {"version": version, "medium": "phone", "outcome": "no-answer", "note": "rang twice"}
    refusals = [
        (f"/api/v1/tasks/{practice.run}-missing/contacts", contact, tech, 404, "no Task"),
        (f"/api/v1/tasks/{task_id}/contacts", {**contact, "version": "77"}, tech, 409, "reload it"),
        (f"/api/v1/tasks/{task_id}/contacts", contact, stranger, 404, f"no Task {task_id}"),
        (  # issue 11: an operator key naming a pharmacist signed off as them
            f"/api/v1/tasks/{task_id}/signoff",
            {"version": version, "decision": "continue"},
            {**OPERATOR, "X-Acting-User": "phil"},
            403,
            "only an integration key may name a user",
        ),
        (
            f"/api/v1/tasks/{task_id}/signoff",
            {"version": version, "decision": "continue"},
            tech,
            403,
            "may not sign off",
        ),
        (
            f"/api/v1/tasks/{task_id}/signoff",
            {"version": version, "decision": "continue"},
            pharmacist,
            409,
            "stage to-contact",
        ),
        (
            f"/api/v1/escalations/{task_id}/acknowledge",
            {"version": version},
            add_user(app, "gwen", "gp", practice=None),
            409,
            "not a GP escalation",
        ),
    ]
    for path, body, headers, status, message in refusals:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, response.json)
        assert message in response.json["message"]
        unchanged()

    result = _ok(client.post(f"/api/v1/tasks/{task_id}/contacts", json=contact, headers=tech))
    done.append(result)
    assert (result["task_id"], result["stage"], result["version"]) == (
        task_id,
        "invited",
        str(int(version) + 1),
    )
    assert any(w.startswith("Communication/") for w in result["written"])
    again = _ok(client.post(f"/api/v1/tasks/{task_id}/contacts", json=contact, headers=tech))
    assert again == result, "a double submit is answered, not written twice"
    other = {**contact, "outcome": "booked"}
    stale = client.post(f"/api/v1/tasks/{task_id}/contacts", json=other, headers=tech)
    assert stale.status_code == 409, "another request on the old version is stale"

    card = _ok(
        client.get(f"/api/v1/patients/{practice.pid('mtx')}/card?as_of={AS_OF}", headers=as_tech)
    )
    assert set(card["details"]) == {"name", "nhs_number", "phone", "preferred_contact"}
    assert [c["outcome"] for c in card["contacts"]] == ["no-answer"]
    assert card["tests_due"][0]["stage"] == "invited"
    card_url = f"/api/v1/patients/{practice.pid('mtx')}/card"
    hidden = client.get(card_url, headers=stranger)
    missing = client.get(f"/api/v1/patients/{practice.run}-nobody/card", headers=stranger)
    assert (hidden.status_code, hidden.json) == (missing.status_code, missing.json)
    assert hidden.status_code == 404, "another practice's patient is answered as none"
    # issue 11: a read key naming an admin read another practice's patient card
    assert client.get(card_url, headers={**READ, "X-Acting-User": "ada"}).status_code == 403

    queue = _ok(client.get("/api/v1/review-queue", headers=pharmacist))
    assert queue["items"][0]["kind"] == "flag"
    assert queue["items"][0]["severity"] == "urgent"
    assert queue["items"][0]["thresholds"]
    gateway.close()


def test_who_monitors_through_the_api(app: Flask, practice: Practice, fhir_base: str) -> None:
    client: FlaskClient = app.test_client()
    assert (
        client.post("/api/v1/sweeps", headers=OPERATOR, json={"as_of": AS_OF.isoformat()})
    ).status_code == 202
    pharmacist = add_user(app, "phil", "pharmacist", practice=practice.org)
    stranger = add_user(app, "olga", "pharmacist", practice="another-org")
    path = f"/api/v1/patients/{practice.pid('mtx')}/monitored-elsewhere"
    review = (date.today() + timedelta(days=60)).isoformat()
    body = {
        "drug_group": "methotrexate",
        "monitored_by": "Oakfield rheumatology",
        "review_on": review,
    }

    hidden = client.post(path, json=body, headers=stranger)
    nobody = f"/api/v1/patients/{practice.run}-nobody/monitored-elsewhere"
    missing = client.post(nobody, json=body, headers=pharmacist)
    assert (hidden.status_code, hidden.json) == (missing.status_code, missing.json)
    assert hidden.status_code == 404, "another practice's patient is answered as none"
    unknown = client.post(path, json={**body, "drug_group": "aspirin"}, headers=pharmacist)
    assert unknown.status_code == 409
    assert "no drug group 'aspirin'" in unknown.json["message"]

    first = _ok(client.post(path, json=body, headers=pharmacist))
    assert first["stage"] == "monitored-elsewhere"
    assert any(w.startswith("Provenance/") for w in first["written"])
    assert sum(w.startswith("Task/") for w in first["written"]) == 2, "arrangement + routine"
    again = client.post(path, json=body, headers=pharmacist)
    assert again.status_code == 200, "a double submit is answered, not written twice"
    assert again.json == first
    new_page = client.post(path, json={**body, "note": "from a stale page"}, headers=pharmacist)
    assert new_page.status_code == 409, "the arrangement exists: send its version"
    renewed = _ok(
        client.post(
            path, json={**body, "version": first["version"], "note": "renewed"}, headers=pharmacist
        )
    )
    back = _ok(
        client.post(
            f"/api/v1/patients/{practice.pid('mtx')}/monitored-by-practice",
            json={"drug_group": "methotrexate", "version": renewed["version"]},
            headers=pharmacist,
        )
    )
    assert back["stage"] == "monitored-by-practice"
