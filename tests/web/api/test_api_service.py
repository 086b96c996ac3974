"""Probes, authentication and the JSON error handlers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.errors import FHIRFatalError, FHIRTemporaryError
from hrm_fhir.sweep.run import SweepBusyError
from hrm_fhir.web.api.openapi import build_document
from tests.web.api.conftest import OPERATOR, READ, AppFactory

PUBLIC = {"/health", "/ready", "/api/v1/openapi.json"}


def _protected_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, example URL) for every route that needs a key."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in PUBLIC or rule.endpoint.startswith("pages."):
            continue
        url = rule.rule.replace("<int:sweep_id>", "1").replace("<patient_id>", "p1")
        out.extend((method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return out


def test_health_answers_without_a_key(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_is_503_naming_the_fhir_server_when_it_is_unreachable(client: FlaskClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json == {"database": "ok", "fhir": "unavailable"}


def test_ready_names_the_database_when_it_cannot_be_opened(
    make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(database_url=f"sqlite:///{tmp_path / 'missing' / 'dir' / 'hrm.db'}")
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.json == {"database": "unavailable", "fhir": "unavailable"}


def test_every_route_but_the_probes_and_document_needs_a_key(app: Flask) -> None:
    client = app.test_client()
    routes = _protected_routes(app)
    assert ("POST", "/api/v1/sweeps") in routes
    for method, url in routes:
        response = client.open(url, method=method)
        assert response.status_code == 401, (method, url)
        assert response.json is not None
        assert response.json["error"] == "unauthorized"
        assert "X-API-Key" in response.headers["WWW-Authenticate"]


def test_an_unknown_key_is_401(client: FlaskClient) -> None:
    for key in ("nope", READ["X-API-Key"][:-1], READ["X-API-Key"] + "x", "é"):
        assert client.get("/api/v1/sweeps", headers={"X-API-Key": key}).status_code == 401


def test_a_read_key_may_get_but_not_post(client: FlaskClient) -> None:
    assert client.get("/api/v1/sweeps", headers=READ).status_code == 200
    assert client.get("/api/v1/findings", headers=READ).status_code == 200
    response = client.post("/api/v1/sweeps", headers=READ, json={})
    assert response.status_code == 403
    assert response.json == {
        "error": "forbidden",
        "message": "a read credential may not POST here",
    }


def test_an_operator_key_may_also_get(client: FlaskClient) -> None:
    assert client.get("/api/v1/sweeps", headers=OPERATOR).status_code == 200


def test_with_no_keys_configured_every_protected_route_is_401(make_app: AppFactory) -> None:
    app = make_app(api_keys={})
    client = app.test_client()
    for method, url in _protected_routes(app):
        for headers in ({}, READ, OPERATOR, {"X-API-Key": ""}):
            assert client.open(url, method=method, headers=headers).status_code == 401
    assert client.get("/health").status_code == 200


def test_unknown_routes_and_methods_answer_json(client: FlaskClient) -> None:
    missing = client.get("/api/v1/nothing", headers=READ)
    assert missing.status_code == 404
    assert missing.json is not None
    assert missing.json["error"] == "not found"
    wrong = client.delete("/health")
    assert wrong.status_code == 405
    assert wrong.json is not None
    assert wrong.json["error"] == "method not allowed"
    assert "GET" in wrong.headers["Allow"]


def test_openapi_document_is_served_without_a_key(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json == build_document()


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SweepBusyError("busy"), 409, "conflict"),
        (
            FHIRTemporaryError("search Patient: HTTP 503 Patient/secret", status=503),
            503,
            "unavailable",
        ),
        (FHIRFatalError("search Patient: HTTP 400 Patient/secret", status=400), 502, "bad gateway"),
        (RuntimeError("Patient/secret went wrong"), 500, "internal server error"),
    ],
)
def test_errors_map_to_statuses_and_reveal_nothing_internal(
    make_app: AppFactory,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
    code: str,
) -> None:
    app = make_app()

    def boom() -> None:
        raise error

    app.add_url_rule("/boom", view_func=boom)
    with caplog.at_level(logging.INFO, logger="hrm_fhir"):
        response = app.test_client().get("/boom")
    assert response.status_code == status
    assert response.json is not None
    assert response.json["error"] == code
    assert "secret" not in response.get_data(as_text=True)
    if status == 500:
        [logged] = [r for r in caplog.records if r.message == "unhandled error"]
        assert logged.levelno == logging.ERROR
        assert logged.exc_info is not None
