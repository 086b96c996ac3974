"""The programme workflow against the FHIR server and the ledger: the lists people work from,
and the actions they take on Tasks.

Every action checks the actor's role (WorkflowPermissionError), reads the Task
(WorkflowNotFoundError), checks the patient's practice (WorkflowNotFoundError, as for no Task, so
another practice's Tasks and patients are not revealed to exist), compares the
Task's version with the one the user loaded (WorkflowConflictError), works out the new stage
(WorkflowError), and then writes everything in one transaction Bundle whose updates carry
``ifMatch``: the Task at the user's version, any Flag or related Task at the version just read.
A stale version anywhere fails the whole Bundle, so nothing is written. When only a resource the
service read for itself moved on, the action is re-read and re-applied (bounded); when the
user's Task moved on, the user is told to reload. Never over another user's edit.

Every action writes a Provenance whose id is derived from the Task, the version acted on and the
request, so a request retried after a timeout or submitted twice finds its first attempt instead
of writing again. The ledger row (WorkflowEventRecord) is added and flushed; the caller commits
(as the API views do). Nothing is deleted. Logs carry ids and counts, never patient details.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.adapters.fhir_mapping import RecordBuilder, parse_date
from hrm_fhir.domain import PatientRef, Severity
from hrm_fhir.errors import (
    FHIRFatalError,
    FHIRTemporaryError,
    WorkflowConflictError,
    WorkflowError,
    WorkflowNotFoundError,
)
from hrm_fhir.fetch import OPEN_TASK_STATUSES, OURS_TAG, FetchReport, Scope, read_records
from hrm_fhir.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.rules.model import RulePack, Threshold
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.tasks.build import PHARMACIST
from hrm_fhir.workflow.model import (
    ARRANGEMENT_TASK_CODE,
    GP_TASK_CODE,
    MONITORING_TASK_CODE,
    RESOLVING_DECISIONS,
    TECHNICIAN_STAGES,
    Action,
    Actor,
    ChaseStep,
    ContactOutcome,
    Decision,
    Medium,
    Priority,
    Role,
    Stage,
    check_arrangement,
    check_sign_off,
    due_this_week,
    next_chase,
    next_stage,
    priority,
    require_practice,
    require_role,
    stage_of,
)
from hrm_fhir.workflow.resources import (
    GP_TEAM,
    Resource,
    arrangement_task,
    communication,
    gp_escalation_task,
    inactive_flag,
    instant,
    provenance,
    task_update,
    typed,
    workflow_id,
)

log = logging.getLogger(__name__)
LONDON = ZoneInfo("Europe/London")
CONFLICT_RETRIES = 2
"""Re-reads after a conflict on a resource the service read for itself, or a lost response."""
TASKS_PER_SEARCH = 20
"""The ``_tag`` search token of every resource the service writes."""
_SEVERITY_RANK: dict[Severity | None, int] = {None: 0, **{s: s.rank for s in Severity}}
_KIND_ORDER = (
    "flag",
    "result",
    "gp-escalation",
    "prescribing",
    "non-engagement",
    "monitored-elsewhere",
)
NO_PATIENT = "the FHIR server has no such Patient"
"""What a read of an unknown patient, or of another practice's, is told."""
TASK_OR_FLAG = "Task or Flag"


# ------------------------------------------------------------------ what the lists return


@dataclass(frozen=True)
class HistoryItem:
    """One entry of a patient's contact history: a Communication, or a ledger event."""

    at: datetime
    action: str
    """``contact`` for Communications; else the ledger action (``booking``, ``sample``...)."""
    summary: str
    by: str
    task_ids: tuple[str, ...]
    medium: str | None = None
    outcome: str | None = None
    status: str | None = None
    """The Communication's status: ``completed`` or ``not-done``."""
    note: str = ""
    reference: str | None = None


@dataclass(frozen=True)
class TaskSummary:
    """One open Task as the lists show it; ``version`` is what an action must send back."""

    task_id: str
    version: str | None
    code: str
    stage: Stage
    status: str
    drug_group: str
    rule: str
    tests: tuple[str, ...]
    test_titles: tuple[str, ...]
    due_date: date | None
    days_overdue: int
    severely_overdue: bool
    """The engine graded it past its schedule's tolerance (the Task's severely-overdue flag)."""
    description: str
    source: str | None
    attempts: int
    last_attempt: date | None
    chase: ChaseStep | None
    chase_due_on: date | None
    chase_due: bool
    """A chase step falls due within the seven days from the as-of date."""
    booked_for: date | None


@dataclass(frozen=True)
class WorklistEntry:
    """One patient on the technician's list: every open monitoring Task, across drug groups."""

    patient: str
    practice: str | None
    tasks: list[TaskSummary]
    tests: list[str]
    test_titles: list[str]
    drug_groups: list[str]
    due_date: date | None
    days_overdue: int
    stage: Stage
    """The least advanced stage among the patient's Tasks."""
    chase_due: bool
    next_chase: ChaseStep | None
    contacts: list[HistoryItem]
    priority: Priority
    out_of_range: bool
    """The patient has an active out-of-range Flag or an open result review."""


@dataclass(frozen=True)
class PatientDetails:
    """Read from the Patient resource when shown; never stored in the ledger nor logged."""

    name: str
    nhs_number: str
    phone: str
    preferred_contact: str


@dataclass(frozen=True)
class ResultPoint:
    observation: str
    on: date
    value: float | None
    unit: str | None


@dataclass(frozen=True)
class Trend:
    """One analyte's results, oldest first."""

    analyte: str
    title: str
    points: list[ResultPoint]


@dataclass(frozen=True)
class ThresholdInfo:
    analyte: str
    rule: str
    """E.g. ``>= 1.5 mmol/L``."""
    severity: Severity
    advice: str


@dataclass(frozen=True)
class FlagSummary:
    flag_id: str
    version: str | None
    severity: Severity | None
    text: str
    observation: str | None
    since: date | None


@dataclass(frozen=True)
class OpenItem:
    """A Task or Flag the service wrote (open ones on the card), with the rule and source."""

    reference: str
    version: str | None
    kind: str
    """The Task code (``monitoring-due``, ``result-review``...) or ``flag``."""
    description: str
    rule: str
    source: str | None
    status: str
    stage: Stage | None
    severity: Severity | None
    drug_group: str = ""
    """The drug group of a Task (from the ledger or the Task itself); empty for a Flag."""


@dataclass(frozen=True)
class PatientCard:
    patient: str
    as_of: date
    practice: str | None
    details: PatientDetails
    tests_due: list[TaskSummary]
    contacts: list[HistoryItem]
    results: list[Trend]
    findings: list[OpenItem]


@dataclass(frozen=True)
class ReviewItem:
    """One thing for the pharmacist (or, for ``gp-escalation``, the GP) to act on.

    ``task_id`` and ``version`` are what the action takes: a Task, or for a ``flag`` item (an
    out-of-range result with no Task awaiting review) the Flag itself.
    """

    kind: str
    """``flag``, ``result``, ``gp-escalation``, ``prescribing`` or ``non-engagement``."""
    task_id: str
    version: str | None
    patient: str
    practice: str | None
    stage: Stage
    drug_group: str
    medication: str | None
    rule: str
    description: str
    severity: Severity | None
    source: str | None
    since: date | None
    flags: list[FlagSummary]
    results: list[str]
    trend: list[Trend]
    thresholds: list[ThresholdInfo]
    severely_overdue: bool = False
    """A non-engagement item whose monitoring is past its schedule's tolerance: first among
    the non-engagement decisions."""


