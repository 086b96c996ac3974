"""The resources the workflow writes: valid FHIR R4 (fhir.resources), with the mapping documented
in docs/workflow.md. HAPI's $validate runs on the same builders in tests/workflow/test_workflow_hapi.py."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.task import Task

from hrm_fhir import terminology as t
from hrm_fhir.domain import Severity
from hrm_fhir.programme import Action, Actor, ContactOutcome, Medium, Role, Stage
from hrm_fhir.workflow import resources as r

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
TECH = Actor("tess", Role.TECHNICIAN, "Tess Tech", "org-1")
PHARM = Actor("phil", Role.PHARMACIST, "Phil Pharm", "org-1")
TASK = {
    "resourceType": "Task",
    "id": "hrm-task",
    "meta": {
        "versionId": "3",
        "lastUpdated": "2026-11-20T00:00:00Z",
        "tag": [{"system": t.TAG, "code": "hrm-fhir"}],
    },
    "status": "requested",
    "intent": "order",
    "for": {"reference": "Patient/p1"},
    "businessStatus": {"coding": [{"system": t.BUSINESS_STATUS, "code": "to-contact"}]},
    "note": [{"text": "earlier note"}],
    "output": [{"type": {"text": "x"}, "valueString": "kept"}],
}


def test_a_failed_attempt_is_a_not_done_communication_based_on_the_task() -> None:
    body = r.communication(
        resource_id="c1",
        task_id="hrm-task",
        patient="Patient/p1",
        actor=TECH,
        medium=Medium.PHONE,
        outcome=ContactOutcome.NUMBER_UNOBTAINABLE,
        sent=NOW,
        about="Monitoring blood tests due",
        note="tried twice",
    )
    Communication.model_validate(body)
    assert body["status"] == "not-done"
    assert body["statusReason"]["coding"][0] == {
        "system": t.CONTACT_OUTCOME,
        "code": "number-unobtainable",
    }
    assert body["basedOn"] == [{"reference": "Task/hrm-task"}]
    assert {c["code"] for c in body["medium"][0]["coding"]} == {"phone", "PHONE"}
    assert body["sender"]["display"] == "Tess Tech"
    assert body["sent"] == "2026-11-27T10:30:00Z"
    assert body["payload"] == [{"contentString": "Monitoring blood tests due"}]
    assert body["meta"]["tag"] == [{"system": t.TAG, "code": "hrm-fhir"}]


def test_a_conveyed_message_is_completed_and_sms_has_only_our_code() -> None:
    body = r.communication(
        resource_id="c2",
        task_id="hrm-task",
        patient="Patient/p1",
        actor=TECH,
        medium=Medium.SMS,
        outcome=ContactOutcome.MESSAGE_SENT,
        sent=NOW,
        about="x",
    )
    assert body["status"] == "completed"
    assert [c["code"] for c in body["medium"][0]["coding"]] == ["sms"]
    assert "note" not in body


def test_a_task_update_changes_only_the_workflow_fields() -> None:
    body = r.task_update(
        TASK,
        stage=Stage.INVITED,
        actor=TECH,
        now=NOW,
        note="SMS sent",
        outputs=[r.typed("booked-for", valueDate="2026-12-01")],
    )
    Task.model_validate(body)
    assert body["status"] == "in-progress"
    assert body["businessStatus"]["coding"][0]["code"] == "invited"
    assert [n["text"] for n in body["note"]] == ["earlier note", "SMS sent"]
    assert body["note"][1]["authorString"] == "Tess Tech"
    assert body["output"][0]["valueString"] == "kept"
    assert body["output"][1]["valueDate"] == "2026-12-01"
    assert body["executionPeriod"] == {"start": "2026-11-27T10:30:00Z"}
    assert body["meta"] == {"tag": TASK["meta"]["tag"]}
    assert body["for"] == TASK["for"]
    done = r.task_update(body, stage=Stage.COMPLETED, actor=PHARM, now=NOW, status="completed")
    assert done["executionPeriod"]["end"] == "2026-11-27T10:30:00Z"


def test_provenance_attests_sign_offs_and_keeps_each_target_version() -> None:
    body = r.provenance(
        resource_id="pv1",
        targets=[("Task/hrm-task", "4"), ("Flag/f1", "2")],
        actor=PHARM,
        action=Action.SIGN_OFF,
        recorded=NOW,
        activity="Pharmacist sign-off: continue",
        reason="lithium@1#level",
        sources=["Observation/o1"],
    )
    Provenance.model_validate(body)
    assert [x["reference"] for x in body["target"]] == [
        "Task/hrm-task/_history/4",
        "Flag/f1/_history/2",
    ]
    assert body["target"][0]["extension"] == [
        {"url": t.TARGET_VERSION_EXTENSION, "valueString": "4"}
    ]
    [agent] = body["agent"]
    assert agent["type"]["coding"][0]["code"] == "attester"
    assert agent["who"]["identifier"] == {"system": t.USER_IDENTIFIER, "value": "phil"}
    assert agent["role"][0]["coding"][0]["code"] == "pharmacist"
    assert body["reason"] == [{"text": "lithium@1#level"}]
    assert body["entity"] == [{"role": "source", "what": {"reference": "Observation/o1"}}]
    record = r.provenance(
        resource_id="pv2",
        targets=[("Task/t", None)],
        actor=TECH,
        action=Action.CONTACT,
        recorded=NOW,
        activity="x",
    )
    assert record["agent"][0]["type"]["coding"][0]["code"] == "author"
    assert record["target"] == [{"reference": "Task/t"}]


def test_the_gp_task_carries_reason_evidence_and_priority_from_severity() -> None:
    body = r.gp_escalation_task(
        resource_id="gp1",
        patient="Patient/p1",
        focus="Task/hrm-task",
        part_of="Task/hrm-task",
        flags=["Flag/f1"],
        results=["Observation/o1"],
        reason="Lithium 1.6 mmol/L",
        note="please review today",
        severity=Severity.URGENT,
        actor=PHARM,
        now=NOW,
        result_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        rule="lithium@1#lithium-toxic",
    )
    Task.model_validate(body)
    assert (body["status"], body["intent"], body["priority"]) == ("requested", "order", "stat")
    assert body["owner"] == r.GP_TEAM
    assert body["code"]["coding"][0]["code"] == "gp-escalation"
    assert body["focus"] == {"reference": "Task/hrm-task"}
    assert body["partOf"] == [{"reference": "Task/hrm-task"}]
    assert body["reasonReference"] == {"reference": "Flag/f1"}
    kinds = {i["type"]["coding"][0]["code"]: i for i in body["input"]}
    assert set(kinds) == {
        "reason",
        "pharmacist-note",
        "flag",
        "evidence",
        "result-observed",
        "rule",
    }
    assert kinds["result-observed"]["valueDateTime"] == "2026-11-26T09:30:00Z"
    assert body["requester"]["display"] == "Phil Pharm"


def test_an_inactive_flag_ends_its_period_and_ids_are_deterministic() -> None:
    flag = {
        "resourceType": "Flag",
        "id": "f1",
        "meta": {"versionId": "1"},
        "status": "active",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-11-25"},
    }
    body = r.inactive_flag(flag, date(2026, 11, 27))
    assert (body["status"], body["period"]) == (
        "inactive",
        {"start": "2026-11-25", "end": "2026-11-27"},
    )
    assert "meta" not in body
    assert r.workflow_id("a", "b") == r.workflow_id("a", "b") != r.workflow_id("a", "c")
    assert len(r.workflow_id("a", "b")) <= 64
