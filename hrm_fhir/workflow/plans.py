"""What each workflow action writes: pure ``plan_*`` functions; here the technician's chase
(contact, booking, sample, routing to the pharmacist), in ``decisions.py`` the pharmacist's and
the GP's decisions.

Each plan is given everything it needs (the subject as read, the resources the action read for
it, the request with its actor, version and moment, the rule set) and returns the Change the
transaction engine writes, or raises WorkflowError when the step is not allowed. No server, no
database, no files: the actions in ``actions.py`` read, plan and write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from hrm_fhir import clock
from hrm_fhir.errors import WorkflowError
from hrm_fhir.programme import (
    Action,
    Actor,
    ContactOutcome,
    Medium,
    Stage,
    next_chase,
    next_stage,
    stage_of,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.tasks.build import PHARMACIST
from hrm_fhir.workflow.fields import (
    contact_item,
    due_of,
    patient_of,
    reference_of,
    test_title,
    tests_of,
)
from hrm_fhir.workflow.resources import (
    Resource,
    communication,
    task_update,
    typed,
    workflow_id,
)
from hrm_fhir.workflow.transaction import Change, Write, canonical


@dataclass(frozen=True)
class Request:
    """One action as asked: who, on which version of the subject, with which parameters (as the
    ledger records them and the written ids are derived from), and when."""

    actor: Actor
    version: str | None
    params: Mapping[str, object]
    moment: datetime

    @property
    def today(self) -> date:
        return clock.local_date(self.moment)

    def new_id(self, kind: str, subject_id: str) -> str:
        """The id of a resource this request creates: the same on a retry of the request."""
        return workflow_id(kind, subject_id, self.version or "new", canonical(self.params))


def _about(task: Mapping[str, object], rules: RuleSet) -> str:
    titles = [test_title(rules, test) for test in tests_of(task)]
    due = due_of(task)
    text = "Monitoring blood tests due: " + (", ".join(titles) or "see the Task")
    return text + (f" (due {due.isoformat()})" if due else "")


def task_note(summary: str, note: str) -> str:
    return f"{summary}. {note}" if note else f"{summary}."


def plan_contact(
    task: Resource,
    request: Request,
    *,
    medium: Medium,
    outcome: ContactOutcome,
    note: str,
    rules: RuleSet,
) -> Change:
    """A contact attempt: a Communication based on the Task, and the Task's stage moved on
    (after the second reminder, to the pharmacist for non-engagement)."""
    stage = stage_of(task)
    after = next_stage(stage, Action.CONTACT, outcome=outcome)
    summary = f"Contact by {medium.label}: {outcome.label}"
    task_id = str(task["id"])
    message = communication(
        resource_id=request.new_id("communication", task_id),
        task_id=task_id,
        patient=patient_of(task),
        actor=request.actor,
        medium=medium,
        outcome=outcome,
        sent=request.moment,
        about=_about(task, rules),
        note=note,
    )
    updated = task_update(
        task,
        stage=after,
        actor=request.actor,
        now=request.moment,
        owner=PHARMACIST if after is Stage.NON_ENGAGEMENT else None,
        note=task_note(summary, note),
    )
    return Change(
        stage,
        after,
        [Write(updated, request.version), Write(message, None)],
        activity=summary,
        detail={**request.params, "communication": reference_of(message)},
    )


def _dated_output(
    task: Resource,
    request: Request,
    action: Action,
    output: tuple[str, str, date],
    summary: str,
    note: str,
) -> Change:
    """A step that records one date in Task.output (a booking, a sample) and moves the stage."""
    stage = stage_of(task)
    after = next_stage(stage, action)
    code, label, day = output
    updated = task_update(
        task,
        stage=after,
        actor=request.actor,
        now=request.moment,
        note=task_note(summary, note),
        outputs=[typed(code, label, valueDate=day.isoformat())],
    )
    return Change(
        stage,
        after,
        [Write(updated, request.version)],
        activity=summary,
        detail=dict(request.params),
    )


def plan_booking(task: Resource, request: Request, *, booked_for: date, note: str) -> Change:
    """A blood test booked for a date, today or later: ``booked-for`` in Task.output."""
    if booked_for < request.today:
        raise WorkflowError("the booking date is in the past")
    output = ("booked-for", "Booked for", booked_for)
    summary = f"Blood test booked for {booked_for.isoformat()}"
    return _dated_output(task, request, Action.BOOKING, output, summary, note)


def plan_sample(task: Resource, request: Request, *, taken_on: date) -> Change:
    """A sample taken today or earlier: ``sample-taken`` in Task.output."""
    if taken_on > request.today:
        raise WorkflowError("the sample date is in the future")
    output = ("sample-taken", "Sample taken", taken_on)
    summary = f"Sample taken on {taken_on.isoformat()}"
    return _dated_output(task, request, Action.SAMPLE, output, summary, "")


def plan_route(
    task: Resource,
    request: Request,
    *,
    communications: Sequence[Resource],
    note: str,
    chase_interval_days: int,
) -> Change:
    """The Task to the pharmacist for a non-engagement decision, once ``chase_interval_days``
    have passed since the last contact attempt (``communications``: those based on the Task)."""
    stage = stage_of(task)
    after = next_stage(stage, Action.ROUTE)
    attempts = [contact_item(c) for c in communications]
    last = max((clock.local_date(c.at) for c in attempts), default=None)
    chase = next_chase(stage, last, chase_interval_days, request.today)
    if chase is not None and chase.due_on > request.today:
        raise WorkflowError(
            f"the chase allows {chase_interval_days} days after the last attempt: routing to "
            f"the pharmacist is due on {chase.due_on.isoformat()}"
        )
    summary = "Routed to the pharmacist: no booking after two reminders"
    updated = task_update(
        task,
        stage=after,
        actor=request.actor,
        now=request.moment,
        owner=PHARMACIST,
        note=task_note(summary, note),
    )
    detail: dict[str, object] = {
        **request.params,
        "attempts": len(attempts),
        "last_attempt": last.isoformat() if last else None,
    }
    return Change(stage, after, [Write(updated, request.version)], activity=summary, detail=detail)
