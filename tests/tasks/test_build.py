"""Findings become Tasks and Flags that a clinical system can show."""

from __future__ import annotations

from datetime import date

from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.task import Task

from hrm_fhir import terminology
from hrm_fhir.domain import Finding, FindingKind, PatientRef, ResourceRef, Severity
from hrm_fhir.tasks.build import build_resource

AS_OF = date(2026, 11, 27)


def _finding(kind: FindingKind, **kw: object) -> Finding:
    base: dict[str, object] = {
        "patient": PatientRef("Patient/p1"),
        "kind": kind,
        "drug_group": "lithium",
        "medication": ResourceRef("MedicationRequest/m1"),
        "rule": "lithium@1",
        "check": "level",
        "reason": "A reason a clinician reads.",
        "source": "https://www.sps.nhs.uk/monitorings/lithium-monitoring/",
        "verified": True,
        "evidence": (ResourceRef("MedicationRequest/m1"), ResourceRef("Observation/o1")),
        "identifier": "hrm-abc123",
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_overdue_monitoring_becomes_a_task_with_its_due_window_and_tests() -> None:
    task = build_resource(
        _finding(FindingKind.OVERDUE, tests=("lithium", "renal"), due_date=date(2026, 11, 1)), AS_OF
    )
    assert isinstance(task, Task)
    assert (task.status, task.intent, task.priority) == ("requested", "order", "urgent")
    assert task.for_fhir.reference == "Patient/p1"
    assert task.focus.reference == "MedicationRequest/m1"
    assert task.restriction.period.end.isoformat() == "2026-11-01"
    assert task.businessStatus.coding[0].code == "to-contact"
    tests = [i.valueCodeableConcept.coding[0].code for i in task.input if i.valueCodeableConcept]
    assert tests == ["lithium", "renal"]
    assert any(i.valueString == "lithium@1" for i in task.input)
    assert any(
        i.valueUrl == "https://www.sps.nhs.uk/monitorings/lithium-monitoring/" for i in task.input
    )
    assert task.identifier[0].system == terminology.FINDING_IDENTIFIER
    assert task.id == "hrm-abc123"


def test_a_severely_overdue_task_says_so_and_comes_first_by_priority() -> None:
    kw = {"tests": ("lithium",), "due_date": date(2026, 8, 1)}
    severe = build_resource(_finding(FindingKind.OVERDUE, severely_overdue=True, **kw), AS_OF)
    plain = build_resource(_finding(FindingKind.OVERDUE, **kw), AS_OF)
    assert isinstance(severe, Task)
    assert isinstance(plain, Task)
    assert (severe.priority, plain.priority) == ("asap", "urgent")
    flags = [e for e in severe.extension if e.url == terminology.SEVERELY_OVERDUE_EXTENSION]
    assert [e.valueBoolean for e in flags] == [True]
    assert not [e for e in plain.extension if e.url == terminology.SEVERELY_OVERDUE_EXTENSION]


def test_action_and_urgent_results_become_flags_pointing_at_the_result() -> None:
    for severity in (Severity.ACTION, Severity.URGENT):
        flag = build_resource(
            _finding(
                FindingKind.OUT_OF_RANGE,
                analyte="lithium",
                value=1.6,
                unit="mmol/L",
                severity=severity,
                observed_on=date(2026, 11, 24),
            ),
            AS_OF,
        )
        assert isinstance(flag, Flag)
        assert flag.status == "active"
        assert flag.category[0].coding[0].code == "lab"
        assert flag.period.start.isoformat() == "2026-11-24"
        assert severity.value.upper() in flag.code.text
        detail = [e for e in flag.extension if e.url == terminology.FLAG_DETAIL]
        assert detail[0].valueReference.reference == "Observation/o1"


def test_review_grade_results_are_tasks_not_flags() -> None:
    task = build_resource(
        _finding(
            FindingKind.OUT_OF_RANGE,
            analyte="lithium",
            value=0.85,
            unit="mmol/L",
            severity=Severity.REVIEW,
            observed_on=date(2026, 11, 24),
        ),
        AS_OF,
    )
    assert isinstance(task, Task)
    assert task.priority == "routine"
    assert task.code.coding[0].code == "result-review"


def test_prescribing_reviews_go_to_the_pharmacist_with_priority_by_severity() -> None:
    urgent = build_resource(
        _finding(FindingKind.PRESCRIBING, code="methotrexate-not-weekly", severity=Severity.URGENT),
        AS_OF,
    )
    assert isinstance(urgent, Task)
    assert urgent.priority == "stat"
    assert urgent.businessStatus.coding[0].code == "awaiting-pharmacist"
    assert urgent.restriction is None


def test_incomplete_assessments_go_to_the_pharmacist_naming_what_is_missing() -> None:
    finding = _finding(
        FindingKind.INCOMPLETE,
        code="unit-unreadable",
        severity=Severity.URGENT,
        missing=("unit of the lithium result",),
        analyte="lithium",
        value=2.1,
        unit="mg/furlong",
        observed_on=date(2026, 11, 24),
    )
    task = build_resource(finding, AS_OF)
    assert isinstance(task, Task)
    assert (task.priority, task.code.coding[0].code) == ("stat", "assessment-incomplete")
    assert task.businessStatus.coding[0].code == "awaiting-pharmacist"
    assert [i.valueString for i in task.input if i.type.coding[0].code == "missing-data"] == [
        "unit of the lithium result"
    ]
    shape = finding.to_json()
    assert (shape["kind"], shape["code"], shape["severity"]) == (
        "incomplete",
        "unit-unreadable",
        "urgent",
    )
    assert shape["missing"] == ["unit of the lithium result"]
    assert (shape["analyte"], shape["value"], shape["unit"]) == ("lithium", 2.1, "mg/furlong")
