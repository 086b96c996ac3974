"""The FHIR server's answers read: the error for a refused request (with the OperationOutcome's
text), a resource or Bundle body checked before use, a write's version, and ``Retry-After``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import requests

from hrm_fhir.errors import (
    FHIRError,
    FHIRFatalError,
    FHIRTemporaryError,
    ResourceNotFound,
    VersionConflict,
)

Resource = dict[str, Any]
_ETAG = re.compile(r'(?:W/)?"([^"]+)"')


@dataclass(frozen=True)
class SearchResult:
    """Every matched resource of a search, across all its pages."""

    resources: list[Resource]
    """Entries whose ``search.mode`` is ``match`` or absent (``_include``d ones are left out)."""
    total: int | None
    """``Bundle.total`` of the first page, when the server gave it."""
    pages: int
    server_time: str | None
    """``Bundle.meta.lastUpdated`` of the first page: the server's clock, for watermarks."""

    @property
    def shortfall(self) -> int:
        """Matches the server counted but did not deliver (paging caps); 0 when total is unknown."""
        return 0 if self.total is None else max(0, self.total - len(self.resources))


@dataclass(frozen=True)
class WriteResult:
    """What the server said about a create or update."""

    resource: Resource | None
    """The returned body; None when the server sent none."""
    status: int
    version_id: str | None
    """From the ETag (``W/"n"``) or else the body's ``meta.versionId``."""
    location: str | None


def retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or HTTP-date); None when unreadable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def give_up(error: FHIRError, why: str) -> FHIRError:
    return type(error)(f"{error} ({why})", status=error.status, outcome=error.outcome)


def error_for(response: requests.Response, label: str, *, versioned: bool) -> FHIRError:
    """The exception for a non-2xx response."""
    status = response.status_code
    message = f"{label}: HTTP {status}"
    kind: type[FHIRError]
    if status in (404, 410):
        kind = ResourceNotFound
    elif versioned and status in (409, 412):
        kind = VersionConflict
    elif status in (408, 429) or status >= 500:
        kind = FHIRTemporaryError
    else:
        kind = FHIRFatalError
        if 300 <= status < 400:
            message += " (redirects are not followed)"
    return kind(message, status=status, outcome=outcome_text(json_or_none(response.content)))


def json_or_none(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def outcome_text(body: object) -> str | None:
    """The first OperationOutcome issue's diagnostics, else its details.text."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    issues = objects(body.get("issue"))
    if not issues:
        return None
    diagnostics = issues[0].get("diagnostics")
    if isinstance(diagnostics, str) and diagnostics:
        return diagnostics
    details = issues[0].get("details")
    text = details.get("text") if isinstance(details, dict) else None
    return text if isinstance(text, str) and text else None


def json_body(response: requests.Response, label: str) -> Resource | None:
    """The body as a JSON object; None when empty; FHIRFatalError when it is anything else."""
    if not response.content:
        return None
    body = json_or_none(response.content)
    if not isinstance(body, dict):
        raise FHIRFatalError(
            f"{label}: response body is not a JSON object", status=response.status_code
        )
    return body


def resource_of(response: requests.Response, label: str, expected: str) -> Resource:
    """The body, which must be a resource of the expected type."""
    body = json_body(response, label)
    found = None if body is None else body.get("resourceType")
    if body is None or found != expected:
        got = f"resourceType {found}" if isinstance(found, str) else "no resource"
        raise FHIRFatalError(
            f"{label}: expected {expected}, got {got}",
            status=response.status_code,
            outcome=outcome_text(body),
        )
    return body


def bundle_of(response: requests.Response, label: str, kind: str) -> Resource:
    """A ``kind`` Bundle (searchset or history) whose entries all carry a resource object; in a
    history, a deleted version's entry carries none."""
    bundle = resource_of(response, label, "Bundle")
    if bundle.get("type") != kind:
        raise FHIRFatalError(f"{label}: Bundle type is not {kind}", status=response.status_code)
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict)
        and (
            isinstance(entry.get("resource"), dict)
            or (kind == "history" and "resource" not in entry)
        )
        for entry in entries
    ):
        raise FHIRFatalError(
            f"{label}: Bundle.entry is not a list of entries with resources",
            status=response.status_code,
        )
    links = bundle.get("link", [])
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        raise FHIRFatalError(f"{label}: Bundle.link is not a list", status=response.status_code)
    return bundle


def next_link(bundle: Resource, label: str) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url:
                raise FHIRFatalError(f"{label}: next link has no url")
            return url
    return None


def write_result(response: requests.Response, label: str) -> WriteResult:
    body = json_body(response, label)
    etag = _ETAG.fullmatch(response.headers.get("ETag", "").strip())
    version_id = etag.group(1) if etag else None
    if version_id is None and body is not None:
        meta = body.get("meta")
        found = meta.get("versionId") if isinstance(meta, dict) else None
        version_id = found if isinstance(found, str) else None
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    return WriteResult(body, response.status_code, version_id, location)


def objects(value: object) -> list[Resource]:
    """The JSON objects in a JSON array (anything else contributes nothing)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
