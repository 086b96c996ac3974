"""A synthetic practice with half a year of programme history in a SQLite ledger, and the
monthly report built from it (module-scoped: the history takes a moment to write)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.audit.definitions import AuditDefinitions, load_definitions
from hrm_fhir.audit.model import AuditInputs, MonthlyReport
from hrm_fhir.audit.monthly import build_monthly_report
from hrm_fhir.audit.source import read_audit_inputs
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.synthetic.history import write_history
from hrm_fhir.synthetic.practice import generate_practice

HISTORY_START = date(2026, 11, 27)
HISTORY_END = date(2027, 5, 31)
MONTH = date(2027, 4, 1)
PRACTICE = "practice-1"
CAPACITY = 12.0


def build_report(
    inputs: AuditInputs, practice: str = PRACTICE, capacity: float = CAPACITY
) -> MonthlyReport:
    """The April 2027 report of one practice from these inputs, with the shipped definitions."""
    rules = load_rule_set()
    return build_monthly_report(
        inputs,
        load_definitions(rules),
        rules.in_force(date(2027, 4, 30)),
        scope=f"Organization/{practice}",
        practices=[practice],
        capacity_per_week=capacity,
    )


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rule_set()


@pytest.fixture(scope="module")
def definitions(rules: RuleSet) -> AuditDefinitions:
    return load_definitions(rules)


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory, rules: RuleSet) -> str:
    """The URL of a ledger holding 200 synthetic patients' programme history."""
    path: Path = tmp_path_factory.mktemp("history") / "ledger.db"
    url = f"sqlite:///{path}"
    sessions = make_session_factory(init_db(url))
    resources = list(generate_practice(200, 1, HISTORY_END))
    with sessions.begin() as session:
        summary = write_history(
            session, rules, resources, start=HISTORY_START, end=HISTORY_END, seed=7
        )
    assert summary.findings > 50
    assert summary.events > 100
    return url


@pytest.fixture(scope="module")
def history_sessions(history_db: str) -> sessionmaker[Session]:
    return make_session_factory(init_db(history_db))


@pytest.fixture(scope="module")
def audit_inputs(
    history_sessions: sessionmaker[Session], rules: RuleSet, definitions: AuditDefinitions
) -> AuditInputs:
    with history_sessions() as session:
        return read_audit_inputs(session, rules, definitions, MONTH, [PRACTICE])


@pytest.fixture(scope="module")
def report(audit_inputs: AuditInputs) -> MonthlyReport:
    return build_report(audit_inputs)
