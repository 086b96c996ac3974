"""Retries: temporary failures back off and retry idempotent calls only; 4xx fail at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import FHIRFatalError, FHIRTemporaryError
from tests.adapters.fhir.payloads import BASE, FHIR_JSON, outcome, patient, searchset

TASK = {"resourceType": "Task", "id": "hrdm-abc", "status": "requested", "intent": "order"}


def test_429_waits_what_retry_after_says_then_succeeds(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    mock.get(f"{BASE}/Patient/p1", status=429, headers={"Retry-After": "7"})
    mock.get(f"{BASE}/Patient/p1", json=patient(1))

    assert gateway.read("Patient", "p1") == patient(1)
    assert sleeps == [7.0]


def test_retry_after_as_http_date_is_honoured(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=20)
    mock.get(
        f"{BASE}/Patient/p1",
        status=503,
        headers={"Retry-After": format_datetime(when, usegmt=True)},
    )
    mock.get(f"{BASE}/Patient/p1", json=patient(1))

    gateway.read("Patient", "p1")

    assert len(sleeps) == 1
    assert 15 < sleeps[0] <= 20


def test_retry_after_beyond_max_backoff_gives_up_without_waiting(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    mock.get(f"{BASE}/Patient/p1", status=429, headers={"Retry-After": "3600"})

    with pytest.raises(FHIRTemporaryError, match="Retry-After exceeds") as raised:
        gateway.read("Patient", "p1")

    assert (raised.value.status, sleeps) == (429, [])


def test_503_backs_off_exponentially_then_raises_temporary_error(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    gateway = FHIRGateway(BASE, max_retries=4, backoff=0.5, max_backoff=3.0, sleep=sleeps.append)
    mock.get(
        f"{BASE}/Patient",
        status=503,
        json=outcome(diagnostics="HAPI-1234: database busy"),
        content_type=FHIR_JSON,
    )

    with pytest.raises(FHIRTemporaryError, match="gave up after 5 attempts") as raised:
        gateway.search("Patient", {})

    assert (raised.value.status, raised.value.outcome) == (503, "HAPI-1234: database busy")
    assert len(mock.calls) == 5
    assert sleeps == [0.5, 1.0, 2.0, 3.0]
    gateway.close()


@pytest.mark.parametrize(
    "failure",
    [
        requests.Timeout("read timed out"),
        requests.ConnectionError("reset"),
        requests.exceptions.ChunkedEncodingError("connection broken mid-body"),
    ],
)
def test_timeout_and_connection_error_are_retried(
    mock: responses.RequestsMock,
    gateway: FHIRGateway,
    sleeps: list[float],
    failure: Exception,
) -> None:
    mock.get(f"{BASE}/Patient", body=failure)
    mock.get(f"{BASE}/Patient", json=searchset(patient(1)))

    assert gateway.search("Patient", {}).resources == [patient(1)]
    assert sleeps == [0.5]


def test_timeout_on_every_attempt_raises_temporary_error_without_status(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    mock.get(f"{BASE}/metadata", body=requests.Timeout("read timed out"))

    with pytest.raises(FHIRTemporaryError, match="capabilities: Timeout") as raised:
        gateway.capabilities()

    assert raised.value.status is None
    assert len(mock.calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_put_update_is_retried_on_503(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    mock.put(f"{BASE}/Task/hrdm-abc", status=503)
    mock.put(f"{BASE}/Task/hrdm-abc", json=TASK, headers={"ETag": 'W/"1"'}, status=201)

    assert gateway.update(TASK).status == 201
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    "failure",
    [{"status": 503}, {"status": 408}, {"body": requests.Timeout("read timed out")}],
)
def test_post_create_is_not_retried_on_temporary_failures(
    mock: responses.RequestsMock,
    gateway: FHIRGateway,
    sleeps: list[float],
    failure: dict[str, object],
) -> None:
    mock.post(f"{BASE}/Task", **failure)

    with pytest.raises(FHIRTemporaryError, match="not retried"):
        gateway.create(TASK, if_none_exist="identifier=https://hrm.test/id|abc")

    assert (len(mock.calls), sleeps) == (1, [])


def test_post_create_is_retried_on_429(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    mock.post(f"{BASE}/Task", status=429, headers={"Retry-After": "2"})
    mock.post(f"{BASE}/Task", json=TASK, status=201)

    assert gateway.create(TASK).status == 201
    assert sleeps == [2.0]


def test_transaction_is_not_retried_on_timeout(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    mock.post(BASE, body=requests.Timeout("read timed out"))

    with pytest.raises(FHIRTemporaryError, match="not retried"):
        gateway.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})

    assert (len(mock.calls), sleeps) == (1, [])


def test_a_transaction_its_caller_calls_idempotent_is_retried_on_a_5xx_like_a_put(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float]
) -> None:
    reply = {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    mock.post(BASE, status=503)
    mock.post(BASE, json=reply)

    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    assert gateway.transaction(bundle, idempotent=True) == reply
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (
            400,
            outcome(diagnostics='HAPI-0524: Unknown search parameter "foo"'),
            'HAPI-0524: Unknown search parameter "foo"',
        ),
        (
            422,
            outcome(details="Task.intent: minimum required = 1"),
            "Task.intent: minimum required = 1",
        ),
        (403, {"error": "forbidden"}, None),
    ],
)
def test_4xx_fails_at_once_carrying_the_operation_outcome_text(
    mock: responses.RequestsMock,
    gateway: FHIRGateway,
    sleeps: list[float],
    status: int,
    body: dict[str, object],
    text: str | None,
) -> None:
    mock.put(f"{BASE}/Task/hrdm-abc", status=status, json=body, content_type=FHIR_JSON)

    with pytest.raises(FHIRFatalError) as raised:
        gateway.update(TASK)

    assert type(raised.value) is FHIRFatalError
    assert (raised.value.status, raised.value.outcome) == (status, text)
    assert str(raised.value) == f"update Task/hrdm-abc: HTTP {status}"
    assert sleeps == []


def test_redirect_is_not_followed(mock: responses.RequestsMock, gateway: FHIRGateway) -> None:
    mock.get(
        f"{BASE}/Patient/p1",
        status=302,
        headers={"Location": "https://evil.test/Patient/p1"},
    )

    with pytest.raises(FHIRFatalError, match="redirects are not followed"):
        gateway.read("Patient", "p1")

    assert len(mock.calls) == 1
