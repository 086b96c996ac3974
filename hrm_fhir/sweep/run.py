"""One sweep: read the FHIR server, evaluate, write back Tasks and Flags, record it all.

The only place where the pure engine meets I/O for the live service. A sweep takes the database
lock first (one sweeper at a time), then:

1. checks the server (``reconcile.check_server``): the service's Tasks and Flags as the server
   holds them, what the ledger holds open that is missing, and whether the server was reset
   (then the sweep reconciles in full, whatever the watermark says);
2. reads the records it needs (the record types, and what the rules name beyond them,
   ``fetch.record_searches``: shared-care entries and arrangement Tasks, coded Conditions,
   Goals): everything in scope on the first run, a full reconciliation or a reset; otherwise
   it finds the patients whose records changed since the server-time watermark and re-reads
   them twenty per search, unless there are so many that this would cost more than paging the
   whole scope (``fetch.batch_limit`` of the page requests recorded at the last whole read):
   then it stops looking and reads everything once;
3. evaluates every monitored patient (from a snapshot of each record, so that everyone is
   re-evaluated as time passes; a drug group another organisation monitors gets no routine
   Tasks) and plans the writes against the server's copies, so a dry run plans what a real run
   does;
4. applies them, routes exhausted chases, and saves snapshots, watermark and server marker.

The watermark and snapshots are saved only when the sweep completes, so an interrupted sweep is
simply repeated.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.fhir.fetch import (
    MEDICATION_TYPES,
    FetchReport,
    Scope,
    Search,
    batch_limit,
    changed_patients,
    page_requests,
    read_records,
    read_scope,
    record_counts,
    record_searches,
    resources_by_id,
    searches_per_group,
    to_reread,
)
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import ResourceType, SweepMode, SweepStatus, WriteOutcome
from hrm_fhir.config import Settings
from hrm_fhir.domain import Finding, PatientRecord, PatientRef, RegisterEntry, Skipped
from hrm_fhir.errors import HRMError
from hrm_fhir.offline import EvaluationRun, UnrecognisedKey, unrecognised_products
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.summary import render_summary
from hrm_fhir.sweep.reconcile import check_server, keep_marker, new_marker_id
from hrm_fhir.sweep.source import export_records, in_scope
from hrm_fhir.tasks.emit import Counts, Desired, PatientContext, Writer, desired_resources, plan

LOCK_TTL_SECONDS = 15 * 60
log = logging.getLogger(__name__)


class SweepBusyError(HRMError):
    """Another process holds the sweep lock."""


class ChaseRouter(Protocol):
    """The chase cadence's last step, which every sweep takes after its writes: Tasks whose second
    reminder went unanswered go to the pharmacist. The workflow provides it
    (``workflow.chases.SweepChases``); the sweep only calls it."""

    def due(self, session: Session, as_of: date) -> set[str]:
        """The ids of the Tasks whose chase ran out (what a dry run counts)."""
        ...

    def route(self, session: Session, as_of: date, now: datetime) -> int:
        """Route each of them to the pharmacist; how many went."""
        ...


@dataclass
class SweepSummary:
    sweep_id: int
    mode: str
    dry_run: bool
    as_of: date
    scope: str
    patients: int = 0
    findings: int = 0
    counts: Counts = field(default_factory=Counts)
    skipped: int = 0
    routed: int = 0
    """Tasks routed to the pharmacist because the chase ran out (the cadence's last step)."""
    records_read: int = 0
    """Patients whose records were read from the server this sweep (the rest from snapshots)."""
    reset: bool = False
    """The server was found reset or replaced, so the sweep reconciled in full."""
    source: str = "search"
    """How the records were read: ``search`` (pages) or ``bulk`` (a Bulk Data export)."""
    duration_seconds: float = 0.0
    watermark: str | None = None
    warnings: list[str] = field(default_factory=list)
    plan: dict[str, object] | None = None
    evaluation: EvaluationRun | None = None
    """What the engine found, as ``evaluate`` reports it (for the readable summary)."""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sweep": self.sweep_id,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "as_of": self.as_of.isoformat(),
            "scope": self.scope,
            "patients": self.patients,
            "findings": self.findings,
            **self.counts.as_dict(),
            "skipped": self.skipped,
            "routed_to_pharmacist": self.routed,
            "records_read": self.records_read,
            "reset": self.reset,
            "source": self.source,
            "duration_seconds": round(self.duration_seconds, 3),
            "watermark": self.watermark,
            "warnings": self.warnings,
        }
        if self.plan is not None:
            out["plan"] = self.plan
        return out


