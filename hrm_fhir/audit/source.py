"""Read the monthly audit's inputs from the ledger: findings, workflow events, sweeps, and the
patients' records as the last sweep read them from the FHIR server (the snapshots).

Every query has an ORDER BY on a unique key: without one, row order is whatever the backend's
plan gives (insertion order on SQLite, not promised on PostgreSQL), and the same ledger must
give the same inputs on both."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.adapters.store.records import (
    FindingRecord,
    SnapshotRecord,
    SweepRecord,
    SweepStatus,
    WorkflowEventRecord,
)
from hrm_fhir.audit.clinical import clinical_position
from hrm_fhir.audit.definitions import AuditDefinitions
from hrm_fhir.audit.figures import month_bounds, practice_id
from hrm_fhir.audit.model import AuditInputs, EventFact, SweepFact, TaskFact
from hrm_fhir.domain import PatientRecord, PatientRef
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet


def snapshot_records(session: Session, rules: RuleSet) -> dict[PatientRef, PatientRecord]:
    """Every monitored patient's record, mapped from the snapshots the sweeps keep."""
    builder = RecordBuilder(rules.catalogue, rules.medicines())
    for body in session.scalars(select(SnapshotRecord.body).order_by(SnapshotRecord.patient)):
        for resource in orjson.loads(body):
            builder.add("snapshot", resource)
    return builder.finish()


def known_practices(session: Session) -> list[str]:
    """The practices the ledger has findings for."""
    rows = session.scalars(select(FindingRecord.practice).distinct())
    return sorted({p for row in rows if (p := practice_id(row))})


def read_audit_inputs(
    session: Session,
    rules: RuleSet,
    definitions: AuditDefinitions,
    month: date,
    practices: Collection[str],
    *,
    window_days: int | None = None,
) -> AuditInputs:
    """The inputs for ``month`` and these practices (Organization ids): nothing after month end."""
    _, last, _, end = month_bounds(month)
    wanted = set(practices)
    findings = tuple(
        _task(row)
        for row in session.execute(
            select(*_FINDING_COLUMNS)
            .where(FindingRecord.opened_at < end)
            .order_by(FindingRecord.identifier)
        )
        if practice_id(row.practice) in wanted
    )
    events = tuple(
        _event(row)
        for row in session.execute(
            select(*_EVENT_COLUMNS)
            .where(WorkflowEventRecord.at < end)
            .order_by(WorkflowEventRecord.at, WorkflowEventRecord.id)
        )
        if practice_id(row.practice) in wanted
    )
    scopes = {"all", *(f"Organization/{p}" for p in wanted)}
    sweeps = tuple(
        SweepFact(row.id, row.started_at, row.mode.value, row.scope, row.created, row.closed)
        for row in session.scalars(
            select(SweepRecord)
            .where(
                SweepRecord.status == SweepStatus.COMPLETED,
                SweepRecord.dry_run.is_(False),
                SweepRecord.started_at < end,
            )
            .order_by(SweepRecord.id)
        )
        if row.scope in scopes
    )
    evaluator = Evaluator.create(rules, last, window_days)
    records = [
        r
        for r in snapshot_records(session, rules).values()
        if r.patient is not None and practice_id(r.patient.practice) in wanted
    ]
    groups, indicators = clinical_position(records, evaluator, definitions)
    fetched: datetime | None = session.scalar(select(func.max(SnapshotRecord.fetched_at)))
    return AuditInputs(
        month=month.replace(day=1),
        groups=tuple(groups),
        indicators=tuple(indicators),
        findings=findings,
        events=events,
        sweeps=sweeps,
        record_as_at=fetched,
    )


_FINDING_COLUMNS = (
    FindingRecord.identifier,
    FindingRecord.resource_type,
    FindingRecord.resource_id,
    FindingRecord.patient,
    FindingRecord.practice,
    FindingRecord.kind,
    FindingRecord.drug_group,
    FindingRecord.severity,
    FindingRecord.due_date,
    FindingRecord.opened_at,
    FindingRecord.closed_at,
    FindingRecord.close_reason,
)
_EVENT_COLUMNS = (
    WorkflowEventRecord.at,
    WorkflowEventRecord.task_id,
    WorkflowEventRecord.patient,
    WorkflowEventRecord.practice,
    WorkflowEventRecord.actor,
    WorkflowEventRecord.role,
    WorkflowEventRecord.action,
    WorkflowEventRecord.stage_after,
    WorkflowEventRecord.detail,
)
_DETAIL_READ = frozenset({"signoff", "escalate", "acknowledge", "decision"})
"""The actions whose ``detail`` the report reads (the Flags concerned, the hours to action)."""


def _task(row: Row[*tuple[Any, ...]]) -> TaskFact:
    return TaskFact(
        identifier=row.identifier,
        resource_type=row.resource_type.value,
        resource_id=row.resource_id,
        patient=row.patient,
        practice=practice_id(row.practice),
        kind=row.kind,
        drug_group=row.drug_group,
        severity=row.severity,
        due_date=row.due_date,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
    )


def _event(row: Row[*tuple[Any, ...]]) -> EventFact:
    detail = orjson.loads(row.detail) if row.action in _DETAIL_READ and row.detail else {}
    return EventFact(
        at=row.at,
        task_id=row.task_id,
        patient=row.patient,
        practice=practice_id(row.practice),
        actor=row.actor,
        role=row.role,
        action=row.action,
        stage_after=row.stage_after,
        detail=detail if isinstance(detail, dict) else {},
    )
