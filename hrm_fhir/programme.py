"""The programme workflow as pure rules: roles, stages, actions, decisions and the chase cadence
(used by the workflow, the writeback, the FHIR readers and the audit alike).

No I/O and no clock: every function takes the facts and the date it needs. A Task's stage is its
``businessStatus`` code (the sweep writes ``to-contact`` and ``awaiting-pharmacist``), read
together with its FHIR ``status``; ``next_stage`` says what an action moves it to, or raises
WorkflowError when the stage does not allow the action.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from hrm_fhir import terminology as t
from hrm_fhir.errors import WorkflowError, WorkflowNotFoundError, WorkflowPermissionError

GP_TASK_CODE = "gp-escalation"
"""``Task.code`` of the Task that hands an out-of-range result to the GP team."""
MONITORING_TASK_CODE = "monitoring-due"
ARRANGEMENT_TASK_CODE = "monitored-elsewhere"
"""``Task.code`` of the Task that records who monitors a patient's drug group (one per patient and
group): ``on-hold`` while another organisation monitors, ``completed`` once the practice does."""
MAX_NOTE = 2000
"""The longest note a person may add to an action (the API and the pages alike)."""
MAX_DOSE = 200
"""The longest new dose a sign-off may give."""
MAX_TEAM = 200
"""The longest name of the organisation or team that monitors."""


class Role(StrEnum):
    TECHNICIAN = "technician"
    PHARMACIST = "pharmacist"
    GP = "gp"
    ADMIN = "admin"


@dataclass(frozen=True)
class Actor:
    """The person acting: their username, role, name as shown, and practice (Organization id;
    None for users who work across practices)."""

    username: str
    role: Role
    display_name: str
    practice: str | None

    @property
    def organization(self) -> str | None:
        """The practice as an ``Organization/<id>`` reference."""
        if self.practice is None:
            return None
        return self.practice if "/" in self.practice else f"Organization/{self.practice}"


class Stage(StrEnum):
    """The programme stage of a Task (``Task.businessStatus``)."""

    TO_CONTACT = "to-contact"
    INVITED = "invited"
    REMINDED = "reminded"
    REMINDED_2 = "reminded-2"
    BOOKED = "booked"
    SAMPLE_TAKEN = "sample-taken"
    AWAITING_PHARMACIST = "awaiting-pharmacist"
    NON_ENGAGEMENT = "non-engagement"
    ESCALATED_GP = "escalated-gp"
    MONITORED_ELSEWHERE = "monitored-elsewhere"
    MONITORED_BY_PRACTICE = "monitored-by-practice"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return _STAGE_LABELS[self]

    @property
    def is_terminal(self) -> bool:
        return self in (Stage.COMPLETED, Stage.CANCELLED, Stage.MONITORED_BY_PRACTICE)


_STAGE_LABELS = {
    Stage.TO_CONTACT: "to contact",
    Stage.INVITED: "invited",
    Stage.REMINDED: "reminded",
    Stage.REMINDED_2: "second reminder sent",
    Stage.BOOKED: "booked",
    Stage.SAMPLE_TAKEN: "sample taken",
    Stage.AWAITING_PHARMACIST: "result received: awaiting pharmacist review",
    Stage.NON_ENGAGEMENT: "non-engagement: awaiting pharmacist decision",
    Stage.ESCALATED_GP: "escalated to the GP",
    Stage.MONITORED_ELSEWHERE: "monitored elsewhere",
    Stage.MONITORED_BY_PRACTICE: "monitored by the practice",
    Stage.COMPLETED: "completed",
    Stage.CANCELLED: "cancelled",
}
CONTACT_STAGES = (Stage.TO_CONTACT, Stage.INVITED, Stage.REMINDED, Stage.REMINDED_2)
"""Stages in which the patient is being chased."""
TECHNICIAN_STAGES = (*CONTACT_STAGES, Stage.BOOKED, Stage.SAMPLE_TAKEN)
"""Stages the technician worklist shows by default."""
_BY_VALUE: Mapping[object, Stage] = {stage.value: stage for stage in Stage}
_LEGACY_CODES: Mapping[object, Stage] = {"closed": Stage.CANCELLED}
"""businessStatus codes the sweep writes that are not stage names."""


class Medium(StrEnum):
    SMS = "sms"
    NHS_APP = "nhs-app"
    PHONE = "phone"
    LETTER = "letter"

    @property
    def label(self) -> str:
        return {"sms": "SMS", "nhs-app": "NHS App", "phone": "phone", "letter": "letter"}[self]

    @property
    def participation_mode(self) -> str | None:
        """The HL7 v3 ParticipationMode code, where one fits (none does for SMS)."""
        return {"nhs-app": "ONLINEWRIT", "phone": "PHONE", "letter": "MAILWRIT"}.get(self.value)


class ContactOutcome(StrEnum):
    BOOKED = "booked"
    NO_ANSWER = "no-answer"
    DECLINED = "declined"
    NUMBER_UNOBTAINABLE = "number-unobtainable"
    MESSAGE_SENT = "message-sent"

    @property
    def label(self) -> str:
        return self.value.replace("-", " ")

    @property
    def conveyed(self) -> bool:
        """Whether the message reached the patient (Communication ``completed``, else
        ``not-done``)."""
        return self not in (ContactOutcome.NO_ANSWER, ContactOutcome.NUMBER_UNOBTAINABLE)


class Decision(StrEnum):
    CONTINUE = "continue"
    DOSE_ADJUSTED = "dose-adjusted"
    DOSE_WITHHELD = "dose-withheld"
    REPEAT_TEST_BOOKED = "repeat-test-booked"
    ADVICE_GIVEN = "advice-given"
    ESCALATED_GP = "escalated-gp"
    CONTINUE_WITH_CAVEATS = "continue-with-caveats"
    PAUSE = "pause"
    REFER = "refer"

    @property
    def label(self) -> str:
        return self.value.replace("-", " ").replace(" gp", " GP")


SIGN_OFF_DECISIONS = frozenset(
    {
        Decision.CONTINUE,
        Decision.DOSE_ADJUSTED,
        Decision.DOSE_WITHHELD,
        Decision.REPEAT_TEST_BOOKED,
        Decision.ADVICE_GIVEN,
        Decision.ESCALATED_GP,
    }
)
NON_ENGAGEMENT_DECISIONS = frozenset(
    {Decision.CONTINUE_WITH_CAVEATS, Decision.PAUSE, Decision.REFER}
)
RESOLVING_DECISIONS = frozenset(
    {Decision.CONTINUE, Decision.DOSE_ADJUSTED, Decision.DOSE_WITHHELD, Decision.ADVICE_GIVEN}
)
"""Sign-off decisions that resolve an out-of-range result, so its Flag becomes inactive. A repeat
test leaves the Flag active until the repeat result (the sweep closes it); an escalation leaves it
active until the GP acknowledges."""


class Action(StrEnum):
    """What a person does; the values are ``WorkflowEventRecord.action``."""

    CONTACT = "contact"
    BOOKING = "booking"
    SAMPLE = "sample"
    ROUTE = "route"
    SIGN_OFF = "signoff"
    ESCALATE = "escalate"
    DECISION = "decision"
    ACKNOWLEDGE = "acknowledge"
    MONITORED_ELSEWHERE = "monitored-elsewhere"
    MONITORED_BY_PRACTICE = "monitored-by-practice"


_ANYONE_ON_THE_LIST = frozenset({Role.TECHNICIAN, Role.PHARMACIST, Role.ADMIN})
_PHARMACIST = frozenset({Role.PHARMACIST, Role.ADMIN})
PERMISSIONS: Mapping[Action, frozenset[Role]] = {
    Action.CONTACT: _ANYONE_ON_THE_LIST,
    Action.BOOKING: _ANYONE_ON_THE_LIST,
    Action.SAMPLE: _ANYONE_ON_THE_LIST,
    Action.ROUTE: _ANYONE_ON_THE_LIST,
    Action.SIGN_OFF: _PHARMACIST,
    Action.ESCALATE: _PHARMACIST,
    Action.DECISION: _PHARMACIST,
    Action.ACKNOWLEDGE: frozenset({Role.GP, Role.ADMIN}),
    Action.MONITORED_ELSEWHERE: _PHARMACIST,
    Action.MONITORED_BY_PRACTICE: _PHARMACIST,
}
_VERBS = {
    Action.CONTACT: "record a contact attempt",
    Action.BOOKING: "record a booking",
    Action.SAMPLE: "record a sample",
    Action.ROUTE: "route a Task to the pharmacist",
    Action.SIGN_OFF: "sign off",
    Action.ESCALATE: "escalate to the GP",
    Action.DECISION: "record a non-engagement decision",
    Action.ACKNOWLEDGE: "acknowledge a GP escalation",
    Action.MONITORED_ELSEWHERE: "record that another organisation monitors a drug",
    Action.MONITORED_BY_PRACTICE: "return monitoring of a drug to the practice",
}


def require_role(actor: Actor, action: Action) -> None:
    """Raise WorkflowPermissionError unless the actor's role may take the action."""
    if actor.role not in PERMISSIONS[action]:
        allowed = ", ".join(sorted(role.value for role in PERMISSIONS[action]))
        raise WorkflowPermissionError(
            f"a {actor.role.value} may not {_VERBS[action]} (allowed: {allowed})"
        )


