"""The findings ledger (open, rewrite, close, reopen), list filters, and the write audit."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.database import make_session_factory
from hrm_fhir.adapters.store.ledger import (
    close_finding,
    find_finding,
    list_findings,
    open_finding,
    open_findings,
    record_finding_write,
    record_write,
)
from hrm_fhir.adapters.store.records import (
    FindingRecord,
    ResourceType,
    WriteAction,
    WriteOutcome,
    WriteRecord,
)
from hrm_fhir.domain import Finding, FindingKind, Severity
from hrm_fhir.rules.registry import load_rule_set
from tests.adapters.store.examples import NOW, finding, start


def _open(
    session: Session,
    found: Finding,
    *,
    sweep_id: int,
    practice: str | None = "Organization/gp1",
    minutes: int = 0,
) -> FindingRecord:
    return open_finding(
        session,
        found,
        practice=practice,
        resource_type=ResourceType.TASK,
        resource_id=found.identifier,
        status="requested",
        content_hash="sha256:aaa",
        version_id="1",
        sweep_id=sweep_id,
        now=NOW + timedelta(minutes=minutes),
    )


def test_a_finding_opens_then_closes_with_its_reason(engine: Engine) -> None:
    with make_session_factory(engine).begin() as session:
        first = start(session)
        _open(session, finding("hrm-1"), sweep_id=first.id)

    with make_session_factory(engine).begin() as session:
        second = start(session, now=NOW + timedelta(days=7))
        close_finding(
            session,
            "hrm-1",
            reason="result received",
            status="cancelled",
            version_id="2",
            sweep_id=second.id,
            now=NOW + timedelta(days=7),
        )

    with make_session_factory(engine)() as session:
        record = find_finding(session, "hrm-1")
        assert record is not None
        assert (record.patient, record.kind, record.rule, record.practice) == (
            "Patient/p1",
            FindingKind.OVERDUE,
            "lithium@1",
            "Organization/gp1",
        )
        assert (record.opened_at, record.opened_sweep_id) == (NOW, first.id)
        assert (record.closed_at, record.closed_sweep_id) == (NOW + timedelta(days=7), second.id)
        assert (record.close_reason, record.status, record.version_id) == (
            "result received",
            "cancelled",
            "2",
        )
        assert record.reason == "Lithium level overdue since 2026-06-01."
        assert open_findings(session) == []
        with pytest.raises(LookupError, match="no open finding hrm-1"):
            close_finding(
                session,
                "hrm-1",
                reason="resolved",
                status="cancelled",
                version_id="3",
                sweep_id=second.id,
                now=NOW,
            )


def test_rewriting_an_open_finding_records_the_new_content(session: Session) -> None:
    sweep = start(session)
    _open(session, finding("hrm-1", kind=FindingKind.OUT_OF_RANGE), sweep_id=sweep.id)
    worse = finding("hrm-1", kind=FindingKind.OUT_OF_RANGE, severity=Severity.URGENT, reason="x")
    record = record_finding_write(
        session, worse, status="active", content_hash="sha256:bbb", version_id="2"
    )
    assert (record.severity, record.reason, record.status) == (Severity.URGENT, "x", "active")
    assert (record.content_hash, record.version_id, record.opened_at) == ("sha256:bbb", "2", NOW)
    with pytest.raises(LookupError):
        record_finding_write(
            session, finding("hrm-9"), status="requested", content_hash="h", version_id=None
        )


def test_a_closed_finding_reopens_and_an_open_one_cannot_open_twice(session: Session) -> None:
    sweep = start(session)
    _open(session, finding("hrm-1"), sweep_id=sweep.id)
    with pytest.raises(ValueError, match="already open"):
        _open(session, finding("hrm-1"), sweep_id=sweep.id)
    close_finding(
        session,
        "hrm-1",
        reason="drug stopped",
        status="cancelled",
        version_id="2",
        sweep_id=sweep.id,
        now=NOW,
    )
    later = start(session, now=NOW + timedelta(days=14))
    record = _open(session, finding("hrm-1"), sweep_id=later.id, minutes=60 * 24 * 14)
    assert (record.opened_sweep_id, record.closed_at, record.close_reason) == (later.id, None, None)
    assert open_findings(session) == [record]


def test_open_findings_filter_by_patient_and_practice(session: Session) -> None:
    sweep = start(session)
    a = _open(session, finding("hrm-a", patient="Patient/p1"), sweep_id=sweep.id)
    b = _open(session, finding("hrm-b", patient="Patient/p2"), sweep_id=sweep.id)
    c = _open(
        session, finding("hrm-c", patient="Patient/p3"), sweep_id=sweep.id, practice="Org/gp2"
    )
    assert open_findings(session) == [a, b, c]
    assert open_findings(session, patient="Patient/p2") == [b]
    assert open_findings(session, practice="Org/gp2") == [c]
    assert open_findings(session, patient="Patient/p1", practice="Org/gp2") == []


def test_list_findings_filters_combine_and_newest_come_first(session: Session) -> None:
    sweep = start(session)
    lithium = _open(session, finding("hrm-1"), sweep_id=sweep.id, minutes=1)
    urgent = _open(
        session,
        finding("hrm-2", kind=FindingKind.OUT_OF_RANGE, severity=Severity.URGENT),
        sweep_id=sweep.id,
        minutes=2,
    )
    warfarin = _open(
        session, finding("hrm-3", drug_group="warfarin"), sweep_id=sweep.id, practice="Org/gp2"
    )
    close_finding(
        session,
        "hrm-1",
        reason="result received",
        status="cancelled",
        version_id="2",
        sweep_id=sweep.id,
        now=NOW,
    )
    assert list_findings(session) == [urgent, lithium, warfarin]
    assert list_findings(session, limit=1) == [urgent]
    assert list_findings(session, practice="Org/gp2") == [warfarin]
    assert list_findings(session, drug_group="lithium") == [urgent, lithium]
    assert list_findings(session, kind=FindingKind.OUT_OF_RANGE) == [urgent]
    assert list_findings(session, severity=Severity.URGENT) == [urgent]
    assert list_findings(session, state="open") == [urgent, warfarin]
    assert list_findings(session, state="closed") == [lithium]
    assert list_findings(session, drug_group="lithium", state="open") == [urgent]


def test_every_write_is_audited_with_outcome_and_reason(engine: Engine) -> None:
    with make_session_factory(engine).begin() as session:
        sweep = start(session)
        record_write(
            session,
            sweep_id=sweep.id,
            resource_type=ResourceType.TASK,
            resource_id="hrm-1",
            action=WriteAction.CREATE,
            outcome=WriteOutcome.OK,
            http_status=201,
            version_id="1",
            reason="lithium level overdue",
            finding_identifier="hrm-1",
            now=NOW,
        )
        record_write(
            session,
            sweep_id=None,
            resource_type=ResourceType.FLAG,
            resource_id="hrm-2",
            action=WriteAction.UPDATE,
            outcome=WriteOutcome.CONFLICT,
            http_status=412,
            detail="version mismatch: expected 3",
            reason="operator re-sent flag",
            now=NOW + timedelta(minutes=1),
        )

    with make_session_factory(engine)() as session:
        ok, conflict = session.scalars(select(WriteRecord).order_by(WriteRecord.id)).all()
        assert (ok.sweep_id, ok.action, ok.outcome, ok.http_status, ok.version_id) == (
            sweep.id,
            WriteAction.CREATE,
            WriteOutcome.OK,
            201,
            "1",
        )
        assert (ok.finding_identifier, ok.reason, ok.at) == ("hrm-1", "lithium level overdue", NOW)
        assert (conflict.sweep_id, conflict.resource_type, conflict.outcome) == (
            None,
            ResourceType.FLAG,
            WriteOutcome.CONFLICT,
        )
        assert conflict.detail == "version mismatch: expected 3"
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT resource_type, action, outcome FROM writes ORDER BY id"
        ).all()
    assert [tuple(row) for row in stored] == [
        ("Task", "create", "ok"),
        ("Flag", "update", "conflict"),
    ]


def test_an_incomplete_finding_naming_every_check_of_a_pack_is_kept_whole(engine: Engine) -> None:
    """CrCl missing on a DOAC: the incomplete finding names every criteria check it left open."""
    doac = load_rule_set().get("doac")
    every = ",".join(c.id for c in doac.prescribing if c.check == "criteria")
    found = replace(finding("hrm-1", kind=FindingKind.INCOMPLETE, drug_group="doac"), check=every)
    with make_session_factory(engine).begin() as session:
        _open(session, found, sweep_id=start(session).id)
    with make_session_factory(engine)() as session:
        record = find_finding(session, "hrm-1")
        assert record is not None
        assert record.check == every
