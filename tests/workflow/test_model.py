"""The pure workflow rules: stages, transitions, roles, practices and the chase cadence."""

from __future__ import annotations

from datetime import date

import pytest

from hrm_fhir import terminology as t
from hrm_fhir.errors import WorkflowError, WorkflowNotFoundError, WorkflowPermissionError
from hrm_fhir.programme import (
    Action,
    Actor,
    Chase,
    ChaseStep,
    ContactOutcome,
    Decision,
    Priority,
    Role,
    Stage,
    check_sign_off,
    due_this_week,
    next_chase,
    next_stage,
    priority,
    require_practice,
    require_role,
    stage_of,
)

DAY = date(2026, 11, 27)
NO_ANSWER = ContactOutcome.NO_ANSWER


def _actor(role: Role, practice: str | None = None) -> Actor:
    return Actor("user", role, "A User", practice)


def _task(
    status: str = "requested", code: str | None = None, text: str | None = None
) -> dict[str, object]:
    business: dict[str, object] = {}
    if code is not None:
        business["coding"] = [{"system": t.BUSINESS_STATUS, "code": code}]
    if text is not None:
        business["text"] = text
    return {
        "resourceType": "Task",
        "status": status,
        "businessStatus": business,
        "code": {"coding": [{"code": "monitoring-due"}]},
    }


def test_the_chase_runs_invite_reminder_second_reminder_then_non_engagement() -> None:
    stage = Stage.TO_CONTACT
    seen = []
    for _ in range(4):
        stage = next_stage(stage, Action.CONTACT, outcome=NO_ANSWER)
        seen.append(stage)
    assert seen == [Stage.INVITED, Stage.REMINDED, Stage.REMINDED_2, Stage.NON_ENGAGEMENT]


@pytest.mark.parametrize("stage", [Stage.TO_CONTACT, Stage.INVITED, Stage.REMINDED_2, Stage.BOOKED])
def test_a_booking_from_any_chase_stage_books(stage: Stage) -> None:
    assert next_stage(stage, Action.CONTACT, outcome=ContactOutcome.BOOKED) is Stage.BOOKED
    assert next_stage(stage, Action.BOOKING) is Stage.BOOKED
    assert next_stage(stage, Action.SAMPLE) is Stage.SAMPLE_TAKEN


def test_a_missed_appointment_counts_as_a_reminder() -> None:
    assert next_stage(Stage.BOOKED, Action.CONTACT, outcome=NO_ANSWER) is Stage.REMINDED


@pytest.mark.parametrize(
    ("stage", "action"),
    [
        (Stage.SAMPLE_TAKEN, Action.CONTACT),
        (Stage.AWAITING_PHARMACIST, Action.CONTACT),
        (Stage.AWAITING_PHARMACIST, Action.BOOKING),
        (Stage.COMPLETED, Action.SAMPLE),
        (Stage.REMINDED, Action.ROUTE),
        (Stage.TO_CONTACT, Action.ACKNOWLEDGE),
        (Stage.ESCALATED_GP, Action.CONTACT),
    ],
)
def test_transitions_a_stage_does_not_allow_are_refused(stage: Stage, action: Action) -> None:
    with pytest.raises(WorkflowError, match=f"stage {stage.value}"):
        next_stage(stage, action, outcome=NO_ANSWER)


def test_sign_off_completes_or_escalates_only_results_awaiting_the_pharmacist() -> None:
    awaiting = Stage.AWAITING_PHARMACIST
    assert next_stage(awaiting, Action.SIGN_OFF, decision=Decision.CONTINUE) is Stage.COMPLETED
    escalated = next_stage(awaiting, Action.ESCALATE, decision=Decision.ESCALATED_GP)
    assert escalated is Stage.ESCALATED_GP
    assert next_stage(escalated, Action.ACKNOWLEDGE) is Stage.COMPLETED
    with pytest.raises(WorkflowError, match="stage booked"):
        next_stage(Stage.BOOKED, Action.SIGN_OFF, decision=Decision.CONTINUE)
    with pytest.raises(WorkflowError, match="sign-off decision is one of"):
        next_stage(awaiting, Action.SIGN_OFF, decision=Decision.PAUSE)


def test_non_engagement_decisions_are_their_own_set() -> None:
    stage = next_stage(Stage.REMINDED_2, Action.ROUTE)
    assert stage is Stage.NON_ENGAGEMENT
    for decision in (Decision.CONTINUE_WITH_CAVEATS, Decision.PAUSE, Decision.REFER):
        assert next_stage(stage, Action.DECISION, decision=decision) is Stage.COMPLETED
    with pytest.raises(WorkflowError, match="non-engagement decision is one of"):
        next_stage(stage, Action.DECISION, decision=Decision.CONTINUE)


