"""Synthetic programme history: months of weekly sweeps and team activity written to a ledger,
for the monthly report's tests, benchmark and demonstration. Synthetic patients only.

Each Monday the engine runs as of that day over a synthetic practice (results dated later are
not yet known), and the ledger gains the findings a sweep would open and close. The team's work
between sweeps (contact attempts, bookings, routing non-responders, decisions, sign-offs, GP
escalations and acknowledgements) is drawn from a seeded PRNG: one seed, one history.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hrm_fhir import clock
from hrm_fhir.adapters.store.ledger import save_snapshots
from hrm_fhir.adapters.store.records import (
    FindingRecord,
    ResourceType,
    SweepMode,
    SweepRecord,
    SweepStatus,
    WorkflowEventRecord,
)
from hrm_fhir.domain import Finding, FindingKind, PatientRecord, PatientRef, Severity
from hrm_fhir.evaluation import map_records
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.tasks.build import is_flag
from hrm_fhir.tasks.emit import PatientContext, close_reason

Resource = Mapping[str, Any]
TECHNICIAN = ("sim-technician", "technician")
PHARMACIST = ("sim-pharmacist", "pharmacist")
GP = ("sim-gp", "gp")
SERVICE = ("hrm-fhir", "admin")
CHASE = ("to-contact", "invited", "reminded", "reminded-2")
CHASE_DAYS = 14


@dataclass
class _Chase:
    stage: str = "to-contact"
    last_contact: datetime | None = None


@dataclass
class _Ledger:
    """The simulated ledger: every finding row by identifier, and the events so far."""

    session: Session
    practice: Mapping[str, str | None]
    horizon: datetime
    """No event is dated at or after this instant (the end of the history)."""
    rows: dict[str, FindingRecord] = field(default_factory=dict)
    chases: dict[str, _Chase] = field(default_factory=dict)
    events: list[WorkflowEventRecord] = field(default_factory=list)

    def open_rows(self) -> list[FindingRecord]:
        return [r for r in self.rows.values() if r.closed_at is None]

    def event(
        self,
        who: tuple[str, str],
        action: str,
        task_id: str,
        patient: str,
        at: datetime,
        stage: tuple[str | None, str | None],
        **detail: object,
    ) -> bool:
        """Record one action unless it would fall after the history ends."""
        if at >= self.horizon:
            return False
        self.events.append(
            WorkflowEventRecord(
                at=at,
                task_id=task_id,
                patient=patient,
                practice=self.practice.get(patient),
                actor=who[0],
                role=who[1],
                action=action,
                stage_before=stage[0],
                stage_after=stage[1],
                detail=orjson.dumps(detail).decode(),
                written="",
            )
        )
        return True


@dataclass(frozen=True)
class HistorySummary:
    sweeps: int
    findings: int
    events: int
    patients: int


def monday_mornings(start: date, end: date) -> list[datetime]:
    """06:00 London on every Monday from ``start`` to ``end``."""
    monday = start + timedelta(days=(7 - start.weekday()) % 7)
    out = []
    while monday <= end:
        out.append(clock.start_of(monday, time(6)).astimezone(UTC))
        monday += timedelta(weeks=1)
    return out


def write_history(
    session: Session,
    rules: RuleSet,
    resources: Iterable[Resource],
    *,
    start: date,
    end: date,
    seed: int,
) -> HistorySummary:
    """Simulate the programme weekly from ``start`` to ``end`` into the ledger behind ``session``,
    and store each monitored patient's resources as the snapshot the last sweep would keep.
    The caller commits."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    by_patient, shared = _by_patient(resources)
    every = [*shared.values(), *(r for rs in by_patient.values() for r in rs)]
    mapped = map_records(rules, (dict(resource) for resource in every), "synthetic")
    monitored = {k: r for k, r in mapped.records.items() if r.prescriptions}
    horizon = clock.start_of(end + timedelta(days=1)).astimezone(UTC)
    ledger = _Ledger(
        session,
        {k: r.patient.practice if r.patient else None for k, r in monitored.items()},
        horizon,
    )
    ticks = monday_mornings(start, end)
    sweep: SweepRecord | None = None
    for number, moment in enumerate(ticks):
        sweep = _sweep_record(session, moment, first=number == 0)
        opened, closed = _sweep(ledger, rules, monitored, sweep, moment)
        _team_work(ledger, moment, opened, closed, rng)
        session.flush()
    session.add_all(ledger.events)
    if sweep is not None:
        bodies: dict[str, bytes] = {
            key: _snapshot(by_patient[key], shared) for key in monitored if key in by_patient
        }
        save_snapshots(session, bodies, sweep_id=sweep.id, now=ticks[-1])
    session.flush()
    return HistorySummary(len(ticks), len(ledger.rows), len(ledger.events), len(monitored))


