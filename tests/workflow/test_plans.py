"""The pure planning of each workflow action (plans.py, decisions.py): what it writes, and when it
refuses, from plain dicts, with no FHIR server, database or rule files read by the plan."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from hrm_fhir import terminology as t
from hrm_fhir.adapters.store.records import WorkflowEventRecord
from hrm_fhir.errors import WorkflowError
from hrm_fhir.programme import Actor, ContactOutcome, Decision, Medium, Role, Stage
from hrm_fhir.workflow.decisions import (
    Arrangement,
    SignOff,
    SignOffReads,
    plan_acknowledge,
    plan_decision,
    plan_sign_off,
    plan_who_monitors,
)
from hrm_fhir.workflow.plans import (
    Request,
    plan_booking,
    plan_contact,
    plan_route,
    plan_sample,
)
from hrm_fhir.workflow.resources import typed
from hrm_fhir.workflow.transaction import Change
from tests.builders import rules

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
TECH = Actor("tess", Role.TECHNICIAN, "Tess Tech", "org-1")
PHARM = Actor("phil", Role.PHARMACIST, "Phil Pharm", "org-1")
GP = Actor("gina", Role.GP, "Gina GP", "org-1")


def task(stage: Stage, task_id: str = "t1", version: str = "3", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"versionId": version},
        "status": "requested" if stage is Stage.TO_CONTACT else "in-progress",
        "intent": "order",
        "code": {"coding": [{"system": t.TASK_CODE, "code": "monitoring-due"}]},
        "for": {"reference": "Patient/p1"},
        "businessStatus": {"coding": [{"system": t.BUSINESS_STATUS, "code": stage.value}]},
        **extra,
    }


def review_task(**extra: Any) -> dict[str, Any]:
    body = task(Stage.AWAITING_PHARMACIST, "rev", "5", **extra)
    body["code"] = {"coding": [{"system": t.TASK_CODE, "code": "result-review"}]}
    body["description"] = "ALT above range: review"
    body["input"] = [typed("evidence", "Evidence", valueReference={"reference": "Observation/o1"})]
    body["extension"] = [{"url": t.RULE_EXTENSION, "valueString": "methotrexate@1#alt-high"}]
    return body


def flag(flag_id: str = "f1", status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Flag",
        "id": flag_id,
        "meta": {"versionId": "2"},
        "status": status,
        "code": {"coding": [{"code": "alt-high-action"}], "text": "ALT above range"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-11-20"},
        "extension": [{"url": t.FLAG_DETAIL, "valueReference": {"reference": "Observation/o1"}}],
    }


OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "effectiveDateTime": "2026-11-26T10:30:00+00:00",
}


def request(
    actor: Actor, version: str | None = "3", moment: datetime = NOW, **params: Any
) -> Request:
    return Request(actor, version, params, moment)


def written(change: Change) -> list[tuple[str, str | None]]:
    return [(w.reference, w.if_match) for w in change.writes]


# ------------------------------------------------------------------ the technician's chase


def test_a_contact_without_answer_invites_and_writes_a_communication_at_the_loaded_version() -> (
    None
):
    due = task(Stage.TO_CONTACT)
    due["input"] = [
        typed("required-test", valueCodeableConcept={"coding": [{"code": "fbc"}]}),
    ]
    due["restriction"] = {"period": {"end": "2026-11-20"}}
    ask = request(TECH, medium="phone", outcome="no-answer", note="")
    change = plan_contact(
        due, ask, medium=Medium.PHONE, outcome=ContactOutcome.NO_ANSWER, note="", rules=rules()
    )
    assert (change.stage_before, change.stage_after) == (Stage.TO_CONTACT, Stage.INVITED)
    (task_ref, task_version), (message_ref, message_version) = written(change)
    assert (task_ref, task_version, message_version) == ("Task/t1", "3", None)
    message = change.writes[1].resource
    assert message["status"] == "not-done"
    assert message["payload"] == [
        {"contentString": "Monitoring blood tests due: Full blood count (due 2026-11-20)"}
    ]
    assert change.detail["communication"] == message_ref
    again = plan_contact(
        due, ask, medium=Medium.PHONE, outcome=ContactOutcome.NO_ANSWER, note="", rules=rules()
    )
    assert again.writes[1].reference == message_ref, "a retried request names the same resource"


def test_a_contact_after_the_second_reminder_hands_the_task_to_the_pharmacist() -> None:
    change = plan_contact(
        task(Stage.REMINDED_2),
        request(TECH),
        medium=Medium.SMS,
        outcome=ContactOutcome.MESSAGE_SENT,
        note="",
        rules=rules(),
    )
    assert change.stage_after is Stage.NON_ENGAGEMENT
    assert change.writes[0].resource["owner"] == {"display": "Practice pharmacist"}


def test_a_contact_on_a_task_awaiting_the_pharmacist_is_refused() -> None:
    with pytest.raises(WorkflowError, match="cannot record a contact attempt"):
        plan_contact(
            review_task(),
            request(TECH),
            medium=Medium.PHONE,
            outcome=ContactOutcome.NO_ANSWER,
            note="",
            rules=rules(),
        )


def test_a_booking_records_the_date_and_moves_the_task_to_booked() -> None:
    change = plan_booking(
        task(Stage.INVITED), request(TECH), booked_for=date(2026, 12, 1), note="am"
    )
    assert change.stage_after is Stage.BOOKED
    updated = change.writes[0].resource
    assert updated["output"][-1]["valueDate"] == "2026-12-01"
    assert updated["note"][-1]["text"] == "Blood test booked for 2026-12-01. am"


def test_a_booking_for_yesterday_in_the_local_calendar_is_refused() -> None:
    late_evening = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 1 July in London (BST)
    with pytest.raises(WorkflowError, match="in the past"):
        plan_booking(
            task(Stage.INVITED),
            request(TECH, moment=late_evening),
            booked_for=date(2026, 6, 30),
            note="",
        )


def test_a_sample_taken_today_moves_the_task_to_sample_taken() -> None:
    change = plan_sample(task(Stage.BOOKED), request(TECH), taken_on=NOW.date())
    assert change.stage_after is Stage.SAMPLE_TAKEN
    assert change.writes[0].resource["output"][-1]["valueDate"] == "2026-11-27"


def test_a_sample_taken_tomorrow_is_refused() -> None:
    with pytest.raises(WorkflowError, match="in the future"):
        plan_sample(task(Stage.BOOKED), request(TECH), taken_on=date(2026, 11, 28))


def contact(sent: str) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "id": f"c-{sent}",
        "status": "not-done",
        "sent": sent,
        "basedOn": [{"reference": "Task/t1"}],
    }


def test_routing_after_the_chase_interval_hands_the_task_to_the_pharmacist() -> None:
    attempts = [contact("2026-10-20T09:00:00+00:00"), contact("2026-11-10T09:00:00+00:00")]
    change = plan_route(
        task(Stage.REMINDED_2),
        request(TECH),
        communications=attempts,
        note="",
        chase_interval_days=14,
    )
    assert change.stage_after is Stage.NON_ENGAGEMENT
    assert change.writes[0].resource["owner"] == {"display": "Practice pharmacist"}
    assert (change.detail["attempts"], change.detail["last_attempt"]) == (2, "2026-11-10")


def test_routing_before_the_chase_interval_has_passed_is_refused() -> None:
    with pytest.raises(WorkflowError, match="due on 2026-12-04"):
        plan_route(
            task(Stage.REMINDED_2),
            request(TECH),
            communications=[contact("2026-11-20T09:00:00+00:00")],
            note="",
            chase_interval_days=14,
        )


# ------------------------------------------------------------------ the pharmacist and the GP


def test_a_resolving_sign_off_completes_the_task_and_closes_its_flag_at_the_version_read() -> None:
    reads = SignOffReads(flags=[flag()], observations=[OBSERVATION])
    change = plan_sign_off(review_task(), request(PHARM, "5"), SignOff(Decision.CONTINUE), reads)
    assert change.stage_after is Stage.COMPLETED
    assert written(change) == [("Task/rev", "5"), ("Flag/f1", "2")]
    assert change.writes[0].resource["status"] == "completed"
    assert change.writes[1].resource["status"] == "inactive"
    assert change.detail["result_to_action_hours"] == 24.0
    assert (change.reason, change.sources) == ("methotrexate@1#alt-high", ["Observation/o1"])


def test_an_escalation_writes_a_gp_task_and_leaves_the_flag_active() -> None:
    reads = SignOffReads(flags=[flag()], observations=[OBSERVATION])
    change = plan_sign_off(
        review_task(), request(PHARM, "5"), SignOff(Decision.ESCALATED_GP, "see today"), reads
    )
    assert change.stage_after is Stage.ESCALATED_GP
    (task_ref, _), (gp_ref, gp_version) = written(change)
    assert (task_ref, gp_version) == ("Task/rev", None)
    assert change.detail["gp_task"] == gp_ref
    assert change.writes[0].resource["owner"] == {"display": "Practice GP team"}
    assert change.unchanged == [("Flag/f1", "2")]


def test_a_sign_off_on_a_flag_the_pharmacist_already_escalated_is_refused() -> None:
    escalated = WorkflowEventRecord(stage_after=Stage.ESCALATED_GP.value)
    reads = SignOffReads(flags=[flag()], last_event=escalated)
    with pytest.raises(WorkflowError, match="cannot sign off on a Task at stage escalated-gp"):
        plan_sign_off(flag(), request(PHARM, "2"), SignOff(Decision.CONTINUE), reads)


def test_a_sign_off_on_a_task_still_being_chased_is_refused() -> None:
    with pytest.raises(WorkflowError, match="at stage invited"):
        plan_sign_off(
            task(Stage.INVITED), request(PHARM), SignOff(Decision.CONTINUE), SignOffReads()
        )


def test_a_non_engagement_decision_ends_the_task_failed_with_the_decision() -> None:
    change = plan_decision(
        task(Stage.NON_ENGAGEMENT), request(PHARM), decision=Decision.PAUSE, note=""
    )
    updated = change.writes[0].resource
    assert (change.stage_after, updated["status"]) == (Stage.COMPLETED, "failed")
    assert updated["statusReason"] == {"text": "non-engagement: pause"}


def test_a_result_review_decision_on_a_non_engagement_task_is_refused() -> None:
    with pytest.raises(WorkflowError, match="non-engagement decision is one of"):
        plan_decision(
            task(Stage.NON_ENGAGEMENT), request(PHARM), decision=Decision.CONTINUE, note=""
        )


def gp_task() -> dict[str, Any]:
    body = task(Stage.ESCALATED_GP, "gp1", "1", partOf=[{"reference": "Task/rev"}])
    body["code"] = {"coding": [{"system": t.TASK_CODE, "code": "gp-escalation"}]}
    body["input"] = [
        typed("flag", "Flag", valueReference={"reference": "Flag/f1"}),
        typed("result-observed", "Result", valueDateTime="2026-11-26T04:30:00Z"),
    ]
    return body


def test_the_gp_acknowledgement_closes_the_escalation_and_records_time_to_action() -> None:
    escalated = task(Stage.ESCALATED_GP, "rev", "6")
    change = plan_acknowledge(
        gp_task(),
        request(GP, "1"),
        escalated=[escalated],
        flags=[flag(), flag("f2", "inactive")],
        note="",
    )
    assert written(change) == [("Task/gp1", "1"), ("Task/rev", "6"), ("Flag/f1", "2")]
    assert change.detail["result_to_action_hours"] == 30.0
    duration = change.writes[0].resource["output"][-1]["valueDuration"]
    assert (duration["value"], duration["unit"]) == (30.0, "h")


def test_acknowledging_a_task_that_is_not_a_gp_escalation_is_refused() -> None:
    with pytest.raises(WorkflowError, match="not a GP escalation"):
        plan_acknowledge(task(Stage.TO_CONTACT), request(GP), escalated=[], flags=[], note="")


def test_monitoring_elsewhere_puts_the_arrangement_on_hold_and_cancels_the_routine_chase() -> None:
    new = {"resourceType": "Task", "id": "arr", "for": {"reference": "Patient/p1"}}
    arrangement = Arrangement(
        "Patient/p1", "methotrexate", "Methotrexate (DMARD)", ("Rheumatology", date(2027, 3, 1))
    )
    change = plan_who_monitors(new, request(PHARM, None), arrangement, [task(Stage.INVITED)])
    assert (change.stage_before, change.stage_after) == (
        Stage.TO_CONTACT,
        Stage.MONITORED_ELSEWHERE,
    )
    assert written(change) == [("Task/arr", None), ("Task/t1", "3")]
    assert change.writes[0].resource["status"] == "on-hold"
    assert change.writes[1].resource["status"] == "cancelled"
    assert change.detail["closed"] == ["Task/t1"]


def test_monitoring_elsewhere_with_a_review_date_already_past_is_refused() -> None:
    new = {"resourceType": "Task", "id": "arr", "for": {"reference": "Patient/p1"}}
    arrangement = Arrangement(
        "Patient/p1", "methotrexate", "Methotrexate (DMARD)", ("Rheumatology", date(2026, 11, 1))
    )
    with pytest.raises(WorkflowError, match="after today"):
        plan_who_monitors(new, request(PHARM, None), arrangement)