def test_sign_off_details_match_the_decision() -> None:
    check_sign_off(Decision.DOSE_ADJUSTED, "400mg at night", None)
    check_sign_off(Decision.REPEAT_TEST_BOOKED, "", DAY)
    with pytest.raises(WorkflowError, match="new dose"):
        check_sign_off(Decision.DOSE_ADJUSTED, " ", None)
    with pytest.raises(WorkflowError, match="its date"):
        check_sign_off(Decision.REPEAT_TEST_BOOKED, "", None)
    with pytest.raises(WorkflowError, match="only with the decision dose-adjusted"):
        check_sign_off(Decision.CONTINUE, "400mg", None)
    with pytest.raises(WorkflowError, match="only with the decision repeat-test-booked"):
        check_sign_off(Decision.CONTINUE, "", DAY)


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (Role.TECHNICIAN, Action.CONTACT, True),
        (Role.PHARMACIST, Action.CONTACT, True),
        (Role.GP, Action.CONTACT, False),
        (Role.TECHNICIAN, Action.SIGN_OFF, False),
        (Role.TECHNICIAN, Action.ESCALATE, False),
        (Role.TECHNICIAN, Action.DECISION, False),
        (Role.GP, Action.SIGN_OFF, False),
        (Role.PHARMACIST, Action.SIGN_OFF, True),
        (Role.PHARMACIST, Action.ACKNOWLEDGE, False),
        (Role.GP, Action.ACKNOWLEDGE, True),
        (Role.ADMIN, Action.SIGN_OFF, True),
        (Role.ADMIN, Action.ACKNOWLEDGE, True),
    ],
)
def test_roles(role: Role, action: Action, allowed: bool) -> None:
    if allowed:
        require_role(_actor(role), action)
    else:
        with pytest.raises(WorkflowPermissionError, match=f"a {role.value} may not"):
            require_role(_actor(role), action)


def test_another_practice_s_patient_is_not_found_as_if_there_were_none() -> None:
    patients_gps = frozenset({"Organization/org-1"})
    missing = "no Task t1"
    require_practice(_actor(Role.TECHNICIAN, "org-1"), patients_gps, missing)
    require_practice(_actor(Role.TECHNICIAN, "Organization/org-1"), patients_gps, missing)
    require_practice(_actor(Role.ADMIN, None), patients_gps, missing)
    with pytest.raises(WorkflowNotFoundError) as refused:
        require_practice(_actor(Role.PHARMACIST, "org-2"), patients_gps, missing)
    assert str(refused.value) == missing
    with pytest.raises(WorkflowNotFoundError):
        require_practice(_actor(Role.PHARMACIST, "org-2"), frozenset(), missing)


def test_stage_of_reads_the_sweeps_codes_terminal_statuses_and_other_clients_text() -> None:
    assert stage_of(_task(code="to-contact")) is Stage.TO_CONTACT
    assert stage_of(_task("in-progress", code="awaiting-pharmacist")) is Stage.AWAITING_PHARMACIST
    assert stage_of(_task("cancelled", code="closed")) is Stage.CANCELLED
    assert stage_of(_task("completed", code="booked")) is Stage.COMPLETED
    assert stage_of(_task("failed", code="completed")) is Stage.COMPLETED
    assert stage_of(_task(text="invited")) is Stage.INVITED
    assert stage_of({**_task(), "businessStatus": {"coding": []}}) is Stage.TO_CONTACT
    review = {"status": "requested", "code": {"coding": [{"code": "result-review"}]}}
    assert stage_of(review) is Stage.AWAITING_PHARMACIST
    gp = {"status": "requested", "code": {"coding": [{"code": "gp-escalation"}]}}
    assert stage_of(gp) is Stage.ESCALATED_GP


def test_the_cadence_invites_at_once_then_waits_the_interval_after_each_attempt() -> None:
    assert next_chase(Stage.TO_CONTACT, None, 14, DAY) == Chase(ChaseStep.INVITE, DAY)
    last = date(2026, 11, 1)
    assert next_chase(Stage.INVITED, last, 14, DAY) == Chase(ChaseStep.REMIND, date(2026, 11, 15))
    assert next_chase(Stage.REMINDED, last, 21, DAY) == Chase(
        ChaseStep.REMIND_2, date(2026, 11, 22)
    )
    assert next_chase(Stage.REMINDED_2, last, 14, DAY) == Chase(ChaseStep.ROUTE, date(2026, 11, 15))
    assert next_chase(Stage.INVITED, None, 14, DAY) == Chase(ChaseStep.REMIND, DAY)
    for stage in (Stage.BOOKED, Stage.SAMPLE_TAKEN, Stage.NON_ENGAGEMENT, Stage.COMPLETED):
        assert next_chase(stage, last, 14, DAY) is None


def test_a_chase_is_due_this_week_when_it_falls_due_within_seven_days() -> None:
    assert due_this_week(Chase(ChaseStep.REMIND, date(2026, 12, 3)), DAY)
    assert not due_this_week(Chase(ChaseStep.REMIND, date(2026, 12, 4)), DAY)
    assert due_this_week(Chase(ChaseStep.REMIND, date(2026, 10, 1)), DAY)
    assert not due_this_week(None, DAY)


def test_priority_puts_out_of_range_follow_ups_then_severely_overdue_first() -> None:
    def rank(out_of_range: bool, days: int, severe: bool) -> Priority:
        return priority(out_of_range=out_of_range, days_overdue=days, severely_overdue=severe)

    assert rank(True, 0, True) is Priority.OUT_OF_RANGE
    assert rank(False, 3, True) is Priority.SEVERELY_OVERDUE, "the rule pack's grade, not days"
    assert rank(False, 200, False) is Priority.OVERDUE, "no fixed number of days makes it severe"
    assert rank(False, 3, False) is Priority.OVERDUE
    assert rank(False, 0, False) is Priority.DUE
    ranks = [p.rank for p in Priority]
    assert ranks == sorted(ranks)
