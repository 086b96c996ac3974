"""The server check on answers a real HAPI will not give on demand (``responses``): a marker
that cannot be read, a server that cannot store one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
import responses

from hrm_fhir.adapters.fhir.fetch import FetchReport, Scope
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.records import FindingRecord, ResourceType
from hrm_fhir.sweep.reconcile import check_server, keep_marker
from tests.adapters.fhir.payloads import searchset

BASE = "http://fhir.test/fhir"
SEARCH = re.compile(rf"{re.escape(BASE)}/(Task|Flag)\?.*")


@pytest.fixture
def gateway() -> Iterator[FHIRGateway]:
    gw = FHIRGateway(BASE, max_retries=0, sleep=lambda s: None)
    yield gw
    gw.close()


def _open(identifier: str) -> FindingRecord:
    return FindingRecord(
        identifier=identifier, resource_type=ResourceType.FLAG, resource_id=identifier
    )


@responses.activate
def test_a_marker_the_server_refuses_to_show_is_a_warning_not_a_reset(
    gateway: FHIRGateway,
) -> None:
    flag = {"resourceType": "Flag", "id": "hrm-1", "status": "active"}
    responses.get(SEARCH, json=searchset(flag))
    responses.get(f"{BASE}/Basic/hrm-marker-1", status=403, json={})
    state = check_server(gateway, Scope(), FetchReport(), [_open("hrm-1")], "hrm-marker-1")
    assert state.reset is None
    assert state.warnings == ["the server marker could not be read (HTTP 403)"]
    assert state.missing == set()


@responses.activate
def test_a_lost_marker_or_nothing_left_is_a_reset_and_says_which(gateway: FHIRGateway) -> None:
    responses.get(SEARCH, json=searchset())
    responses.get(re.compile(rf"{re.escape(BASE)}/Flag\?_id=.*"), json=searchset())
    responses.get(f"{BASE}/Basic/hrm-marker-1", status=404, json={})
    lost = check_server(gateway, Scope(), FetchReport(), [], "hrm-marker-1")
    assert lost.reset == "the server no longer holds this ledger's marker Basic/hrm-marker-1"
    empty = check_server(gateway, Scope(), FetchReport(), [_open("hrm-1"), _open("hrm-2")], None)
    assert empty.reset == "none of the 2 Tasks and Flags the ledger holds open is on it"
    assert empty.missing == {"Flag/hrm-1", "Flag/hrm-2"}


@responses.activate
def test_a_server_that_cannot_store_a_basic_gets_no_marker_and_the_sweep_is_told(
    gateway: FHIRGateway,
) -> None:
    statement = {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "resource": [{"type": "Task", "interaction": []}]}],
    }
    responses.get(f"{BASE}/metadata", json=statement)
    problem = keep_marker(gateway, "hrm-marker-1", Scope("practice-1"), date(2026, 11, 27))
    assert problem is not None
    assert problem.startswith("the server marker could not be written (FHIRCapabilityError)")
    assert [c.request.method for c in responses.calls] == ["GET"], "nothing written"
