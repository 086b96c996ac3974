"""The pharmacist's review queue: results awaiting review, out-of-range Flags no Task covers,
non-engagement decisions, monitored-elsewhere reviews due and open GP escalations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from hrm_fhir import clock
from hrm_fhir.adapters.fhir.fetch import FetchReport, Scope, read_records
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.values import parse_date
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.programme import (
    ARRANGEMENT_TASK_CODE,
    GP_TASK_CODE,
    Stage,
    stage_of,
)
from hrm_fhir.rules.model import RulePack, Threshold
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.workflow.fields import (
    SEVERITY_RANK,
    code_of,
    drug_group_of,
    due_of,
    flag_observation,
    flag_severity,
    flag_stage,
    is_severely_overdue,
    org_id,
    patient_of,
    reference_of,
    references_in,
    results_of,
    rule_of,
    source_of,
    tests_of,
    typed_entries,
    version_of,
)
from hrm_fhir.workflow.queries import (
    trends_by_patient,
)
from hrm_fhir.workflow.reads import (
    active_flags,
    default_rules,
    events_for,
    findings_for,
    open_tasks,
)
from hrm_fhir.workflow.resources import (
    Resource,
)
from hrm_fhir.workflow.views import (
    FlagSummary,
    ReviewItem,
    ThresholdInfo,
    Trend,
)

KIND_ORDER = (
    "flag",
    "result",
    "gp-escalation",
    "prescribing",
    "non-engagement",
    "monitored-elsewhere",
)


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
    rule_set = rules or default_rules()
    today = as_of or clock.today()
    scope = Scope(org_id(practice))
    tasks = open_tasks(gateway, scope)
    flags = active_flags(gateway, scope)
    findings = findings_for(session, [task["id"] for task in tasks] + [f["id"] for f in flags])
    flag_events = {e.task_id: e for e in events_for(session, [f["id"] for f in flags])}
    drafts = _drafts(tasks, flags, flag_events, today)
    patients = sorted({patient_of(resource) for _, resource, _ in drafts})
    wanted: dict[str, set[str]] = {}
    for _, resource, mine in drafts:
        wanted.setdefault(patient_of(resource), set()).update(_analytes(rule_set, resource, mine))
    records = read_records(gateway, patients, FetchReport(), scope) if patients else {}
    trends = trends_by_patient(rule_set, [r for rs in records.values() for r in rs], wanted)
    items = [
        _review_item(kind, resource, mine, findings, trends, rule_set, wanted)
        for kind, resource, mine in drafts
    ]
    items.sort(
        key=lambda i: (
            -SEVERITY_RANK[i.severity],
            KIND_ORDER.index(i.kind),
            not i.severely_overdue,
            i.since or date.max,
            i.task_id,
        )
    )
    return items


_Draft = tuple[str, Resource, list[Resource]]
"""A queue item before it is read in full: its kind, its subject and the Flags it covers."""


def _drafts(
    tasks: Sequence[Resource],
    flags: Sequence[Resource],
    flag_events: Mapping[str, WorkflowEventRecord],
    today: date,
) -> list[_Draft]:
    """What the queue holds, by kind, each active Flag once (in a Task's item, or its own)."""
    flags_by_obs = {flag_observation(f): f for f in flags}
    flags_by_ref = {reference_of(f): f for f in flags}
    covered: set[str] = set()
    drafts: list[_Draft] = []
    for task in tasks:
        stage = stage_of(task)
        if code_of(task) == GP_TASK_CODE and stage is Stage.ESCALATED_GP:
            mine = [
                flags_by_ref[r]
                for r in references_in(typed_entries(task["input"], "flag"))
                if r in flags_by_ref
            ]
            drafts.append(("gp-escalation", task, mine))
        elif stage is Stage.AWAITING_PHARMACIST:
            mine = [flags_by_obs[o] for o in results_of(task) if o in flags_by_obs]
            kind = "prescribing" if code_of(task) == "prescribing-review" else "result"
            drafts.append((kind, task, mine))
        elif stage is Stage.NON_ENGAGEMENT:
            drafts.append(("non-engagement", task, []))
        elif (
            code_of(task) == ARRANGEMENT_TASK_CODE
            and stage is Stage.MONITORED_ELSEWHERE
            and (review := due_of(task)) is not None
            and review <= today
        ):
            drafts.append(("monitored-elsewhere", task, []))
        else:
            continue
        covered |= {f["id"] for f in drafts[-1][2]}
    for flag in flags:
        if (
            flag["id"] not in covered
            and flag_stage(flag, flag_events.get(flag["id"])) is Stage.AWAITING_PHARMACIST
        ):
            drafts.append(("flag", flag, [flag]))
    return drafts


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
    for test in tests_of(resource):
        spec = rules.catalogue.tests.get(test)
        found |= set(spec.analytes) if spec is not None else set()
    for item in (resource, *flags):
        rule = rule_of(item)
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
    patient = patient_of(resource)
    finding = findings.get(resource["id"])
    summaries = [
        FlagSummary(
            flag_id=str(f["id"]),
            version=version_of(f),
            severity=flag_severity(f, findings.get(f["id"])),
            text=str((f.get("code") or {}).get("text", "")),
            observation=flag_observation(f),
            since=parse_date((f.get("period") or {}).get("start")),
        )
        for f in flags
    ]
    severities = [s.severity for s in summaries if s.severity is not None]
    if finding is not None and finding.severity is not None and kind != "flag":
        severities.append(finding.severity)
    rule = rule_of(resource)
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
        since = due_of(resource)
    results = (
        [s.observation for s in summaries if s.observation] if is_flag else results_of(resource)
    )
    return ReviewItem(
        kind=kind,
        task_id=str(resource["id"]),
        version=version_of(resource),
        patient=patient,
        practice=finding.practice if finding is not None else None,
        stage=Stage.AWAITING_PHARMACIST if is_flag else stage_of(resource),
        drug_group=drug_group_of(resource, finding),
        medication=None if is_flag else (resource.get("focus") or {}).get("reference"),
        rule=rule,
        description=str(
            (resource.get("code") or {}).get("text", "")
            if is_flag
            else resource.get("description", "")
        ),
        severity=max(severities, key=lambda s: s.rank) if severities else None,
        source=source_of(resource) or next((source_of(f) for f in flags if source_of(f)), None),
        since=since,
        flags=summaries,
        results=results,
        trend=[tr for tr in trends.get(patient, []) if tr.analyte in analytes],
        thresholds=thresholds,
        severely_overdue=is_severely_overdue(resource),
    )
