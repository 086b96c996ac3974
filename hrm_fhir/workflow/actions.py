"""The actions people take on Tasks: each reads what its plan needs, plans (``plans.py``, pure)
and writes through the transaction engine (``transaction.py``), which checks the role, the
practice and the version, writes with ``ifMatch`` and records the step."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session

from hrm_fhir.adapters.fhir.fetch import OPEN_TASK_STATUSES, OURS_TAG, Scope
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import WorkflowConflictError, WorkflowError, WorkflowNotFoundError
from hrm_fhir.programme import (
    MONITORING_TASK_CODE,
    TECHNICIAN_STAGES,
    Action,
    Actor,
    ContactOutcome,
    Decision,
    Medium,
    Role,
    check_sign_off,
    stage_of,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.workflow.decisions import (
    Arrangement,
    SignOff,
    SignOffReads,
    group_title,
    plan_acknowledge,
    plan_decision,
    plan_sign_off,
    plan_who_monitors,
    sign_off_results,
)
from hrm_fhir.workflow.fields import (
    code_of,
    drug_group_of,
    flag_observation,
    patient_in_reach,
    patient_of,
    references_in,
    typed_entries,
)
from hrm_fhir.workflow.plans import (
    Request,
    plan_booking,
    plan_contact,
    plan_route,
    plan_sample,
)
from hrm_fhir.workflow.reads import (
    active_flags,
    communications_of,
    default_rules,
    events_for,
    findings_for,
    search,
)
from hrm_fhir.workflow.resources import Resource, workflow_id
from hrm_fhir.workflow.transaction import Change, act, missing, read_subject
from hrm_fhir.workflow.views import ActionResult, TaskSummary

TASK_OR_FLAG = "Task or Flag"
SWEEP_ACTOR = Actor("hrm-fhir", Role.ADMIN, "hrm-fhir weekly sweep", None)
"""Who the ledger and Provenance name for steps the sweep takes itself."""


def _planner(
    actor: Actor,
    version: str | None,
    params: dict[str, object],
    plan: Callable[[Resource, Request], Change],
) -> Callable[[Resource, datetime], Change]:
    """The engine's planner: the subject as read and the moment, as a Request to ``plan``."""
    return lambda subject, moment: plan(subject, Request(actor, version, params, moment))


def record_contact(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    version: str,
    medium: Medium,
    outcome: ContactOutcome,
    note: str = "",
    rules: RuleSet | None = None,
    now: datetime | None = None,
) -> ActionResult:
    """A contact attempt: a Communication based on the Task, and the Task's stage moved on
    (invited, reminded, second reminder, booked; after the second reminder, non-engagement)."""
    params: dict[str, object] = {"medium": medium.value, "outcome": outcome.value, "note": note}
    rule_set = rules or default_rules()

    def plan(task: Resource, request: Request) -> Change:
        return plan_contact(
            task, request, medium=medium, outcome=outcome, note=note, rules=rule_set
        )

    planner = _planner(actor, version, params, plan)
    return act(gateway, session, actor, Action.CONTACT, task_id, version, params, planner, now)


def record_booking(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    version: str,
    booked_for: date,
    note: str = "",
    now: datetime | None = None,
) -> ActionResult:
    """A blood test booked for a date (today or later): ``booked-for`` in Task.output."""
    params: dict[str, object] = {"booked_for": booked_for.isoformat(), "note": note}

    def plan(task: Resource, request: Request) -> Change:
        return plan_booking(task, request, booked_for=booked_for, note=note)

    planner = _planner(actor, version, params, plan)
    return act(gateway, session, actor, Action.BOOKING, task_id, version, params, planner, now)


def record_sample(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    version: str,
    taken_on: date,
    now: datetime | None = None,
) -> ActionResult:
    """A sample taken (today or earlier): ``sample-taken`` in Task.output; the sweep moves the
    Task on to the pharmacist when the result arrives."""
    params: dict[str, object] = {"taken_on": taken_on.isoformat()}

    def plan(task: Resource, request: Request) -> Change:
        return plan_sample(task, request, taken_on=taken_on)

    planner = _planner(actor, version, params, plan)
    return act(gateway, session, actor, Action.SAMPLE, task_id, version, params, planner, now)


def route_non_engagement(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    version: str,
    note: str = "",
    chase_interval_days: int = 14,
    now: datetime | None = None,
) -> ActionResult:
    """The cadence's last step: after the second reminder and ``chase_interval_days`` with no
    booking, route the Task to the pharmacist for a non-engagement decision."""
    params: dict[str, object] = {"chase_interval_days": chase_interval_days, "note": note}

    def plan(task: Resource, request: Request) -> Change:
        return plan_route(
            task,
            request,
            communications=communications_of(gateway, [task_id]),
            note=note,
            chase_interval_days=chase_interval_days,
        )

    planner = _planner(actor, version, params, plan)
    return act(gateway, session, actor, Action.ROUTE, task_id, version, params, planner, now)


