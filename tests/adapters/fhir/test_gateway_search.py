"""Searches: paging by next links, stop rules, totals and refused or malformed pages."""

from __future__ import annotations

import pytest
import responses
from responses import matchers

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import FHIRFatalError, OffOriginLinkError
from tests.adapters.fhir.payloads import BASE, FHIR_JSON, patient, searchset

SEARCH_HEADERS = {"Accept": FHIR_JSON, "Cache-Control": "no-cache"}


def test_search_follows_next_links_verbatim_across_pages(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=20&_count=20&_bundletype=searchset"
    page3 = f"{BASE}?_getpages=abc&_getpagesoffset=40&_count=20&_bundletype=searchset"
    first = searchset(
        patient(1),
        patient(2),
        next_url=page2,
        total=5,
        last_updated="2026-11-27T06:00:00.123+00:00",
        included=({"resourceType": "Organization", "id": "o1"},),
    )
    mock.get(
        f"{BASE}/Patient",
        json=first,
        match=[
            matchers.query_string_matcher(
                "_lastUpdated=ge2026-11-20T00:00:00Z&organization=o1&_count=20"
            ),
            matchers.header_matcher(SEARCH_HEADERS),
        ],
    )
    mock.get(
        page2,
        json=searchset(patient(3), patient(4), next_url=page3, last_updated="2026-11-27T06:00:09Z"),
        match=[
            matchers.query_string_matcher(
                "_getpages=abc&_getpagesoffset=20&_count=20&_bundletype=searchset"
            ),
            matchers.header_matcher(SEARCH_HEADERS),
        ],
    )
    mock.get(
        page3,
        json=searchset(patient(5)),
        match=[
            matchers.query_string_matcher(
                "_getpages=abc&_getpagesoffset=40&_count=20&_bundletype=searchset"
            )
        ],
    )

    result = gateway.search(
        "Patient", {"_lastUpdated": "ge2026-11-20T00:00:00Z", "organization": "o1"}
    )

    assert [r["id"] for r in result.resources] == ["p1", "p2", "p3", "p4", "p5"]
    assert (result.total, result.pages, result.shortfall) == (5, 3, 0)
    assert result.server_time == "2026-11-27T06:00:00.123+00:00"
    assert [call.request.url for call in mock.calls][1:] == [page2, page3]
    timeouts = [call.request.req_kwargs["timeout"] for call in mock.calls]  # type: ignore[attr-defined]
    assert timeouts == [7.5, 7.5, 7.5]
    assert all("Content-Type" not in call.request.headers for call in mock.calls)


def test_search_repeats_a_parameter_given_as_a_sequence(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(
        f"{BASE}/Observation",
        json=searchset(),
        match=[
            matchers.query_string_matcher(
                "_lastUpdated=ge2026-11-01T00:00:00Z&_lastUpdated=lt2026-11-27T00:00:00Z&_count=50"
            )
        ],
    )

    result = gateway.search(
        "Observation",
        {"_lastUpdated": ["ge2026-11-01T00:00:00Z", "lt2026-11-27T00:00:00Z"]},
        count=50,
    )

    assert (result.resources, result.pages, result.total) == ([], 1, None)


def test_iter_pages_stops_at_an_empty_page_even_with_a_next_link(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=20"
    page3 = f"{BASE}?_getpages=abc&_getpagesoffset=40"
    mock.get(f"{BASE}/Patient", json=searchset(patient(1), next_url=page2))
    mock.get(page2, json=searchset(next_url=page3))  # exact multiple: HAPI's empty last page

    pages = list(gateway.iter_pages("Patient", {}))

    assert len(pages) == 2
    assert "entry" not in pages[1]


def test_iter_pages_refuses_a_next_link_that_loops(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=20"
    mock.get(f"{BASE}/Patient", json=searchset(patient(1), next_url=page2))
    mock.get(page2, json=searchset(patient(2), next_url=page2))

    with pytest.raises(FHIRFatalError, match="next link repeats"):
        gateway.search("Patient", {})

    assert len(mock.calls) == 2


def test_search_reports_shortfall_against_server_total(
    mock: responses.RequestsMock, gateway: FHIRGateway, caplog: pytest.LogCaptureFixture
) -> None:
    mock.get(f"{BASE}/Patient", json=searchset(patient(1), patient(2), total=10_000))

    result = gateway.search(
        "Patient", {"identifier": "https://fhir.nhs.uk/Id/nhs-number|9434765919"}
    )

    assert result.shortfall == 9_998
    assert "server total 10000 but 2 received over 1 pages" in caplog.text
    assert "9434765919" not in caplog.text


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.test/fhir?_getpages=abc",
        "http://fhir.test/fhir?_getpages=abc",
        "https://fhir.test:8443/fhir?_getpages=abc",
        "https://fhir.test/fhirx?_getpages=abc",
        "https://fhir.test/other/fhir?_getpages=abc",
        "https://fhir.test/fhir/../admin?_getpages=abc",
        "https://user@fhir.test/fhir?_getpages=abc",
        "/fhir?_getpages=abc",
        # issue 11: dot segments the server decodes, and other ways out of the base path
        "https://fhir.test/fhir/%2e%2e/other?_getpages=abc",
        "https://fhir.test/fhir/%2E%2E/other?_getpages=abc",
        "https://fhir.test/fhir/.%2e/other?_getpages=abc",
        "https://fhir.test/fhir/%2e/Patient?_getpages=abc",
        "https://fhir.test/fhir/..;/other?_getpages=abc",
        "https://fhir.test/fhir/%252e%252e/other?_getpages=abc",
        "https://fhir.test/fhir%2f..%2fother?_getpages=abc",
        "https://fhir.test/fhir/a%5c..%5cother?_getpages=abc",
        "https://fhir.test/fhir/%ff?_getpages=abc",
    ],
)
def test_search_refuses_a_next_link_that_leaves_the_base(
    mock: responses.RequestsMock, gateway: FHIRGateway, next_url: str
) -> None:
    mock.get(f"{BASE}/Patient", json=searchset(patient(1), next_url=next_url))

    with pytest.raises(OffOriginLinkError, match="leaves the configured base"):
        gateway.search("Patient", {})

    assert len(mock.calls) == 1


def test_search_accepts_a_next_link_with_explicit_default_port(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = "https://FHIR.test:443/fhir/Patient?_getpages=abc"
    mock.get(f"{BASE}/Patient", json=searchset(patient(1), next_url=page2))
    mock.get(page2, json=searchset(patient(2)))

    assert gateway.search("Patient", {}).pages == 2


def test_search_follows_a_next_link_with_harmless_percent_encoding(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    page2 = "https://fhir.test/fhir/Patient%2Dpages?_getpages=abc"
    mock.get(f"{BASE}/Patient", json=searchset(patient(1), next_url=page2))
    mock.get(page2.replace("%2D", "-"), json=searchset(patient(2)))  # as requests sends it

    assert gateway.search("Patient", {}).pages == 2


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>proxy error</html>", "not a JSON object"),
        (
            b'{"resourceType": "OperationOutcome", "issue": []}',
            "expected Bundle, got resourceType OperationOutcome",
        ),
        (b'{"resourceType": "Bundle", "type": "collection"}', "not searchset"),
        (
            b'{"resourceType": "Bundle", "type": "searchset", "entry": {"resource": {}}}',
            "Bundle.entry",
        ),
        (
            b'{"resourceType": "Bundle", "type": "searchset", "entry": [{"fullUrl": "x"}]}',
            "Bundle.entry",
        ),
        (b'{"resourceType": "Bundle", "type": "searchset", "link": {}}', "Bundle.link"),
    ],
)
def test_search_rejects_a_malformed_bundle(
    mock: responses.RequestsMock, gateway: FHIRGateway, payload: bytes, message: str
) -> None:
    mock.get(f"{BASE}/Patient", body=payload, content_type=FHIR_JSON)

    with pytest.raises(FHIRFatalError, match=message) as raised:
        gateway.search("Patient", {})

    assert raised.value.status == 200


def test_search_refuses_a_count_parameter_and_bad_resource_type(gateway: FHIRGateway) -> None:
    with pytest.raises(ValueError, match="count="):
        gateway.search("Patient", {"_count": "10"})
    with pytest.raises(ValueError, match="resource type"):
        gateway.search("Patient/../metadata", {})
