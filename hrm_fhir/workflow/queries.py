"""The read models of the technician: the worklist and the patient card."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from hrm_fhir import clock
from hrm_fhir.adapters.fhir.fetch import OURS_TAG, FetchReport, Scope, read_records
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.adapters.fhir.values import parse_date
from hrm_fhir.adapters.store.records import FindingRecord
from hrm_fhir.domain import PatientRef
from hrm_fhir.programme import (
    MONITORING_TASK_CODE,
    TECHNICIAN_STAGES,
    Actor,
    ChaseStep,
    Stage,
    due_this_week,
    next_chase,
    priority,
    stage_of,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.workflow.fields import (
    SEVERITY_RANK,
    code_of,
    contact_details,
    contact_item,
    drug_group_of,
    due_of,
    flag_severity,
    history_of,
    is_severely_overdue,
    org_id,
    overdue_days,
    patient_in_reach,
    patient_of,
    reference_of,
    rule_of,
    source_of,
    test_title,
    tests_of,
    typed_entries,
    version_of,
)
from hrm_fhir.workflow.reads import (
    active_flags,
    communications_of,
    default_rules,
    events_for,
    findings_for,
    open_tasks,
    search,
)
from hrm_fhir.workflow.resources import (
    Resource,
)
from hrm_fhir.workflow.views import (
    HistoryItem,
    OpenItem,
    PatientCard,
    ResultPoint,
    TaskSummary,
    Trend,
    WorklistEntry,
)


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
    rule_set = rules or default_rules()
    scope = Scope(org_id(practice))
    tasks = open_tasks(gateway, scope)
    stages = {stage} if stage is not None else set(TECHNICIAN_STAGES)
    monitoring = [
        task for task in tasks if code_of(task) == MONITORING_TASK_CODE and stage_of(task) in stages
    ]
    flags = active_flags(gateway, scope)
    findings = findings_for(session, [task["id"] for task in tasks] + [f["id"] for f in flags])
    if drug_group is not None:
        monitoring = [
            task
            for task in monitoring
            if drug_group_of(task, findings.get(task["id"])) == drug_group
        ]
    flagged = {patient_of(flag) for flag in flags}
    flagged |= {patient_of(task) for task in tasks if code_of(task) == "result-review"}
    ids = [str(task["id"]) for task in monitoring]
    contacts = history_of(communications_of(gateway, ids), events_for(session, ids))
    by_patient: dict[str, list[Resource]] = {}
    for task in monitoring:
        by_patient.setdefault(patient_of(task), []).append(task)
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
    last = max((clock.local_date(c.at) for c in attempts), default=None)
    chase = next_chase(stage, last, interval_days, as_of)
    tests = tests_of(task)
    due = due_of(task)
    rule = rule_of(task)
    bookings = [
        parse_date(e.get("valueDate")) for e in typed_entries(task.get("output", ()), "booked-for")
    ]
    return TaskSummary(
        task_id=str(task["id"]),
        version=version_of(task),
        code=code_of(task),
        stage=stage,
        status=str(task.get("status")),
        drug_group=finding.drug_group if finding is not None else rule.partition("@")[0],
        rule=rule,
        tests=tests,
        test_titles=tuple(test_title(rules, test) for test in tests),
        due_date=due,
        days_overdue=overdue_days(due, as_of),
        severely_overdue=is_severely_overdue(task),
        description=str(task.get("description", "")),
        source=source_of(task),
        attempts=len(attempts),
        last_attempt=last,
        chase=chase.step if chase else None,
        chase_due_on=chase.due_on if chase else None,
        chase_due=due_this_week(chase, as_of),
        booked_for=bookings[-1] if bookings else None,
    )


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
    rule_set = rules or default_rules()
    ref = patient if patient.startswith("Patient/") else f"Patient/{patient}"
    resources = read_records(gateway, [ref], FetchReport())[ref]
    found, practices = patient_in_reach(
        actor, next((r for r in resources if r.get("resourceType") == "Patient"), None)
    )
    tasks = search(gateway, "Task", {"patient": ref, "_tag": OURS_TAG})
    flags = active_flags(gateway, Scope(), ref)
    task_ids = {str(task["id"]) for task in tasks}
    communications = [
        c
        for c in search(gateway, "Communication", {"subject": ref})
        if task_ids & set(contact_item(c).task_ids)
    ]
    findings = findings_for(session, [*task_ids, *(f["id"] for f in flags)])
    history = history_of(
        communications, events_for(session, [*task_ids, *(f["id"] for f in flags)])
    )
    open_tasks = [task for task in tasks if not stage_of(task).is_terminal]
    due = [
        _summary(task, findings.get(task["id"]), history, rule_set, as_of, chase_interval_days)
        for task in open_tasks
        if code_of(task) == MONITORING_TASK_CODE
    ]
    items = [resource_item(task, findings.get(task["id"])) for task in open_tasks]
    items += [resource_item(flag, findings.get(flag["id"])) for flag in flags]
    items.sort(key=lambda i: (-SEVERITY_RANK[i.severity], i.kind, i.reference))
    return PatientCard(
        patient=ref,
        as_of=as_of,
        practice=min(practices) if practices else None,
        details=contact_details(found),
        tests_due=sorted(due, key=lambda s: (s.due_date or date.max, s.task_id)),
        contacts=history,
        results=trends_by_patient(rule_set, resources, None).get(PatientRef(ref), []),
        findings=items,
    )


def resource_item(resource: Mapping[str, Any], finding: FindingRecord | None) -> OpenItem:
    """A Task or Flag the service wrote, with its rule, source, stage and severity."""
    is_flag = resource["resourceType"] == "Flag"
    return OpenItem(
        reference=reference_of(resource),
        version=version_of(resource),
        kind="flag" if is_flag else code_of(resource),
        description=str(
            (resource.get("code") or {}).get("text", "")
            if is_flag
            else resource.get("description", "")
        ),
        rule=rule_of(resource),
        source=source_of(resource),
        status=str(resource.get("status")),
        stage=None if is_flag else stage_of(resource),
        severity=flag_severity(resource, finding)
        if is_flag
        else (finding.severity if finding is not None else None),
        drug_group="" if is_flag else drug_group_of(resource, finding),
    )


def trends_by_patient(
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
