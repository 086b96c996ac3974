"""Reads, conditional writes, transactions, $validate and the capability check."""

from __future__ import annotations

import orjson
import pytest
import responses
from responses import matchers

from hrm_fhir.adapters.fhir.answers import WriteResult
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import FHIRCapabilityError, FHIRFatalError, VersionConflict
from tests.adapters.fhir.payloads import BASE, FHIR_JSON, capability, outcome, patient

TASK = {"resourceType": "Task", "id": "hrdm-abc", "status": "requested", "intent": "order"}
WRITE_HEADERS = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}


@pytest.mark.parametrize("status", [404, 410])
def test_read_returns_none_for_missing_or_deleted(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float], status: int
) -> None:
    mock.get(f"{BASE}/Patient/p1", status=status, json=outcome(diagnostics="gone"))

    assert gateway.read("Patient", "p1") is None
    assert sleeps == []


def test_read_returns_the_resource_and_checks_its_type(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(
        f"{BASE}/Patient/p1",
        json=patient(1),
        match=[matchers.header_matcher({"Accept": FHIR_JSON})],
    )
    mock.get(f"{BASE}/Patient/p2", json={"resourceType": "Organization", "id": "p2"})

    assert gateway.read("Patient", "p1") == patient(1)
    with pytest.raises(FHIRFatalError, match="expected Patient, got resourceType Organization"):
        gateway.read("Patient", "p2")


def test_read_refuses_an_id_that_is_not_a_fhir_id(gateway: FHIRGateway) -> None:
    for bad in ("..", "a/b", "", "x" * 65):
        with pytest.raises(ValueError, match="FHIR id"):
            gateway.read("Patient", bad)


def test_update_sends_if_match_as_weak_etag_and_reads_the_new_version(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.put(
        f"{BASE}/Task/hrdm-abc",
        json={**TASK, "meta": {"versionId": "4"}},
        headers={"ETag": 'W/"4"', "Content-Location": f"{BASE}/Task/hrdm-abc/_history/4"},
        match=[
            matchers.header_matcher({**WRITE_HEADERS, "If-Match": 'W/"3"'}),
            matchers.body_matcher(orjson.dumps(TASK).decode()),
        ],
    )

    result = gateway.update(TASK, if_match="3")

    assert (result.status, result.version_id) == (200, "4")
    assert result.location == f"{BASE}/Task/hrdm-abc/_history/4"
    assert result.resource == {**TASK, "meta": {"versionId": "4"}}


@pytest.mark.parametrize("status", [409, 412])
def test_update_with_if_match_raises_version_conflict(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float], status: int
) -> None:
    mock.put(
        f"{BASE}/Task/hrdm-abc",
        status=status,
        json=outcome(diagnostics="HAPI-0989: version 3 is not the current version"),
    )

    with pytest.raises(VersionConflict) as raised:
        gateway.update(TASK, if_match="3")

    assert raised.value.status == status
    assert raised.value.outcome == "HAPI-0989: version 3 is not the current version"
    assert sleeps == []


def test_update_refuses_a_resource_without_id_or_a_quoted_version(gateway: FHIRGateway) -> None:
    with pytest.raises(ValueError, match="FHIR id"):
        gateway.update({"resourceType": "Task"})
    with pytest.raises(ValueError, match="bare versionId"):
        gateway.update(TASK, if_match='W/"3"')


def test_create_sends_if_none_exist_and_returns_location(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    created = {**TASK, "id": "101", "meta": {"versionId": "1"}}
    mock.post(
        f"{BASE}/Task",
        status=201,
        json=created,
        headers={"Location": f"{BASE}/Task/101/_history/1"},
        match=[
            matchers.header_matcher(
                {**WRITE_HEADERS, "If-None-Exist": "identifier=https://hrm.test/id|abc"}
            ),
            matchers.json_params_matcher(TASK),
        ],
    )

    result = gateway.create(TASK, if_none_exist="identifier=https://hrm.test/id|abc")

    assert result == WriteResult(created, 201, "1", f"{BASE}/Task/101/_history/1")


def test_create_matching_an_existing_resource_may_return_no_body(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.post(f"{BASE}/Task", status=200, body=b"", headers={"ETag": 'W/"7"'})

    result = gateway.create(TASK, if_none_exist="identifier=https://hrm.test/id|abc")

    assert result == WriteResult(None, 200, "7", None)


def test_create_with_several_matches_is_a_fatal_412(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.post(f"{BASE}/Task", status=412, json=outcome(diagnostics="search matched 2 resources"))

    with pytest.raises(FHIRFatalError) as raised:
        gateway.create(TASK, if_none_exist="identifier=https://hrm.test/id|abc")

    assert type(raised.value) is FHIRFatalError
    assert (raised.value.status, raised.value.outcome) == (412, "search matched 2 resources")


def test_transaction_posts_to_the_base_and_returns_the_response_bundle(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": TASK,
                "request": {"method": "PUT", "url": "Task/hrdm-abc"},
            }
        ],
    }
    reply = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "201 Created"}}],
    }
    mock.post(
        BASE,
        json=reply,
        match=[matchers.json_params_matcher(bundle), matchers.header_matcher(WRITE_HEADERS)],
    )

    assert gateway.transaction(bundle) == reply
    with pytest.raises(ValueError, match="transaction or batch"):
        gateway.transaction({"resourceType": "Bundle", "type": "searchset"})


@pytest.mark.parametrize("status", [200, 400, 412, 422])
def test_validate_returns_the_operation_outcome(
    mock: responses.RequestsMock, gateway: FHIRGateway, sleeps: list[float], status: int
) -> None:
    result = outcome(diagnostics="Task.status: minimum required = 1")
    mock.post(
        f"{BASE}/Task/$validate",
        status=status,
        json=result,
        match=[matchers.json_params_matcher(TASK)],
    )

    assert gateway.validate(TASK) == result
    assert sleeps == []


def test_validate_error_without_an_operation_outcome_is_fatal(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.post(f"{BASE}/Task/$validate", status=422, json={"resourceType": "Parameters"})

    with pytest.raises(
        FHIRFatalError, match="expected OperationOutcome, got resourceType Parameters"
    ) as raised:
        gateway.validate(TASK)

    assert raised.value.status == 422


def test_capabilities_are_fetched_once(mock: responses.RequestsMock, gateway: FHIRGateway) -> None:
    statement = capability({"Task": ("create", "update"), "Flag": ("create", "update")})
    mock.get(f"{BASE}/metadata", json=statement)

    assert gateway.capabilities() == statement
    assert gateway.capabilities() == statement
    assert len(mock.calls) == 1


def test_require_writable_accepts_task_and_flag_with_create_and_update(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(
        f"{BASE}/metadata",
        json=capability(
            {"Task": ("read", "create", "update", "search-type"), "Flag": ("create", "update")}
        ),
    )

    gateway.require_writable()


def test_require_writable_refuses_a_server_without_flag(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(
        f"{BASE}/metadata", json=capability({"Task": ("create", "update"), "Patient": ("read",)})
    )

    with pytest.raises(FHIRCapabilityError, match="Flag is not supported"):
        gateway.require_writable()


def test_require_writable_names_the_missing_interaction(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(f"{BASE}/metadata", json=capability({"Task": ("read", "create"), "Flag": ("read",)}))

    with pytest.raises(FHIRCapabilityError) as raised:
        gateway.require_writable()

    assert str(raised.value) == (
        f"FHIR server {BASE} cannot store what this service writes: "
        "Task lacks the update interaction; Flag lacks the create and update interaction"
    )