def utc_now() -> datetime:
    return datetime.now(UTC)


def _since(watermark: str, overlap_seconds: int) -> str:
    moment = datetime.fromisoformat(watermark).astimezone(UTC) - timedelta(seconds=overlap_seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_sweep(
    settings: Settings,
    sessions: sessionmaker[Session],
    gateway: FHIRGateway,
    rules: RuleSet,
    *,
    as_of: date,
    dry_run: bool = False,
    full: bool | None = None,
    clock: Callable[[], datetime] = utc_now,
    holder: str | None = None,
    bulk: bool | None = None,
    chases: ChaseRouter,
) -> SweepSummary:
    """Run one sweep; ``full`` None means incremental when a watermark exists, else full;
    ``bulk`` reads the records through a Bulk Data export (None: ``settings.sweep_bulk``);
    ``chases`` takes the cadence's last step after the writes."""
    holder = holder or f"{socket.gethostname()}:{os.getpid()}"
    started = time.monotonic()
    _take_lock(sessions, holder, clock)
    try:
        if not dry_run:
            gateway.require_writable()
        scope = Scope(settings.practice)
        with sessions.begin() as session:
            ledger.mark_interrupted(session, now=clock())
            cursor = ledger.get_cursor(session, scope.label)
            is_full = full if full is not None else cursor is None
            sweep = ledger.start_sweep(
                session,
                mode=SweepMode.FULL if is_full else SweepMode.INCREMENTAL,
                dry_run=dry_run,
                fhir_base=gateway.base_url,
                scope=scope.label,
                as_of=as_of,
                now=clock(),
            )
            sweep_id = sweep.id
        summary = SweepSummary(
            sweep_id=sweep_id,
            mode="full" if is_full else "incremental",
            dry_run=dry_run,
            as_of=as_of,
            scope=scope.label,
            source="bulk" if (settings.sweep_bulk if bulk is None else bulk) else "search",
        )
        try:
            _sweep(
                settings,
                sessions,
                gateway,
                rules,
                summary,
                scope,
                cursor,
                is_full,
                clock,
                holder,
                chases,
            )
        except Exception as exc:
            log.error("sweep %s failed: %s", sweep_id, type(exc).__name__)
            with sessions.begin() as session:
                record = ledger.get_sweep(session, sweep_id)
                assert record is not None  # noqa: S101 - created above
                ledger.finish_sweep(
                    session,
                    record,
                    status=SweepStatus.FAILED,
                    counts=summary.counts.as_dict(),
                    watermark=None,
                    error=f"{type(exc).__name__}: {exc}",
                    now=clock(),
                )
            raise
        summary.duration_seconds = time.monotonic() - started
        log.info("sweep finished", extra={"sweep": summary.to_json() | {"plan": None}})
        return summary
    finally:
        with sessions.begin() as session:
            ledger.release_lock(session, ledger.SWEEP_LOCK, holder)


def _sweep(
    settings: Settings,
    sessions: sessionmaker[Session],
    gateway: FHIRGateway,
    rules: RuleSet,
    summary: SweepSummary,
    scope: Scope,
    cursor: str | None,
    is_full: bool,
    clock: Callable[[], datetime],
    holder: str,
    chases: ChaseRouter,
) -> None:
    report = FetchReport()
    with sessions.begin() as session:
        snapshots = ledger.load_snapshots(session)
        open_records = ledger.open_findings(session)
        kept = ledger.poll_cursor(session, scope.label)
        marker = kept.server_marker if kept else None
        scope_pages = kept.scope_pages if kept else None
    server = check_server(gateway, scope, report, open_records, marker)
    summary.warnings += server.warnings
    if server.reset is not None:
        log.warning("FHIR server reset detected: reconciling in full")
        summary.reset = True
        summary.warnings.append(f"server reset detected ({server.reset}): reconciled in full")
        _switch_to_full(sessions, summary)
    known = set(snapshots) | {r.patient for r in open_records}
    since = None if is_full or server.reset or cursor is None else cursor
    extra = record_searches(rules)
    bulk = summary.source == "bulk"
    fetched = None
    if since is not None:
        changes = _export_changes if bulk else _read_changes
        fetched = changes(settings, gateway, rules, scope, report, extra, known, since, scope_pages)
    whole = None
    if fetched is None:
        before = report.searches
        if bulk:
            everyone = in_scope(export_records(gateway, settings, rules, report), scope)
        else:
            everyone = read_scope(gateway, scope, report, extra)
            whole = report.searches - before
        fetched = {p: everyone.get(p, []) for p in _monitored(rules, everyone) | known}
    summary.records_read = len(fetched)
    _renew(sessions, holder, clock)
    bodies = {patient: orjson.dumps(resources) for patient, resources in fetched.items()}
    current = {**snapshots, **bodies}
    found = _evaluate(rules, settings, summary.as_of, current)
    desired = desired_resources(found.findings, summary.as_of, found.window_days)
    _read_reopened(sessions, gateway, report, desired, server.copies)
    work = plan(desired, open_records, found.contexts, server.copies)
    summary.patients = len(found.records)
    summary.findings = len(found.findings)
    summary.skipped = len(found.skipped)
    summary.warnings += [*report.shortfalls, *found.warnings]
    summary.watermark = report.server_time
    summary.evaluation = EvaluationRun(
        as_of=summary.as_of,
        findings=found.findings,
        skipped=found.skipped,
        patients=len(found.records),
        monitored=found.register,
        unrecognised=unrecognised_products(found.unrecognised),
        warnings=summary.warnings,
    )
    if summary.dry_run:
        summary.plan = work.to_json()
        summary.counts = work.counts()
        moved = {c.resource_id for c in work.closes if c.resource_type is ResourceType.TASK}
        with sessions.begin() as session:
            summary.routed = len(chases.due(session, summary.as_of) - moved)
        _finish(sessions, summary, clock, watermark=None)
        return
    practices: dict[str, str | None] = {
        key: r.patient.practice if r.patient else None for key, r in found.records.items()
    }
    writer = Writer(
        gateway,
        sessions,
        sweep_id=summary.sweep_id,
        as_of=summary.as_of,
        practice_of=lambda patient: practices.get(patient),
        clock=clock,
    )
    summary.counts = writer.apply(work, found.contexts)
    with sessions.begin() as session:
        summary.routed = chases.route(session, summary.as_of, clock())
    dropped = {patient: b"" for patient in current if patient not in found.monitored}
    completed = bool(report.server_time) and not summary.counts.errors
    with sessions.begin() as session:
        ledger.save_snapshots(
            session, {**found.monitored, **dropped}, sweep_id=summary.sweep_id, now=clock()
        )
        if completed and report.server_time:
            ledger.set_cursor(
                session,
                scope.label,
                report.server_time,
                sweep_id=summary.sweep_id,
                now=clock(),
                scope_pages=whole,
            )
    if completed and (marker is None or server.reset):
        _keep_marker(sessions, gateway, scope, summary, marker)
    _finish(sessions, summary, clock, watermark=report.server_time)


@dataclass
class _Evaluation:
    records: dict[PatientRef, PatientRecord]
    skipped: list[Any]
    findings: list[Finding]
    register: list[RegisterEntry]
    unrecognised: Counter[UnrecognisedKey]
    contexts: dict[str, PatientContext]
    monitored: dict[str, bytes]
    """The snapshot of every patient on a monitored drug, to keep for the next sweep."""
    window_days: int
    warnings: list[str]
    """What limits the whole run (rule packs not in force, results dated after the as-of date)."""


def _evaluate(
    rules: RuleSet, settings: Settings, as_of: date, current: dict[str, bytes]
) -> _Evaluation:
    """Every patient's findings, and what closing a finding needs to know about them."""
    evaluator = Evaluator.create(rules, as_of, settings.due_window_days)
    records, skipped, unrecognised = _records(rules, current.values())
    out = _Evaluation(records, skipped, [], [], unrecognised, {}, {}, evaluator.window_days, [])
    later = 0
    for key in sorted(records):
        record = records[key]
        therapies = evaluator.therapies(record)
        groups = evaluator.followed(therapies)
        alive = record.patient is None or record.patient.is_alive_on(as_of)
        assessment = evaluator.assess(record)
        elsewhere = frozenset(e.drug_group for e in assessment.register if _held(e))
        out.contexts[key] = PatientContext(
            alive, groups, evaluator.latest_by_test(record), elsewhere
        )
        out.findings.extend(assessment.findings)
        out.register.extend(assessment.register)
        later += len(assessment.later)
        if therapies and key in current:
            out.monitored[key] = current[key]
    out.warnings = evaluator.warnings(later)
    return out


def _read_reopened(
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


def _read_changes(
    settings: Settings,
    gateway: FHIRGateway,
    rules: RuleSet,
    scope: Scope,
    report: FetchReport,
    extra: Sequence[Search],
    known: set[str],
    cursor: str,
    scope_pages: int | None,
) -> dict[str, list[dict[str, Any]]] | None:
    """The records of the patients whose records (or what the ``extra`` searches find) changed
    since the watermark, or None as soon as there are so many that paging the whole scope costs
    less (see the module docstring)."""
    limit = _change_limit(gateway, scope, report, extra, scope_pages)
    since = _since(cursor, settings.watermark_overlap_seconds)
    wanted = changed_patients(
        gateway,
        scope,
        report,
        since,
        known=known,
        is_monitored=_text_matcher(rules),
        limit=limit,
        extra=extra,
    )
    if wanted is None:
        log.info("more than %d patients changed: reading everything in scope", limit)
        return None
    return read_records(gateway, wanted, report, extra=extra)


def _change_limit(
    gateway: FHIRGateway,
    scope: Scope,
    report: FetchReport,
    extra: Sequence[Search],
    scope_pages: int | None,
) -> int:
    """The most changed patients worth re-reading twenty per search rather than reading the
    whole scope (``scope_pages`` as recorded at the last whole read, else counted now)."""
    if scope_pages is None:
        scope_pages = page_requests(record_counts(gateway, scope, report, extra), gateway.page_size)
    return batch_limit(scope_pages, searches_per_group(extra))


def _export_changes(
    settings: Settings,
    gateway: FHIRGateway,
    rules: RuleSet,
    scope: Scope,
    report: FetchReport,
    extra: Sequence[Search],
    known: set[str],
    cursor: str,
    scope_pages: int | None,
) -> dict[str, list[dict[str, Any]]] | None:
    """``_read_changes`` with the changes found by a ``_since`` export instead of searches:
    the changed patients' records are re-read twenty per search, or None (export everything)
    when there are so many that paging the whole scope would cost less."""
    since = _since(cursor, settings.watermark_overlap_seconds)
    changed = export_records(gateway, settings, rules, report, since)
    matcher = _text_matcher(rules)
    wanted = {
        key
        for resources in changed.values()
        for resource in resources
        if (key := to_reread(resource, known, matcher)) is not None
    }
    limit = _change_limit(gateway, scope, report, extra, scope_pages)
    if len(wanted) > limit:
        log.info("%d patients changed (more than %d): exporting everything", len(wanted), limit)
        return None
    return in_scope(read_records(gateway, wanted, report, extra=extra), scope)


def _switch_to_full(sessions: sessionmaker[Session], summary: SweepSummary) -> None:
    """Record that this sweep reads everything in scope after all."""
    summary.mode = SweepMode.FULL.value
    with sessions.begin() as session:
        record = ledger.get_sweep(session, summary.sweep_id)
        assert record is not None  # noqa: S101 - created by run_sweep
        record.mode = SweepMode.FULL


def _keep_marker(
    sessions: sessionmaker[Session],
    gateway: FHIRGateway,
    scope: Scope,
    summary: SweepSummary,
    marker: str | None,
) -> None:
    """Write this ledger's marker on the server (again, after a reset) and record its id."""
    marker = marker or new_marker_id()
    problem = keep_marker(gateway, marker, scope, summary.as_of)
    if problem is not None:
        summary.warnings.append(problem)
        return
    with sessions.begin() as session:
        ledger.set_server_marker(session, scope.label, marker)


def _held(entry: RegisterEntry) -> bool:
    """Another organisation monitors the group, and its review date has not passed."""
    return entry.monitored_elsewhere is not None and not entry.monitored_elsewhere.lapsed


def _monitored(rules: RuleSet, by_patient: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Patients with a prescription any rule pack or co-medication class recognises."""
    builder = RecordBuilder(rules.catalogue, rules.medicines())
    for resources in by_patient.values():
        for resource in resources:
            if resource.get("resourceType") in (*MEDICATION_TYPES, "Medication"):
                builder.add("server", resource)
    return {patient for patient, record in builder.finish().items() if record.prescriptions}


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


def _records(
    rules: RuleSet, bodies: Iterable[bytes]
) -> tuple[dict[PatientRef, PatientRecord], list[Skipped], Counter[UnrecognisedKey]]:
    builder = RecordBuilder(rules.catalogue, rules.medicines())
    for body in bodies:
        for resource in orjson.loads(body):
            builder.add("server", resource)
    return builder.finish(), builder.skipped, builder.unrecognised


def _take_lock(sessions: sessionmaker[Session], holder: str, clock: Callable[[], datetime]) -> None:
    """Take the sweep lock; a lock left by a dead process on this host is taken over at once
    (a killed sweep would otherwise block the next one until the lease expires)."""
    for _ in range(2):
        with sessions.begin() as session:
            if ledger.acquire_lock(
                session, ledger.SWEEP_LOCK, holder, ttl_seconds=LOCK_TTL_SECONDS, now=clock()
            ):
                return
        with sessions.begin() as session:
            lock = ledger.live_lock(session, ledger.SWEEP_LOCK, now=clock())
            if lock is None or not _is_dead_local(lock.holder):
                break
            ledger.release_lock(session, ledger.SWEEP_LOCK, lock.holder)
    raise SweepBusyError("another sweep is running (the sweep lock is held)")


def _is_dead_local(holder: str) -> bool:
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _renew(sessions: sessionmaker[Session], holder: str, clock: Callable[[], datetime]) -> None:
    with sessions.begin() as session:
        if not ledger.acquire_lock(
            session, ledger.SWEEP_LOCK, holder, ttl_seconds=LOCK_TTL_SECONDS, now=clock()
        ):
            raise SweepBusyError("the sweep lock was lost to another process")


def _finish(
    sessions: sessionmaker[Session],
    summary: SweepSummary,
    clock: Callable[[], datetime],
    *,
    watermark: str | None,
) -> None:
    with sessions.begin() as session:
        record = ledger.get_sweep(session, summary.sweep_id)
        assert record is not None  # noqa: S101 - created by run_sweep
        counts = {**summary.counts.as_dict(), "skipped": summary.skipped}
        ledger.finish_sweep(
            session,
            record,
            status=SweepStatus.COMPLETED,
            counts=counts,
            watermark=watermark,
            error=None,
            now=clock(),
        )


def render_sweep(session: Session, summary: SweepSummary) -> str:
    """What the sweep wrote, in counts (with every write that failed), then what the engine found
    as ``evaluate --format summary`` prints it: urgent findings first, with the patient."""
    counts = summary.counts
    lines = [
        f"sweep {summary.sweep_id} ({summary.mode}{', dry run' if summary.dry_run else ''}) "
        f"as of {summary.as_of.isoformat()}, scope {summary.scope}: {summary.patients} patients, "
        f"{summary.findings} findings",
        f"{'would write' if summary.dry_run else 'wrote'}: created {counts.created}, "
        f"repaired {counts.repaired}, updated {counts.updated}, closed {counts.closed}, "
        f"unchanged {counts.unchanged}, errors {counts.errors}, skipped {summary.skipped}, "
        f"{summary.duration_seconds:.1f} s",
        # the evaluation's summary below says the warnings (as WARNING:) when there is one
        *(f"warning: {w}" for w in summary.warnings if summary.evaluation is None),
    ]
    for write in ledger.sweep_writes(session, summary.sweep_id):
        if write.outcome is not WriteOutcome.OK:
            lines.append(
                f"- FAILED {write.action.value} {write.resource_type.value}/{write.resource_id} "
                f"[{write.outcome.value}] {write.reason}"
            )
    if summary.evaluation is not None:
        lines += ["", render_summary(summary.evaluation, heading=False)]
    return "\n".join(lines)
