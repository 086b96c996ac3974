"""What the pharmacist's and the GP's decisions write: pure ``plan_*`` functions (see
``plans.py``): a result signed off or escalated, a non-engagement decision, a GP's
acknowledgement, and who monitors a drug group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from hrm_fhir import clock
from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.values import parse_date
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.errors import WorkflowError
from hrm_fhir.programme import (
    GP_TASK_CODE,
    RESOLVING_DECISIONS,
    Action,
    Decision,
    Stage,
    check_arrangement,
    next_stage,
    stage_of,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.workflow.fields import (
    code_of,
    flag_observation,
    flag_severity,
    flag_stage,
    patient_of,
    reference_of,
    references_in,
    results_of,
    rule_of,
    typed_entries,
    version_of,
)
from hrm_fhir.workflow.plans import Request, task_note
from hrm_fhir.workflow.resources import (
    GP_TEAM,
    Resource,
    arrangement_task,
    gp_escalation_task,
    inactive_flag,
    instant,
    task_update,
    typed,
)
from hrm_fhir.workflow.transaction import Change, Write


@dataclass(frozen=True)
class SignOffReads:
    """What a sign-off reads besides its subject: the active Flags about the results, the
    results themselves, the ledger findings of the Flags and (for a Flag) its last ledger event."""

    flags: Sequence[Resource] = ()
    observations: Sequence[Resource] = ()
    findings: Mapping[str, FindingRecord] = field(default_factory=dict)
    last_event: WorkflowEventRecord | None = None


def sign_off_results(subject: Mapping[str, object]) -> list[str]:
    """The Observations a sign-off is about: a Flag's result, or a Task's results."""
    if subject["resourceType"] == "Flag":
        observation = flag_observation(subject)
        return [observation] if observation else []
    return results_of(subject)


def result_time(observations: Sequence[Resource]) -> datetime | None:
    """When the newest of these results was taken (effective, else issued)."""
    moments = []
    for found in observations:
        value = (
            found.get("effectiveDateTime")
            or (found.get("effectivePeriod") or {}).get("start")
            or found.get("effectiveInstant")
            or found.get("issued")
        )
        if isinstance(value, str) and "T" in value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            moments.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        elif (day := parse_date(value)) is not None:
            moments.append(clock.start_of(day))
    return max(moments, default=None)


def _hours(since: datetime | None, until: datetime) -> float | None:
    return None if since is None else round((until - since).total_seconds() / 3600, 1)


def _decision_outputs(decision: Decision, new_dose: str, repeat_on: date | None) -> list[Resource]:
    outputs = [
        typed(
            "decision",
            "Decision",
            valueCodeableConcept={
                "coding": [{"system": t.DECISION, "code": decision.value}],
                "text": decision.label,
            },
        )
    ]
    if new_dose:
        outputs.append(typed("new-dose", "New dose", valueString=new_dose))
    if repeat_on is not None:
        outputs.append(typed("repeat-test", "Repeat test", valueDate=repeat_on.isoformat()))
    return outputs


@dataclass(frozen=True)
class SignOff:
    """The pharmacist's decision as asked (checked by ``check_sign_off`` before any read)."""

    decision: Decision
    note: str = ""
    new_dose: str = ""
    repeat_on: date | None = None

    @property
    def action(self) -> Action:
        return Action.ESCALATE if self.decision is Decision.ESCALATED_GP else Action.SIGN_OFF


def plan_sign_off(
    subject: Resource, request: Request, decision: SignOff, reads: SignOffReads
) -> Change:
    """A result review (a Task awaiting the pharmacist, or a Flag no Task covers) decided: the
    Task completed and resolved Flags made inactive, or, escalated, a Task for the GP team."""
    is_flag = subject["resourceType"] == "Flag"
    stage = flag_stage(subject, reads.last_event) if is_flag else stage_of(subject)
    after = next_stage(stage, decision.action, decision=decision.decision)
    result_at = result_time(reads.observations)
    detail: dict[str, object] = {
        **request.params,
        "flags": [f["id"] for f in reads.flags],
        "result_at": instant(result_at) if result_at else None,
        "result_to_action_hours": _hours(result_at, request.moment),
    }
    if decision.decision is Decision.ESCALATED_GP:
        summary = "Pharmacist escalated to the GP"
        writes = _escalation(subject, request, decision, reads, result_at, after, summary)
        detail["gp_task"] = writes[-1].reference
    else:
        summary = f"Pharmacist sign-off: {decision.decision.label}"
        writes = _resolution(subject, request, decision, reads.flags, after, summary)
    written_refs = {w.reference for w in writes}
    unchanged = [
        (reference_of(f), version_of(f)) for f in reads.flags if reference_of(f) not in written_refs
    ]
    rule = rule_of(subject)
    return Change(
        stage,
        after,
        writes,
        activity=summary,
        detail=detail,
        reason=rule or None,
        sources=sign_off_results(subject),
        unchanged=unchanged,
    )


