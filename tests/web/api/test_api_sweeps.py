"""POST and GET /api/v1/sweeps: one sweep at a time, the ledger, 404s; runners are injected."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import SweepStatus
from hrm_fhir.sweep.launcher import SweepRequest
from hrm_fhir.sweep.run import SweepSummary
from hrm_fhir.web.state import service_state
from tests.adapters.store.examples import NOW, start
from tests.web.api.conftest import OPERATOR, READ, AppFactory


class BlockingRunner:
    """A sweep runner that holds until released, recording what it was asked."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.requests: list[SweepRequest] = []

    def __call__(self, request: SweepRequest) -> SweepSummary:
        self.requests.append(request)
        self.started.set()
        assert self.release.wait(10)
        return SweepSummary(sweep_id=7, mode="full", dry_run=False, as_of=NOW.date(), scope="all")


@pytest.fixture
def blocking() -> BlockingRunner:
    return BlockingRunner()


def test_post_starts_one_sweep_in_the_background_and_a_second_is_409(
    make_app: AppFactory, blocking: BlockingRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hrm_fhir")
    app = make_app(SWEEP_RUNNER=blocking)
    client = app.test_client()
    try:
        first = client.post("/api/v1/sweeps", headers=OPERATOR, json={})
        assert first.status_code == 202
        assert first.json == {"sweep": None, "status": "started"}
        assert blocking.started.wait(5)
        second = client.post("/api/v1/sweeps", headers=OPERATOR)
        assert second.status_code == 409
        assert second.json == {"error": "conflict", "message": "a sweep is already running"}
    finally:
        blocking.release.set()
    service_state(app).sweeps.join(5)
    assert client.post("/api/v1/sweeps", headers=OPERATOR).status_code == 202
    service_state(app).sweeps.join(5)
    assert len(blocking.requests) == 2
    outcomes = [
        (r.message, r.__dict__["trigger"]) for r in caplog.records if "trigger" in r.__dict__
    ]
    assert outcomes == [("sweep run", "api")] * 2


@pytest.mark.usefixtures("database_url")
def test_post_is_409_while_another_process_holds_the_sweep_lock(
    make_app: AppFactory, blocking: BlockingRunner
) -> None:
    app = make_app(SWEEP_RUNNER=blocking)
    client = app.test_client()
    with service_state(app).sessions()() as session:
        now = datetime.now(UTC)
        assert ledger.acquire_lock(session, ledger.SWEEP_LOCK, "other:1", ttl_seconds=60, now=now)
    response = client.post("/api/v1/sweeps", headers=OPERATOR)
    assert response.status_code == 409
    assert blocking.requests == []


def test_body_becomes_the_sweep_request_and_inline_runs_answer_the_sweep_id(
    make_app: AppFactory,
) -> None:
    seen: list[SweepRequest] = []

    def runner(request: SweepRequest) -> SweepSummary:
        seen.append(request)
        return SweepSummary(
            sweep_id=41, mode="full", dry_run=True, as_of=date(2026, 11, 27), scope="all"
        )

    app = make_app(SWEEP_RUNNER=runner, SWEEP_BACKGROUND=False)
    client = app.test_client()
    body = {"as_of": "2026-11-27", "dry_run": True, "mode": "full"}
    response = client.post("/api/v1/sweeps", headers=OPERATOR, json=body)
    assert response.status_code == 202
    assert response.json == {"sweep": 41, "status": "completed"}
    assert (
        client.post("/api/v1/sweeps", headers=OPERATOR, json={"mode": "incremental"}).status_code
        == 202
    )
    assert client.post("/api/v1/sweeps", headers=OPERATOR).status_code == 202
    assert seen == [
        SweepRequest(as_of=date(2026, 11, 27), dry_run=True, full=True),
        SweepRequest(full=False),
        SweepRequest(),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "partial"}, "mode"),
        ({"as_of": "27/11/2026"}, "as_of"),
        ({"dry_run": "perhaps"}, "dry_run"),
        ({"full": True}, "full"),
        ([], "_schema"),
    ],
)
def test_invalid_bodies_are_400(client: FlaskClient, body: object, field: str) -> None:
    response = client.post("/api/v1/sweeps", headers=OPERATOR, json=body)
    assert response.status_code == 400
    assert response.json is not None
    assert list(response.json["messages"]) == [field]


def test_a_body_that_is_not_json_is_rejected(client: FlaskClient) -> None:
    assert client.post("/api/v1/sweeps", headers=OPERATOR, data="{").status_code == 415
    malformed = client.post(
        "/api/v1/sweeps", headers=OPERATOR, data="{", content_type="application/json"
    )
    assert malformed.status_code == 400


@pytest.mark.usefixtures("database_url")
def test_sweeps_are_listed_newest_first_and_read_one_by_one(
    app: Flask, client: FlaskClient
) -> None:
    with service_state(app).sessions().begin() as session:
        older = start(session)
        newer = start(session, now=NOW + timedelta(hours=1))
        ledger.finish_sweep(
            session,
            older,
            status=SweepStatus.COMPLETED,
            counts={"created": 3, "unchanged": 2, "repaired": 1},
            watermark="2026-07-06T06:00:00.000Z",
            error=None,
            now=NOW + timedelta(minutes=5),
        )
        ids = (older.id, newer.id)
    listed = client.get("/api/v1/sweeps", headers=READ).json
    assert listed is not None
    assert [s["id"] for s in listed["sweeps"]] == [ids[1], ids[0]]
    limited = client.get("/api/v1/sweeps?limit=1", headers=READ).json
    assert limited is not None
    assert [s["id"] for s in limited["sweeps"]] == [ids[1]]
    one = client.get(f"/api/v1/sweeps/{ids[0]}", headers=READ).json
    assert one == {
        "id": ids[0],
        "status": "completed",
        "mode": "full",
        "dry_run": False,
        "scope": "all",
        "fhir_base": "http://fhir.test/fhir",
        "as_of": "2026-07-06",
        "started_at": "2026-07-06T06:00:00+00:00",
        "finished_at": "2026-07-06T06:05:00+00:00",
        "duration_seconds": 300.0,
        "created": 3,
        "updated": 0,
        "closed": 0,
        "unchanged": 2,
        "repaired": 1,
        "skipped": 0,
        "errors": 0,
        "watermark": "2026-07-06T06:00:00.000Z",
        "error": None,
    }


def test_an_unknown_sweep_is_404_and_a_bad_limit_400(client: FlaskClient) -> None:
    missing = client.get("/api/v1/sweeps/999", headers=READ)
    assert missing.status_code == 404
    assert missing.json == {"error": "not found", "message": "no sweep 999"}
    assert client.get("/api/v1/sweeps?limit=0", headers=READ).status_code == 400
    assert client.get("/api/v1/sweeps?order=asc", headers=READ).status_code == 400