def route_exhausted_chases(
    gateway: FHIRGateway,
    session: Session,
    due: Iterable[TaskSummary],
    *,
    chase_interval_days: int = 14,
    now: datetime | None = None,
) -> list[ActionResult]:
    """The cadence's last step, taken by the weekly sweep: each exhausted chase
    (``exhausted_chases``) goes to the pharmacist for a non-engagement decision. A Task someone
    changed meanwhile is left for the next sweep."""
    routed: list[ActionResult] = []
    for task in due:
        if task.version is None:
            continue
        try:
            routed.append(
                route_non_engagement(
                    gateway,
                    session,
                    SWEEP_ACTOR,
                    task.task_id,
                    version=task.version,
                    note="routed by the weekly sweep: no booking after the second reminder",
                    chase_interval_days=chase_interval_days,
                    now=now,
                )
            )
        except (WorkflowConflictError, WorkflowError):
            continue
    return routed


def _read_task_or_flag(gateway: FHIRGateway, subject_id: str) -> Resource:
    task = read_subject(gateway, "Task", subject_id)
    if task is not None:
        return task
    flag = read_subject(gateway, "Flag", subject_id)
    if flag is None:
        raise WorkflowNotFoundError(missing(TASK_OR_FLAG, subject_id))
    return flag


def _sign_off_reads(gateway: FHIRGateway, session: Session, subject: Resource) -> SignOffReads:
    """The Flags, results, findings and (for a Flag) the last ledger event a sign-off needs."""
    results = sign_off_results(subject)
    if subject["resourceType"] == "Flag":
        events = events_for(session, [subject["id"]])
        flags, last_event = [subject], (events[-1] if events else None)
    else:
        flags, last_event = _related_flags(gateway, patient_of(subject), results), None
    observations = [
        found
        for ref in results
        if (found := gateway.read("Observation", ref.removeprefix("Observation/"))) is not None
    ]
    findings = findings_for(session, [f["id"] for f in flags])
    return SignOffReads(flags, observations, findings, last_event)


def _related_flags(gateway: FHIRGateway, patient: str, results: Sequence[str]) -> list[Resource]:
    """The patient's active out-of-range Flags about these results."""
    if not results:
        return []
    flags = active_flags(gateway, Scope(), patient)
    return [f for f in flags if flag_observation(f) in results]


def sign_off(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    version: str,
    decision: Decision,
    note: str = "",
    new_dose: str = "",
    repeat_on: date | None = None,
    now: datetime | None = None,
) -> ActionResult:
    """The pharmacist's decision on a result (or prescribing) review, attested by Provenance.

    ``task_id`` is a Task awaiting the pharmacist, or an active out-of-range Flag that no Task
    covers. The Task is completed; Flags about its results become inactive when the decision
    resolves them (continue, dose adjusted or withheld, advice given). ``escalated-gp`` instead
    creates a Task for the GP team, and the Task and Flags wait for the GP's acknowledgement; a
    repeat test leaves the Flag active until the repeat result.
    """
    check_sign_off(decision, new_dose, repeat_on)
    asked = SignOff(decision, note, new_dose, repeat_on)
    params: dict[str, object] = {
        "decision": decision.value,
        "note": note,
        "new_dose": new_dose,
        "repeat_on": repeat_on.isoformat() if repeat_on else None,
    }

    def plan(subject: Resource, request: Request) -> Change:
        return plan_sign_off(subject, request, asked, _sign_off_reads(gateway, session, subject))

    planner = _planner(actor, version, params, plan)
    return act(
        gateway,
        session,
        actor,
        asked.action,
        task_id,
        version,
        params,
        planner,
        now,
        _read_task_or_flag,
        TASK_OR_FLAG,
    )


def decide_non_engagement(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    task_id: str,
    *,
    version: str,
    decision: Decision,
    note: str = "",
    now: datetime | None = None,
) -> ActionResult:
    """The pharmacist's decision for a patient who did not engage (continue with caveats, pause,
    refer): the Task ends ``failed`` (monitoring not done) with the decision, attested."""
    params: dict[str, object] = {"decision": decision.value, "note": note}

    def plan(task: Resource, request: Request) -> Change:
        return plan_decision(task, request, decision=decision, note=note)

    planner = _planner(actor, version, params, plan)
    return act(gateway, session, actor, Action.DECISION, task_id, version, params, planner, now)


