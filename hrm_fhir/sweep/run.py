"""One sweep: read the FHIR server, evaluate, write back Tasks and Flags, record it all.

The only place where the pure engine meets I/O for the live service. A sweep takes the database
lock first (one sweeper at a time, ``lock.py``), then:

1. checks the server (``reconcile.check_server``): the service's Tasks and Flags as the server
   holds them, what the ledger holds open that is missing, and whether the server was reset
   (then the sweep reconciles in full, whatever the watermark says);
2. reads the records it needs (the record types, and what the rules name beyond them,
   ``fetch.record_searches``: shared-care entries and arrangement Tasks, coded Conditions,
   Goals): everything in scope on the first run, a full reconciliation or a reset; otherwise
   it finds the patients whose records changed since the server-time watermark and re-reads
   them twenty per search, unless there are so many that this would cost more than paging the
   whole scope (``fetch.batch_limit`` of the page requests recorded at the last whole read):
   then it stops looking and reads everything once (``reads.py``);
3. evaluates every monitored patient (``evaluation.evaluate_records``, from a snapshot of each
   record, so that everyone is re-evaluated as time passes; a drug group another organisation
   monitors gets no routine Tasks) and plans the writes against the server's copies, so a dry
   run plans what a real run does;
4. applies them, routes exhausted chases, and saves snapshots, watermark and server marker.

The watermark and snapshots are saved only when the sweep completes, so an interrupted sweep is
simply repeated.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

import orjson
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.fhir.fetch import FetchReport, Scope
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import (
    FindingRecord,
    ResourceType,
    SweepMode,
    SweepStatus,
    WriteOutcome,
)
from hrm_fhir.config import Settings
from hrm_fhir.domain import Finding, RegisterEntry
from hrm_fhir.evaluation import Evaluation, EvaluationRun, evaluate_records, unrecognised_products
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.summary import render_summary
from hrm_fhir.sweep.lock import release_lock, renew_lock, take_lock
from hrm_fhir.sweep.reads import SweepRead, read_for_sweep, read_reopened
from hrm_fhir.sweep.reconcile import ServerState, check_server, keep_marker, new_marker_id
from hrm_fhir.tasks.emit import Counts, PatientContext, Plan, desired_resources, plan
from hrm_fhir.tasks.writer import Writer

log = logging.getLogger(__name__)


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
    take_lock(sessions, holder, clock)
    try:
        if not dry_run:
            gateway.require_writable()
        scope = Scope(settings.practice)
        summary, cursor = _start(sessions, gateway, scope, as_of, dry_run, full, clock)
        summary.source = "bulk" if (settings.sweep_bulk if bulk is None else bulk) else "search"
        run = _Run(settings, sessions, gateway, rules, summary, scope, clock, holder, chases)
        try:
            _sweep(run, cursor)
        except Exception as exc:
            _fail(run, exc)
            raise
        summary.duration_seconds = time.monotonic() - started
        log.info("sweep finished", extra={"sweep": summary.to_json() | {"plan": None}})
        return summary
    finally:
        release_lock(sessions, holder)


def _start(
    sessions: sessionmaker[Session],
    gateway: FHIRGateway,
    scope: Scope,
    as_of: date,
    dry_run: bool,
    full: bool | None,
    clock: Callable[[], datetime],
) -> tuple[SweepSummary, str | None]:
    """Record the sweep as started (after marking any left running as interrupted): full when
    asked, or when the scope has no watermark; its summary, and the watermark."""
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
        summary = SweepSummary(
            sweep_id=sweep.id,
            mode="full" if is_full else "incremental",
            dry_run=dry_run,
            as_of=as_of,
            scope=scope.label,
        )
    return summary, None if is_full else cursor


def _fail(run: _Run, exc: Exception) -> None:
    """Record the sweep as failed, with what was written before the failure."""
    log.error("sweep %s failed: %s", run.summary.sweep_id, type(exc).__name__)
    with run.sessions.begin() as session:
        record = ledger.get_sweep(session, run.summary.sweep_id)
        assert record is not None  # noqa: S101 - created by _start
        ledger.finish_sweep(
            session,
            record,
            status=SweepStatus.FAILED,
            counts=run.summary.counts.as_dict(),
            watermark=None,
            error=f"{type(exc).__name__}: {exc}",
            now=run.clock(),
        )


@dataclass
class _Run:
    """One sweep under way: where it reads and writes, and what it has found so far."""

    settings: Settings
    sessions: sessionmaker[Session]
    gateway: FHIRGateway
    rules: RuleSet
    summary: SweepSummary
    scope: Scope
    clock: Callable[[], datetime]
    holder: str
    chases: ChaseRouter
    report: FetchReport = field(default_factory=FetchReport)


@dataclass(frozen=True)
class _Ledger:
    """What the ledger holds when the sweep starts."""

    snapshots: dict[str, bytes]
    open_records: list[FindingRecord]
    marker: str | None
    """This ledger's marker on the server (None before the first completed sweep)."""
    scope_pages: int | None


