"""Deletions since a moment (``Type/_history?_since=``) and the patients whose snapshot held them:
what a server that refuses to list them does to a sweep (the real server's answers are tested
against HAPI in tests/integration/test_sweep_changes_hapi.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import responses
from responses import matchers

from hrm_fhir.adapters.fhir.deletions import deleted_since, holders
from hrm_fhir.adapters.fhir.fetch import FetchReport
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import FHIRTemporaryError
from tests.adapters.fhir.payloads import BASE

SINCE = "2026-11-20T09:00:00.000Z"


def _history(*entries: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "meta": {"lastUpdated": "2026-11-27T08:00:00.000+00:00"},
        "entry": list(entries),
    }
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _deleted(kind: str, rid: str, version: int = 2) -> dict[str, Any]:
    return {
        "fullUrl": f"{BASE}/{kind}/{rid}",
        "request": {"method": "DELETE", "url": f"{kind}/{rid}/_history/{version}"},
        "response": {"status": "200 OK"},
    }


def _created(kind: str, rid: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{BASE}/{kind}/{rid}",
        "resource": {"resourceType": kind, "id": rid},
        "request": {"method": "POST", "url": f"{kind}/{rid}/_history/1"},
    }


def test_deletions_are_read_from_every_page_of_each_types_history_and_nothing_else(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = f"{BASE}/Observation/_history?_since={SINCE}&_elements=id&_count=20&_offset=20"
    wanted = matchers.query_param_matcher({"_since": SINCE, "_elements": "id", "_count": "20"})
    mock.get(
        f"{BASE}/Observation/_history",
        json=_history(_deleted("Observation", "o1"), _created("Observation", "o2"), next_url=page2),
        match=[wanted],
    )
    mock.get(page2, json=_history({"request": {"method": "DELETE", "url": "Observation/o3"}}))
    mock.get(f"{BASE}/Condition/_history", json=_history(), match=[wanted])
    report = FetchReport()

    deleted = deleted_since(gateway, ["Observation", "Condition", "Observation"], SINCE, report)

    assert deleted == {"Observation/o1", "Observation/o3"}
    assert report.searches == 3
    assert report.server_time == "2026-11-27T08:00:00.000+00:00"
    assert report.shortfalls == []


def test_a_server_that_refuses_to_list_deletions_is_a_warning_not_a_silent_empty_list(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    # a refusal for one type keeps the deletions the other types list: before, the first
    # refusal threw away every deletion found, and its warning named that one type only
    mock.get(f"{BASE}/Patient/_history", json=_history(_deleted("Patient", "p9")))
    mock.get(
        f"{BASE}/Observation/_history",
        status=405,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "no history"}],
        },
    )
    mock.get(f"{BASE}/Condition/_history", json=_history(_deleted("Condition", "c1")))
    report = FetchReport()

    deleted = deleted_since(gateway, ["Patient", "Observation", "Condition"], SINCE, report)

    assert deleted == {"Patient/p9", "Condition/c1"}
    [warning] = report.shortfalls
    assert "did not list the Observation resources deleted since" in warning
    assert "seen at the next full sweep" in warning


def test_holders_are_the_patients_whose_snapshot_holds_a_deleted_resource() -> None:
    snapshots = {
        "Patient/a": orjson.dumps(
            [{"resourceType": "Patient", "id": "a"}, {"resourceType": "Observation", "id": "o1"}]
        ),
        "Patient/b": orjson.dumps(
            [{"resourceType": "Patient", "id": "b"}, {"resourceType": "Condition", "id": "o1"}]
        ),
        "Patient/c": orjson.dumps([{"resourceType": "Patient", "id": "c"}]),
        "Patient/d": orjson.dumps(
            [{"resourceType": "Patient", "id": "d"}, {"resourceType": "Medication", "id": "m1"}]
        ),
    }

    assert holders({"Observation/o1", "Medication/m1"}, snapshots) == {"Patient/a", "Patient/d"}
    assert holders({"Patient/c"}, snapshots) == {"Patient/c"}
    assert holders({"Observation/o9"}, snapshots) == set()
    assert holders(set(), snapshots) == set()


def test_holders_of_many_resources_list_each_snapshots_ids_once() -> None:
    snapshots = {
        f"Patient/p{n}": orjson.dumps(
            [
                {"resourceType": "Patient", "id": f"p{n}"},
                {"resourceType": "Observation", "id": f"o{n}"},
            ]
        )
        for n in range(30)
    }
    wanted = {f"Observation/o{n}" for n in range(0, 30, 3)} | {"Condition/o1", "Observation/x"}

    assert holders(wanted, snapshots) == {f"Patient/p{n}" for n in range(0, 30, 3)}


def test_a_server_that_does_not_implement_type_history_is_a_warning_not_a_failed_sweep(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    # 501 Not Implemented is a 5xx, so the gateway retries it and gives up with a temporary
    # error; raised as such it failed every incremental sweep until the monthly full one.
    mock.get(f"{BASE}/Patient/_history", json=_history(_deleted("Patient", "p9")))
    mock.get(f"{BASE}/Observation/_history", status=501)
    report = FetchReport()

    deleted = deleted_since(gateway, ["Patient", "Observation", "Condition"], SINCE, report)

    assert deleted == {"Patient/p9"}
    [warning] = report.shortfalls  # Condition not asked: 501 is retried, and means every type
    assert "did not list the Observation, Condition resources deleted since" in warning


def test_a_history_that_fails_for_now_fails_the_sweep_so_it_is_repeated_from_the_same_moment(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(f"{BASE}/Observation/_history", status=503)

    with pytest.raises(FHIRTemporaryError):
        deleted_since(gateway, ["Observation"], SINCE, FetchReport())


def test_deletions_are_read_from_unusual_entries_and_one_that_names_nothing_is_a_warning(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(
        f"{BASE}/Observation/_history",
        json=_history(
            # absolute request URL
            {"request": {"method": "DELETE", "url": f"{BASE}/Observation/a.1/_history/3"}},
            # request URL without the id (a conditional delete), versioned fullUrl
            {
                "fullUrl": f"{BASE}/Observation/o-2/_history/2",
                "request": {"method": "DELETE", "url": "Observation?identifier=x|1"},
            },
            # no request at all: an entry without a resource is a deleted version
            {"fullUrl": f"{BASE}/Observation/o3"},
            # a deletion that names no Observation
            {"request": {"method": "DELETE", "url": "Observation?identifier=x|2"}},
            _created("Observation", "o4"),
        ),
    )
    report = FetchReport()

    deleted = deleted_since(gateway, ["Observation"], SINCE, report)

    assert deleted == {"Observation/a.1", "Observation/o-2", "Observation/o3"}
    [warning] = report.shortfalls
    assert "1 deletion" in warning
    assert "seen at the next full sweep" in warning


def test_the_histories_also_name_every_resource_changed_past_its_first_version(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    def version(rid: str, meta: str | None, url: str) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": "Observation", "id": rid}
        if meta is not None:
            resource["meta"] = {"versionId": meta}
        return {"resource": resource, "request": {"method": "PUT", "url": url}}

    mock.get(
        f"{BASE}/Observation/_history",
        json=_history(
            version("o1", "2", "Observation/o1"),
            version("o2", None, "Observation/o2/_history/3"),
            version("o3", None, "Observation/o3"),  # says no version: counted
            version("o4", "1", "Observation/o4/_history/1"),
            version("o5", None, f"{BASE}/Observation/o5/_history/1"),
            _deleted("Observation", "o6"),
        ),
    )
    updated: set[str] = set()

    deleted = deleted_since(gateway, ["Observation"], SINCE, FetchReport(), updated=updated)

    assert deleted == {"Observation/o6"}
    assert updated == {"Observation/o1", "Observation/o2", "Observation/o3"}