def acknowledge_escalation(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    gp_task_id: str,
    *,
    version: str,
    note: str = "",
    now: datetime | None = None,
) -> ActionResult:
    """The GP acknowledges an escalation: the GP Task and the escalated Task are completed, the
    Flags made inactive, the time from result to action recorded (Task.output and ledger)."""
    params: dict[str, object] = {"note": note}

    def plan(gp_task: Resource, request: Request) -> Change:
        escalated = [
            gateway.read("Task", str(part["reference"]).removeprefix("Task/"))
            for part in gp_task.get("partOf", ())
        ]
        flags = [
            gateway.read("Flag", ref.removeprefix("Flag/"))
            for ref in references_in(typed_entries(gp_task.get("input", ()), "flag"))
        ]
        return plan_acknowledge(
            gp_task,
            request,
            escalated=[task for task in escalated if task is not None],
            flags=[flag for flag in flags if flag is not None],
            note=note,
        )

    planner = _planner(actor, version, params, plan)
    return act(
        gateway, session, actor, Action.ACKNOWLEDGE, gp_task_id, version, params, planner, now
    )


# ------------------------------------------------------------------ who monitors (shared care)


def arrangement_id(patient: str, drug_group: str) -> str:
    """The id of the Task that records who monitors one of a patient's drug groups."""
    return workflow_id("arrangement", patient, drug_group)


def _arrangement_or_new(patient: str, actor: Actor) -> Callable[[FHIRGateway, str], Resource]:
    """Read the arrangement Task, or give an unsaved one for a first decision, once the patient
    is known to exist and to be the actor's practice's (the same 404 otherwise)."""

    def read(gateway: FHIRGateway, task_id: str) -> Resource:
        patient_in_reach(actor, read_subject(gateway, "Patient", patient.split("/", 1)[1]))
        found = read_subject(gateway, "Task", task_id)
        return (
            found
            if found is not None
            else {"resourceType": "Task", "id": task_id, "for": {"reference": patient}}
        )

    return read


def record_monitored_elsewhere(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    patient: str,
    *,
    drug_group: str,
    monitored_by: str,
    review_on: date,
    version: str | None = None,
    note: str = "",
    rules: RuleSet | None = None,
    now: datetime | None = None,
) -> ActionResult:
    """The pharmacist records that another organisation (a named hospital or community team)
    monitors one of the patient's drug groups, until a review date: the arrangement Task goes on
    hold (a first decision creates it; ``version`` None), and the group's open routine
    monitoring Tasks still in the technician's stages are cancelled with the reason, in the same
    transaction. A Task already with the pharmacist or the GP keeps its review. Repeating the
    action renews the arrangement (a new review date, or another team)."""
    elsewhere = (monitored_by.strip(), review_on)
    return _who_monitors(
        gateway, session, actor, patient, drug_group, elsewhere, version, note, rules, now
    )


def record_monitored_by_practice(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    patient: str,
    *,
    drug_group: str,
    version: str | None = None,
    note: str = "",
    rules: RuleSet | None = None,
    now: datetime | None = None,
) -> ActionResult:
    """The pharmacist returns monitoring of a drug group to the practice: the arrangement Task
    is completed (monitored by the practice from today), which also overrides an older coded
    entry in the record that said shared care. The next sweep raises the routine monitoring."""
    return _who_monitors(
        gateway, session, actor, patient, drug_group, None, version, note, rules, now
    )


def _who_monitors(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    patient: str,
    drug_group: str,
    elsewhere: tuple[str, date] | None,
    version: str | None,
    note: str,
    rules: RuleSet | None,
    now: datetime | None,
) -> ActionResult:
    """Write the arrangement Task (``elsewhere``: who monitors and the review date; None: the
    practice), closing the group's routine Tasks when another organisation takes over."""
    ref = patient if patient.startswith("Patient/") else f"Patient/{patient}"
    title = group_title(rules or default_rules(), drug_group)
    arrangement = Arrangement(ref, drug_group, title, elsewhere, note)
    params: dict[str, object] = {"drug_group": drug_group, "note": note}
    if elsewhere is not None:
        params |= {"monitored_by": elsewhere[0], "review_on": elsewhere[1].isoformat()}
    action = Action.MONITORED_BY_PRACTICE if elsewhere is None else Action.MONITORED_ELSEWHERE

    def plan(task: Resource, request: Request) -> Change:
        routines = _routine_tasks(gateway, session, ref, drug_group) if elsewhere else []
        return plan_who_monitors(task, request, arrangement, routines)

    subject_id = arrangement_id(ref, drug_group)
    planner = _planner(actor, version, params, plan)
    read = _arrangement_or_new(ref, actor)
    return act(gateway, session, actor, action, subject_id, version, params, planner, now, read)


def _routine_tasks(
    gateway: FHIRGateway, session: Session, patient: str, drug_group: str
) -> list[Resource]:
    """The patient's open routine monitoring Tasks of one drug group in the technician's
    stages (the chase a monitored-elsewhere decision stops)."""
    tasks = [
        task
        for task in search(
            gateway, "Task", {"patient": patient, "_tag": OURS_TAG, "status": OPEN_TASK_STATUSES}
        )
        if code_of(task) == MONITORING_TASK_CODE and stage_of(task) in TECHNICIAN_STAGES
    ]
    findings = findings_for(session, [task["id"] for task in tasks])
    return [task for task in tasks if drug_group_of(task, findings.get(task["id"])) == drug_group]
