"""Upload FHIR Bundles and NDJSON to any FHIR server, in batch or transaction chunks.

Resources with an id are sent as ``PUT Type/id`` (so loading twice changes nothing), others as
``POST``. Organizations, Patients and Medications go first, in a pass of their own, so that
servers enforcing referential integrity accept the resources that point at them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.adapters.fhir_input import expand_paths, iter_resources

Resource = dict[str, Any]
FIRST = frozenset({"Organization", "Practitioner", "Patient", "Medication"})


@dataclass
class LoadReport:
    sent: int = 0
    failed: int = 0
    bundles: int = 0
    errors: list[str] = field(default_factory=list)
    """``where: status`` for each entry the server refused (first 50)."""

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "bundles": self.bundles,
            "errors": self.errors,
        }


def _entry(resource: Resource) -> Resource:
    kind, rid = resource["resourceType"], resource.get("id")
    if isinstance(rid, str) and rid:
        return {"resource": resource, "request": {"method": "PUT", "url": f"{kind}/{rid}"}}
    return {"resource": resource, "request": {"method": "POST", "url": kind}}


def _chunks(
    items: Iterable[tuple[str, Resource]], size: int
) -> Iterator[list[tuple[str, Resource]]]:
    chunk: list[tuple[str, Resource]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_paths(
    gateway: FHIRGateway,
    paths: Iterable[Path],
    *,
    chunk_size: int = 250,
    transaction: bool = False,
    problem: Callable[[str, str], None] = lambda where, what: None,
) -> LoadReport:
    """Send every resource under ``paths``; return what was sent and what the server refused."""
    files = expand_paths(paths)
    report = LoadReport()
    kind = "transaction" if transaction else "batch"
    for first_pass in (True, False):
        resources = (
            (where, r)
            for where, r in iter_resources(files, problem if first_pass else lambda w, p: None)
            if (r["resourceType"] in FIRST) == first_pass
        )
        for chunk in _chunks(resources, chunk_size):
            bundle = {
                "resourceType": "Bundle",
                "type": kind,
                "entry": [_entry(r) for _, r in chunk],
            }
            response = gateway.transaction(bundle)
            report.bundles += 1
            report.sent += len(chunk)
            for (where, _), entry in zip(chunk, response.get("entry") or (), strict=False):
                status = str((entry.get("response") or {}).get("status", ""))
                if status[:1] not in ("2",):
                    report.failed += 1
                    if len(report.errors) < 50:
                        report.errors.append(f"{where}: {status}")
    return report