def require_practice(actor: Actor, general_practitioners: frozenset[str], missing: str) -> None:
    """Raise WorkflowNotFoundError(``missing``) when the actor is tied to a practice that is not
    among the patient's general practitioners (``Organization/<id>`` references): another
    practice's patient is answered as if there were none, so existence is not revealed."""
    org = actor.organization
    if org is not None and org not in general_practitioners:
        raise WorkflowNotFoundError(missing)


def stage_of(task: Mapping[str, Any]) -> Stage:
    """A Task's stage: terminal FHIR statuses first, then the businessStatus code (or text)."""
    status = task.get("status")
    if status in ("completed", "failed"):
        return Stage.COMPLETED
    if status in ("cancelled", "rejected", "entered-in-error"):
        return Stage.CANCELLED
    business = task.get("businessStatus") or {}
    names = [
        c.get("code")
        for c in business.get("coding") or ()
        if c.get("system") in (None, t.BUSINESS_STATUS)
    ]
    names.append(business.get("text"))
    for name in names:
        found = _LEGACY_CODES.get(name) or _BY_VALUE.get(name)
        if found is not None:
            return found
    codes = {c.get("code") for c in (task.get("code") or {}).get("coding") or ()}
    if GP_TASK_CODE in codes:
        return Stage.ESCALATED_GP
    return Stage.TO_CONTACT if MONITORING_TASK_CODE in codes else Stage.AWAITING_PHARMACIST


