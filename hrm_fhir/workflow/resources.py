"""Pure builders of the FHIR R4 resources the workflow writes, each validated with fhir.resources.

- ``communication``: one contact attempt, ``basedOn`` the Task (``not-done`` when nothing reached
  the patient, the outcome in ``statusReason`` either way);
- ``task_update``: the Task with only the workflow's fields changed (status, businessStatus,
  owner, note, output, statusReason, executionPeriod); the sweep never writes those;
- ``provenance``: who did what to which resource versions (attester for sign-offs, decisions and
  acknowledgements; author for the technician's records);
- ``gp_escalation_task``: the GP team's Task with the reason and the evidence;
- ``inactive_flag``: a Flag made inactive with ``period.end``;
- ``arrangement_task``: who monitors one of a patient's drug groups (monitored elsewhere, with a
  review date, or by the practice).

Every builder returns JSON-ready data (``model_dump(mode="json")`` of the validated model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.task import Task

from hrm_fhir import terminology as t
from hrm_fhir.domain import Severity
from hrm_fhir.programme import (
    ARRANGEMENT_TASK_CODE,
    GP_TASK_CODE,
    Action,
    Actor,
    ContactOutcome,
    Medium,
    Stage,
)
from hrm_fhir.rules.facts import business_identifier

Resource = dict[str, Any]
GP_TEAM = {"display": "Practice GP team"}
_PRIORITY = {Severity.URGENT: "stat", Severity.ACTION: "urgent", Severity.REVIEW: "routine"}
_ATTESTING = frozenset(
    {
        Action.SIGN_OFF,
        Action.ESCALATE,
        Action.DECISION,
        Action.ACKNOWLEDGE,
        Action.MONITORED_ELSEWHERE,
        Action.MONITORED_BY_PRACTICE,
    }
)


def workflow_id(kind: str, *parts: str) -> str:
    """A deterministic logical id for a resource the workflow writes, so a retried action
    writes the same resource again instead of a second one."""
    return business_identifier("workflow", kind, *parts)


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC, to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def person(actor: Actor) -> Resource:
    """A display reference to the acting user, identified by username."""
    return {
        "display": actor.display_name,
        "identifier": {"system": t.USER_IDENTIFIER, "value": actor.username},
    }


def _meta() -> Resource:
    return {"tag": [{"system": t.TAG, "code": "hrm-fhir"}]}


def _dump(model: Any) -> Resource:
    body: Resource = model.model_dump(mode="json", exclude_none=True)
    return body


def _concept(system: str, code: str, text: str) -> Resource:
    return {"coding": [{"system": system, "code": code}], "text": text}


def typed(kind: str, text: str | None = None, **value: Any) -> Resource:
    """A Task input or output entry of our ``task-input`` type ``kind``."""
    kind_concept: Resource = {"coding": [{"system": t.TASK_INPUT, "code": kind}]}
    if text:
        kind_concept["text"] = text
    return {"type": kind_concept, **value}


def communication(
    *,
    resource_id: str,
    task_id: str,
    patient: str,
    actor: Actor,
    medium: Medium,
    outcome: ContactOutcome,
    sent: datetime,
    about: str,
    note: str = "",
) -> Resource:
    """One contact attempt with the patient about a monitoring Task."""
    codings = [{"system": t.CONTACT_MEDIUM, "code": medium.value, "display": medium.label}]
    if medium.participation_mode is not None:
        codings.append({"system": t.PARTICIPATION_MODE, "code": medium.participation_mode})
    body: Resource = {
        "resourceType": "Communication",
        "id": resource_id,
        "meta": _meta(),
        "identifier": [{"system": t.WORKFLOW_IDENTIFIER, "value": resource_id}],
        "basedOn": [{"reference": f"Task/{task_id}"}],
        "status": "completed" if outcome.conveyed else "not-done",
        "statusReason": _concept(t.CONTACT_OUTCOME, outcome.value, outcome.label),
        "category": [{"coding": [{"system": t.COMMUNICATION_CATEGORY, "code": "reminder"}]}],
        "medium": [{"coding": codings, "text": medium.label}],
        "subject": {"reference": patient},
        "recipient": [{"reference": patient}],
        "sender": person(actor),
        "sent": instant(sent),
        "payload": [{"contentString": about}],
    }
    if note:
        body["note"] = [{"authorString": actor.display_name, "text": note}]
    return _dump(Communication.model_validate(body))


def task_update(
    task: Mapping[str, Any],
    *,
    stage: Stage,
    actor: Actor,
    now: datetime,
    status: str | None = None,
    owner: Mapping[str, Any] | None = None,
    note: str = "",
    outputs: Sequence[Resource] = (),
    status_reason: str | None = None,
    stage_text: str | None = None,
) -> Resource:
    """The Task as read with only the workflow's fields changed; ``status`` defaults to
    ``in-progress`` once work has started. A terminal status also ends ``executionPeriod``."""
    body = {key: value for key, value in task.items() if key != "meta"}
    meta = {
        k: v for k, v in (task.get("meta") or {}).items() if k in ("tag", "profile", "security")
    }
    if meta:
        body["meta"] = meta
    new_status = status or ("in-progress" if task.get("status") == "requested" else task["status"])
    body["status"] = new_status
    body["businessStatus"] = {
        "coding": [{"system": t.BUSINESS_STATUS, "code": stage.value}],
        "text": stage_text or stage.label,
    }
    if owner is not None:
        body["owner"] = dict(owner)
    if note:
        entry = {"authorString": actor.display_name, "time": instant(now), "text": note}
        body["note"] = [*task.get("note", []), entry]
    if outputs:
        body["output"] = [*task.get("output", []), *outputs]
    if status_reason is not None:
        body["statusReason"] = {"text": status_reason}
    period = dict(task.get("executionPeriod") or {})
    period.setdefault("start", instant(now))
    if new_status in ("completed", "failed", "cancelled"):
        period["end"] = instant(now)
    body["executionPeriod"] = period
    return _dump(Task.model_validate(body))


def inactive_flag(flag: Mapping[str, Any], today: date) -> Resource:
    """The Flag made inactive, its period ended ``today``."""
    body = {key: value for key, value in flag.items() if key != "meta"}
    meta = {
        k: v for k, v in (flag.get("meta") or {}).items() if k in ("tag", "profile", "security")
    }
    if meta:
        body["meta"] = meta
    body["status"] = "inactive"
    body["period"] = {**(flag.get("period") or {}), "end": today.isoformat()}
    return _dump(Flag.model_validate(body))


def provenance(
    *,
    resource_id: str,
    targets: Sequence[tuple[str, str | None]],
    actor: Actor,
    action: Action,
    recorded: datetime,
    activity: str,
    reason: str | None = None,
    sources: Sequence[str] = (),
) -> Resource:
    """Who did what to which resource versions: ``targets`` are (``Type/id``, versionId).

    Targets are versioned references; servers that strip versions from references (HAPI does by
    default) keep the version in the ``target-version`` extension.
    """
    target_refs = []
    for reference, version in targets:
        target: Resource = {"reference": reference}
        if version is not None:
            target["reference"] = f"{reference}/_history/{version}"
            target["extension"] = [{"url": t.TARGET_VERSION_EXTENSION, "valueString": version}]
        target_refs.append(target)
    agent_type = "attester" if action in _ATTESTING else "author"
    body: Resource = {
        "resourceType": "Provenance",
        "id": resource_id,
        "meta": _meta(),
        "target": target_refs,
        "occurredDateTime": instant(recorded),
        "recorded": instant(recorded),
        "activity": {
            "coding": [
                {"system": t.DATA_OPERATION, "code": "UPDATE"},
                {"system": t.WORKFLOW_ACTION, "code": action.value},
            ],
            "text": activity,
        },
        "agent": [
            {
                "type": {"coding": [{"system": t.PROVENANCE_AGENT_TYPE, "code": agent_type}]},
                "role": [_concept(t.USER_ROLE, actor.role.value, actor.role.value)],
                "who": person(actor),
            }
        ],
    }
    if reason:
        body["reason"] = [{"text": reason}]
    if sources:
        body["entity"] = [{"role": "source", "what": {"reference": ref}} for ref in sources]
    return _dump(Provenance.model_validate(body))


def gp_escalation_task(
    *,
    resource_id: str,
    patient: str,
    focus: str,
    part_of: str | None,
    flags: Sequence[str],
    results: Sequence[str],
    reason: str,
    note: str,
    severity: Severity | None,
    actor: Actor,
    now: datetime,
    result_at: datetime | None,
    rule: str | None,
) -> Resource:
    """A Task for the practice's GP team: review an out-of-range result the pharmacist escalated.

    ``focus`` is the Task (or Flag) escalated; the Flags and results are evidence in ``input``,
    and ``result-observed`` keeps when the result was taken, for the time from result to action.
    """
    inputs: list[Resource] = [typed("reason", "Reason", valueString=reason)]
    if note:
        inputs.append(typed("pharmacist-note", "Pharmacist's note", valueString=note))
    inputs.extend(typed("flag", "Flag", valueReference={"reference": ref}) for ref in flags)
    inputs.extend(typed("evidence", "Result", valueReference={"reference": r}) for r in results)
    if result_at is not None:
        inputs.append(typed("result-observed", "Result taken", valueDateTime=instant(result_at)))
    if rule:
        inputs.append(typed("rule", "Rule", valueString=rule))
    body: Resource = {
        "resourceType": "Task",
        "id": resource_id,
        "meta": _meta(),
        "identifier": [{"system": t.WORKFLOW_IDENTIFIER, "value": resource_id}],
        "status": "requested",
        "businessStatus": {
            "coding": [{"system": t.BUSINESS_STATUS, "code": Stage.ESCALATED_GP.value}],
            "text": Stage.ESCALATED_GP.label,
        },
        "intent": "order",
        "priority": _PRIORITY.get(severity or Severity.REVIEW, "routine"),
        "code": _concept(t.TASK_CODE, GP_TASK_CODE, "GP review of an out-of-range result"),
        "description": reason,
        "focus": {"reference": focus},
        "for": {"reference": patient},
        "authoredOn": instant(now),
        "requester": person(actor),
        "owner": GP_TEAM,
        "reasonCode": {"text": reason},
        "input": inputs,
    }
    if part_of is not None:
        body["partOf"] = [{"reference": part_of}]
    if flags:
        body["reasonReference"] = {"reference": flags[0]}
    return _dump(Task.model_validate(body))


PRACTICE_MONITORS = {"display": "The practice"}


@dataclass(frozen=True)
class _WhoMonitors:
    """The arrangement Task's fields that say who monitors, and since and until when."""

    status: str
    stage: Stage
    owner: dict[str, Any]
    period: dict[str, Any]
    execution: dict[str, Any]
    inputs: list[dict[str, Any]]
    description: str


