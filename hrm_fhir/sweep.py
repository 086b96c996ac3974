"""One sweep: read the FHIR server, evaluate, write back Tasks and Flags, record it all.

The only place where the pure engine meets I/O for the live service. A sweep takes the database
lock first (one sweeper at a time), reads what it needs (everything in scope on the first run
or a full reconciliation; only what changed since the server-time watermark otherwise), keeps a
snapshot of each monitored patient's record so that everyone is re-evaluated as time passes,
plans the writes against the ledger, and applies them. The watermark and snapshots are saved
only when the sweep completes, so an interrupted sweep is simply repeated.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters import store
from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.adapters.fhir_mapping import RecordBuilder
from hrm_fhir.config import Settings
from hrm_fhir.domain import Finding, PatientRecord, PatientRef, RegisterEntry, Skipped
from hrm_fhir.errors import HRMError
from hrm_fhir.fetch import (
    MEDICATION_TYPES,
    FetchReport,
    Scope,
    changed_patients,
    our_resources,
    prescribed_patients,
    read_records,
    read_scope,
    record_searches,
    uncoded_candidates,
)
from hrm_fhir.offline import EvaluationRun, UnrecognisedKey, unrecognised_products
from hrm_fhir.records import SweepMode, SweepStatus, WriteOutcome
from hrm_fhir.rules.evaluate import Engine
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.therapy import MedicationIndex
from hrm_fhir.summary import render_summary
from hrm_fhir.tasks.emit import Counts, PatientContext, Writer, desired_resources, plan
from hrm_fhir.workflow.service import route_exhausted_chases

LOCK_TTL_SECONDS = 15 * 60
log = logging.getLogger(__name__)


class SweepBusyError(HRMError):
    """Another process holds the sweep lock."""


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
) -> SweepSummary:
    """Run one sweep; ``full`` None means incremental when a watermark exists, else full."""
    holder = holder or f"{socket.gethostname()}:{os.getpid()}"
    started = time.monotonic()
    _take_lock(sessions, holder, clock)
    try:
        if not dry_run:
            gateway.require_writable()
        scope = Scope(settings.practice)
        with sessions.begin() as session:
            store.mark_interrupted(session, now=clock())
            cursor = store.get_cursor(session, scope.label)
            is_full = full if full is not None else cursor is None
            sweep = store.start_sweep(
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
        )
        try:
            _sweep(
                settings, sessions, gateway, rules, summary, scope, cursor, is_full, clock, holder
            )
        except Exception as exc:
            log.error("sweep %s failed: %s", sweep_id, type(exc).__name__)
            with sessions.begin() as session:
                record = store.get_sweep(session, sweep_id)
                assert record is not None  # noqa: S101 - created above
                store.finish_sweep(
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
            store.release_lock(session, store.SWEEP_LOCK, holder)


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
) -> None:
    report = FetchReport()
    with sessions.begin() as session:
        snapshots = store.load_snapshots(session)
        ledger_patients = {r.patient for r in store.open_findings(session)}
    known = set(snapshots) | ledger_patients
    since = (
        None if is_full or cursor is None else _since(cursor, settings.watermark_overlap_seconds)
    )
    extra = record_searches(rules)
    if since is None:
        everyone = read_scope(gateway, scope, report, extra)
        wanted = _monitored(rules, everyone) | known
        fetched = {patient: everyone.get(patient, []) for patient in wanted}
    else:
        wanted = prescribed_patients(gateway, rules, scope, report, since)
        wanted |= uncoded_candidates(gateway, scope, report, _text_matcher(rules), since)
        wanted |= changed_patients(gateway, scope, report, since, extra) & known
        fetched = read_records(gateway, wanted, report, scope, extra)
    _renew(sessions, holder, clock)
    bodies = {patient: orjson.dumps(resources) for patient, resources in fetched.items()}
    current = {**snapshots, **bodies}
    engine = Engine.create(rules, summary.as_of, settings.due_window_days)
    records, skipped, unrecognised = _records(rules, current.values())
    findings: list[Finding] = []
    register: list[RegisterEntry] = []
    contexts: dict[str, PatientContext] = {}
    monitored: dict[str, bytes] = {}
    later = 0
    for key in sorted(records):
        record = records[key]
        therapies = engine.therapies(record)
        groups = engine.followed(therapies)
        alive = record.patient is None or record.patient.is_alive_on(summary.as_of)
        assessment = engine.assess(record)
        elsewhere = frozenset(e.drug_group for e in assessment.register if _held(e))
        contexts[key] = PatientContext(alive, groups, engine.latest_by_test(record), elsewhere)
        findings.extend(assessment.findings)
        register.extend(assessment.register)
        later += len(assessment.later)
        if therapies and key in current:
            monitored[key] = current[key]
    with sessions.begin() as session:
        open_records = store.open_findings(session)
    desired = desired_resources(findings, summary.as_of, engine.window_days)
    work = plan(desired, open_records, contexts, verify=summary.mode == "full")
    summary.patients = len(records)
    summary.findings = len(findings)
    summary.skipped = len(skipped)
    summary.warnings = [*report.shortfalls, *engine.warnings(later)]
    summary.watermark = report.server_time
    summary.evaluation = EvaluationRun(
        as_of=summary.as_of,
        findings=findings,
        skipped=skipped,
        patients=len(records),
        monitored=register,
        unrecognised=unrecognised_products(unrecognised),
        warnings=summary.warnings,
    )
    if summary.dry_run:
        summary.plan = work.to_json()
        summary.counts = Counts(
            created=len(work.creates),
            updated=len(work.updates),
            closed=len(work.closes),
            unchanged=work.unchanged,
        )
        _finish(sessions, summary, clock, watermark=None)
        return
    practices: dict[str, str | None] = {
        key: r.patient.practice if r.patient else None for key, r in records.items()
    }
    writer = Writer(
        gateway,
        sessions,
        sweep_id=summary.sweep_id,
        as_of=summary.as_of,
        practice_of=lambda patient: practices.get(patient),
        clock=clock,
    )
    server = our_resources(gateway, scope, report) if summary.mode == "full" else None
    summary.counts = writer.apply(work, contexts, server)
    with sessions.begin() as session:
        routed = route_exhausted_chases(
            gateway,
            session,
            as_of=summary.as_of,
            practice=settings.practice or None,
            chase_interval_days=settings.chase_interval_days,
            rules=rules,
            now=clock(),
        )
    summary.routed = len(routed)
    dropped = {patient: b"" for patient in current if patient not in monitored}
    with sessions.begin() as session:
        store.save_snapshots(
            session, {**monitored, **dropped}, sweep_id=summary.sweep_id, now=clock()
        )
        if report.server_time and not summary.counts.errors:
            store.set_cursor(
                session, scope.label, report.server_time, sweep_id=summary.sweep_id, now=clock()
            )
    _finish(sessions, summary, clock, watermark=report.server_time)


def _held(entry: RegisterEntry) -> bool:
    """Another organisation monitors the group, and its review date has not passed."""
    return entry.monitored_elsewhere is not None and not entry.monitored_elsewhere.lapsed


def _monitored(rules: RuleSet, by_patient: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Patients with a prescription any rule pack or co-medication class recognises."""
    index = MedicationIndex(rules.packs, rules.catalogue)
    builder = RecordBuilder(rules.catalogue, index)
    for resources in by_patient.values():
        for resource in resources:
            if resource.get("resourceType") in (*MEDICATION_TYPES, "Medication"):
                builder.add("server", resource)
    return {patient for patient, record in builder.finish().items() if record.prescriptions}


