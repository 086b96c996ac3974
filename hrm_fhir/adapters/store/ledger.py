"""Repository functions over the service's own records; each takes the ``Session`` first.

They flush but never commit, so the caller's unit of work decides; the lock functions are the
exception and commit, because a lease must be visible to other processes at once. Nothing here
reads a clock: callers pass ``now`` (timezone-aware).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, case, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.records import (
    FindingRecord,
    LockRecord,
    PollCursor,
    ResourceType,
    SnapshotRecord,
    SweepMode,
    SweepRecord,
    SweepStatus,
    WriteAction,
    WriteOutcome,
    WriteRecord,
)
from hrm_fhir.domain import Finding, FindingKind, Severity

COUNTERS = ("created", "updated", "closed", "unchanged", "repaired", "skipped", "errors")
"""The per-sweep counters ``finish_sweep`` accepts."""
SWEEP_LOCK = "sweep"
"""The lock a sweeper holds while it runs."""
_IN_CHUNK = 500
"""Values per ``IN (...)`` list, well under every backend's bound-parameter limit."""


def start_sweep(
    session: Session,
    *,
    mode: SweepMode,
    dry_run: bool,
    fhir_base: str,
    scope: str,
    as_of: date,
    now: datetime,
) -> SweepRecord:
    """A new ``running`` sweep, flushed so it has its id."""
    sweep = SweepRecord(
        started_at=now,
        status=SweepStatus.RUNNING,
        mode=mode,
        dry_run=dry_run,
        fhir_base=fhir_base,
        scope=scope,
        as_of=as_of,
    )
    session.add(sweep)
    session.flush()
    return sweep


def finish_sweep(
    session: Session,
    sweep: SweepRecord,
    *,
    status: SweepStatus,
    counts: Mapping[str, int],
    watermark: str | None,
    error: str | None,
    now: datetime,
) -> None:
    """End a sweep with its final status, counters (names from ``COUNTERS``) and watermark."""
    if status is SweepStatus.RUNNING:
        raise ValueError("a sweep cannot finish as running")
    unknown = sorted(set(counts) - set(COUNTERS))
    if unknown:
        raise ValueError(f"unknown sweep counters: {', '.join(unknown)}")
    for name, value in counts.items():
        setattr(sweep, name, value)
    sweep.status = status
    sweep.finished_at = now
    sweep.watermark = watermark
    sweep.error = _storable(error)
    sweep.duration_seconds = (now - sweep.started_at).total_seconds()
    session.flush()


def get_sweep(session: Session, sweep_id: int) -> SweepRecord | None:
    return session.get(SweepRecord, sweep_id)


def list_sweeps(
    session: Session, limit: int = 50, scopes: Collection[str] | None = None
) -> list[SweepRecord]:
    """The most recent sweeps first; only those of ``scopes`` (``all``, ``Organization/<id>``)
    when given."""
    query = select(SweepRecord).order_by(SweepRecord.started_at.desc(), SweepRecord.id.desc())
    if scopes is not None:
        query = query.where(SweepRecord.scope.in_(scopes))
    return list(session.scalars(query.limit(limit)))


def running_sweep(session: Session) -> SweepRecord | None:
    """The most recently started sweep still marked ``running``."""
    query = (
        select(SweepRecord)
        .where(SweepRecord.status == SweepStatus.RUNNING)
        .order_by(SweepRecord.started_at.desc(), SweepRecord.id.desc())
    )
    return session.scalars(query.limit(1)).first()


def mark_interrupted(
    session: Session, *, now: datetime, lock_name: str = SWEEP_LOCK
) -> list[SweepRecord]:
    """Mark ``interrupted`` every running sweep that no live lock covers, and return them.

    With no live lock every running sweep is orphaned; with one, only sweeps started before its
    holder acquired it (renewals keep ``acquired_at``), since those belonged to an earlier holder.
    A sweeper must therefore take the lock before it calls ``start_sweep``.
    """
    query = select(SweepRecord).where(SweepRecord.status == SweepStatus.RUNNING)
    lock = live_lock(session, lock_name, now=now)
    if lock is not None:
        query = query.where(SweepRecord.started_at < lock.acquired_at)
    orphans = list(session.scalars(query.order_by(SweepRecord.id)))
    for sweep in orphans:
        sweep.status = SweepStatus.INTERRUPTED
        sweep.error = f"still running at {now.isoformat()} without holding the {lock_name!r} lock"
    session.flush()
    return orphans


def get_cursor(session: Session, scope: str) -> str | None:
    """The watermark the next incremental sweep of ``scope`` starts from, if any."""
    cursor = session.get(PollCursor, scope)
    return cursor.watermark if cursor is not None else None


def poll_cursor(session: Session, scope: str) -> PollCursor | None:
    """Everything the ledger keeps about ``scope`` between sweeps (watermark, marker, size)."""
    return session.get(PollCursor, scope)