def _who_monitors(
    before: Mapping[str, Any],
    drug_group: str,
    title: str,
    now: datetime,
    today: date,
    elsewhere: tuple[str, date] | None,
) -> _WhoMonitors:
    """Monitored elsewhere (on hold until the review date, from when it started, kept on a
    renewal), or by the practice again (completed, the execution period ended now)."""
    was_elsewhere = before.get("status") == "on-hold"
    period = dict((before.get("restriction") or {}).get("period") or {})
    inputs = [typed("drug-group", "Drug group", valueString=drug_group)]
    execution = {"start": (before.get("executionPeriod") or {}).get("start") or instant(now)}
    if elsewhere is None:
        execution["end"] = instant(now)
        description = f"{title}: monitored by the practice from {today.isoformat()}"
        return _WhoMonitors(
            "completed",
            Stage.MONITORED_BY_PRACTICE,
            PRACTICE_MONITORS,
            period,
            execution,
            inputs,
            description,
        )
    by, review_on = elsewhere
    period = {"start": period["start"] if was_elsewhere else today.isoformat()}
    period["end"] = review_on.isoformat()
    inputs += [
        typed("monitored-by", "Monitored by", valueString=by),
        typed("review-date", "Review by", valueDate=review_on.isoformat()),
    ]
    description = f"{title}: monitored by {by}; practice review by {review_on.isoformat()}"
    return _WhoMonitors(
        "on-hold",
        Stage.MONITORED_ELSEWHERE,
        {"display": by},
        period,
        execution,
        inputs,
        description,
    )