def next_stage(
    stage: Stage,
    action: Action,
    *,
    outcome: ContactOutcome | None = None,
    decision: Decision | None = None,
) -> Stage:
    """The stage an action moves a Task to; WorkflowError when the stage does not allow it.

    Contact attempts without a booking move the chase on (invited, reminded, second reminder);
    one after the second reminder routes the Task to the pharmacist (non-engagement). A failed
    contact after a booking (a missed appointment) counts as a reminder.
    """
    if action is Action.CONTACT:
        if outcome is None:
            raise WorkflowError("a contact attempt needs an outcome")
        if stage in CONTACT_STAGES or stage is Stage.BOOKED:
            if outcome is ContactOutcome.BOOKED:
                return Stage.BOOKED
            return _CHASED[stage]
    elif action is Action.BOOKING:
        if stage in CONTACT_STAGES or stage is Stage.BOOKED:
            return Stage.BOOKED
    elif action is Action.SAMPLE:
        if stage in CONTACT_STAGES or stage is Stage.BOOKED:
            return Stage.SAMPLE_TAKEN
    elif action is Action.ROUTE:
        if stage is Stage.REMINDED_2:
            return Stage.NON_ENGAGEMENT
    elif action in (Action.SIGN_OFF, Action.ESCALATE):
        _require_decision(decision, SIGN_OFF_DECISIONS, "sign-off")
        if stage is Stage.AWAITING_PHARMACIST:
            return Stage.ESCALATED_GP if decision is Decision.ESCALATED_GP else Stage.COMPLETED
    elif action is Action.DECISION:
        _require_decision(decision, NON_ENGAGEMENT_DECISIONS, "non-engagement")
        if stage is Stage.NON_ENGAGEMENT:
            return Stage.COMPLETED
    elif action is Action.ACKNOWLEDGE and stage is Stage.ESCALATED_GP:
        return Stage.COMPLETED
    raise WorkflowError(f"cannot {_VERBS[action]} on a Task at stage {stage.value}")


