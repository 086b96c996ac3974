"""What one sweep reads from the FHIR server (step 2 of ``run.py``): everything in scope, or
the records of the patients that changed since the watermark, by searches or by a Bulk Data
export; and the server copies of resources whose finding holds again."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.fhir.deletions import deleted_since, holders
from hrm_fhir.adapters.fhir.fetch import (
    CHANGE_TYPES,
    MEDICATION_TYPES,
    FetchReport,
    Resource,
    Scope,
    Search,
    batch_limit,
    changed_patients,
    page_requests,
    read_rule_records,
    read_scope,
    recoded_prescribers,
    record_counts,
    record_searches,
    resources_by_id,
    searches_per_group,
    to_reread,
)
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.adapters.store import ledger
from hrm_fhir.config import Settings
from hrm_fhir.evaluation import map_records
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.sweep.source import export_records, in_scope
from hrm_fhir.tasks.emit import Desired

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRead:
    """Where a sweep reads from and what it knows before reading."""

    settings: Settings
    gateway: FHIRGateway
    rules: RuleSet
    scope: Scope
    report: FetchReport
    bulk: bool
    """Read through a Bulk Data export rather than searches."""
    known: set[str]
    """Patients with a snapshot or an open finding: re-read whenever their record changes."""
    snapshots: Mapping[str, bytes]
    """Each monitored patient's resources as the last sweep read them (to find deletions in)."""
    scope_pages: int | None
    """The page requests of the last whole read of the scope, if one was recorded."""


def read_for_sweep(
    read: SweepRead, since: str | None
) -> tuple[dict[str, list[Resource]], int | None]:
    """The records to evaluate afresh: the changed patients' ones since the watermark
    ``since``, or (with no watermark, or too many changes) those of every patient in scope on
    a monitored drug or ``known``; and the requests a whole read by searches took (None
    otherwise), kept to weigh the next sweep's re-reads."""
    extra = record_searches(read.rules)
    if since is not None:
        changes = _export_changes if read.bulk else _read_changes
        fetched = changes(read, extra, since)
        if fetched is not None:
            return fetched, None
    before = read.report.searches
    whole = None
    if read.bulk:
        everyone = in_scope(
            export_records(read.gateway, read.settings, read.rules, read.report), read.scope
        )
    else:
        everyone = read_scope(read.gateway, read.scope, read.report, extra)
        whole = read.report.searches - before
    wanted = monitored_patients(read.rules, everyone) | read.known
    return {p: everyone.get(p, []) for p in wanted}, whole


