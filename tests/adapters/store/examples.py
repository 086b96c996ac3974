"""Example values for the store tests: a frozen clock in a non-UTC zone, findings, sweeps."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.ledger import start_sweep
from hrm_fhir.adapters.store.records import SweepMode, SweepRecord
from hrm_fhir.domain import Finding, FindingKind, PatientRef, ResourceRef, Severity

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 7, 6, 7, 0, tzinfo=LONDON)
"""07:00 BST, which is 06:00 UTC."""
AS_OF = date(2026, 7, 6)


def finding(
    identifier: str = "hrm-1",
    *,
    patient: str = "Patient/p1",
    kind: FindingKind = FindingKind.OVERDUE,
    drug_group: str = "lithium",
    severity: Severity | None = None,
    reason: str = "Lithium level overdue since 2026-06-01.",
) -> Finding:
    return Finding(
        patient=PatientRef(patient),
        kind=kind,
        drug_group=drug_group,
        medication=ResourceRef("MedicationRequest/m1"),
        rule=f"{drug_group}@1",
        check="level",
        reason=reason,
        source="https://example.org/guidance",
        verified=True,
        evidence=(ResourceRef("MedicationRequest/m1"),),
        identifier=identifier,
        due_date=date(2026, 6, 1),
        severity=severity,
    )


def start(session: Session, *, now: datetime = NOW, scope: str = "all") -> SweepRecord:
    return start_sweep(
        session,
        mode=SweepMode.FULL,
        dry_run=False,
        fhir_base="http://fhir.test/fhir",
        scope=scope,
        as_of=AS_OF,
        now=now,
    )