def _sweep(run: _Run, cursor: str | None) -> None:
    """Steps 1 to 4 of the module docstring, with the lock held and the sweep recorded."""
    kept = _read_ledger(run)
    server = _check_server(run, kept)
    since = None if server.reset else cursor
    fetched, whole = read_for_sweep(_source(run, kept), since)
    run.summary.records_read = len(fetched)
    renew_lock(run.sessions, run.holder, run.clock)
    bodies = {patient: orjson.dumps(resources) for patient, resources in fetched.items()}
    current = {**kept.snapshots, **bodies}
    found = _evaluate(run.rules, run.settings, run.summary.as_of, current)
    work = _plan(run, found, kept, server)
    _report(run, found)
    if run.summary.dry_run:
        _dry_run(run, work)
        return
    _write(run, found, work)
    _save(run, current, found, whole)
    if _completed(run) and (kept.marker is None or server.reset):
        _keep_marker(run, kept.marker)
    _finish(run.sessions, run.summary, run.clock, watermark=run.report.server_time)


def _read_ledger(run: _Run) -> _Ledger:
    with run.sessions.begin() as session:
        cursor = ledger.poll_cursor(session, run.scope.label)
        return _Ledger(
            snapshots=ledger.load_snapshots(session),
            open_records=ledger.open_findings(session),
            marker=cursor.server_marker if cursor else None,
            scope_pages=cursor.scope_pages if cursor else None,
        )


def _check_server(run: _Run, kept: _Ledger) -> ServerState:
    """Step 1: the server's copies of the service's resources; a reset makes the sweep full."""
    server = check_server(run.gateway, run.scope, run.report, kept.open_records, kept.marker)
    run.summary.warnings += server.warnings
    if server.reset is not None:
        log.warning("FHIR server reset detected: reconciling in full")
        run.summary.reset = True
        run.summary.warnings.append(f"server reset detected ({server.reset}): reconciled in full")
        _switch_to_full(run.sessions, run.summary)
    return server


def _source(run: _Run, kept: _Ledger) -> SweepRead:
    return SweepRead(
        settings=run.settings,
        gateway=run.gateway,
        rules=run.rules,
        scope=run.scope,
        report=run.report,
        bulk=run.summary.source == "bulk",
        known=set(kept.snapshots) | {r.patient for r in kept.open_records},
        snapshots=kept.snapshots,
        scope_pages=kept.scope_pages,
    )


@dataclass(frozen=True)
class _Found:
    """What the evaluation of every record gave, and what writing it back needs."""

    evaluation: Evaluation
    findings: list[Finding]
    contexts: dict[str, PatientContext]
    monitored: dict[str, bytes]
    """The snapshot of every patient on a monitored drug, to keep for the next sweep."""


def _evaluate(rules: RuleSet, settings: Settings, as_of: date, current: dict[str, bytes]) -> _Found:
    """Step 3: every patient's findings, and what closing a finding needs to know about them."""
    resources = (resource for body in current.values() for resource in orjson.loads(body))
    evaluation = evaluate_records(rules, resources, as_of, window_days=settings.due_window_days)
    evaluator = evaluation.evaluator
    contexts: dict[str, PatientContext] = {}
    monitored: dict[str, bytes] = {}
    for key, assessment in evaluation.assessments.items():
        record = evaluation.records[key]
        therapies = evaluator.therapies(record)
        alive = record.patient is None or record.patient.is_alive_on(as_of)
        elsewhere = frozenset(e.drug_group for e in assessment.register if _held(e))
        latest = evaluator.latest_by_test(record)
        contexts[key] = PatientContext(alive, evaluator.followed(therapies), latest, elsewhere)
        if therapies and key in current:
            monitored[key] = current[key]
    return _Found(evaluation, evaluation.findings, contexts, monitored)