def _since(watermark: str, overlap_seconds: int) -> str:
    moment = datetime.fromisoformat(watermark).astimezone(UTC) - timedelta(seconds=overlap_seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read_changes(
    read: SweepRead, extra: Sequence[Search], cursor: str
) -> dict[str, list[Resource]] | None:
    """The records of the patients whose records (or what the ``extra`` searches find) changed
    since the watermark, or None as soon as there are so many that paging the whole scope costs
    less (see the module docstring of ``run.py``)."""
    limit = _change_limit(read, extra)
    since = _since(cursor, read.settings.watermark_overlap_seconds)
    changes = changed_patients(
        read.gateway,
        read.scope,
        read.report,
        since,
        known=read.known,
        is_monitored=_text_matcher(read.rules),
        limit=limit,
        extra=extra,
    )
    wanted = None if changes is None else changes[0] | _holding(read, extra, since, changes[1])
    if wanted is None or len(wanted) > limit:
        log.info("more than %d patients changed: reading everything in scope", limit)
        return None
    return read_rule_records(read.gateway, read.rules, wanted, read.report)


def _holding(read: SweepRead, extra: Sequence[Search], since: str, updated: set[str]) -> set[str]:
    """The patients whose snapshot holds a resource deleted since ``since``, or one of the
    ``updated`` ones (``Type/id``) or one the histories show changed past its first version,
    which may now name another patient (hazard H74), of another practice too: a change search
    shows neither to the patient who had it. No deletions of a type are found when the server
    cannot list them (its refusal is a warning of the sweep)."""
    types = [*CHANGE_TYPES, *(kind for kind, _ in extra)]
    changed: set[str] = set()  # server-wide, so also what moved out of the practice
    deleted = deleted_since(read.gateway, types, since, read.report, updated=changed)
    return holders(deleted | updated | changed, read.snapshots)


def _change_limit(read: SweepRead, extra: Sequence[Search]) -> int:
    """The most changed patients worth re-reading twenty per search rather than reading the
    whole scope (``scope_pages`` as recorded at the last whole read, else counted now)."""
    pages = read.scope_pages
    if pages is None:
        counts = record_counts(read.gateway, read.scope, read.report, extra)
        pages = page_requests(counts, read.gateway.page_size)
    return batch_limit(pages, searches_per_group(extra))


def _export_changes(
    read: SweepRead, extra: Sequence[Search], cursor: str
) -> dict[str, list[Resource]] | None:
    """``_read_changes`` with the changes found by a ``_since`` export instead of searches
    (and the Medications recoded in place by the paged sweep's search: the export gives one
    only with a changed prescription): the changed patients' records are re-read twenty per
    search, or None (export everything) when there are so many that paging the whole scope
    would cost less."""
    since = _since(cursor, read.settings.watermark_overlap_seconds)
    changed = export_records(read.gateway, read.settings, read.rules, read.report, since)
    matcher = _text_matcher(read.rules)
    wanted = {
        key
        for resources in changed.values()
        for resource in resources
        if (key := to_reread(resource, read.known, matcher)) is not None
    }
    updated = {
        f"{resource.get('resourceType')}/{resource.get('id')}"
        for resources in changed.values()
        for resource in resources
        if (resource.get("meta") or {}).get("versionId") != "1"
    }
    wanted |= _holding(read, extra, since, updated)
    wanted |= recoded_prescribers(read.gateway, read.scope, read.report, since)
    limit = _change_limit(read, extra)
    if len(wanted) > limit:
        log.info("%d patients changed (more than %d): exporting everything", len(wanted), limit)
        return None
    # a known patient re-read but not in scope (deleted, or moved to another practice) gets an
    # empty record, as in a full read, so the sweep does not go on evaluating the old snapshot
    fetched = read_rule_records(read.gateway, read.rules, wanted, read.report)
    return {patient: [] for patient in wanted & read.known} | in_scope(fetched, read.scope)


def monitored_patients(rules: RuleSet, by_patient: dict[str, list[Resource]]) -> set[str]:
    """Patients with a prescription any rule pack or co-medication class recognises."""
    wanted = (*MEDICATION_TYPES, "Medication")
    medicines = (r for rs in by_patient.values() for r in rs if r.get("resourceType") in wanted)
    mapped = map_records(rules, medicines, "server")
    return {patient for patient, record in mapped.records.items() if record.prescriptions}


def _text_matcher(rules: RuleSet) -> Callable[[dict[str, Any]], bool]:
    """Whether a (partial) MedicationRequest or MedicationStatement names a monitored drug, by
    code or by text."""
    builder = RecordBuilder(rules.catalogue, rules.medicines())

    def is_monitored(resource: dict[str, Any]) -> bool:
        builder.records.clear()
        probe = {"authoredOn": "1900-01-01", "effectiveDateTime": "1900-01-01", "id": "probe"}
        builder.add("server", {**resource, **probe})
        return any(record.prescriptions for record in builder.records.values())

    return is_monitored


def read_reopened(
    sessions: sessionmaker[Session],
    gateway: FHIRGateway,
    report: FetchReport,
    desired: Mapping[str, Desired],
    copies: dict[str, dict[str, Any]],
) -> None:
    """Add the server copies of wanted resources the server check did not read whose finding
    the ledger closed before (a finding that holds again keeps its resource and the workflow
    fields on it); any other identifier it did not read is new to the server."""
    unread = {d.key: identifier for identifier, d in desired.items() if d.key not in copies}
    with sessions.begin() as session:
        reopened = ledger.recorded_identifiers(session, unread.values())
    copies.update(resources_by_id(gateway, [k for k, i in unread.items() if i in reopened], report))