def arrangement_task(
    current: Mapping[str, Any] | None,
    *,
    resource_id: str,
    patient: str,
    drug_group: str,
    title: str,
    actor: Actor,
    now: datetime,
    today: date,
    elsewhere: tuple[str, date] | None,
    note: str = "",
) -> Resource:
    """The Task that records who monitors one of a patient's drug groups (one per patient and
    group). ``elsewhere`` is (who monitors, review date): the Task is ``on-hold`` with
    ``businessStatus`` monitored-elsewhere, ``owner`` the organisation that monitors and
    ``restriction.period`` from when (kept on a renewal) to the review date. None: the practice
    monitors again, the Task is ``completed`` (monitored-by-practice) with ``executionPeriod.end``
    the day it took monitoring back."""
    before = current or {}
    held = _who_monitors(before, drug_group, title, now, today, elsewhere)
    body: Resource = {
        "resourceType": "Task",
        "id": resource_id,
        "meta": _meta(),
        "identifier": [{"system": t.WORKFLOW_IDENTIFIER, "value": resource_id}],
        "status": held.status,
        "businessStatus": _concept(t.BUSINESS_STATUS, held.stage.value, held.stage.label),
        "intent": "plan",
        "priority": "routine",
        "code": _concept(t.TASK_CODE, ARRANGEMENT_TASK_CODE, "Who monitors this drug"),
        "description": held.description,
        "for": {"reference": patient},
        "authoredOn": before.get("authoredOn") or instant(now),
        "lastModified": instant(now),
        "requester": person(actor),
        "owner": held.owner,
        "executionPeriod": held.execution,
        "input": held.inputs,
    }
    if held.period:
        body["restriction"] = {"period": held.period}
    if held.status == "completed":
        body["statusReason"] = {"text": "monitoring returned to the practice"}
    notes = list(before.get("note", []))
    if note:
        notes.append({"authorString": actor.display_name, "time": instant(now), "text": note})
    if notes:
        body["note"] = notes
    return _dump(Task.model_validate(body))
