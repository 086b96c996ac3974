"""What a bulk sweep (``hrm-fhir sweep --bulk``) reads: a Bulk Data export instead of searches.

One system-level ``$export`` of the types a paged sweep searches, each narrowed as its search
is (``_typeFilter``), into a temporary folder; its files are read by the offline reader
(``fhir_input``) and grouped per patient exactly as search pages are (``fetch.group_records``:
newest version of each resource, referenced Medications attached), kept to the practice in
scope by each Patient's ``generalPractitioner`` (an export has no chained search). An
incremental sweep asks for ``_since`` its watermark, less the overlap. The export's
``transactionTime`` is the server's moment the files reflect, the next watermark. An export
whose error files hold errors is not a whole record: the sweep fails (hazard H67).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

from hrm_fhir.adapters.fhir.bulk_export import BulkExporter
from hrm_fhir.adapters.fhir.bulk_job import BulkExportError, ExportRequest, ExportResult
from hrm_fhir.adapters.fhir.fetch import (
    RECORD_TYPES,
    FetchReport,
    Resource,
    Scope,
    group_records,
    record_searches,
)
from hrm_fhir.adapters.fhir.files import iter_resources
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.config import Settings
from hrm_fhir.rules.registry import RuleSet

log = logging.getLogger(__name__)


class IncompleteExportError(BulkExportError):
    """The server's error files name resources it could not export."""


def export_request(rules: RuleSet, since: str | None = None) -> ExportRequest:
    """The export a sweep reads: its record types and Medication whole, the rest as narrowed
    as the sweep's own searches of them (a search without parameters is the whole type)."""
    types = dict.fromkeys([*RECORD_TYPES, "Medication"])
    filters: list[str] = []
    whole: set[str] = set(types)
    for kind, params in record_searches(rules):
        types[kind] = None
        if not params:
            whole.add(kind)
        else:
            filters.append(f"{kind}?{urlencode(params, safe='|,:/')}")
    filters = [f for f in filters if f.partition("?")[0] not in whole]
    return ExportRequest(types=tuple(types), since=since, type_filters=tuple(filters))


def export_records(
    gateway: FHIRGateway,
    settings: Settings,
    rules: RuleSet,
    report: FetchReport,
    since: str | None = None,
) -> dict[str, list[Resource]]:
    """Every patient's record on the server (with ``since``, only the resources changed since
    then), grouped as ``fetch.read_scope`` groups search pages; the export's time is noted in
    ``report``. The scope is the caller's to apply (``in_scope``) to whole records."""
    exporter = BulkExporter(
        gateway, poll_ceiling=settings.bulk_poll_ceiling, timeout=settings.bulk_timeout
    )
    with tempfile.TemporaryDirectory(prefix="hrm-fhir-export-") as folder:
        result = exporter.export(export_request(rules, since), Path(folder) / "export")
        _check_whole(result)
        report.note_time(result.transaction_time)
        report.searches += 1
        return group_records(_resources(result, report), None, report)


def _check_whole(result: ExportResult) -> None:
    errors = result.error_issues
    if errors:
        first = errors[0]
        raise IncompleteExportError(
            f"the export is incomplete: the server reported {len(errors)} error(s) in its error "
            f"files (first: {first.code} at {first.where}); nothing is evaluated from it"
        )


def _resources(result: ExportResult, report: FetchReport) -> Iterator[Resource]:
    def problem(where: str, what: str) -> None:
        report.shortfalls.append(f"export file {Path(where).name}: {what}")

    for _, resource in iter_resources(result.files(), problem):
        yield resource


def in_scope(by_patient: dict[str, list[Resource]], scope: Scope) -> dict[str, list[Resource]]:
    """The whole records whose Patient belongs to the practice (all, for the whole server)."""
    if not scope.practice:
        return by_patient
    practice = f"Organization/{scope.practice}"
    kept: dict[str, list[Resource]] = {}
    for patient, resources in by_patient.items():
        record = next((r for r in resources if r.get("resourceType") == "Patient"), None)
        doctors = (record or {}).get("generalPractitioner") or []
        if any(isinstance(d, dict) and d.get("reference") == practice for d in doctors):
            kept[patient] = resources
    return kept
