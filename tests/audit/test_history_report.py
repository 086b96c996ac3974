"""The report over half a year of synthetic programme history: the same inputs give the same
report, nothing after the month changes it, and its figures match a count made here directly
from the ledger rows and the engine."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.audit.definitions import AuditDefinitions
from hrm_fhir.audit.model import AuditInputs, MonthlyReport
from hrm_fhir.audit.source import known_practices, read_audit_inputs, snapshot_records
from hrm_fhir.domain import FindingKind
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.synthetic.history import write_history
from hrm_fhir.synthetic.practice import generate_practice
from tests.audit.conftest import HISTORY_END, HISTORY_START, MONTH, PRACTICE, build_report

START = datetime(2027, 3, 31, 23, tzinfo=UTC)  # 1 April 00:00 BST
END = datetime(2027, 4, 30, 23, tzinfo=UTC)
LAST = date(2027, 4, 30)


def _report(
    sessions: sessionmaker[Session], rules: RuleSet, definitions: AuditDefinitions
) -> MonthlyReport:
    with sessions() as session:
        inputs = read_audit_inputs(session, rules, definitions, MONTH, [PRACTICE])
    return build_report(inputs)


def _local(moment: datetime) -> date:
    return (moment + timedelta(hours=1)).date()  # April is BST throughout


def test_the_same_inputs_give_the_same_report(
    report: MonthlyReport,
    history_sessions: sessionmaker[Session],
    rules: RuleSet,
    definitions: AuditDefinitions,
) -> None:
    assert _report(history_sessions, rules, definitions) == report


def test_what_happens_after_the_month_changes_nothing(
    report: MonthlyReport,
    history_db: str,
    tmp_path: Path,
    rules: RuleSet,
    definitions: AuditDefinitions,
) -> None:
    copy = tmp_path / "later.db"
    shutil.copy(history_db.removeprefix("sqlite:///"), copy)
    sessions = make_session_factory(init_db(f"sqlite:///{copy}"))
    later = datetime(2027, 5, 3, 9, tzinfo=UTC)
    with sessions.begin() as session:
        still_open = session.scalars(
            select(FindingRecord).where(FindingRecord.closed_at.is_(None))
        ).first()
        assert still_open is not None
        still_open.closed_at, still_open.close_reason = later, "result received"
        session.add(
            WorkflowEventRecord(
                at=later,
                task_id=still_open.resource_id,
                patient=still_open.patient,
                practice=still_open.practice,
                actor="someone",
                role="technician",
                action="contact",
                stage_before="to-contact",
                stage_after="invited",
                detail="{}",
                written="",
            )
        )
    assert _report(sessions, rules, definitions) == report


def test_ledger_figures_match_a_direct_count(
    report: MonthlyReport, history_sessions: sessionmaker[Session]
) -> None:
    with history_sessions() as session:
        rows = list(session.scalars(select(FindingRecord)))
        events = list(session.scalars(select(WorkflowEventRecord)))
    monitoring = [
        r for r in rows if r.kind in (FindingKind.DUE, FindingKind.OVERDUE) and r.due_date
    ]
    newly, closed = Counter[str](), Counter[str]()
    backlog = 0
    for r in monitoring:
        since = max(r.due_date + timedelta(days=1), _local(r.opened_at))
        ended = _local(r.closed_at) if r.closed_at else None
        if ended is not None and ended < since:
            continue  # closed before it was ever overdue
        if date(2027, 4, 1) <= since <= LAST:
            newly[r.drug_group] += 1
        if ended is not None and date(2027, 4, 1) <= ended <= LAST:
            closed[r.drug_group] += 1
        if since <= LAST and (ended is None or ended > LAST):
            backlog += 1
    for group in report.groups:
        assert group.newly_overdue.value == newly[group.drug_group], group.drug_group
        assert group.closed.value == closed[group.drug_group], group.drug_group
    assert report.forecast.backlog == backlog == report.backlog[-1].open_overdue
    assert sum(closed.values()) > 0

    in_month = [e for e in events if START <= e.at < END]
    assert report.workload.contact_attempts == sum(e.action == "contact" for e in in_month) > 0
    assert report.workload.sign_offs == sum(e.action in ("signoff", "escalate") for e in in_month)


def test_month_end_position_matches_the_engine(
    report: MonthlyReport, history_sessions: sessionmaker[Session], rules: RuleSet
) -> None:
    evaluator = Evaluator.create(rules, LAST)
    with history_sessions() as session:
        records = snapshot_records(session, rules)
    overdue = Counter[str]()
    for record in records.values():
        for finding in evaluator.evaluate(record):
            if finding.kind is FindingKind.OVERDUE:
                overdue[finding.drug_group] += 1
    for group in report.groups:
        reported = group.overdue.value + group.new_starts_overdue.value
        assert reported == overdue[group.drug_group], group.drug_group
    assert sum(overdue.values()) > 0


def test_the_weekly_trend_covers_the_programme(report: MonthlyReport) -> None:
    weeks = [p.week_ending for p in report.backlog]
    assert weeks[0] == date(2026, 12, 6)  # the first Sunday after the first sweep (30 Nov)
    assert weeks[-1] == LAST
    assert all(b - a == timedelta(days=7) for a, b in pairwise(weeks[:-1]))
    assert max(p.open_overdue for p in report.backlog) > report.forecast.backlog


def test_the_same_history_reads_the_same_from_postgresql(
    audit_inputs: AuditInputs,
    history_sessions: sessionmaker[Session],
    rules: RuleSet,
    definitions: AuditDefinitions,
    postgres_url: str,
) -> None:
    """The ledger queries (dates, month bounds, filters, ordering, the latest snapshot time)
    give PostgreSQL's ledger exactly the inputs SQLite's gives, so the same report."""
    engine = init_db(postgres_url)
    try:
        with make_session_factory(engine).begin() as session:
            write_history(
                session,
                rules,
                list(generate_practice(200, 1, HISTORY_END)),
                start=HISTORY_START,
                end=HISTORY_END,
                seed=7,
            )
        with make_session_factory(engine)() as session:
            on_postgresql = read_audit_inputs(session, rules, definitions, MONTH, [PRACTICE])
            practices = known_practices(session)
    finally:
        engine.dispose()
    with history_sessions() as session:
        assert practices == known_practices(session)
    assert on_postgresql == audit_inputs
    assert build_report(on_postgresql) == build_report(audit_inputs)