def _escalation(
    subject: Resource,
    request: Request,
    decision: SignOff,
    reads: SignOffReads,
    result_at: datetime | None,
    after: Stage,
    summary: str,
) -> list[Write]:
    """The GP Task (last), after the escalated Task handed to the GP team (a Task subject)."""
    is_flag = subject["resourceType"] == "Flag"
    flags = reads.flags
    severities = [s for f in flags if (s := flag_severity(f, reads.findings.get(f["id"])))]
    reason = str(
        (subject.get("code") or {}).get("text", "") if is_flag else subject.get("description", "")
    )
    gp_task = gp_escalation_task(
        resource_id=request.new_id("gp-task", str(subject["id"])),
        patient=patient_of(subject),
        focus=reference_of(subject),
        part_of=None if is_flag else reference_of(subject),
        flags=[reference_of(f) for f in flags],
        results=sign_off_results(subject),
        reason=reason,
        note=decision.note,
        severity=max(severities, key=lambda s: s.rank) if severities else None,
        actor=request.actor,
        now=request.moment,
        result_at=result_at,
        rule=rule_of(subject),
    )
    writes = [Write(gp_task, None)]
    if not is_flag:
        updated = task_update(
            subject,
            stage=after,
            actor=request.actor,
            now=request.moment,
            owner=GP_TEAM,
            note=task_note(summary, decision.note),
            outputs=_decision_outputs(decision.decision, decision.new_dose, decision.repeat_on),
        )
        writes.insert(0, Write(updated, request.version))
    return writes


def _resolution(
    subject: Resource,
    request: Request,
    decision: SignOff,
    flags: Sequence[Resource],
    after: Stage,
    summary: str,
) -> list[Write]:
    """The Task completed with the decision; its Flags inactive when the decision resolves them."""
    writes = []
    if subject["resourceType"] != "Flag":
        updated = task_update(
            subject,
            stage=after,
            actor=request.actor,
            now=request.moment,
            status="completed",
            note=task_note(summary, decision.note),
            outputs=_decision_outputs(decision.decision, decision.new_dose, decision.repeat_on),
            stage_text=f"signed off: {decision.decision.label}",
        )
        writes.append(Write(updated, request.version))
    if decision.decision in RESOLVING_DECISIONS:
        writes += [Write(inactive_flag(f, request.today), version_of(f)) for f in flags]
    return writes


def plan_decision(task: Resource, request: Request, *, decision: Decision, note: str) -> Change:
    """The non-engagement decision: the Task ends ``failed`` (monitoring not done)."""
    stage = stage_of(task)
    after = next_stage(stage, Action.DECISION, decision=decision)
    summary = f"Non-engagement decision: {decision.label}"
    updated = task_update(
        task,
        stage=after,
        actor=request.actor,
        now=request.moment,
        status="failed",
        status_reason=f"non-engagement: {decision.label}",
        note=task_note(summary, note),
        outputs=_decision_outputs(decision, "", None),
        stage_text=f"non-engagement: {decision.label}",
    )
    return Change(
        stage,
        after,
        [Write(updated, request.version)],
        activity=summary,
        detail=dict(request.params),
        reason=rule_of(task) or None,
    )


_ACKNOWLEDGED = "GP acknowledged the escalation"


def plan_acknowledge(
    gp_task: Resource,
    request: Request,
    *,
    escalated: Sequence[Resource],
    flags: Sequence[Resource],
    note: str,
) -> Change:
    """The GP's acknowledgement: the GP Task and the still open ``escalated`` Tasks (its
    ``partOf``) completed, the still active ``flags`` (its flag inputs) made inactive, and the
    time from result to action recorded."""
    if code_of(gp_task) != GP_TASK_CODE:
        raise WorkflowError(f"Task {gp_task['id']} is not a GP escalation")
    stage = stage_of(gp_task)
    after = next_stage(stage, Action.ACKNOWLEDGE)
    result_at = _result_observed(gp_task)
    hours = _hours(result_at, request.moment)
    acknowledged = task_update(
        gp_task,
        stage=after,
        actor=request.actor,
        now=request.moment,
        status="completed",
        note=task_note(_ACKNOWLEDGED, note),
        outputs=_time_to_action(hours),
        stage_text="acknowledged by the GP",
    )
    writes = [Write(acknowledged, request.version)]
    writes += [
        Write(_escalation_closed(original, after, request, note), version_of(original))
        for original in escalated
        if not stage_of(original).is_terminal
    ]
    writes += [
        Write(inactive_flag(flag, request.today), version_of(flag))
        for flag in flags
        if flag.get("status") == "active"
    ]
    detail: dict[str, object] = {
        **request.params,
        "result_at": instant(result_at) if result_at else None,
        "result_to_action_hours": hours,
        "closed": [w.reference for w in writes[1:]],
    }
    return Change(
        stage,
        after,
        writes,
        activity=_ACKNOWLEDGED,
        detail=detail,
        reason=rule_of(gp_task) or None,
        sources=references_in(typed_entries(gp_task.get("input", ()), "evidence")),
    )