def set_cursor(
    session: Session,
    scope: str,
    watermark: str,
    *,
    sweep_id: int,
    now: datetime,
    scope_pages: int | None = None,
) -> PollCursor:
    """Move ``scope``'s watermark; call it only once the sweep's writes are committed.
    ``scope_pages`` (when the sweep read the whole scope) replaces the recorded cost of that."""
    cursor = session.get(PollCursor, scope)
    if cursor is None:
        cursor = PollCursor(scope=scope)
        session.add(cursor)
    cursor.watermark = watermark
    cursor.sweep_id = sweep_id
    cursor.updated_at = now
    if scope_pages is not None:
        cursor.scope_pages = scope_pages
    session.flush()
    return cursor


def set_server_marker(session: Session, scope: str, marker: str) -> None:
    """Record the marker written for ``scope``; the scope's cursor must exist (``set_cursor``)."""
    cursor = session.get(PollCursor, scope)
    if cursor is None:
        raise LookupError(f"no cursor for {scope}: set the watermark first")
    cursor.server_marker = marker
    session.flush()


def find_finding(session: Session, identifier: str) -> FindingRecord | None:
    return session.get(FindingRecord, identifier)


def open_findings(
    session: Session, *, patient: str | None = None, practice: str | None = None
) -> list[FindingRecord]:
    """Findings not yet closed, optionally for one patient or practice, by identifier."""
    query = select(FindingRecord).where(FindingRecord.closed_at.is_(None))
    if patient is not None:
        query = query.where(FindingRecord.patient == patient)
    if practice is not None:
        query = query.where(FindingRecord.practice == practice)
    return list(session.scalars(query.order_by(FindingRecord.identifier)))


def recorded_identifiers(session: Session, identifiers: Iterable[str]) -> set[str]:
    """Which of these finding identifiers the ledger has a row for, open or closed."""
    wanted = sorted(set(identifiers))
    found: set[str] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        query = select(FindingRecord.identifier).where(FindingRecord.identifier.in_(chunk))
        found.update(session.scalars(query))
    return found


def list_findings(
    session: Session,
    *,
    practice: str | None = None,
    drug_group: str | None = None,
    kind: FindingKind | None = None,
    severity: Severity | None = None,
    state: Literal["open", "closed"] | None = None,
    limit: int = 500,
) -> list[FindingRecord]:
    """Findings matching every filter given, most recently opened first."""
    query = select(FindingRecord)
    if practice is not None:
        query = query.where(FindingRecord.practice == practice)
    if drug_group is not None:
        query = query.where(FindingRecord.drug_group == drug_group)
    if kind is not None:
        query = query.where(FindingRecord.kind == kind)
    if severity is not None:
        query = query.where(FindingRecord.severity == severity)
    if state == "open":
        query = query.where(FindingRecord.closed_at.is_(None))
    elif state == "closed":
        query = query.where(FindingRecord.closed_at.is_not(None))
    query = query.order_by(FindingRecord.opened_at.desc(), FindingRecord.identifier)
    return list(session.scalars(query.limit(limit)))


def _describe(record: FindingRecord, finding: Finding) -> None:
    record.patient = finding.patient
    record.kind = finding.kind
    record.drug_group = finding.drug_group
    record.rule = finding.rule
    record.check = finding.check
    record.severity = finding.severity
    record.due_date = finding.due_date
    record.reason = finding.reason


def _open_record(session: Session, identifier: str) -> FindingRecord:
    record = session.get(FindingRecord, identifier)
    if record is None or record.closed_at is not None:
        raise LookupError(f"no open finding {identifier}")
    return record


def open_finding(
    session: Session,
    finding: Finding,
    *,
    practice: str | None,
    resource_type: ResourceType,
    resource_id: str,
    status: str,
    content_hash: str,
    version_id: str | None,
    sweep_id: int,
    now: datetime,
) -> FindingRecord:
    """Record that a finding's resource was written and the finding is open.

    A closed finding with the same identifier is reopened: its row takes the new opening and
    loses the old closing (the write audit keeps both). An already open one is a ValueError.
    """
    record = session.get(FindingRecord, finding.identifier)
    if record is None:
        record = FindingRecord(identifier=finding.identifier)
        session.add(record)
    elif record.closed_at is None:
        raise ValueError(f"finding {finding.identifier} is already open")
    _describe(record, finding)
    record.practice = practice
    record.resource_type = resource_type
    record.resource_id = resource_id
    record.opened_at = now
    record.opened_sweep_id = sweep_id
    record.closed_at = None
    record.closed_sweep_id = None
    record.close_reason = None
    record.status = status
    record.content_hash = content_hash
    record.version_id = version_id
    session.flush()
    return record


