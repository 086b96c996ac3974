"""The workflow API without a FHIR server: who is acting, and bad input refused before anything
is read or written (the FHIR base is a closed port, so any request to it would fail as a 503).
The person acting is named by an integration key's X-Acting-User (tests/web/api/test_api_security.py
covers personal tokens and the keys that may not name anyone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hrm_fhir.adapters.store.records import UserRecord, WorkflowEventRecord
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service
from tests.web.api.conftest import INTEGRATION, OPERATOR, READ
from tests.web.pages.fakes import review_item, worklist_entry

TASK = "/api/v1/tasks/hrm-abc"
UNUSABLE_HASH = "!"
"""API users never sign in to the pages: no password hash matches this."""


def add_user(
    app: Flask, username: str, role: str, practice: str | None = "org-1", active: bool = True
) -> dict[str, str]:
    """An account in the app's database; the headers that act as it with the integration key."""
    with service_state(app).sessions().begin() as session:
        session.add(
            UserRecord(
                username=username,
                display_name=username.title(),
                role=role,
                practice=practice,
                password_hash=UNUSABLE_HASH,
                active=active,
                created_at=datetime.now(UTC),
            )
        )
    return {**INTEGRATION, "X-Acting-User": username}


def _events(app: Flask) -> int:
    with service_state(app).sessions()() as session:
        return int(session.scalar(select(func.count()).select_from(WorkflowEventRecord)) or 0)


@pytest.fixture
def tech(app: Flask) -> dict[str, str]:
    return add_user(app, "tess", "technician")