_CHASED = {
    Stage.TO_CONTACT: Stage.INVITED,
    Stage.INVITED: Stage.REMINDED,
    Stage.REMINDED: Stage.REMINDED_2,
    Stage.REMINDED_2: Stage.NON_ENGAGEMENT,
    Stage.BOOKED: Stage.REMINDED,
}


def _require_decision(decision: Decision | None, allowed: frozenset[Decision], what: str) -> None:
    if decision not in allowed:
        names = ", ".join(sorted(d.value for d in allowed))
        raise WorkflowError(f"a {what} decision is one of: {names}")


def check_sign_off(decision: Decision, new_dose: str, repeat_on: date | None) -> None:
    """The details a decision needs: the new dose for a dose adjustment, the date of a repeat
    test; neither is accepted with another decision."""
    if decision is Decision.DOSE_ADJUSTED and not new_dose.strip():
        raise WorkflowError("a dose adjustment needs the new dose")
    if decision is not Decision.DOSE_ADJUSTED and new_dose.strip():
        raise WorkflowError("a new dose is given only with the decision dose-adjusted")
    if decision is Decision.REPEAT_TEST_BOOKED and repeat_on is None:
        raise WorkflowError("a repeat test needs its date")
    if decision is not Decision.REPEAT_TEST_BOOKED and repeat_on is not None:
        raise WorkflowError("a repeat date is given only with the decision repeat-test-booked")


MAX_REVIEW_DAYS = 366
"""A monitored-elsewhere arrangement is reviewed at least this often (a programme rule [D]: the
pharmacist looks again at least yearly, so a stale arrangement cannot last unseen)."""


def check_arrangement(monitored_by: str, review_on: date, today: date) -> None:
    """Who monitors is named, and the review date is after today and within a year."""
    if not monitored_by.strip():
        raise WorkflowError("name the organisation or team that monitors")
    if review_on <= today:
        raise WorkflowError("the review date must be after today")
    if (review_on - today).days > MAX_REVIEW_DAYS:
        raise WorkflowError(f"the review date must be within {MAX_REVIEW_DAYS} days")


class ChaseStep(StrEnum):
    """The next step of the chase cadence."""

    INVITE = "invite"
    REMIND = "remind"
    REMIND_2 = "remind-2"
    ROUTE = "route-to-pharmacist"


_NEXT_CHASE = {
    Stage.TO_CONTACT: ChaseStep.INVITE,
    Stage.INVITED: ChaseStep.REMIND,
    Stage.REMINDED: ChaseStep.REMIND_2,
    Stage.REMINDED_2: ChaseStep.ROUTE,
}


@dataclass(frozen=True)
class Chase:
    step: ChaseStep
    due_on: date


def next_chase(
    stage: Stage, last_attempt: date | None, interval_days: int, today: date
) -> Chase | None:
    """The next chase step and when it is due: an invitation at once, then each reminder (and
    finally the routing to the pharmacist) ``interval_days`` after the last attempt. None when
    the patient is not being chased (booked, sample taken, or beyond)."""
    step = _NEXT_CHASE.get(stage)
    if step is None:
        return None
    if step is ChaseStep.INVITE or last_attempt is None:
        return Chase(step, today)
    return Chase(step, last_attempt + timedelta(days=interval_days))


def due_this_week(chase: Chase | None, as_of: date) -> bool:
    """Whether a chase falls due in the seven days from ``as_of`` (or already has)."""
    return chase is not None and chase.due_on <= as_of + timedelta(days=6)


class Priority(StrEnum):
    """Why a patient is where they are on the worklist, most pressing first."""

    OUT_OF_RANGE = "out-of-range follow-up"
    SEVERELY_OVERDUE = "severely overdue"
    OVERDUE = "overdue"
    DUE = "due"

    @property
    def rank(self) -> int:
        return list(Priority).index(self)


def priority(*, out_of_range: bool, days_overdue: int, severely_overdue: bool) -> Priority:
    """Out-of-range follow-ups first, then monitoring the engine graded severely overdue (past
    its schedule's tolerance, from the rule packs), then any overdue, then due."""
    if out_of_range:
        return Priority.OUT_OF_RANGE
    if severely_overdue:
        return Priority.SEVERELY_OVERDUE
    return Priority.OVERDUE if days_overdue > 0 else Priority.DUE
