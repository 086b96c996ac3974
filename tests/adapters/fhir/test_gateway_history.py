"""Instance histories (``Type/id/_history``): every page, deleted versions, unknown resources."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from responses import matchers

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import FHIRFatalError, OffOriginLinkError
from tests.adapters.fhir.payloads import BASE, FHIR_JSON

HISTORY = f"{BASE}/Task/t1/_history"


def _version(n: int, status: str) -> dict[str, Any]:
    return {"resourceType": "Task", "id": "t1", "meta": {"versionId": str(n)}, "status": status}


def _page(*entries: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "entry": list(entries)}
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def test_history_follows_next_links_and_leaves_out_deleted_versions(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = f"{HISTORY}?_count=20&_offset=2"
    mock.get(
        HISTORY,
        json=_page(
            {"resource": _version(3, "completed")},
            {"request": {"method": "DELETE", "url": "Task/t1/_history/2"}},
            next_url=page2,
        ),
        match=[
            matchers.query_string_matcher("_count=20"),
            matchers.header_matcher({"Accept": FHIR_JSON, "Cache-Control": "no-cache"}),
        ],
    )
    mock.get(page2, json=_page({"resource": _version(1, "requested")}))

    versions = gateway.history("Task", "t1")

    assert [(v["meta"]["versionId"], v["status"]) for v in versions] == [
        ("3", "completed"),
        ("1", "requested"),
    ]
    assert [call.request.url for call in mock.calls] == [f"{HISTORY}?_count=20", page2]


@pytest.mark.parametrize("status", [404, 410])
def test_history_of_an_unknown_resource_is_empty(
    mock: responses.RequestsMock, gateway: FHIRGateway, status: int
) -> None:
    mock.get(HISTORY, status=status)
    assert gateway.history("Task", "t1") == []


def test_history_refuses_a_searchset_an_entry_without_resource_or_a_link_off_base(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(HISTORY, json={"resourceType": "Bundle", "type": "searchset"})
    with pytest.raises(FHIRFatalError, match="history Task/t1 page 1: Bundle type is not history"):
        gateway.history("Task", "t1")
    mock.replace(responses.GET, HISTORY, json=_page({"resource": "not an object"}))
    with pytest.raises(FHIRFatalError, match="not a list of entries with resources"):
        gateway.history("Task", "t1")
    off_base = "https://elsewhere.test/fhir/Task/t1/_history?page=2"
    mock.replace(
        responses.GET, HISTORY, json=_page({"resource": _version(1, "x")}, next_url=off_base)
    )
    with pytest.raises(OffOriginLinkError):
        gateway.history("Task", "t1")


def test_history_needs_a_fhir_id(gateway: FHIRGateway) -> None:
    with pytest.raises(ValueError, match="FHIR id"):
        gateway.history("Task", "a b")