def _by_patient(
    resources: Iterable[Resource],
) -> tuple[dict[str, list[Resource]], dict[str, Resource]]:
    """Each patient's resources, and the shared ones (Medications, Organizations) by reference."""
    by_patient: dict[str, list[Resource]] = {}
    shared: dict[str, Resource] = {}
    for resource in resources:
        kind = resource.get("resourceType")
        if kind == "Patient":
            subject = f"Patient/{resource.get('id')}"
        else:
            subject = str((resource.get("subject") or {}).get("reference", ""))
        if subject.startswith("Patient/"):
            by_patient.setdefault(subject, []).append(resource)
        else:
            shared[f"{kind}/{resource.get('id')}"] = resource
    return by_patient, shared


def _snapshot(resources: list[Resource], shared: Mapping[str, Resource]) -> bytes:
    """The patient's resources plus the Medications they reference, as a sweep stores them."""
    referenced = {
        str(r["medicationReference"].get("reference"))
        for r in resources
        if isinstance(r.get("medicationReference"), dict)
    }
    return orjson.dumps([*resources, *(shared[ref] for ref in sorted(referenced) if ref in shared)])


def _sweep_record(session: Session, moment: datetime, *, first: bool) -> SweepRecord:
    sweep = SweepRecord(
        started_at=moment,
        finished_at=moment + timedelta(minutes=5),
        status=SweepStatus.COMPLETED,
        mode=SweepMode.FULL if first else SweepMode.INCREMENTAL,
        dry_run=False,
        fhir_base="synthetic",
        scope="all",
        as_of=clock.local_date(moment),
    )
    session.add(sweep)
    session.flush()
    return sweep


def _sweep(
    ledger: _Ledger,
    rules: RuleSet,
    monitored: Mapping[PatientRef, PatientRecord],
    sweep: SweepRecord,
    moment: datetime,
) -> tuple[list[tuple[FindingRecord, Finding]], list[FindingRecord]]:
    """Open what the engine finds today, close what no longer holds; returns both."""
    evaluator = Evaluator.create(rules, clock.local_date(moment))
    found = {f.identifier: f for record in monitored.values() for f in evaluator.evaluate(record)}
    opened = []
    for identifier in sorted(found):
        finding = found[identifier]
        row = ledger.rows.get(identifier)
        if row is not None and row.closed_at is None:
            row.kind = finding.kind
            continue
        if row is None:
            row = FindingRecord(identifier=identifier)
            ledger.rows[identifier] = row
            ledger.session.add(row)
        _open(row, finding, ledger.practice.get(finding.patient), sweep, moment)
        opened.append((row, finding))
    closed = []
    for row in ledger.open_rows():
        if row.identifier in found:
            continue
        record = monitored[PatientRef(row.patient)]
        therapies = evaluator.therapies(record)
        context = PatientContext(
            alive=record.patient is None or record.patient.is_alive_on(evaluator.as_of),
            current_groups=evaluator.followed(therapies),
            latest_results={},
        )
        row.closed_at, row.closed_sweep_id = moment, sweep.id
        row.close_reason = close_reason(row, context)
        row.status = "inactive" if row.resource_type is ResourceType.FLAG else "cancelled"
        closed.append(row)
    return opened, closed


def _open(
    row: FindingRecord, finding: Finding, practice: str | None, sweep: SweepRecord, moment: datetime
) -> None:
    flag = is_flag(finding)
    row.patient, row.kind, row.drug_group = finding.patient, finding.kind, finding.drug_group
    row.rule, row.check, row.severity = finding.rule, finding.check, finding.severity
    row.due_date, row.reason, row.practice = finding.due_date, finding.reason, practice
    row.resource_type = ResourceType.FLAG if flag else ResourceType.TASK
    row.resource_id = finding.identifier
    row.opened_at, row.opened_sweep_id = moment, sweep.id
    row.closed_at = row.closed_sweep_id = row.close_reason = None
    row.status = "active" if flag else "requested"
    row.content_hash, row.version_id = "synthetic", "1"


def _hours_after(rng: random.Random, moment: datetime, low: float, high: float) -> datetime:
    return moment + timedelta(hours=round(rng.uniform(low, high), 1))


