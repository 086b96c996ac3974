"""Monitored elsewhere (shared care) end to end against a real HAPI FHIR server: read from the
record by the sweep, set by the pharmacist in the workflow (audited), stopping the routine
monitoring Tasks of that drug group, still raising out-of-range results, and coming back to the
pharmacist when its review date arrives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.fetch import FetchReport, arrangement_searches, read_records
from hrm_fhir.adapters.store.records import FindingRecord
from hrm_fhir.domain import PatientRef
from hrm_fhir.errors import (
    WorkflowConflictError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowPermissionError,
)
from hrm_fhir.programme import Role, Stage
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.sweep.run import _records
from hrm_fhir.workflow import service
from tests.builders import rules
from tests.databases import database_for
from tests.integration.practice import AS_OF, Resource, starter
from tests.integration.test_workflow_hapi import NOW, Flow

pytestmark = pytest.mark.hapi
UKCORE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationPrescribingOrganizationType"
ANOTHER = {
    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-MedicationPrescribingOrganizationType",
    "code": "prescribed-by-another-organisation",
}
REVIEW = AS_OF + timedelta(days=90)


@pytest.fixture
def flow(
    fhir_base: str, run_id: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Flow]:
    h = Flow(fhir_base, run_id, database_for(request, tmp_path))
    yield h
    h.close()


def _routine(flow: Flow, name: str) -> list[Resource]:
    return [
        task
        for task in flow.ours("Task", name)
        if task["code"]["coding"][0]["code"] == "monitoring-due"
    ]


def _open_routine(flow: Flow, name: str) -> list[Resource]:
    return [task for task in _routine(flow, name) if task["status"] not in ("cancelled",)]


def _mark(flow: Flow, version: str | None = None, **kw: object) -> service.ActionResult:
    pharmacist = flow.actor(Role.PHARMACIST)
    values: dict[str, object] = {
        "drug_group": "methotrexate",
        "monitored_by": "Rheumatology, Oakfield Hospital",
        "review_on": REVIEW,
        "version": version,
        "note": "shared-care letter 2026-11-20",
        "now": NOW,
        "rules": rules(),
    }
    values.update(kw)
    return flow.call(
        service.record_monitored_elsewhere,
        pharmacist,
        f"Patient/{flow.practice.pid('mtx')}",
        **values,
    )


def test_the_pharmacists_decision_stops_the_chase_and_is_audited(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep(as_of=AS_OF)
    [routine] = _open_routine(flow, "mtx")
    assert routine["status"] == "requested"

    result = _mark(flow)
    assert result.stage is Stage.MONITORED_ELSEWHERE
    arrangement = flow.read("Task", result.task_id)
    assert (arrangement["status"], arrangement["businessStatus"]["coding"][0]["code"]) == (
        "on-hold",
        "monitored-elsewhere",
    )
    assert arrangement["owner"]["display"] == "Rheumatology, Oakfield Hospital"
    assert arrangement["restriction"]["period"] == {
        "start": AS_OF.isoformat(),
        "end": REVIEW.isoformat(),
    }
    assert arrangement["for"]["reference"] == f"Patient/{p.pid('mtx')}"
    assert flow.errors(arrangement) == []

    cancelled = flow.read("Task", routine["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["businessStatus"]["coding"][0]["code"] == "monitored-elsewhere"
    assert "Oakfield" in cancelled["statusReason"]["text"]

    [provenance] = flow.search("Provenance", {"target": f"Task/{result.task_id}"})
    targets = {target["reference"].split("/_history/")[0] for target in provenance["target"]}
    assert targets == {f"Task/{result.task_id}", f"Task/{routine['id']}"}
    assert provenance["agent"][0]["who"]["identifier"]["value"] == "pharmacist-1"
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "attester"
    assert provenance["reason"] == [{"text": "monitored elsewhere: methotrexate"}]
    [event] = flow.events()
    assert (event.action, event.actor, event.stage_after) == (
        "monitored-elsewhere",
        "pharmacist-1",
        "monitored-elsewhere",
    )
    detail = orjson.loads(event.detail)
    assert detail["monitored_by"] == "Rheumatology, Oakfield Hospital"
    assert detail["review_on"] == REVIEW.isoformat()
    assert detail["closed"] == [f"Task/{routine['id']}"]

    worklist = flow.call(service.worklist, as_of=AS_OF, practice=p.org)
    assert not [e for e in worklist if e.patient.endswith("-mtx")]

    # The next sweep reads the decision: no new routine Task, and the ledger says why.
    later = flow.sweep(as_of=AS_OF + timedelta(days=7))
    assert later.counts.errors == 0
    assert _open_routine(flow, "mtx") == []
    with flow.sessions() as session:
        record = session.scalars(
            select(FindingRecord).where(FindingRecord.resource_id == routine["id"])
        ).one()
    assert (record.closed_at is not None, record.close_reason) == (True, "monitored elsewhere")


def test_only_a_pharmacist_decides_and_a_refusal_writes_nothing(flow: Flow) -> None:
    flow.upload(starter(flow.practice))
    flow.sweep(as_of=AS_OF)
    technician = flow.actor(Role.TECHNICIAN)
    with pytest.raises(WorkflowPermissionError):
        flow.call(
            service.record_monitored_elsewhere,
            technician,
            f"Patient/{flow.practice.pid('mtx')}",
            drug_group="methotrexate",
            monitored_by="Oakfield",
            review_on=REVIEW,
            now=NOW,
        )
    for bad in (
        {"monitored_by": "  "},
        {"review_on": AS_OF},
        {"review_on": AS_OF + timedelta(days=367)},
        {"drug_group": "paracetamol"},
    ):
        with pytest.raises(WorkflowError):
            _mark(flow, **bad)
    other = flow.actor(Role.PHARMACIST, practice="another-practice")
    for who, patient in ((other, "mtx"), (flow.actor(Role.PHARMACIST), "nobody")):
        with pytest.raises(WorkflowNotFoundError, match=r"^the FHIR server has no such Patient$"):
            flow.call(
                service.record_monitored_elsewhere,
                who,
                f"Patient/{flow.practice.pid(patient)}",
                drug_group="methotrexate",
                monitored_by="Oakfield",
                review_on=REVIEW,
                now=NOW,
            )
    assert flow.events() == []
    assert [task["status"] for task in _routine(flow, "mtx")] == ["requested"]
    assert (
        flow.gateway.read(
            "Task", service.arrangement_id(f"Patient/{flow.practice.pid('mtx')}", "methotrexate")
        )
        is None
    )


def test_a_stale_version_is_refused_and_a_renewal_moves_the_review_date(flow: Flow) -> None:
    flow.upload(starter(flow.practice))
    flow.sweep(as_of=AS_OF)
    first = _mark(flow)
    with pytest.raises(WorkflowConflictError):
        _mark(flow, version=None, note="a second pharmacist, from a stale page")
    renewed = _mark(flow, version=first.version, review_on=REVIEW + timedelta(days=30), note="")
    task = flow.read("Task", renewed.task_id)
    assert task["restriction"]["period"] == {
        "start": AS_OF.isoformat(),
        "end": (REVIEW + timedelta(days=30)).isoformat(),
    }, "a renewal keeps when it started"
    with pytest.raises(WorkflowConflictError):
        _mark(flow, version=first.version, note="stale")


def test_the_review_date_brings_it_back_to_the_pharmacist_and_lapses_after(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep(as_of=AS_OF)
    marked = _mark(flow)

    def queued(day: date) -> list[service.ReviewItem]:
        items = flow.call(service.review_queue, practice=p.org, as_of=day, rules=rules())
        return [i for i in items if i.kind == "monitored-elsewhere"]

    assert queued(REVIEW - timedelta(days=1)) == []
    [item] = queued(REVIEW)
    assert (item.task_id, item.drug_group, item.since) == (
        marked.task_id,
        "methotrexate",
        REVIEW,
    )
    assert "Oakfield" in item.description

    # On the review date the practice still leaves monitoring to the hospital ...
    flow.sweep(as_of=REVIEW)
    assert _open_routine(flow, "mtx") == []
    # ... the day after, unreviewed, the practice's routine monitoring resumes.
    flow.sweep(as_of=REVIEW + timedelta(days=1))
    [resumed] = _open_routine(flow, "mtx")
    assert resumed["status"] == "requested"

    # Renewed: the resumed Task is closed again, with the reason.
    renewed = _mark(flow, version=marked.version, review_on=REVIEW + timedelta(days=200), now=NOW)
    assert renewed.stage is Stage.MONITORED_ELSEWHERE
    assert flow.read("Task", resumed["id"])["status"] == "cancelled"
    assert queued(REVIEW + timedelta(days=1)) == []


def test_returning_monitoring_to_the_practice_brings_the_routine_tasks_back(flow: Flow) -> None:
    flow.upload(starter(flow.practice))
    flow.sweep(as_of=AS_OF)
    marked = _mark(flow)
    flow.sweep(as_of=AS_OF + timedelta(days=1))
    assert _open_routine(flow, "mtx") == []
    back = flow.call(
        service.record_monitored_by_practice,
        flow.actor(Role.PHARMACIST),
        f"Patient/{flow.practice.pid('mtx')}",
        drug_group="methotrexate",
        version=marked.version,
        note="hospital discharged the patient to the practice",
        now=NOW + timedelta(days=2),
        rules=rules(),
    )
    task = flow.read("Task", back.task_id)
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "completed",
        "monitored-by-practice",
    )
    assert flow.errors(task) == []
    flow.sweep(as_of=AS_OF + timedelta(days=3))
    assert len(_open_routine(flow, "mtx")) == 1
    assert [e.action for e in flow.events()] == ["monitored-elsewhere", "monitored-by-practice"]


def test_a_hospital_prescription_in_the_record_closes_the_routine_task(flow: Flow) -> None:
    """Read from the record: the next sweep sees the prescribing organisation, closes the open
    routine Task with the reason, and still raises the out-of-range lithium level."""
    p = flow.practice
    resources = starter(p)
    flow.upload(resources)
    flow.sweep(as_of=AS_OF)
    [routine] = _open_routine(flow, "lith")
    lithium_requests = [
        r
        for r in resources
        if r["resourceType"] == "MedicationRequest" and r["subject"]["reference"].endswith("-lith")
    ]
    latest = lithium_requests[-1]
    latest["extension"] = [{"url": UKCORE, "valueCodeableConcept": {"coding": [ANOTHER]}}]
    latest["requester"] = {"display": "Oakfield community mental health team"}
    flow.upload([latest])
    summary = flow.sweep(as_of=AS_OF + timedelta(days=1))
    assert summary.counts.errors == 0
    assert _open_routine(flow, "lith") == []
    closed = flow.read("Task", routine["id"])
    assert (closed["status"], closed["businessStatus"]["coding"][0]["code"]) == (
        "cancelled",
        "monitored-elsewhere",
    )
    assert closed["statusReason"]["text"] == "monitored elsewhere"
    [flag] = flow.ours("Flag", "lith")
    assert flag["status"] == "active", "the toxic level still reaches the practice"

    ref = f"Patient/{p.pid('lith')}"
    fetched = read_records(flow.gateway, [ref], FetchReport(), extra=arrangement_searches(rules()))
    records, _, _ = _records(rules(), [orjson.dumps(fetched[ref])])
    [register] = (
        Evaluator.create(rules(), AS_OF + timedelta(days=1))
        .assess(records[PatientRef(ref)])
        .register
    )
    assert register.monitored_elsewhere is not None
    assert register.monitored_elsewhere.by == "Oakfield community mental health team"


def test_the_arrangement_task_is_valid_for_hapi_and_tagged(flow: Flow) -> None:
    flow.upload(starter(flow.practice))
    marked = _mark(flow)
    task = flow.read("Task", marked.task_id)
    assert {"system": t.TAG, "code": "hrm-fhir"} in task["meta"]["tag"]
    assert flow.errors(task) == []