def test_the_acting_user_must_be_named_known_and_active(app: Flask, client: FlaskClient) -> None:
    add_user(app, "gone", "pharmacist", active=False)
    body = {"version": "1", "medium": "sms", "outcome": "no-answer"}
    for headers in (
        INTEGRATION,
        {**INTEGRATION, "X-Acting-User": "nobody"},
        {**INTEGRATION, "X-Acting-User": "gone"},
        {**INTEGRATION, "X-Acting-User": ""},
    ):
        response = client.post(f"{TASK}/contacts", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json is not None
        assert "X-Acting-User" in response.json["message"]
    assert client.get("/api/v1/worklist", headers=READ).status_code == 401
    assert _events(app) == 0


def test_read_and_operator_keys_cannot_act(
    app: Flask, client: FlaskClient, tech: dict[str, str]
) -> None:
    body = {"version": "1", "medium": "sms", "outcome": "no-answer"}
    for key in (READ, OPERATOR):
        assert client.post(f"{TASK}/contacts", json=body, headers=key).status_code == 403
        named = {**key, "X-Acting-User": "tess"}
        assert client.post(f"{TASK}/contacts", json=body, headers=named).status_code == 403
    assert _events(app) == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("contacts", {"medium": "sms", "outcome": "no-answer"}, "version"),
        ("contacts", {"version": 3, "medium": "sms", "outcome": "no-answer"}, "version"),
        ("contacts", {"version": "3", "medium": "fax", "outcome": "no-answer"}, "medium"),
        ("contacts", {"version": "3", "medium": "sms"}, "outcome"),
        ("contacts", {"version": "3", "medium": "sms", "outcome": "booked", "extra": 1}, "extra"),
        ("contacts", {"version": "3", "medium": "sms", "outcome": "booked", "note": 5}, "note"),
        ("bookings", {"version": "3"}, "booked_for"),
        ("bookings", {"version": "3", "booked_for": "next week"}, "booked_for"),
        ("samples", {"version": "3", "taken_on": 20261127}, "taken_on"),
        ("signoff", {"version": "3", "decision": "pause"}, "decision"),
        ("signoff", {"version": "3", "decision": "dose-adjusted"}, "_schema"),
        ("signoff", {"version": "3", "decision": "continue", "repeat_on": "2026-12-01"}, "_schema"),
        ("non-engagement", {"version": "3", "decision": "continue"}, "decision"),
        ("route-to-pharmacist", {}, "version"),
    ],
)
def test_bad_bodies_are_a_400_naming_the_field(
    app: Flask,
    client: FlaskClient,
    tech: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = client.post(f"{TASK}/{path}", json=body, headers=tech)
    assert response.status_code == 400, response.json
    assert response.json is not None
    assert field in response.json["messages"]
    assert _events(app) == 0


def test_a_body_that_is_not_an_object_is_a_400(client: FlaskClient, tech: dict[str, str]) -> None:
    assert client.post(f"{TASK}/contacts", json=["sms"], headers=tech).status_code == 400
    response = client.post(
        f"{TASK}/contacts", data="{", headers={**tech, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_a_role_that_may_not_act_is_a_403_before_anything_is_read(
    app: Flask, client: FlaskClient, tech: dict[str, str]
) -> None:
    response = client.post(
        f"{TASK}/signoff", json={"version": "3", "decision": "continue"}, headers=tech
    )
    assert response.status_code == 403
    assert response.json == {
        "error": "forbidden",
        "message": "a technician may not sign off (allowed: admin, pharmacist)",
    }
    gp = add_user(app, "gwen", "gp")
    body = {"version": "3", "medium": "phone", "outcome": "booked"}
    assert client.post(f"{TASK}/contacts", json=body, headers=gp).status_code == 403
    pharmacist = add_user(app, "phil", "pharmacist")
    assert (
        client.post(
            "/api/v1/escalations/hrm-gp/acknowledge", json={"version": "1"}, headers=pharmacist
        ).status_code
        == 403
    )
    assert _events(app) == 0


def test_lists_of_another_practice_are_a_403(client: FlaskClient, tech: dict[str, str]) -> None:
    headers = tech
    for path in (
        "/api/v1/worklist?practice=org-2",
        "/api/v1/review-queue?practice=Organization/org-2",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 403
    assert client.get("/api/v1/worklist?stage=nowhere", headers=headers).status_code == 400
    assert (
        client.get(
            "/api/v1/worklist?as_of=2026-11-27&as_of=2026-11-28", headers=headers
        ).status_code
        == 400
    )


def test_the_lists_are_paged_with_their_total_and_links(
    client: FlaskClient, tech: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [worklist_entry(patient=f"Patient/p{n:03}") for n in range(150)]
    monkeypatch.setattr(service, "worklist", lambda *args, **kwargs: entries)
    monkeypatch.setattr(service, "review_queue", lambda *args, **kwargs: [review_item()] * 3)

    first = client.get("/api/v1/worklist?drug_group=lithium", headers=tech).json
    assert first is not None
    assert [e["patient"] for e in first["entries"]] == [f"Patient/p{n:03}" for n in range(100)]
    assert (first["total"], first["offset"], first["limit"]) == (150, 0, 100)
    assert first["links"] == {
        "self": "/api/v1/worklist?drug_group=lithium&offset=0&limit=100",
        "next": "/api/v1/worklist?drug_group=lithium&offset=100&limit=100",
        "prev": None,
    }
    second = client.get(first["links"]["next"], headers=tech).json
    assert second is not None
    assert [e["patient"] for e in second["entries"]] == [
        f"Patient/p{n:03}" for n in range(100, 150)
    ]
    assert (second["links"]["next"], second["links"]["prev"]) == (
        None,
        "/api/v1/worklist?drug_group=lithium&offset=0&limit=100",
    )
    queue = client.get("/api/v1/review-queue?limit=2&offset=2", headers=tech).json
    assert queue is not None
    assert (len(queue["items"]), queue["total"], queue["links"]["next"]) == (1, 3, None)
    for bad in ("limit=0", "limit=501", "offset=-1", "limit=ten"):
        assert client.get(f"/api/v1/worklist?{bad}", headers=tech).status_code == 400


SHARED = "/api/v1/patients/p-1/monitored-elsewhere"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"monitored_by": "Oakfield", "review_on": "2027-01-01"}, "drug_group"),
        ({"drug_group": "Lithium!", "monitored_by": "x", "review_on": "2027-01-01"}, "drug_group"),
        ({"drug_group": "lithium", "review_on": "2027-01-01"}, "monitored_by"),
        ({"drug_group": "lithium", "monitored_by": "", "review_on": "2027-01-01"}, "monitored_by"),
        (
            {"drug_group": "lithium", "monitored_by": "x" * 201, "review_on": "2027-01-01"},
            "monitored_by",
        ),
        ({"drug_group": "lithium", "monitored_by": "Oakfield"}, "review_on"),
        ({"drug_group": "lithium", "monitored_by": "Oakfield", "review_on": "soon"}, "review_on"),
        (
            {"drug_group": "lithium", "monitored_by": "x", "review_on": "2027-01-01", "version": 2},
            "version",
        ),
    ],
)
def test_a_bad_monitored_elsewhere_body_is_a_400_naming_the_field(
    app: Flask, client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    pharmacist = add_user(app, "phil", "pharmacist")
    response = client.post(SHARED, json=body, headers=pharmacist)
    assert response.status_code == 400, response.json
    assert response.json is not None
    assert field in response.json["messages"]
    assert _events(app) == 0


def test_only_a_pharmacist_records_who_monitors(
    app: Flask, client: FlaskClient, tech: dict[str, str]
) -> None:
    body = {"drug_group": "lithium", "monitored_by": "Oakfield CMHT", "review_on": "2027-01-01"}
    response = client.post(SHARED, json=body, headers=tech)
    assert response.status_code == 403
    assert response.json is not None
    assert "may not record that another organisation monitors" in response.json["message"]
    back = client.post(
        "/api/v1/patients/p-1/monitored-by-practice", json={"drug_group": "lithium"}, headers=tech
    )
    assert back.status_code == 403
    assert _events(app) == 0
