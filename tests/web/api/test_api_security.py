"""Issue 11 through Flask's test client: who may name a person, personal tokens, keys bound to a
practice, and the guards on every API response (headers, body size, JSON depth). Each test
starts from the request that the issue reported getting through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hrm_fhir.adapters.store.credentials import issue_token, revoke_tokens
from hrm_fhir.adapters.store.records import WorkflowEventRecord
from hrm_fhir.adapters.store.users import disable_user
from hrm_fhir.web.state import service_state
from tests.apps import AppFactory
from tests.web.api.conftest import INTEGRATION, INTEGRATION_KEY, KEYS, OPERATOR, READ
from tests.web.api.test_api_findings import four_findings  # noqa: F401 - the findings fixture
from tests.web.api.test_api_workflow import add_user

TASK = "/api/v1/tasks/hrm-abc"
CONTACT = {"version": "1", "medium": "sms", "outcome": "no-answer"}


def _events(app: Flask) -> int:
    with service_state(app).sessions()() as session:
        return int(session.scalar(select(func.count()).select_from(WorkflowEventRecord)) or 0)


def _token(app: Flask, username: str, **options: Any) -> str:
    with service_state(app).sessions().begin() as session:
        token, _ = issue_token(session, username, days=options.pop("days", 1), **options)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ naming a person


def test_an_operator_key_naming_a_pharmacist_cannot_sign_off(
    app: Flask, client: FlaskClient
) -> None:
    add_user(app, "phil", "pharmacist")
    response = client.post(
        f"{TASK}/signoff",
        json={"version": "3", "decision": "continue"},
        headers={**OPERATOR, "X-Acting-User": "phil"},
    )
    assert response.status_code == 403
    assert response.json is not None
    assert "only an integration key may name a user" in response.json["message"]
    assert _events(app) == 0


def test_a_read_key_naming_an_admin_gets_no_patient_card(app: Flask, client: FlaskClient) -> None:
    add_user(app, "ada", "admin", practice=None)
    response = client.get("/api/v1/patients/p1/card", headers={**READ, "X-Acting-User": "ada"})
    assert response.status_code == 403
    assert (
        client.get("/api/v1/findings", headers={**READ, "X-Acting-User": "ada"}).status_code == 403
    )


def test_an_integration_key_acts_for_the_user_it_names(app: Flask, client: FlaskClient) -> None:
    add_user(app, "tess", "technician")
    headers = {**INTEGRATION, "X-Acting-User": "tess"}
    # past authentication and the role check: the body is what is wrong
    assert client.post(f"{TASK}/contacts", json={}, headers=headers).status_code == 400
    assert client.post("/api/v1/sweeps", json={}, headers=INTEGRATION).status_code == 403


def test_a_bound_integration_key_keeps_to_its_practice(
    make_app: AppFactory,
) -> None:
    app = make_app(api_keys={**KEYS, "bound-integration": "integration:org-1"})
    client = app.test_client()
    add_user(app, "tess", "technician", practice="org-2")
    add_user(app, "ada", "admin", practice=None)
    key = {"X-API-Key": "bound-integration"}
    stranger = client.post(f"{TASK}/contacts", json={}, headers={**key, "X-Acting-User": "tess"})
    assert stranger.status_code == 403
    admin = {**key, "X-Acting-User": "ada"}
    assert client.get("/api/v1/worklist?practice=org-2", headers=admin).status_code == 403


# ------------------------------------------------------------------ personal tokens


def test_a_personal_token_acts_as_its_user_only(app: Flask, client: FlaskClient) -> None:
    add_user(app, "tess", "technician")
    token = _token(app, "tess", label="laptop")
    assert token.startswith("hrmu_")
    assert client.post(f"{TASK}/contacts", json={}, headers=bearer(token)).status_code == 400
    signoff = client.post(
        f"{TASK}/signoff", json={"version": "3", "decision": "continue"}, headers=bearer(token)
    )
    assert signoff.status_code == 403, "the token's user is a technician"
    assert client.post("/api/v1/sweeps", json={}, headers=bearer(token)).status_code == 403
    named = {**bearer(token), "X-Acting-User": "phil"}
    assert client.get("/api/v1/findings", headers=named).status_code == 403
    both = {**bearer(token), **READ}
    assert client.get("/api/v1/findings", headers=both).status_code == 401
    assert _events(app) == 0


def test_only_the_digest_of_a_token_is_stored(app: Flask) -> None:
    add_user(app, "tess", "technician")
    token = _token(app, "tess")
    with service_state(app).sessions()() as session:
        from hrm_fhir.adapters.store.records import UserTokenRecord

        [stored] = session.scalars(select(UserTokenRecord)).all()
    assert token not in stored.digest
    assert len(stored.digest) == 64


@pytest.mark.parametrize("ending", ["revoked", "expired", "disabled", "unknown", "api key"])
def test_a_revoked_expired_or_foreign_token_is_a_401(
    app: Flask, client: FlaskClient, ending: str
) -> None:
    add_user(app, "tess", "technician")
    token = _token(app, "tess")
    assert client.get("/api/v1/findings", headers=bearer(token)).status_code == 200
    with service_state(app).sessions().begin() as session:
        if ending == "revoked":
            revoke_tokens(session, "tess")
        elif ending == "disabled":
            disable_user(session, "tess")
        elif ending == "expired":
            three_days_ago = datetime.now(UTC) - timedelta(days=3)
            token, _ = issue_token(session, "tess", days=1, now=three_days_ago)
        elif ending == "unknown":
            token = token[:-2] + ("xx" if not token.endswith("xx") else "yy")
        else:
            token = INTEGRATION_KEY
    response = client.get("/api/v1/findings", headers=bearer(token))
    assert response.status_code == 401
    challenges = response.headers.getlist("WWW-Authenticate")
    assert any(c.startswith("Bearer") for c in challenges), challenges


# ------------------------------------------------------------------ keys bound to a practice


@pytest.fixture
def bound(make_app: AppFactory) -> Flask:
    return make_app(
        api_keys={**KEYS, "gp1-key": "read:gp1", "gp1-operator": "operator:gp1"}, practice=""
    )


@pytest.mark.usefixtures("four_findings")
def test_a_bound_key_lists_only_its_practice_s_findings(bound: Flask, app: Flask) -> None:
    # the four_findings fixture filled ``app``'s database, which ``bound`` shares
    client = bound.test_client()
    key = {"X-API-Key": "gp1-key"}
    rows = client.get("/api/v1/findings", headers=key).json
    assert rows is not None
    assert {r["practice"] for r in rows["findings"]} == {"Organization/gp1"}
    assert client.get("/api/v1/findings?practice=gp1", headers=key).status_code == 200
    assert client.get("/api/v1/findings?practice=gp2", headers=key).status_code == 403
    every = client.get("/api/v1/findings", headers=READ).json
    assert every is not None
    assert {r["practice"] for r in every["findings"]} == {"Organization/gp1", "Organization/gp2"}


def test_a_bound_key_reads_only_its_practice_s_report(bound: Flask) -> None:
    client = bound.test_client()
    key = {"X-API-Key": "gp1-key"}
    assert client.get("/api/v1/reports/monthly?month=2026-10", headers=key).status_code == 200
    assert (
        client.get("/api/v1/reports/monthly?month=2026-10&practice=gp2", headers=key).status_code
        == 403
    )
    assert (
        client.get("/api/v1/reports/monthly?month=2026-10&pcn=north", headers=key).status_code
        == 403
    )


def test_a_bound_key_sees_only_its_practice_s_sweeps_and_cannot_start_a_whole_server_one(
    bound: Flask,
) -> None:
    from tests.adapters.store.examples import start

    with service_state(bound).sessions().begin() as session:
        ids = {scope: start(session, scope=scope).id for scope in ("all", "Organization/gp1")}
        other = start(session, scope="Organization/gp2").id
    client = bound.test_client()
    key = {"X-API-Key": "gp1-key"}
    listed = client.get("/api/v1/sweeps", headers=key).json
    assert listed is not None
    assert {s["id"] for s in listed["sweeps"]} == set(ids.values())
    assert client.get(f"/api/v1/sweeps/{other}", headers=key).status_code == 404
    assert client.get(f"/api/v1/sweeps/{other}", headers=READ).status_code == 200
    started = client.post("/api/v1/sweeps", json={}, headers={"X-API-Key": "gp1-operator"})
    assert started.status_code == 403


# ------------------------------------------------------------------ every response


def test_api_responses_are_not_cached_sniffed_or_scripted(app: Flask, client: FlaskClient) -> None:
    for response in (
        client.get("/api/v1/findings", headers=READ),
        client.get("/api/v1/findings"),
        client.get("/api/v1/nothing", headers=READ),
        client.get("/api/v1/reports/monthly?month=2026-10&practice=gp1&format=html", headers=READ),
    ):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script" not in csp
    html = client.get(
        "/api/v1/reports/monthly?month=2026-10&practice=gp1&format=html", headers=READ
    )
    assert html.mimetype == "text/html"
    assert "style-src 'unsafe-inline'" in html.headers["Content-Security-Policy"]


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=10_000)
    add_user(app, "tess", "technician")
    client = app.test_client()
    headers = {**INTEGRATION, "X-Acting-User": "tess"}
    big = {"version": "1", "medium": "sms", "outcome": "no-answer", "note": "x" * 20_000}
    response = client.post(f"{TASK}/contacts", json=big, headers=headers)
    assert response.status_code == 413
    assert response.json is not None
    assert response.json["error"] == "request entity too large"


def test_deeply_nested_json_is_a_400_not_a_500(app: Flask, client: FlaskClient) -> None:
    add_user(app, "tess", "technician")
    headers = {**INTEGRATION, "X-Acting-User": "tess", "Content-Type": "application/json"}
    for body in ("[" * 100_000 + "]" * 100_000, '{"version": NaN}'):
        response = client.post(f"{TASK}/contacts", data=body, headers=headers)
        assert response.status_code == 400
    response = client.post(
        "/api/v1/sweeps",
        data="[" * 100_000,
        headers={**OPERATOR, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
