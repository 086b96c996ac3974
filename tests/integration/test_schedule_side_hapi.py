"""Issue 10, schedule side, against a real HAPI server: a medication review recorded as a
Procedure is read by the sweep, and a stopped amiodarone's thyroid Task closes as a result."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hrm_fhir.adapters.store import ledger
from tests.integration.harness import Harness
from tests.integration.practice import AS_OF, Practice, Resource

pytestmark = pytest.mark.hapi
SMR, TFT = "1239511000000100", "1016851000000107"


def _review(p: Practice, name: str, days_ago: int) -> Resource:
    """A structured medication review recorded as a completed Procedure."""
    return {
        "resourceType": "Procedure",
        "id": f"{p.pid(name)}-smr{days_ago}",
        "status": "completed",
        "subject": {"reference": f"Patient/{p.pid(name)}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": SMR}]},
        "performedDateTime": (AS_OF - timedelta(days=days_ago)).isoformat(),
    }


def _doac(p: Practice, name: str) -> list[Resource]:
    recent = AS_OF - timedelta(days=30)
    return [
        p.patient(name, born="1960-02-01", gender="male"),
        *p.repeats(name, "Apixaban 5mg tablets", AS_OF - timedelta(days=700), AS_OF - timedelta(7)),
        *p.bloods(name, recent),
        p.result(name, "1000731000000107", 80, "umol/L", recent),
        p.result(name, "27113001", 80, "kg", recent),
    ]


def _monitoring_tasks(harness: Harness, name: str) -> list[Resource]:
    return [
        t for t in harness.ours("Task", name) if t["code"]["coding"][0]["code"] == "monitoring-due"
    ]


def _tests(task: Resource) -> set[str]:
    return {
        i["valueCodeableConcept"]["coding"][0]["code"]
        for i in task["input"]
        if "valueCodeableConcept" in i
    }


def test_a_review_recorded_as_a_procedure_shows_the_doac_review_done(harness: Harness) -> None:
    """Reference 5.2: "DOAC review ... Every 3 months [V SPS]". With a structured medication
    review Procedure on the server there is no review Task; without one there is, and a
    Procedure uploaded later closes it as a result received, the Procedure in its output."""
    p = harness.practice
    harness.upload([p.organization(), *_doac(p, "reviewed"), _review(p, "reviewed", 20)])
    harness.upload(_doac(p, "unreviewed"))
    harness.sweep()
    assert _monitoring_tasks(harness, "reviewed") == []
    [task] = _monitoring_tasks(harness, "unreviewed")
    assert _tests(task) == {"review"}
    review = _review(p, "unreviewed", 1)
    harness.upload([review])
    later = harness.sweep()
    assert later.mode == "incremental"
    [task] = _monitoring_tasks(harness, "unreviewed")
    assert task["status"] == "in-progress"
    assert f"Procedure/{review['id']}" in {o["valueReference"]["reference"] for o in task["output"]}


def test_a_stopped_amiodarone_keeps_its_thyroid_task_until_the_result_arrives(
    harness: Harness,
) -> None:
    """Reference 4: thyroid function "and for 12 months after stopping [V CKS]". The Task
    raised after the drug stopped closes as 'result received', not 'drug stopped'."""
    p = harness.practice
    name = "amio"
    chain = p.repeats(
        name, "Amiodarone 200mg tablets", AS_OF - timedelta(900), AS_OF - timedelta(150)
    )
    for request in chain:
        request["status"] = "completed"
    old = AS_OF - timedelta(days=400)
    harness.upload(
        [
            p.organization(),
            p.patient(name),
            *chain,
            *p.bloods(name, old),
            p.result(name, TFT, None, "1", old),
        ]
    )
    harness.sweep()
    [task] = _monitoring_tasks(harness, name)
    assert _tests(task) == {"tft"}
    harness.upload([p.result(name, TFT, None, "1", AS_OF - timedelta(days=1))])
    harness.sweep()
    [task] = _monitoring_tasks(harness, name)
    assert task["status"] == "in-progress"
    with harness.sessions.begin() as session:
        closed = [
            f for f in ledger.list_findings(session, state="closed") if f.patient.endswith(name)
        ]
        assert [f.close_reason for f in closed] == ["result received"]
