"""The loader's answers to what a real server rarely does: a transaction refused as a whole, a
batch refused as a whole, a server that stays unavailable (``responses``; the rest is tested
against HAPI in tests/integration/test_load_hapi.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.upload import load_paths
from hrm_fhir.errors import FHIRTemporaryError

BASE = "http://fhir.test/fhir"
OBSERVATIONS = [{"resourceType": "Observation", "id": f"o{i}", "status": "final"} for i in range(3)]


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def gateway() -> Iterator[FHIRGateway]:
    gw = FHIRGateway(BASE, max_retries=1, sleep=lambda _: None)
    yield gw
    gw.close()


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "Observation.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in OBSERVATIONS))
    return path


def _outcome(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error",
            "code": "processing", "diagnostics": text}]}  # fmt: skip


def _sent(call: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(call.request.body)
    return body


def test_a_refused_transaction_is_sent_again_as_a_batch_for_an_answer_per_resource(
    mock: responses.RequestsMock, gateway: FHIRGateway, export: Path
) -> None:
    mock.post(BASE, status=400, json=_outcome("HAPI-0450: o1 is invalid"))
    batch = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "200 OK"}},
        {"response": {"status": "400 Bad Request", "outcome": _outcome("o1 is invalid")}},
        {"response": {"status": "201 Created"}},
    ]}  # fmt: skip
    mock.post(BASE, json=batch)
    retry = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "400 Bad Request", "outcome": _outcome("o1 is still invalid")}},
    ]}  # fmt: skip
    mock.post(BASE, json=retry)

    report = load_paths(gateway, [export])

    kinds = [_sent(call)["type"] for call in mock.calls]
    assert kinds == ["transaction", "batch", "batch"]
    assert [e["request"] for e in _sent(mock.calls[2])["entry"]] == [
        {"method": "PUT", "url": "Observation/o1"}
    ]
    assert (report.sent, report.failed, report.retried, report.bundles) == (3, 1, 1, 3)
    assert report.errors == [f"{export}:2: 400 Bad Request: o1 is still invalid"]


def test_a_batch_refused_as_a_whole_counts_every_resource_in_it_as_refused(
    mock: responses.RequestsMock, gateway: FHIRGateway, export: Path
) -> None:
    for _ in range(2):
        mock.post(BASE, status=413, json=_outcome("HAPI-9999: too large"))

    report = load_paths(gateway, [export], transaction=False)

    assert (report.sent, report.failed, report.retried) == (3, 3, 3)
    assert report.errors == [f"{export}:{line}: batch Bundle: HTTP 413" for line in (1, 2, 3)]


def test_a_server_that_stays_unavailable_stops_the_load_with_an_error(
    mock: responses.RequestsMock, gateway: FHIRGateway, export: Path
) -> None:
    for _ in range(2):
        mock.post(BASE, status=503)

    with pytest.raises(FHIRTemporaryError, match="gave up after 2 attempts"):
        load_paths(gateway, [export])


def test_a_bundle_with_a_create_is_not_repeated_after_a_timeout(
    mock: responses.RequestsMock, gateway: FHIRGateway, tmp_path: Path
) -> None:
    path = tmp_path / "new.ndjson"
    path.write_text(json.dumps({"resourceType": "Observation", "status": "final"}) + "\n")
    mock.post(BASE, status=504)

    with pytest.raises(FHIRTemporaryError, match="not retried"):
        load_paths(gateway, [path])
    assert [e["request"]["method"] for e in _sent(mock.calls[0])["entry"]] == ["POST"]