def _plan(run: _Run, found: _Found, kept: _Ledger, server: ServerState) -> Plan:
    """Step 3: the writes that bring the server's copies to what the findings want."""
    window = found.evaluation.evaluator.window_days
    desired = desired_resources(found.findings, run.summary.as_of, window)
    read_reopened(run.sessions, run.gateway, run.report, desired, server.copies)
    return plan(desired, kept.open_records, found.contexts, server.copies)


def _report(run: _Run, found: _Found) -> None:
    """What the sweep found, in its summary (as ``evaluate`` reports it)."""
    summary, evaluation = run.summary, found.evaluation
    summary.patients = len(evaluation.records)
    summary.findings = len(found.findings)
    summary.skipped = len(evaluation.skipped)
    summary.warnings += [*run.report.shortfalls, *evaluation.warnings()]
    summary.watermark = run.report.server_time
    summary.evaluation = EvaluationRun(
        as_of=summary.as_of,
        findings=found.findings,
        skipped=evaluation.skipped,
        patients=len(evaluation.records),
        monitored=evaluation.register,
        unrecognised=unrecognised_products(evaluation.unrecognised),
        warnings=summary.warnings,
    )


def _dry_run(run: _Run, work: Plan) -> None:
    """What a real run would write and route, recorded without writing it."""
    summary = run.summary
    summary.plan = work.to_json()
    summary.counts = work.counts()
    moved = {c.resource_id for c in work.closes if c.resource_type is ResourceType.TASK}
    with run.sessions.begin() as session:
        summary.routed = len(run.chases.due(session, summary.as_of) - moved)
    _finish(run.sessions, summary, run.clock, watermark=None)


def _write(run: _Run, found: _Found, work: Plan) -> None:
    """Step 4: apply the writes, then route the chases that ran out to the pharmacist."""
    records = found.evaluation.records
    practices: dict[str, str | None] = {
        key: r.patient.practice if r.patient else None for key, r in records.items()
    }
    writer = Writer(
        run.gateway,
        run.sessions,
        sweep_id=run.summary.sweep_id,
        as_of=run.summary.as_of,
        practice_of=lambda patient: practices.get(patient),
        clock=run.clock,
    )
    run.summary.counts = writer.apply(work, found.contexts)
    with run.sessions.begin() as session:
        run.summary.routed = run.chases.route(session, run.summary.as_of, run.clock())


def _completed(run: _Run) -> bool:
    """The server gave its time and every write went through: the watermark may move."""
    return bool(run.report.server_time) and not run.summary.counts.errors


def _save(run: _Run, current: dict[str, bytes], found: _Found, whole: int | None) -> None:
    """Step 4: the snapshots (dropping patients no longer monitored) and, when the sweep
    completed, the watermark and what a whole read of the scope cost."""
    dropped = {patient: b"" for patient in current if patient not in found.monitored}
    with run.sessions.begin() as session:
        ledger.save_snapshots(
            session, {**found.monitored, **dropped}, sweep_id=run.summary.sweep_id, now=run.clock()
        )
        if _completed(run) and run.report.server_time:
            ledger.set_cursor(
                session,
                run.scope.label,
                run.report.server_time,
                sweep_id=run.summary.sweep_id,
                now=run.clock(),
                scope_pages=whole,
            )


def _switch_to_full(sessions: sessionmaker[Session], summary: SweepSummary) -> None:
    """Record that this sweep reads everything in scope after all."""
    summary.mode = SweepMode.FULL.value
    with sessions.begin() as session:
        record = ledger.get_sweep(session, summary.sweep_id)
        assert record is not None  # noqa: S101 - created by run_sweep
        record.mode = SweepMode.FULL


def _keep_marker(run: _Run, marker: str | None) -> None:
    """Write this ledger's marker on the server (again, after a reset) and record its id."""
    marker = marker or new_marker_id()
    problem = keep_marker(run.gateway, marker, run.scope, run.summary.as_of)
    if problem is not None:
        run.summary.warnings.append(problem)
        return
    with run.sessions.begin() as session:
        ledger.set_server_marker(session, run.scope.label, marker)


def _held(entry: RegisterEntry) -> bool:
    """Another organisation monitors the group, and its review date has not passed."""
    return entry.monitored_elsewhere is not None and not entry.monitored_elsewhere.lapsed


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