def _team_work(
    ledger: _Ledger,
    moment: datetime,
    opened: list[tuple[FindingRecord, Finding]],
    closed: list[FindingRecord],
    rng: random.Random,
) -> None:
    """The week's work after the sweep: chase, route, decide, sign off, escalate, acknowledge."""
    for row in sorted(ledger.open_rows(), key=lambda r: r.identifier):
        if row.kind in (FindingKind.DUE, FindingKind.OVERDUE):
            _chase(ledger, row, moment, rng)
    for row in sorted(closed, key=lambda r: r.identifier):
        stage = ledger.chases.get(row.identifier, _Chase()).stage
        if row.close_reason == "result received" and stage != "completed" and rng.random() < 0.9:
            _sign_off(ledger, row, _hours_after(rng, moment, 4, 120))
    for row, finding in opened:
        if row.kind is FindingKind.OUT_OF_RANGE:
            _review(ledger, row, finding, moment, rng)


def _chase(ledger: _Ledger, row: FindingRecord, moment: datetime, rng: random.Random) -> None:
    chase = ledger.chases.setdefault(row.identifier, _Chase())
    due = chase.last_contact is None or moment - chase.last_contact >= timedelta(days=CHASE_DAYS)
    if chase.stage == "non-engagement":
        if rng.random() < 0.5:
            at = _hours_after(rng, moment, 2, 100)
            if ledger.event(
                PHARMACIST,
                "decision",
                row.resource_id,
                row.patient,
                at,
                ("non-engagement", "completed"),
                decision="continue-with-caveats",
            ):
                chase.stage = "completed"
        return
    if chase.stage not in CHASE or not due:
        return
    if chase.stage == "reminded-2":
        at = moment + timedelta(minutes=10)
        if ledger.event(
            SERVICE, "route", row.resource_id, row.patient, at, ("reminded-2", "non-engagement")
        ):
            chase.stage = "non-engagement"
        return
    if rng.random() >= (0.4 if row.kind is FindingKind.DUE else 0.8):
        return
    at = _hours_after(rng, moment, 2, 70)
    booked = rng.random() < 0.35
    after = "booked" if booked else CHASE[CHASE.index(chase.stage) + 1]
    outcome = "booked" if booked else rng.choice(("no-answer", "message-sent"))
    if ledger.event(
        TECHNICIAN,
        "contact",
        row.resource_id,
        row.patient,
        at,
        (chase.stage, after),
        medium=rng.choice(("sms", "phone", "letter")),
        outcome=outcome,
    ):
        chase.stage, chase.last_contact = after, at


def _review(
    ledger: _Ledger, row: FindingRecord, finding: Finding, moment: datetime, rng: random.Random
) -> None:
    """A pharmacist acts on a new out-of-range result (or, sometimes, nobody does)."""
    urgent = finding.severity is Severity.URGENT
    if rng.random() >= (0.9 if urgent else 0.75):
        return
    at = _hours_after(rng, moment, 2, 30) if urgent else _hours_after(rng, moment, 12, 120)
    observed = finding.observed_on or clock.local_date(moment)
    result_at = clock.start_of(observed, time(9, 30)).astimezone(UTC)
    hours = round((at - result_at).total_seconds() / 3600, 1)
    detail: dict[str, object] = {
        "flags": [row.resource_id] if row.resource_type is ResourceType.FLAG else [],
        "result_at": result_at.isoformat(),
        "result_to_action_hours": hours,
    }
    if rng.random() < 0.3:
        gp_task = f"gp-{row.resource_id}"
        if (
            ledger.event(
                PHARMACIST,
                "escalate",
                row.resource_id,
                row.patient,
                at,
                ("awaiting-pharmacist", "escalated-gp"),
                decision="escalated-gp",
                gp_task=f"Task/{gp_task}",
                **detail,
            )
            and rng.random() < 0.85
        ):
            ack = _hours_after(rng, at, 24, 96)
            ledger.event(
                GP,
                "acknowledge",
                gp_task,
                row.patient,
                ack,
                ("escalated-gp", "completed"),
                result_at=result_at.isoformat(),
                result_to_action_hours=round((ack - result_at).total_seconds() / 3600, 1),
            )
        return
    _sign_off(ledger, row, at, **detail)


def _sign_off(ledger: _Ledger, row: FindingRecord, at: datetime, **detail: object) -> None:
    """The pharmacist reviews the result and continues the drug."""
    ledger.event(
        PHARMACIST,
        "signoff",
        row.resource_id,
        row.patient,
        at,
        ("awaiting-pharmacist", "completed"),
        decision="continue",
        **detail,
    )
