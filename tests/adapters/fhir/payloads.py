"""FHIR JSON bodies for the gateway tests."""

from __future__ import annotations

from typing import Any

import orjson

BASE = "https://fhir.test/fhir"
FHIR_JSON = "application/fhir+json"


def patient(n: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{n}"}


def searchset(
    *resources: dict[str, Any],
    next_url: str | None = None,
    total: int | None = None,
    last_updated: str | None = None,
    included: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A searchset page; ``included`` entries carry search.mode = include."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    if last_updated is not None:
        bundle["meta"] = {"lastUpdated": last_updated}
    bundle["link"] = [{"relation": "self", "url": f"{BASE}/Patient"}]
    if next_url is not None:
        bundle["link"].append({"relation": "next", "url": next_url})
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
    if entries:
        bundle["entry"] = entries
    return bundle


def outcome(diagnostics: str | None = None, details: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": "processing"}
    if diagnostics is not None:
        issue["diagnostics"] = diagnostics
    if details is not None:
        issue["details"] = {"text": details}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def capability(resources: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """A CapabilityStatement whose server rest lists the types with these interactions."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {"type": name, "interaction": [{"code": code} for code in codes]}
                    for name, codes in resources.items()
                ],
            }
        ],
    }


def body(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource)