@dataclass(frozen=True)
class ActionResult:
    task_id: str
    version: str | None
    """The Task's (or Flag's) version after the action: send it with the next action."""
    stage: Stage
    written: list[str]
    """Versioned references of everything written (``Task/x/_history/4``...)."""


# ------------------------------------------------------------------ reading helpers


@functools.cache
def _default_rules() -> RuleSet:
    return load_rule_set()


def version_of(resource: Mapping[str, Any]) -> str | None:
    """The resource's ``meta.versionId``."""
    value = (resource.get("meta") or {}).get("versionId")
    return str(value) if value is not None else None


def _ref(resource: Mapping[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _code(resource: Mapping[str, Any]) -> str:
    codings = (resource.get("code") or {}).get("coding") or [{}]
    return str(codings[0].get("code") or "")


def _typed(entries: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    """Task input/output entries of our type ``kind``."""
    return [
        e
        for e in entries
        if any(c.get("code") == kind for c in (e.get("type") or {}).get("coding") or ())
    ]


def _references(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(e["valueReference"]["reference"]) for e in entries if "valueReference" in e]


def _tests(task: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(e["valueCodeableConcept"]["coding"][0]["code"])
        for e in _typed(task.get("input", ()), "required-test")
        if (e.get("valueCodeableConcept") or {}).get("coding")
    )


def _rule(resource: Mapping[str, Any]) -> str:
    """``<rule-id>@<version>#<check>`` from the rule extension (or a GP Task's rule input)."""
    for ext in resource.get("extension", ()):
        if ext.get("url") == t.RULE_EXTENSION:
            return str(ext.get("valueString", ""))
    found = _typed(resource.get("input", ()), "rule")
    return str(found[0].get("valueString", "")) if found else ""


def _source(resource: Mapping[str, Any]) -> str | None:
    for ext in resource.get("extension", ()):
        if ext.get("url") == t.SOURCE_EXTENSION:
            return str(ext.get("valueUri"))
    return None


def _patient(resource: Mapping[str, Any]) -> str:
    holder = resource.get("for") or resource.get("subject") or {}
    reference = holder.get("reference")
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise WorkflowError(f"{_ref(resource)} is not about a patient")
    return reference


def _due(task: Mapping[str, Any]) -> date | None:
    return parse_date(((task.get("restriction") or {}).get("period") or {}).get("end"))


def _days_overdue(due: date | None, as_of: date) -> int:
    return max(0, (as_of - due).days) if due is not None else 0


def is_severely_overdue(task: Mapping[str, Any]) -> bool:
    """Whether the sweep marked a monitoring Task severely overdue."""
    return any(
        ext.get("url") == t.SEVERELY_OVERDUE_EXTENSION and ext.get("valueBoolean") is True
        for ext in task.get("extension", ())
    )


def _results(task: Mapping[str, Any]) -> list[str]:
    """Observations that satisfied the Task (outputs) or that it is about (evidence)."""
    refs = _references(_typed(task.get("output", ()), "result"))
    refs += _references(_typed(task.get("input", ()), "evidence"))
    return list(dict.fromkeys(r for r in refs if r.startswith("Observation/")))


def _flag_observation(flag: Mapping[str, Any]) -> str | None:
    for ext in flag.get("extension", ()):
        if ext.get("url") == t.FLAG_DETAIL:
            return str((ext.get("valueReference") or {}).get("reference"))
    return None


def _flag_severity(flag: Mapping[str, Any], finding: FindingRecord | None) -> Severity | None:
    if finding is not None and finding.severity is not None:
        return finding.severity
    suffix = _code(flag).rpartition("-")[2]
    return next((s for s in Severity if s.value == suffix), None)


def _today(moment: datetime) -> date:
    return moment.astimezone(LONDON).date()


def _org(practice: str | None) -> str:
    """A practice given as ``x`` or ``Organization/x``, as the bare id a Scope takes."""
    return (practice or "").removeprefix("Organization/")


def _search(gateway: FHIRGateway, kind: str, params: Mapping[str, str]) -> list[Resource]:
    return gateway.search(kind, params).resources


def _open_tasks(gateway: FHIRGateway, scope: Scope) -> list[Resource]:
    params = {"_tag": OURS_TAG, "status": OPEN_TASK_STATUSES, **scope.params("Task")}
    return _search(gateway, "Task", params)


def _active_flags(gateway: FHIRGateway, scope: Scope, patient: str | None = None) -> list[Resource]:
    """The service's active Flags (R4 has no Flag ``status`` search parameter: filtered here)."""
    params = {"_tag": OURS_TAG, **scope.params("Flag")}
    if patient is not None:
        params["subject"] = patient
    return [f for f in _search(gateway, "Flag", params) if f.get("status") == "active"]


def referring(
    gateway: FHIRGateway, resource_type: str, param: str, references: Sequence[str]
) -> list[Resource]:
    """Every ``resource_type`` whose reference search parameter ``param`` names one of these
    references (``Task/x``...), twenty references per search, each resource once."""
    found: dict[str, Resource] = {}
    for start in range(0, len(references), TASKS_PER_SEARCH):
        chunk = ",".join(references[start : start + TASKS_PER_SEARCH])
        for resource in _search(gateway, resource_type, {param: chunk}):
            found[resource["id"]] = resource
    return list(found.values())


def _communications(gateway: FHIRGateway, task_ids: Sequence[str]) -> list[Resource]:
    """Every Communication based on these Tasks, whoever wrote it."""
    return referring(gateway, "Communication", "based-on", [f"Task/{t}" for t in task_ids])


def _findings(session: Session, ids: Iterable[str]) -> dict[str, FindingRecord]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.scalars(select(FindingRecord).where(FindingRecord.identifier.in_(wanted)))
    return {row.identifier: row for row in rows}


def _events(session: Session, task_ids: Iterable[str]) -> list[WorkflowEventRecord]:
    wanted = sorted(set(task_ids))
    if not wanted:
        return []
    query = (
        select(WorkflowEventRecord)
        .where(WorkflowEventRecord.task_id.in_(wanted))
        .order_by(WorkflowEventRecord.at, WorkflowEventRecord.id)
    )
    return list(session.scalars(query))


def contact_item(resource: Mapping[str, Any]) -> HistoryItem:
    """A Communication as one contact attempt: when, medium, outcome, sender, Tasks."""
    medium_concept = (resource.get("medium") or [{}])[0]
    medium = next(
        (
            c.get("code")
            for c in medium_concept.get("coding", ())
            if c.get("system") == t.CONTACT_MEDIUM
        ),
        medium_concept.get("text"),
    )
    reason = resource.get("statusReason") or {}
    outcome = next(
        (c.get("code") for c in reason.get("coding", ()) if c.get("system") == t.CONTACT_OUTCOME),
        reason.get("text"),
    )
    sent = resource.get("sent") or (resource.get("meta") or {}).get("lastUpdated")
    at = datetime.fromisoformat(str(sent)) if sent else datetime.min.replace(tzinfo=UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    tasks = tuple(
        str(b["reference"]).removeprefix("Task/")
        for b in resource.get("basedOn", ())
        if str(b.get("reference", "")).startswith("Task/")
    )
    summary = " ".join(str(part) for part in (medium, outcome) if part)
    return HistoryItem(
        at=at,
        action="contact",
        summary=summary or "contact",
        by=str((resource.get("sender") or {}).get("display", "")),
        task_ids=tasks,
        medium=str(medium) if medium else None,
        outcome=str(outcome) if outcome else None,
        status=resource.get("status"),
        note=" ".join(str(n.get("text", "")) for n in resource.get("note", ())),
        reference=_ref(resource),
    )


def _event_item(event: WorkflowEventRecord) -> HistoryItem:
    detail = orjson.loads(event.detail)
    parts = [f"{k.replace('_', ' ')} {v}" for k, v in detail.items() if v not in (None, "", [])]
    return HistoryItem(
        at=event.at,
        action=event.action,
        summary=f"{event.action}: " + ", ".join(parts) if parts else event.action,
        by=event.actor,
        task_ids=(event.task_id,),
        note=str(detail.get("note") or ""),
        reference=None,
    )


def _history(
    communications: Iterable[Resource], events: Iterable[WorkflowEventRecord]
) -> list[HistoryItem]:
    """Contact attempts from the server, and the other actions from the ledger, oldest first."""
    items = [contact_item(c) for c in communications]
    items += [_event_item(e) for e in events if e.action != Action.CONTACT.value]
    return sorted(items, key=lambda item: item.at)


def _summary(
    task: Mapping[str, Any],
    finding: FindingRecord | None,
    contacts: Sequence[HistoryItem],
    rules: RuleSet,
    as_of: date,
    interval_days: int,
) -> TaskSummary:
    stage = stage_of(task)
    attempts = [c for c in contacts if c.action == "contact" and task["id"] in c.task_ids]
    last = max((_today(c.at) for c in attempts), default=None)
    chase = next_chase(stage, last, interval_days, as_of)
    tests = _tests(task)
    due = _due(task)
    rule = _rule(task)
    bookings = [
        parse_date(e.get("valueDate")) for e in _typed(task.get("output", ()), "booked-for")
    ]
    return TaskSummary(
        task_id=str(task["id"]),
        version=version_of(task),
        code=_code(task),
        stage=stage,
        status=str(task.get("status")),
        drug_group=finding.drug_group if finding is not None else rule.partition("@")[0],
        rule=rule,
        tests=tests,
        test_titles=tuple(_test_title(rules, test) for test in tests),
        due_date=due,
        days_overdue=_days_overdue(due, as_of),
        severely_overdue=is_severely_overdue(task),
        description=str(task.get("description", "")),
        source=_source(task),
        attempts=len(attempts),
        last_attempt=last,
        chase=chase.step if chase else None,
        chase_due_on=chase.due_on if chase else None,
        chase_due=due_this_week(chase, as_of),
        booked_for=bookings[-1] if bookings else None,
    )


def _test_title(rules: RuleSet, test: str) -> str:
    found = rules.catalogue.tests.get(test)
    return found.title if found is not None else test


# ------------------------------------------------------------------ the technician's worklist


def worklist(
    gateway: FHIRGateway,
    session: Session,
    *,
    as_of: date,
    practice: str | None = None,
    drug_group: str | None = None,
    stage: Stage | None = None,
    chase_interval_days: int = 14,
    rules: RuleSet | None = None,
) -> list[WorklistEntry]:
    """Open monitoring Tasks grouped by patient (one entry per patient, every test due across
    drug groups), out-of-range follow-ups and the most overdue first.

    By default the Tasks in the technician's stages (to contact ... sample taken); ``stage``
    picks one stage instead. ``practice`` is an Organization id or reference.
    """
    rule_set = rules or _default_rules()
    scope = Scope(_org(practice))
    tasks = _open_tasks(gateway, scope)
    stages = {stage} if stage is not None else set(TECHNICIAN_STAGES)
    monitoring = [
        task for task in tasks if _code(task) == MONITORING_TASK_CODE and stage_of(task) in stages
    ]
    flags = _active_flags(gateway, scope)
    findings = _findings(session, [task["id"] for task in tasks] + [f["id"] for f in flags])
    if drug_group is not None:
        monitoring = [
            task for task in monitoring if _drug_group(task, findings.get(task["id"])) == drug_group
        ]
    flagged = {_patient(flag) for flag in flags}
    flagged |= {_patient(task) for task in tasks if _code(task) == "result-review"}
    ids = [str(task["id"]) for task in monitoring]
    contacts = _history(_communications(gateway, ids), _events(session, ids))
    by_patient: dict[str, list[Resource]] = {}
    for task in monitoring:
        by_patient.setdefault(_patient(task), []).append(task)
    entries = []
    for patient, own in by_patient.items():
        own_ids = {task["id"] for task in own}
        history = [c for c in contacts if own_ids & set(c.task_ids)]
        summaries = [
            _summary(task, findings.get(task["id"]), history, rule_set, as_of, chase_interval_days)
            for task in own
        ]
        summaries.sort(key=lambda s: (s.due_date or date.max, s.task_id))
        entries.append(_entry(patient, summaries, history, findings, patient in flagged))
    entries.sort(
        key=lambda e: (e.priority.rank, -e.days_overdue, e.due_date or date.max, e.patient)
    )
    return entries


def _drug_group(task: Mapping[str, Any], finding: FindingRecord | None) -> str:
    if finding is not None:
        return finding.drug_group
    named = _typed(task.get("input", ()), "drug-group")
    return str(named[0].get("valueString")) if named else _rule(task).partition("@")[0]


def _entry(
    patient: str,
    summaries: list[TaskSummary],
    history: list[HistoryItem],
    findings: Mapping[str, FindingRecord],
    out_of_range: bool,
) -> WorklistEntry:
    tests: dict[str, str] = {}
    for summary in summaries:
        tests.update(zip(summary.tests, summary.test_titles, strict=True))
    overdue = max(s.days_overdue for s in summaries)
    chases = sorted(
        (s for s in summaries if s.chase is not None),
        key=lambda s: s.chase_due_on or date.max,
    )
    practice = next(
        (f.practice for s in summaries if (f := findings.get(s.task_id)) and f.practice), None
    )
    order = list(Stage)
    return WorklistEntry(
        patient=patient,
        practice=practice,
        tasks=summaries,
        tests=list(tests),
        test_titles=list(tests.values()),
        drug_groups=sorted({s.drug_group for s in summaries}),
        due_date=min((s.due_date for s in summaries if s.due_date), default=None),
        days_overdue=overdue,
        stage=min((s.stage for s in summaries), key=order.index),
        chase_due=any(s.chase_due for s in summaries),
        next_chase=chases[0].chase if chases else None,
        contacts=history,
        priority=priority(
            out_of_range=out_of_range,
            days_overdue=overdue,
            severely_overdue=any(s.severely_overdue for s in summaries),
        ),
        out_of_range=out_of_range,
    )


# ------------------------------------------------------------------ the patient card


def contact_details(patient: Mapping[str, Any]) -> PatientDetails:
    """Name, NHS number, phone and preferred contact method from a Patient resource."""
    names = patient.get("name") or [{}]
    name = next((n for n in names if n.get("use") in ("official", "usual")), names[0])
    text = name.get("text") or " ".join([*name.get("given", ()), name.get("family", "")]).strip()
    nhs = next(
        (
            i.get("value", "")
            for i in patient.get("identifier", ())
            if i.get("system") == t.NHS_NUMBER
        ),
        "",
    )
    phones = sorted(
        (c for c in patient.get("telecom", ()) if c.get("system") in ("phone", "sms")),
        key=lambda c: (c.get("use") != "mobile", c.get("rank", 99)),
    )
    preferred = ""
    for ext in patient.get("extension", ()):
        if ext.get("url") == t.CONTACT_PREFERENCE:
            for part in ext.get("extension", ()):
                concept = part.get("valueCodeableConcept") or {}
                coding = (concept.get("coding") or [{}])[0]
                if part.get("url") == "PreferredContactMethod":
                    preferred = (
                        concept.get("text") or coding.get("display") or coding.get("code", "")
                    )
    if not preferred:
        ranked = sorted(patient.get("telecom", ()), key=lambda c: c.get("rank", 99))
        preferred = str(ranked[0].get("system", "")) if ranked else ""
    return PatientDetails(
        name=str(text),
        nhs_number=str(nhs),
        phone=str(phones[0].get("value", "")) if phones else "",
        preferred_contact=str(preferred),
    )


def patient_card(
    gateway: FHIRGateway,
    session: Session,
    patient: str,
    *,
    as_of: date,
    actor: Actor | None = None,
    chase_interval_days: int = 14,
    rules: RuleSet | None = None,
) -> PatientCard:
    """Tests due, contact history, results (trend per analyte) and open findings with sources
    for one patient (``Patient/<id>`` or the id). With ``actor``, their practice must match."""
    rule_set = rules or _default_rules()
    ref = patient if patient.startswith("Patient/") else f"Patient/{patient}"
    resources = read_records(gateway, [ref], FetchReport())[ref]
    found, practices = _patient_in_reach(
        actor, next((r for r in resources if r.get("resourceType") == "Patient"), None)
    )
    tasks = _search(gateway, "Task", {"patient": ref, "_tag": OURS_TAG})
    flags = _active_flags(gateway, Scope(), ref)
    task_ids = {str(task["id"]) for task in tasks}
    communications = [
        c
        for c in _search(gateway, "Communication", {"subject": ref})
        if task_ids & set(contact_item(c).task_ids)
    ]
    findings = _findings(session, [*task_ids, *(f["id"] for f in flags)])
    history = _history(communications, _events(session, [*task_ids, *(f["id"] for f in flags)]))
    open_tasks = [task for task in tasks if not stage_of(task).is_terminal]
    due = [
        _summary(task, findings.get(task["id"]), history, rule_set, as_of, chase_interval_days)
        for task in open_tasks
        if _code(task) == MONITORING_TASK_CODE
    ]
    items = [resource_item(task, findings.get(task["id"])) for task in open_tasks]
    items += [resource_item(flag, findings.get(flag["id"])) for flag in flags]
    items.sort(key=lambda i: (-_SEVERITY_RANK[i.severity], i.kind, i.reference))
    return PatientCard(
        patient=ref,
        as_of=as_of,
        practice=min(practices) if practices else None,
        details=contact_details(found),
        tests_due=sorted(due, key=lambda s: (s.due_date or date.max, s.task_id)),
        contacts=history,
        results=_trends(rule_set, resources, None).get(PatientRef(ref), []),
        findings=items,
    )


def resource_item(resource: Mapping[str, Any], finding: FindingRecord | None) -> OpenItem:
    """A Task or Flag the service wrote, with its rule, source, stage and severity."""
    is_flag = resource["resourceType"] == "Flag"
    return OpenItem(
        reference=_ref(resource),
        version=version_of(resource),
        kind="flag" if is_flag else _code(resource),
        description=str(
            (resource.get("code") or {}).get("text", "")
            if is_flag
            else resource.get("description", "")
        ),
        rule=_rule(resource),
        source=_source(resource),
        status=str(resource.get("status")),
        stage=None if is_flag else stage_of(resource),
        severity=_flag_severity(resource, finding)
        if is_flag
        else (finding.severity if finding is not None else None),
        drug_group="" if is_flag else _drug_group(resource, finding),
    )


def _patient_in_reach(
    actor: Actor | None, patient: Resource | None
) -> tuple[Resource, frozenset[str]]:
    """The Patient and its practices, once it exists and (with ``actor``) is in the actor's
    practice: an unknown patient and another practice's are the same 404."""
    if patient is None:
        raise WorkflowNotFoundError(NO_PATIENT)
    practices = general_practitioners_of(patient)
    if actor is not None:
        require_practice(actor, practices, NO_PATIENT)
    return patient, practices


def general_practitioners_of(patient: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(
        str(gp["reference"])
        for gp in patient.get("generalPractitioner", ())
        if str(gp.get("reference", "")).startswith("Organization/")
    )


def _trends(
    rules: RuleSet, resources: Iterable[Resource], analytes: Mapping[str, set[str]] | None
) -> dict[str, list[Trend]]:
    """Per patient, the results of each analyte (only ``analytes[patient]`` when given)."""
    builder = RecordBuilder(rules.catalogue)
    for resource in resources:
        builder.add("server", resource)
    out: dict[str, list[Trend]] = {}
    for patient, record in builder.finish().items():
        series: dict[str, list[ResultPoint]] = {}
        for result in record.results:
            if analytes is None or result.analyte in analytes.get(patient, set()):
                point = ResultPoint(result.ref, result.effective, result.value, result.unit)
                series.setdefault(result.analyte, []).append(point)
        out[patient] = [
            Trend(
                analyte,
                rules.catalogue.analytes[analyte].title,
                sorted(points, key=lambda p: (p.on, p.observation)),
            )
            for analyte, points in sorted(series.items())
        ]
    return out


# ------------------------------------------------------------------ the pharmacist's queue


def review_queue(
    gateway: FHIRGateway,
    session: Session,
    *,
    practice: str | None = None,
    rules: RuleSet | None = None,
    as_of: date | None = None,
) -> list[ReviewItem]:
    """Results awaiting the pharmacist, active out-of-range Flags no Task covers, non-engagement
    decisions, monitored-elsewhere arrangements whose review date has come (``as_of``, default
    today) and open GP escalations; the most severe first (urgent Flags at the top)."""
    rule_set = rules or _default_rules()
    today = as_of or _today(datetime.now(UTC))
    scope = Scope(_org(practice))
    tasks = _open_tasks(gateway, scope)
    flags = _active_flags(gateway, scope)
    findings = _findings(session, [task["id"] for task in tasks] + [f["id"] for f in flags])
    flag_events = {e.task_id: e for e in _events(session, [f["id"] for f in flags])}
    flags_by_obs = {_flag_observation(f): f for f in flags}
    flags_by_ref = {_ref(f): f for f in flags}
    covered: set[str] = set()
    drafts: list[tuple[str, Resource, list[Resource]]] = []
    for task in tasks:
        stage = stage_of(task)
        if _code(task) == GP_TASK_CODE and stage is Stage.ESCALATED_GP:
            mine = [
                flags_by_ref[r]
                for r in _references(_typed(task["input"], "flag"))
                if r in flags_by_ref
            ]
            drafts.append(("gp-escalation", task, mine))
        elif stage is Stage.AWAITING_PHARMACIST:
            mine = [flags_by_obs[o] for o in _results(task) if o in flags_by_obs]
            kind = "prescribing" if _code(task) == "prescribing-review" else "result"
            drafts.append((kind, task, mine))
        elif stage is Stage.NON_ENGAGEMENT:
            drafts.append(("non-engagement", task, []))
        elif (
            _code(task) == ARRANGEMENT_TASK_CODE
            and stage is Stage.MONITORED_ELSEWHERE
            and (review := _due(task)) is not None
            and review <= today
        ):
            drafts.append(("monitored-elsewhere", task, []))
        else:
            continue
        covered |= {f["id"] for f in drafts[-1][2]}
    for flag in flags:
        if (
            flag["id"] not in covered
            and _flag_stage(flag, flag_events.get(flag["id"])) is Stage.AWAITING_PHARMACIST
        ):
            drafts.append(("flag", flag, [flag]))
    patients = sorted({_patient(resource) for _, resource, _ in drafts})
    wanted: dict[str, set[str]] = {}
    for _, resource, mine in drafts:
        wanted.setdefault(_patient(resource), set()).update(_analytes(rule_set, resource, mine))
    records = read_records(gateway, patients, FetchReport(), scope) if patients else {}
    trends = _trends(rule_set, [r for rs in records.values() for r in rs], wanted)
    items = [
        _review_item(kind, resource, mine, findings, trends, rule_set, wanted)
        for kind, resource, mine in drafts
    ]
    items.sort(
        key=lambda i: (
            -_SEVERITY_RANK[i.severity],
            _KIND_ORDER.index(i.kind),
            not i.severely_overdue,
            i.since or date.max,
            i.task_id,
        )
    )
    return items


def _flag_stage(flag: Mapping[str, Any], event: WorkflowEventRecord | None) -> Stage:
    """A Flag's stage: completed once inactive; else as the last sign-off left it."""
    if flag.get("status") != "active":
        return Stage.COMPLETED
    if event is not None and event.stage_after is not None:
        return Stage(event.stage_after)
    return Stage.AWAITING_PHARMACIST


def _pack(rules: RuleSet, rule: str) -> RulePack | None:
    ref = rule.partition("#")[0]
    rule_id, _, version = ref.partition("@")
    try:
        return rules.get(rule_id, int(version) if version.isdigit() else None)
    except KeyError:
        return None


def _threshold(pack: RulePack | None, rule: str) -> Threshold | None:
    check = rule.partition("#")[2]
    if pack is None:
        return None
    return next((th for th in pack.thresholds if th.id == check), None)


def _analytes(rules: RuleSet, resource: Mapping[str, Any], flags: Iterable[Resource]) -> set[str]:
    """The analytes whose trend matters for a review: the tests' or the thresholds' analytes."""
    found: set[str] = set()
    for test in _tests(resource):
        spec = rules.catalogue.tests.get(test)
        found |= set(spec.analytes) if spec is not None else set()
    for item in (resource, *flags):
        rule = _rule(item)
        threshold = _threshold(_pack(rules, rule), rule)
        if threshold is not None:
            found.add(threshold.analyte)
    return found


_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _threshold_text(threshold: Threshold) -> str:
    if threshold.op in _OPS:
        return f"{_OPS[threshold.op]} {threshold.value:g} {threshold.unit}"
    if threshold.op == "below_ref_low":
        return "below the laboratory range"
    if threshold.op == "above_ref_high":
        return "above the laboratory range"
    if threshold.op == "above_ref_high_times":
        return f"more than {threshold.value:g} x the laboratory upper limit"
    return f"more than {threshold.value:g}% above baseline"


def _review_item(
    kind: str,
    resource: Resource,
    flags: list[Resource],
    findings: Mapping[str, FindingRecord],
    trends: Mapping[str, list[Trend]],
    rules: RuleSet,
    wanted: Mapping[str, set[str]],
) -> ReviewItem:
    patient = _patient(resource)
    finding = findings.get(resource["id"])
    summaries = [
        FlagSummary(
            flag_id=str(f["id"]),
            version=version_of(f),
            severity=_flag_severity(f, findings.get(f["id"])),
            text=str((f.get("code") or {}).get("text", "")),
            observation=_flag_observation(f),
            since=parse_date((f.get("period") or {}).get("start")),
        )
        for f in flags
    ]
    severities = [s.severity for s in summaries if s.severity is not None]
    if finding is not None and finding.severity is not None and kind != "flag":
        severities.append(finding.severity)
    rule = _rule(resource)
    pack = _pack(rules, rule)
    analytes = wanted.get(patient, set()) & _analytes(rules, resource, flags)
    thresholds = [
        ThresholdInfo(th.analyte, _threshold_text(th), th.severity, th.advice)
        for th in (pack.thresholds if pack is not None else ())
        if th.analyte in analytes
    ]
    is_flag = kind == "flag"
    since = summaries[0].since if is_flag else parse_date(resource.get("authoredOn"))
    if kind == "monitored-elsewhere":
        since = _due(resource)
    results = [s.observation for s in summaries if s.observation] if is_flag else _results(resource)
    return ReviewItem(
        kind=kind,
        task_id=str(resource["id"]),
        version=version_of(resource),
        patient=patient,
        practice=finding.practice if finding is not None else None,
        stage=Stage.AWAITING_PHARMACIST if is_flag else stage_of(resource),
        drug_group=_drug_group(resource, finding),
        medication=None if is_flag else (resource.get("focus") or {}).get("reference"),
        rule=rule,
        description=str(
            (resource.get("code") or {}).get("text", "")
            if is_flag
            else resource.get("description", "")
        ),
        severity=max(severities, key=lambda s: s.rank) if severities else None,
        source=_source(resource) or next((_source(f) for f in flags if _source(f)), None),
        since=since,
        flags=summaries,
        results=results,
        trend=[tr for tr in trends.get(patient, []) if tr.analyte in analytes],
        thresholds=thresholds,
        severely_overdue=is_severely_overdue(resource),
    )


# ------------------------------------------------------------------ actions


@dataclass(frozen=True)
class _Write:
    resource: Resource
    if_match: str | None
    """The versionId the server must still hold; None writes a new resource by id."""

    @property
    def reference(self) -> str:
        return _ref(self.resource)


@dataclass
class _Change:
    """What an action writes, and how it is recorded."""

    stage_before: Stage
    stage_after: Stage
    writes: list[_Write]
    activity: str
    detail: dict[str, object]
    reason: str | None = None
    sources: list[str] = field(default_factory=list)
    unchanged: list[tuple[str, str | None]] = field(default_factory=list)
    """Resources the action concerns but does not change (Provenance targets)."""


class _StaleError(Exception):
    """A transaction entry's ifMatch no longer held."""


Planner = Callable[[Resource, datetime], _Change]


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment


def _read_subject(gateway: FHIRGateway, kind: str, resource_id: str) -> Resource | None:
    try:
        return gateway.read(kind, resource_id)
    except ValueError as exc:  # not a FHIR id: nothing by that name can exist
        raise WorkflowNotFoundError(f"no {kind} {resource_id!r}") from exc


def _read_task(gateway: FHIRGateway, task_id: str) -> Resource:
    task = _read_subject(gateway, "Task", task_id)
    if task is None:
        raise WorkflowNotFoundError(_missing("Task", task_id))
    return task


def _missing(kinds: str, subject_id: str) -> str:
    """What an action on an unknown subject (or one of another practice) is told."""
    return f"no {kinds} {subject_id}"


def _patient_practices(gateway: FHIRGateway, patient: str) -> frozenset[str]:
    found = gateway.read("Patient", patient.removeprefix("Patient/"))
    return general_practitioners_of(found) if found is not None else frozenset()


def _next_version(version: str | None) -> str | None:
    """The versionId an update will get: servers such as HAPI count 1, 2, 3..."""
    if version is None:
        return "1"
    return str(int(version) + 1) if version.isdigit() else None


def _reply_version(entry: Mapping[str, Any]) -> str | None:
    response = entry.get("response") or {}
    etag = response.get("etag")
    if isinstance(etag, str) and (version := etag.removeprefix("W/").strip('"')):
        return version
    location = str(response.get("location", ""))
    if "/_history/" not in location:
        return None
    return location.rpartition("/_history/")[2] or None


def _commit(
    gateway: FHIRGateway,
    change: _Change,
    provenance_id: str,
    actor: Actor,
    action: Action,
    moment: datetime,
) -> list[tuple[str, str | None]]:
    """Write the change and its Provenance in one transaction; (reference, version) of each."""
    predicted = [(w.reference, _next_version(w.if_match)) for w in change.writes]
    record = provenance(
        resource_id=provenance_id,
        targets=[*predicted, *change.unchanged],
        actor=actor,
        action=action,
        recorded=moment,
        activity=change.activity,
        reason=change.reason,
        sources=change.sources,
    )
    entries = []
    for write in [*change.writes, _Write(record, None)]:
        request = {"method": "PUT", "url": write.reference}
        if write.if_match is not None:
            request["ifMatch"] = f'W/"{write.if_match}"'
        entries.append(
            {
                "fullUrl": f"{gateway.base_url}/{write.reference}",
                "resource": write.resource,
                "request": request,
            }
        )
    try:
        reply = gateway.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
    except FHIRFatalError as exc:
        if exc.status in (409, 412):
            raise _StaleError from exc
        raise
    versions = [_reply_version(entry) for entry in reply.get("entry", ())]
    refs = [w.reference for w in change.writes] + [f"Provenance/{provenance_id}"]
    return [(ref, versions[n] if n < len(versions) else None) for n, ref in enumerate(refs)]


def _canonical(params: Mapping[str, object]) -> str:
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()


def _versioned(ref: str, version: str | None) -> str:
    return f"{ref}/_history/{version}" if version else ref


def _act(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    action: Action,
    subject_id: str,
    version: str | None,
    params: Mapping[str, object],
    plan: Planner,
    now: datetime | None,
    read: Callable[[FHIRGateway, str], Resource] = _read_task,
    kinds: str = "Task",
) -> ActionResult:
    """Check, plan and write one action (see the module docstring), and record it. ``version``
    None acts on a subject that does not exist yet (``read`` returns it unsaved)."""
    require_role(actor, action)
    moment = _now(now)
    provenance_id = workflow_id(
        "provenance", subject_id, version or "new", action.value, _canonical(params)
    )
    practices: dict[str, frozenset[str]] = {}
    for attempt in range(CONFLICT_RETRIES + 1):
        subject = read(gateway, subject_id)
        patient = _patient(subject)
        if patient not in practices:
            practices[patient] = _patient_practices(gateway, patient)
        require_practice(actor, practices[patient], _missing(kinds, subject_id))
        if version_of(subject) != version:
            replayed = _replayed(gateway, session, actor, action, subject, provenance_id, moment)
            if replayed is not None:
                return replayed
            raise WorkflowConflictError(
                f"{_ref(subject)} has changed since it was loaded (now version "
                f"{version_of(subject)}, not {version}); reload it and try again"
            )
        change = plan(subject, moment)
        try:
            written = _commit(gateway, change, provenance_id, actor, action, moment)
        except _StaleError:
            log.info("workflow %s: a related resource changed; re-reading", action.value)
            continue
        except FHIRTemporaryError:
            if attempt == CONFLICT_RETRIES:
                raise
            log.warning("workflow %s: no answer to the write; re-reading", action.value)
            continue
        subject_version = next((v for ref, v in written if ref == _ref(subject)), version)
        _record(
            session, actor, action, subject, patient, practices[patient], change, written, moment
        )
        log.info(
            "workflow %s on %s: %d resources written", action.value, _ref(subject), len(written)
        )
        return ActionResult(
            task_id=subject_id,
            version=subject_version,
            stage=change.stage_after,
            written=[_versioned(ref, v) for ref, v in written],
        )
    raise WorkflowConflictError(
        f"resources related to {subject_id} kept changing while the action was written; try again"
    )


def _record(
    session: Session,
    actor: Actor,
    action: Action,
    subject: Mapping[str, Any],
    patient: str,
    practices: frozenset[str],
    change: _Change,
    written: Sequence[tuple[str, str | None]],
    moment: datetime,
) -> None:
    org = actor.organization
    session.add(
        WorkflowEventRecord(
            at=moment,
            task_id=str(subject["id"]),
            patient=patient,
            practice=org if org in practices else (min(practices) if practices else None),
            actor=actor.username,
            role=actor.role.value,
            action=action.value,
            stage_before=change.stage_before.value,
            stage_after=change.stage_after.value,
            detail=orjson.dumps(change.detail).decode(),
            written=" ".join(_versioned(ref, v) for ref, v in written),
        )
    )
    session.flush()


def provenance_targets(record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """A Provenance's targets as (``Type/id``, versionId): the version from the reference, or
    from the ``target-version`` extension on servers that strip versions from references."""
    targets = []
    for target in record.get("target", ()):
        ref, _, version = str(target.get("reference", "")).partition("/_history/")
        kept = next(
            (
                e.get("valueString")
                for e in target.get("extension", ())
                if e.get("url") == t.TARGET_VERSION_EXTENSION
            ),
            None,
        )
        targets.append((ref, kept or version or None))
    return targets


def _replayed(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    action: Action,
    subject: Mapping[str, Any],
    provenance_id: str,
    moment: datetime,
) -> ActionResult | None:
    """The result of this very request when an earlier attempt of it already landed (a retry
    after a lost answer, or a double submit); None when it did not."""
    record = gateway.read("Provenance", provenance_id)
    if record is None:
        return None
    written = provenance_targets(record)
    written.append((f"Provenance/{provenance_id}", version_of(record)))
    own = _ref(subject)
    rows = session.scalars(
        select(WorkflowEventRecord).where(
            WorkflowEventRecord.task_id == subject["id"],
            WorkflowEventRecord.written.contains(f"Provenance/{provenance_id}"),
        )
    ).first()
    stage = Stage(rows.stage_after) if rows is not None and rows.stage_after else stage_of(subject)
    if rows is None:
        change = _Change(stage, stage, [], "", {"recovered": True})
        _record(
            session, actor, action, subject, _patient(subject), frozenset(), change, written, moment
        )
    return ActionResult(
        task_id=str(subject["id"]),
        version=next((v for ref, v in written if ref == own), version_of(subject)),
        stage=stage,
        written=[_versioned(ref, v) for ref, v in written],
    )


def _about(task: Mapping[str, Any], rules: RuleSet) -> str:
    titles = [_test_title(rules, test) for test in _tests(task)]
    due = _due(task)
    text = "Monitoring blood tests due: " + (", ".join(titles) or "see the Task")
    return text + (f" (due {due.isoformat()})" if due else "")


def _task_note(summary: str, note: str) -> str:
    return f"{summary}. {note}" if note else f"{summary}."


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
    now: datetime | None = None,
) -> ActionResult:
    """A contact attempt: a Communication based on the Task, and the Task's stage moved on
    (invited, reminded, second reminder, booked; after the second reminder, non-engagement)."""
    params = {"medium": medium.value, "outcome": outcome.value, "note": note}
    rules = _default_rules()

    def plan(task: Resource, moment: datetime) -> _Change:
        stage = stage_of(task)
        after = next_stage(stage, Action.CONTACT, outcome=outcome)
        summary = f"Contact by {medium.label}: {outcome.label}"
        message = communication(
            resource_id=workflow_id("communication", task_id, version, _canonical(params)),
            task_id=task_id,
            patient=_patient(task),
            actor=actor,
            medium=medium,
            outcome=outcome,
            sent=moment,
            about=_about(task, rules),
            note=note,
        )
        updated = task_update(
            task,
            stage=after,
            actor=actor,
            now=moment,
            owner=PHARMACIST if after is Stage.NON_ENGAGEMENT else None,
            note=_task_note(summary, note),
        )
        return _Change(
            stage,
            after,
            [_Write(updated, version), _Write(message, None)],
            activity=summary,
            detail={**params, "communication": _ref(message)},
        )

    return _act(gateway, session, actor, Action.CONTACT, task_id, version, params, plan, now)


def _dated_output(
    task: Resource,
    moment: datetime,
    action: Action,
    output: tuple[str, str, date],
    summary: str,
    note: str,
    actor: Actor,
    version: str,
    params: Mapping[str, object],
) -> _Change:
    """A step that records one date in Task.output (a booking, a sample) and moves the stage."""
    stage = stage_of(task)
    after = next_stage(stage, action)
    code, label, day = output
    updated = task_update(
        task,
        stage=after,
        actor=actor,
        now=moment,
        note=_task_note(summary, note),
        outputs=[typed(code, label, valueDate=day.isoformat())],
    )
    return _Change(stage, after, [_Write(updated, version)], activity=summary, detail=dict(params))


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
    params = {"booked_for": booked_for.isoformat(), "note": note}

    def plan(task: Resource, moment: datetime) -> _Change:
        if booked_for < _today(moment):
            raise WorkflowError("the booking date is in the past")
        output = ("booked-for", "Booked for", booked_for)
        summary = f"Blood test booked for {booked_for.isoformat()}"
        return _dated_output(
            task, moment, Action.BOOKING, output, summary, note, actor, version, params
        )

    return _act(gateway, session, actor, Action.BOOKING, task_id, version, params, plan, now)


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
    params = {"taken_on": taken_on.isoformat()}

    def plan(task: Resource, moment: datetime) -> _Change:
        if taken_on > _today(moment):
            raise WorkflowError("the sample date is in the future")
        output = ("sample-taken", "Sample taken", taken_on)
        summary = f"Sample taken on {taken_on.isoformat()}"
        return _dated_output(
            task, moment, Action.SAMPLE, output, summary, "", actor, version, params
        )

    return _act(gateway, session, actor, Action.SAMPLE, task_id, version, params, plan, now)


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
    params = {"chase_interval_days": chase_interval_days, "note": note}

    def plan(task: Resource, moment: datetime) -> _Change:
        stage = stage_of(task)
        after = next_stage(stage, Action.ROUTE)
        attempts = [contact_item(c) for c in _communications(gateway, [task_id])]
        last = max((_today(c.at) for c in attempts), default=None)
        chase = next_chase(stage, last, chase_interval_days, _today(moment))
        if chase is not None and chase.due_on > _today(moment):
            raise WorkflowError(
                f"the chase allows {chase_interval_days} days after the last attempt: routing to "
                f"the pharmacist is due on {chase.due_on.isoformat()}"
            )
        summary = "Routed to the pharmacist: no booking after two reminders"
        updated = task_update(
            task,
            stage=after,
            actor=actor,
            now=moment,
            owner=PHARMACIST,
            note=_task_note(summary, note),
        )
        detail: dict[str, object] = {
            **params,
            "attempts": len(attempts),
            "last_attempt": last.isoformat() if last else None,
        }
        return _Change(stage, after, [_Write(updated, version)], activity=summary, detail=detail)

    return _act(gateway, session, actor, Action.ROUTE, task_id, version, params, plan, now)


def _read_task_or_flag(gateway: FHIRGateway, subject_id: str) -> Resource:
    task = _read_subject(gateway, "Task", subject_id)
    if task is not None:
        return task
    flag = _read_subject(gateway, "Flag", subject_id)
    if flag is None:
        raise WorkflowNotFoundError(_missing(TASK_OR_FLAG, subject_id))
    return flag


def _related_flags(gateway: FHIRGateway, patient: str, results: Sequence[str]) -> list[Resource]:
    """The patient's active out-of-range Flags about these results."""
    if not results:
        return []
    flags = _active_flags(gateway, Scope(), patient)
    return [f for f in flags if _flag_observation(f) in results]


def _result_time(gateway: FHIRGateway, results: Sequence[str]) -> datetime | None:
    """When the newest of these results was taken (effective, else issued)."""
    moments = []
    for ref in results:
        found = gateway.read("Observation", ref.removeprefix("Observation/"))
        if found is None:
            continue
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
            moments.append(datetime(day.year, day.month, day.day, tzinfo=LONDON))
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


SWEEP_ACTOR = Actor("hrm-fhir", Role.ADMIN, "hrm-fhir weekly sweep", None)
"""Who the ledger and Provenance name for steps the sweep takes itself."""


def exhausted_chases(
    gateway: FHIRGateway,
    session: Session,
    *,
    as_of: date,
    practice: str | None = None,
    chase_interval_days: int = 14,
    rules: RuleSet | None = None,
) -> list[TaskSummary]:
    """Tasks whose second reminder went unanswered for ``chase_interval_days``: due to go to
    the pharmacist for a non-engagement decision (what a dry-run sweep reports)."""
    return [
        task
        for entry in worklist(
            gateway,
            session,
            as_of=as_of,
            practice=practice,
            chase_interval_days=chase_interval_days,
            rules=rules,
        )
        for task in entry.tasks
        if task.chase is ChaseStep.ROUTE and task.chase_due and task.version is not None
    ]


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
    action = Action.ESCALATE if decision is Decision.ESCALATED_GP else Action.SIGN_OFF
    params = {
        "decision": decision.value,
        "note": note,
        "new_dose": new_dose,
        "repeat_on": repeat_on.isoformat() if repeat_on else None,
    }

    def plan(subject: Resource, moment: datetime) -> _Change:
        is_flag = subject["resourceType"] == "Flag"
        patient = _patient(subject)
        if is_flag:
            events = _events(session, [subject["id"]])
            stage = _flag_stage(subject, events[-1] if events else None)
            observation = _flag_observation(subject)
            results = [observation] if observation else []
            flags = [subject]
        else:
            stage = stage_of(subject)
            results = _results(subject)
            flags = _related_flags(gateway, patient, results)
        after = next_stage(stage, action, decision=decision)
        result_at = _result_time(gateway, results)
        rule = _rule(subject)
        writes: list[_Write] = []
        detail: dict[str, object] = {
            **params,
            "flags": [f["id"] for f in flags],
            "result_at": instant(result_at) if result_at else None,
            "result_to_action_hours": _hours(result_at, moment),
        }
        summary = f"Pharmacist sign-off: {decision.label}"
        if decision is Decision.ESCALATED_GP:
            findings = _findings(session, [f["id"] for f in flags])
            severities = [s for f in flags if (s := _flag_severity(f, findings.get(f["id"])))]
            reason = str(
                (subject.get("code") or {}).get("text", "")
                if is_flag
                else subject.get("description", "")
            )
            gp_task = gp_escalation_task(
                resource_id=workflow_id("gp-task", task_id, version, _canonical(params)),
                patient=patient,
                focus=_ref(subject),
                part_of=None if is_flag else _ref(subject),
                flags=[_ref(f) for f in flags],
                results=results,
                reason=reason,
                note=note,
                severity=max(severities, key=lambda s: s.rank) if severities else None,
                actor=actor,
                now=moment,
                result_at=result_at,
                rule=rule,
            )
            writes.append(_Write(gp_task, None))
            detail["gp_task"] = _ref(gp_task)
            summary = "Pharmacist escalated to the GP"
            if not is_flag:
                updated = task_update(
                    subject,
                    stage=after,
                    actor=actor,
                    now=moment,
                    owner=GP_TEAM,
                    note=_task_note(summary, note),
                    outputs=_decision_outputs(decision, new_dose, repeat_on),
                )
                writes.insert(0, _Write(updated, version))
        else:
            if not is_flag:
                updated = task_update(
                    subject,
                    stage=after,
                    actor=actor,
                    now=moment,
                    status="completed",
                    note=_task_note(summary, note),
                    outputs=_decision_outputs(decision, new_dose, repeat_on),
                    stage_text=f"signed off: {decision.label}",
                )
                writes.append(_Write(updated, version))
            if decision in RESOLVING_DECISIONS:
                writes += [_Write(inactive_flag(f, _today(moment)), version_of(f)) for f in flags]
        written_refs = {w.reference for w in writes}
        unchanged = [(_ref(f), version_of(f)) for f in flags if _ref(f) not in written_refs]
        return _Change(
            stage,
            after,
            writes,
            activity=summary,
            detail=detail,
            reason=rule or None,
            sources=results,
            unchanged=unchanged,
        )

    return _act(
        gateway,
        session,
        actor,
        action,
        task_id,
        version,
        params,
        plan,
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
    params = {"decision": decision.value, "note": note}

    def plan(task: Resource, moment: datetime) -> _Change:
        stage = stage_of(task)
        after = next_stage(stage, Action.DECISION, decision=decision)
        summary = f"Non-engagement decision: {decision.label}"
        updated = task_update(
            task,
            stage=after,
            actor=actor,
            now=moment,
            status="failed",
            status_reason=f"non-engagement: {decision.label}",
            note=_task_note(summary, note),
            outputs=_decision_outputs(decision, "", None),
            stage_text=f"non-engagement: {decision.label}",
        )
        return _Change(
            stage,
            after,
            [_Write(updated, version)],
            activity=summary,
            detail=dict(params),
            reason=_rule(task) or None,
        )

    return _act(gateway, session, actor, Action.DECISION, task_id, version, params, plan, now)


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
    params = {"note": note}

    def plan(gp_task: Resource, moment: datetime) -> _Change:
        if _code(gp_task) != GP_TASK_CODE:
            raise WorkflowError(f"Task {gp_task_id} is not a GP escalation")
        stage = stage_of(gp_task)
        after = next_stage(stage, Action.ACKNOWLEDGE)
        observed = _typed(gp_task.get("input", ()), "result-observed")
        result_at = (
            datetime.fromisoformat(str(observed[0]["valueDateTime"]).replace("Z", "+00:00"))
            if observed
            else None
        )
        hours = _hours(result_at, moment)
        outputs = []
        if hours is not None:
            duration = {"value": hours, "unit": "h", "system": t.UCUM, "code": "h"}
            outputs.append(
                typed("time-to-action", "Time from result to action", valueDuration=duration)
            )
        summary = "GP acknowledged the escalation"
        writes = [
            _Write(
                task_update(
                    gp_task,
                    stage=after,
                    actor=actor,
                    now=moment,
                    status="completed",
                    note=_task_note(summary, note),
                    outputs=outputs,
                    stage_text="acknowledged by the GP",
                ),
                version,
            )
        ]
        for ref in (p["reference"] for p in gp_task.get("partOf", ())):
            original = gateway.read("Task", str(ref).removeprefix("Task/"))
            if original is not None and not stage_of(original).is_terminal:
                done = task_update(
                    original,
                    stage=after,
                    actor=actor,
                    now=moment,
                    status="completed",
                    note=_task_note(summary, note),
                    stage_text="escalation acknowledged by the GP",
                )
                writes.append(_Write(done, version_of(original)))
        for ref in _references(_typed(gp_task.get("input", ()), "flag")):
            flag = gateway.read("Flag", ref.removeprefix("Flag/"))
            if flag is not None and flag.get("status") == "active":
                writes.append(_Write(inactive_flag(flag, _today(moment)), version_of(flag)))
        detail: dict[str, object] = {
            **params,
            "result_at": instant(result_at) if result_at else None,
            "result_to_action_hours": hours,
            "closed": [w.reference for w in writes[1:]],
        }
        return _Change(
            stage,
            after,
            writes,
            activity=summary,
            detail=detail,
            reason=_rule(gp_task) or None,
            sources=_references(_typed(gp_task.get("input", ()), "evidence")),
        )

    return _act(gateway, session, actor, Action.ACKNOWLEDGE, gp_task_id, version, params, plan, now)


# ------------------------------------------------------------------ who monitors (shared care)


def arrangement_id(patient: str, drug_group: str) -> str:
    """The id of the Task that records who monitors one of a patient's drug groups."""
    return workflow_id("arrangement", patient, drug_group)


def _arrangement_or_new(patient: str, actor: Actor) -> Callable[[FHIRGateway, str], Resource]:
    """Read the arrangement Task, or give an unsaved one for a first decision, once the patient
    is known to exist and to be the actor's practice's (the same 404 otherwise)."""

    def read(gateway: FHIRGateway, task_id: str) -> Resource:
        _patient_in_reach(actor, _read_subject(gateway, "Patient", patient.split("/", 1)[1]))
        found = _read_subject(gateway, "Task", task_id)
        return (
            found
            if found is not None
            else {"resourceType": "Task", "id": task_id, "for": {"reference": patient}}
        )

    return read


def _group_title(rules: RuleSet, drug_group: str) -> str:
    titles = {pack.drug_group: pack.title for pack in rules.packs}
    if drug_group not in titles:
        raise WorkflowError(f"no drug group {drug_group!r} (one of: {', '.join(sorted(titles))})")
    return titles[drug_group]


def _patient_ref(patient: str) -> str:
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


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
    ref = _patient_ref(patient)
    title = _group_title(rules or _default_rules(), drug_group)
    params: dict[str, object] = {"drug_group": drug_group, "note": note}
    if elsewhere is not None:
        params |= {"monitored_by": elsewhere[0], "review_on": elsewhere[1].isoformat()}
    action = Action.MONITORED_BY_PRACTICE if elsewhere is None else Action.MONITORED_ELSEWHERE

    def plan(task: Resource, moment: datetime) -> _Change:
        today = _today(moment)
        if elsewhere is not None:
            check_arrangement(*elsewhere, today)
        current = task if "status" in task else None
        updated = arrangement_task(
            current,
            resource_id=task["id"],
            patient=ref,
            drug_group=drug_group,
            title=title,
            actor=actor,
            now=moment,
            today=today,
            elsewhere=elsewhere,
            note=note,
        )
        writes = [_Write(updated, version)]
        if elsewhere is None:
            after, summary = Stage.MONITORED_BY_PRACTICE, f"{title} monitored by the practice"
        else:
            by, review_on = elsewhere
            after = Stage.MONITORED_ELSEWHERE
            summary = f"{title} monitored elsewhere by {by} (review by {review_on.isoformat()})"
            writes += [
                _Write(_stop_chase(routine, by, actor, moment), version_of(routine))
                for routine in _routine_tasks(gateway, session, ref, drug_group)
            ]
        return _Change(
            stage_of(current) if current else Stage.TO_CONTACT,
            after,
            writes,
            activity=summary,
            detail={**params, "closed": [w.reference for w in writes[1:]]},
            reason=f"{after.label}: {drug_group}",
        )

    return _act(
        gateway,
        session,
        actor,
        action,
        arrangement_id(ref, drug_group),
        version,
        params,
        plan,
        now,
        _arrangement_or_new(ref, actor),
    )


def _stop_chase(routine: Resource, by: str, actor: Actor, moment: datetime) -> Resource:
    """A routine monitoring Task cancelled because another organisation monitors the drug."""
    return task_update(
        routine,
        stage=Stage.MONITORED_ELSEWHERE,
        actor=actor,
        now=moment,
        status="cancelled",
        status_reason=f"monitored elsewhere: {by}",
        note=f"Monitored elsewhere by {by}: the practice's routine monitoring stops.",
        stage_text="monitored elsewhere",
    )


def _routine_tasks(
    gateway: FHIRGateway, session: Session, patient: str, drug_group: str
) -> list[Resource]:
    """The patient's open routine monitoring Tasks of one drug group in the technician's
    stages (the chase a monitored-elsewhere decision stops)."""
    tasks = [
        task
        for task in _search(
            gateway, "Task", {"patient": patient, "_tag": OURS_TAG, "status": OPEN_TASK_STATUSES}
        )
        if _code(task) == MONITORING_TASK_CODE and stage_of(task) in TECHNICIAN_STAGES
    ]
    findings = _findings(session, [task["id"] for task in tasks])
    return [task for task in tasks if _drug_group(task, findings.get(task["id"])) == drug_group]
