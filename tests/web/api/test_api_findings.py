"""GET /api/v1/findings: ledger rows written with the ledger functions, filters and validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import ResourceType
from hrm_fhir.domain import FindingKind, Severity
from hrm_fhir.web.state import service_state
from tests.adapters.store.examples import NOW, finding, start
from tests.web.api.conftest import READ


@pytest.fixture
def four_findings(app: Flask) -> None:
    """Four findings in two practices; the lithium one is closed."""
    rows = [
        (finding("f-mtx", kind=FindingKind.OVERDUE, drug_group="methotrexate"), "gp1", 0),
        (
            finding(
                "f-lith",
                patient="Patient/p2",
                kind=FindingKind.OUT_OF_RANGE,
                severity=Severity.URGENT,
            ),
            "gp1",
            1,
        ),
        (finding("f-due", patient="Patient/p3", kind=FindingKind.DUE), "gp2", 2),
        (
            finding(
                "f-opioid",
                patient="Patient/p4",
                kind=FindingKind.PRESCRIBING,
                drug_group="opioid",
                severity=Severity.REVIEW,
            ),
            "gp2",
            3,
        ),
    ]
    with service_state(app).sessions().begin() as session:
        sweep = start(session)
        for found, practice, minutes in rows:
            ledger.open_finding(
                session,
                found,
                practice=f"Organization/{practice}",
                resource_type=ResourceType.FLAG
                if found.kind is FindingKind.OUT_OF_RANGE
                else ResourceType.TASK,
                resource_id=found.identifier,
                status="requested",
                content_hash="h",
                version_id="1",
                sweep_id=sweep.id,
                now=NOW + timedelta(minutes=minutes),
            )
        ledger.close_finding(
            session,
            "f-lith",
            reason="result received",
            status="inactive",
            version_id="2",
            sweep_id=sweep.id,
            now=NOW + timedelta(days=1),
        )


def _ids(client: FlaskClient, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/findings{query}", headers=READ)
    assert response.status_code == 200, response.json
    assert response.json is not None
    return [row["identifier"] for row in response.json["findings"]]


@pytest.mark.usefixtures("database_url", "four_findings")
def test_lists_every_finding_newest_first_with_its_ledger_fields(client: FlaskClient) -> None:
    response = client.get("/api/v1/findings", headers=READ)
    assert response.json is not None
    rows = response.json["findings"]
    assert [r["identifier"] for r in rows] == ["f-opioid", "f-due", "f-lith", "f-mtx"]
    lith = rows[2]
    assert lith == {
        "identifier": "f-lith",
        "patient": "Patient/p2",
        "practice": "Organization/gp1",
        "kind": "out_of_range",
        "drug_group": "lithium",
        "rule": "lithium@1",
        "check": "level",
        "severity": "urgent",
        "due_date": "2026-06-01",
        "resource_type": "Flag",
        "resource_id": "f-lith",
        "status": "inactive",
        "opened_at": "2026-07-06T06:01:00+00:00",
        "closed_at": "2026-07-07T06:00:00+00:00",
        "close_reason": "result received",
        "reason": "Lithium level overdue since 2026-06-01.",
    }
    assert rows[3]["severity"] is None
    assert rows[3]["closed_at"] is None


@pytest.mark.usefixtures("database_url", "four_findings")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?practice=gp1", ["f-lith", "f-mtx"]),
        ("?practice=Organization/gp2", ["f-opioid", "f-due"]),
        ("?drug_group=methotrexate", ["f-mtx"]),
        ("?kind=due", ["f-due"]),
        ("?kind=prescribing", ["f-opioid"]),
        ("?severity=urgent", ["f-lith"]),
        ("?severity=review", ["f-opioid"]),
        ("?state=closed", ["f-lith"]),
        ("?state=open", ["f-opioid", "f-due", "f-mtx"]),
        ("?state=open&practice=gp1", ["f-mtx"]),
        ("?limit=1", ["f-opioid"]),
        ("?drug_group=warfarin", []),
    ],
)
def test_filters_combine(client: FlaskClient, query: str, expected: list[str]) -> None:
    assert _ids(client, query) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?patient=Patient/p1", "patient"),
        ("?kind=late", "kind"),
        ("?severity=high", "severity"),
        ("?state=all", "state"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?kind=due&kind=overdue", "kind"),
        ("?practice=", "practice"),
    ],
)
def test_invalid_queries_are_400_naming_the_field(
    client: FlaskClient, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/findings{query}", headers=READ)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid request"
    assert list(response.json["messages"]) == [field]


def test_an_empty_ledger_lists_nothing(client: FlaskClient) -> None:
    assert _ids(client) == []