def _text_matcher(rules: RuleSet) -> Callable[[dict[str, Any]], bool]:
    """Whether a (partial) MedicationRequest names a monitored drug, by code or by text."""
    index = MedicationIndex(rules.packs, rules.catalogue)
    builder = RecordBuilder(rules.catalogue, index)

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
            if store.acquire_lock(
                session, store.SWEEP_LOCK, holder, ttl_seconds=LOCK_TTL_SECONDS, now=clock()
            ):
                return
        with sessions.begin() as session:
            lock = store.live_lock(session, store.SWEEP_LOCK, now=clock())
            if lock is None or not _is_dead_local(lock.holder):
                break
            store.release_lock(session, store.SWEEP_LOCK, lock.holder)
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
        if not store.acquire_lock(
            session, store.SWEEP_LOCK, holder, ttl_seconds=LOCK_TTL_SECONDS, now=clock()
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
        record = store.get_sweep(session, summary.sweep_id)
        assert record is not None  # noqa: S101 - created by run_sweep
        counts = {**summary.counts.as_dict(), "skipped": summary.skipped}
        store.finish_sweep(
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
        f"updated {counts.updated}, closed {counts.closed}, unchanged {counts.unchanged}, "
        f"errors {counts.errors}, skipped {summary.skipped}, {summary.duration_seconds:.1f} s",
        # the evaluation's summary below says the warnings (as WARNING:) when there is one
        *(f"warning: {w}" for w in summary.warnings if summary.evaluation is None),
    ]
    for write in store.sweep_writes(session, summary.sweep_id):
        if write.outcome is not WriteOutcome.OK:
            lines.append(
                f"- FAILED {write.action.value} {write.resource_type.value}/{write.resource_id} "
                f"[{write.outcome.value}] {write.reason}"
            )
    if summary.evaluation is not None:
        lines += ["", render_summary(summary.evaluation, heading=False)]
    return "\n".join(lines)


def default_as_of(settings: Settings) -> date:
    """Today in the service's time zone."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(settings.timezone)).date()