def _time_to_action(hours: float | None) -> list[Resource]:
    """The Task.output that records the hours from result to action, when known."""
    if hours is None:
        return []
    duration = {"value": hours, "unit": "h", "system": t.UCUM, "code": "h"}
    return [typed("time-to-action", "Time from result to action", valueDuration=duration)]


def _result_observed(gp_task: Resource) -> datetime | None:
    """When the escalated result was taken, as the GP Task's ``result-observed`` input says."""
    observed = typed_entries(gp_task.get("input", ()), "result-observed")
    if not observed:
        return None
    return datetime.fromisoformat(str(observed[0]["valueDateTime"]).replace("Z", "+00:00"))


def _escalation_closed(original: Resource, after: Stage, request: Request, note: str) -> Resource:
    """The escalated Task completed with the GP's acknowledgement."""
    return task_update(
        original,
        stage=after,
        actor=request.actor,
        now=request.moment,
        status="completed",
        note=task_note(_ACKNOWLEDGED, note),
        stage_text="escalation acknowledged by the GP",
    )


def group_title(rules: RuleSet, drug_group: str) -> str:
    """The drug group's title; WorkflowError for a group the rule set does not have."""
    titles = {pack.drug_group: pack.title for pack in rules.packs}
    if drug_group not in titles:
        raise WorkflowError(f"no drug group {drug_group!r} (one of: {', '.join(sorted(titles))})")
    return titles[drug_group]


@dataclass(frozen=True)
class Arrangement:
    """Who monitors one of a patient's drug groups: ``elsewhere`` (who, review date) or, None,
    the practice."""

    patient: str
    drug_group: str
    title: str
    elsewhere: tuple[str, date] | None
    note: str = ""


def plan_who_monitors(
    task: Resource,
    request: Request,
    arrangement: Arrangement,
    routines: Sequence[Resource] = (),
) -> Change:
    """The arrangement Task written (``task`` unsaved, without a status, for a first decision);
    when another organisation takes over, the ``routines`` (the group's open routine Tasks in
    the technician's stages) cancelled."""
    elsewhere = arrangement.elsewhere
    if elsewhere is not None:
        check_arrangement(*elsewhere, request.today)
    current = task if "status" in task else None
    updated = arrangement_task(
        current,
        resource_id=task["id"],
        patient=arrangement.patient,
        drug_group=arrangement.drug_group,
        title=arrangement.title,
        actor=request.actor,
        now=request.moment,
        today=request.today,
        elsewhere=elsewhere,
        note=arrangement.note,
    )
    writes = [Write(updated, request.version)]
    title = arrangement.title
    if elsewhere is None:
        after, summary = Stage.MONITORED_BY_PRACTICE, f"{title} monitored by the practice"
    else:
        by, review_on = elsewhere
        after = Stage.MONITORED_ELSEWHERE
        summary = f"{title} monitored elsewhere by {by} (review by {review_on.isoformat()})"
        writes += [
            Write(_stop_chase(routine, by, request), version_of(routine)) for routine in routines
        ]
    return Change(
        stage_of(current) if current else Stage.TO_CONTACT,
        after,
        writes,
        activity=summary,
        detail={**request.params, "closed": [w.reference for w in writes[1:]]},
        reason=f"{after.label}: {arrangement.drug_group}",
    )


def _stop_chase(routine: Resource, by: str, request: Request) -> Resource:
    """A routine monitoring Task cancelled because another organisation monitors the drug."""
    return task_update(
        routine,
        stage=Stage.MONITORED_ELSEWHERE,
        actor=request.actor,
        now=request.moment,
        status="cancelled",
        status_reason=f"monitored elsewhere: {by}",
        note=f"Monitored elsewhere by {by}: the practice's routine monitoring stops.",
        stage_text="monitored elsewhere",
    )