def record_finding_write(
    session: Session,
    finding: Finding,
    *,
    status: str,
    content_hash: str,
    version_id: str | None,
) -> FindingRecord:
    """Record that an open finding's resource was rewritten with this finding's content."""
    record = _open_record(session, finding.identifier)
    _describe(record, finding)
    record.status = status
    record.content_hash = content_hash
    record.version_id = version_id
    session.flush()
    return record


def close_finding(
    session: Session,
    identifier: str,
    *,
    reason: str,
    status: str,
    version_id: str | None,
    sweep_id: int,
    now: datetime,
) -> FindingRecord:
    """Close an open finding, with why (``result received``, ``drug stopped``...) and the
    status and version its resource was left at; LookupError when it is not open."""
    record = _open_record(session, identifier)
    record.closed_at = now
    record.closed_sweep_id = sweep_id
    record.close_reason = reason
    record.status = status
    record.version_id = version_id
    session.flush()
    return record


def record_write(
    session: Session,
    *,
    sweep_id: int | None,
    resource_type: ResourceType,
    resource_id: str,
    action: WriteAction,
    outcome: WriteOutcome,
    reason: str,
    now: datetime,
    http_status: int | None = None,
    version_id: str | None = None,
    detail: str | None = None,
    finding_identifier: str | None = None,
) -> WriteRecord:
    """Audit one write made or attempted, and why."""
    write = WriteRecord(
        sweep_id=sweep_id,
        at=now,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        finding_identifier=finding_identifier,
        http_status=http_status,
        version_id=version_id,
        outcome=outcome,
        detail=_storable(detail),
        reason=reason,
    )
    session.add(write)
    session.flush()
    return write


def _storable(text: str | None) -> str | None:
    """Text from elsewhere (a server's error) with any NUL, which no column holds, made visible."""
    return text.replace("\x00", "\ufffd") if text is not None else None


def live_lock(session: Session, name: str, *, now: datetime) -> LockRecord | None:
    """The lock called ``name`` if it has not expired, as the database has it now."""
    query = (
        select(LockRecord)
        .where(LockRecord.name == name, LockRecord.expires_at > now)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).first()


def acquire_lock(
    session: Session, name: str, holder: str, *, ttl_seconds: float, now: datetime
) -> bool:
    """Take (or, for the same holder, renew) the lock ``name`` for ``ttl_seconds``; commits.

    Atomic across processes sharing the database: one conditional UPDATE takes over an expired
    lock or renews our own, otherwise an INSERT claims an absent one and loses to any concurrent
    claimant on the primary key. On PostgreSQL a rival blocked on the row lock re-checks the
    condition against our committed row (READ COMMITTED, which ``make_engine`` pins), so it
    matches nothing. Call it with no other work pending in ``session``.
    """
    expires_at = now + timedelta(seconds=ttl_seconds)
    takeover = (
        update(LockRecord)
        .where(
            LockRecord.name == name,
            (LockRecord.expires_at <= now) | (LockRecord.holder == holder),
        )
        .values(
            holder=holder,
            acquired_at=case(
                (LockRecord.holder == holder, LockRecord.acquired_at),
                else_=literal(now, LockRecord.acquired_at.type),
            ),
            expires_at=expires_at,
        )
        .execution_options(synchronize_session="fetch")
    )
    if cast("CursorResult[Any]", session.execute(takeover)).rowcount == 1:
        session.commit()
        return True
    try:
        session.execute(
            insert(LockRecord).values(
                name=name, holder=holder, acquired_at=now, expires_at=expires_at
            )
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def release_lock(session: Session, name: str, holder: str) -> bool:
    """Give up the lock if ``holder`` still holds it; commits. False if it did not."""
    result = session.execute(
        delete(LockRecord)
        .where(LockRecord.name == name, LockRecord.holder == holder)
        .execution_options(synchronize_session="fetch")
    )
    session.commit()
    return cast("CursorResult[Any]", result).rowcount == 1


def load_snapshots(session: Session) -> dict[str, bytes]:
    """Every monitored patient's last-read resources (orjson list), by patient reference."""
    return {row.patient: row.body for row in session.scalars(select(SnapshotRecord))}


def save_snapshots(
    session: Session, bodies: Mapping[str, bytes], *, sweep_id: int, now: datetime
) -> None:
    """Replace the snapshots of these patients; an empty body removes the patient."""
    for patient, body in bodies.items():
        row = session.get(SnapshotRecord, patient)
        if not body or body == b"[]":
            if row is not None:
                session.delete(row)
            continue
        if row is None:
            session.add(
                SnapshotRecord(patient=patient, body=body, fetched_at=now, sweep_id=sweep_id)
            )
        else:
            row.body, row.fetched_at, row.sweep_id = body, now, sweep_id
    session.flush()


def sweep_writes(session: Session, sweep_id: int) -> list[WriteRecord]:
    """The writes one sweep made or attempted, in order."""
    query = select(WriteRecord).where(WriteRecord.sweep_id == sweep_id).order_by(WriteRecord.id)
    return list(session.scalars(query))
