"""The evidence pack for one patient: what an inspector or indemnity reviewer asks for.

Pure: built from resources and ledger rows already read (``adapters/evidence_source.py`` reads
them), with no clock and no I/O. The sections, in order:

1. the monitoring schedule that applied: per drug group the patient is on, the rule pack in
   force, its schedules, thresholds and checks with their citations and verification, the
   therapy's start and phase anchor, and when each test was last done;
2. every test result considered, as the rules read it (normalised or not);
3. every Task and Flag the service wrote, with each stored version;
4. every contact attempt (the Communications based on those Tasks);
5. every decision and sign-off: Provenance about those Tasks and Flags, the workflow ledger's
   events and the findings ledger.

``as_of`` picks the rule packs and therapies, and cuts the record off at the end of that day in
the service's time zone: later results, versions, contacts and decisions are left out, and a finding
closed later is shown open. The patient's name, NHS number and birth date are read from the
Patient resource into the pack only; they are never stored in the ledger nor logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from hrm_fhir import clock
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.domain import (
    MatchMethod,
    PatientRecord,
    PatientRef,
    ResourceRef,
    Severity,
    Skipped,
)
from hrm_fhir.evaluation import evaluate_records
from hrm_fhir.programme import Stage, stage_of
from hrm_fhir.rules.catalogue import Catalogue
from hrm_fhir.rules.describe import Statement, statements
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.model import RulePack
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.therapy import Therapy
from hrm_fhir.terminology import BUSINESS_STATUS, USER_ROLE, WORKFLOW_ACTION
from hrm_fhir.workflow.fields import contact_details, contact_item, version_of
from hrm_fhir.workflow.queries import resource_item
from hrm_fhir.workflow.transaction import provenance_targets
from hrm_fhir.workflow.views import HistoryItem

Resource = dict[str, Any]
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EvidenceSource:
    """Everything read for one patient's pack (see ``adapters/evidence_source.py``)."""

    patient: Resource
    record: list[Resource]
    """The record the rules read: Patient, MedicationRequests, Medications, Observations..."""
    tasks: list[list[Resource]]
    """Every stored version of each Task the service wrote for the patient."""
    flags: list[list[Resource]]
    communications: list[Resource]
    provenance: list[Resource]
    events: list[WorkflowEventRecord]
    findings: list[FindingRecord]


@dataclass(frozen=True)
class PatientIdentity:
    """Read from the Patient resource for the pack; never stored in the ledger nor logged."""

    reference: str
    name: str
    nhs_number: str
    birth_date: date | None
    practice: str | None


@dataclass(frozen=True)
class TestDone:
    test: str
    title: str
    last_done: date | None
    observation: str | None


@dataclass(frozen=True)
class ScheduleApplied:
    """One drug group's rule pack as it applied to the patient on the as-of date."""

    drug_group: str
    rule: str
    """``<rule-id>@<version>``."""
    title: str
    status: str
    effective_from: date
    reviewed_by: str
    approved_on: str
    """Empty: not clinically signed off."""
    verified: bool
    """Every value in the pack is verified against its source."""
    current: bool
    therapy_start: date
    phase_anchor: date
    medication: str
    """The course's latest MedicationRequest."""
    ingredient: str
    matched_by: MatchMethod
    """How the prescription was recognised: by ``code`` or by name in the ``text``."""
    statements: list[Statement]
    tests: list[TestDone]


@dataclass(frozen=True)
class ResultConsidered:
    observation: str
    on: date
    analyte: str
    title: str
    value: float | None
    unit: str | None
    normalised: bool
    """The value is in the analyte's canonical unit, so thresholds compare it."""
    ref_low: float | None
    ref_high: float | None


@dataclass(frozen=True)
class Version:
    """One stored version of a Task or Flag."""

    version: str | None
    last_updated: datetime | None
    status: str
    business_status: str | None
    stage: Stage | None
    owner: str | None
    notes: list[str]
    """Notes added in this version (``author: text``)."""


@dataclass(frozen=True)
class WrittenResource:
    """A Task or Flag the service wrote, as it stood at the cut-off, with every version."""

    reference: str
    kind: str
    """The Task code (``monitoring-due``...) or ``flag``."""
    description: str
    rule: str
    source: str | None
    severity: Severity | None
    status: str
    stage: Stage | None
    period_start: str | None
    """A Flag's period, or a Task's due window (``restriction.period``)."""
    period_end: str | None
    versions: list[Version]


@dataclass(frozen=True)
class Agent:
    name: str
    username: str | None
    role: str | None
    type: str | None
    """``attester`` (sign-offs, decisions) or ``author`` (records)."""


@dataclass(frozen=True)
class Attestation:
    """A Provenance about the patient's Tasks or Flags: who did what, when and why."""

    reference: str
    recorded: datetime | None
    activity: str
    action: str | None
    agents: list[Agent]
    reason: str
    targets: list[str]
    """Versioned references (``Task/x/_history/4``) where the version is known."""
    sources: list[str]


@dataclass(frozen=True)
class LedgerEvent:
    at: datetime
    task_id: str
    actor: str
    role: str
    action: str
    stage_before: str | None
    stage_after: str | None
    detail: dict[str, Any]
    written: list[str]


@dataclass(frozen=True)
class LedgerFinding:
    identifier: str
    kind: str
    drug_group: str
    rule: str
    check: str
    severity: Severity | None
    due_date: date | None
    resource: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    reason: str


@dataclass(frozen=True)
class EvidencePack:
    patient: PatientIdentity
    as_of: date
    generated_at: datetime
    schedules: list[ScheduleApplied]
    results: list[ResultConsidered]
    skipped: list[Skipped]
    """Resources or values left out of the evaluation, and why."""
    tasks: list[WrittenResource]
    flags: list[WrittenResource]
    contacts: list[HistoryItem]
    provenance: list[Attestation]
    events: list[LedgerEvent]
    findings: list[LedgerFinding]


def build_pack(
    source: EvidenceSource,
    rules: RuleSet,
    *,
    as_of: date,
    generated_at: datetime,
) -> EvidencePack:
    """The evidence pack from what was read (see the module docstring for the cut-off)."""
    cutoff = clock.start_of(as_of + timedelta(days=1))
    evaluation = evaluate_records(rules, source.record, as_of)
    record = evaluation.record(PatientRef(f"Patient/{source.patient['id']}"))
    evaluator = evaluation.evaluator
    findings = {row.identifier: row for row in source.findings}
    contacts = [contact_item(c) for c in source.communications]
    return EvidencePack(
        patient=_identity(source.patient, record),
        as_of=as_of,
        generated_at=generated_at.astimezone(UTC),
        schedules=_schedules(evaluator, record),
        results=_results(rules, record, as_of),
        skipped=evaluation.skipped,
        tasks=_written(source.tasks, findings, cutoff),
        flags=_written(source.flags, findings, cutoff),
        contacts=sorted((c for c in contacts if c.at < cutoff), key=lambda c: c.at),
        provenance=_attestations(source.provenance, cutoff),
        events=[
            _event(e) for e in sorted(source.events, key=lambda e: (e.at, e.id)) if e.at < cutoff
        ],
        findings=_ledger_findings(source.findings, cutoff),
    )


def _identity(patient: Mapping[str, Any], record: PatientRecord) -> PatientIdentity:
    details = contact_details(patient)
    mapped = record.patient
    return PatientIdentity(
        reference=f"Patient/{patient['id']}",
        name=details.name,
        nhs_number=details.nhs_number,
        birth_date=mapped.birth_date if mapped else None,
        practice=mapped.practice if mapped else None,
    )


def _schedules(evaluator: Evaluator, record: PatientRecord) -> list[ScheduleApplied]:
    """The pack in force for each drug group the patient has a course of."""
    packs = {pack.drug_group: pack for pack in evaluator.packs}
    therapies = evaluator.therapies(record)
    latest = evaluator.latest_by_test(record)
    return [
        _applied(packs[group], therapies[group], evaluator.rules.catalogue, latest)
        for group in sorted(therapies.keys() & packs.keys())
    ]


def _applied(
    pack: RulePack,
    therapy: Therapy,
    catalogue: Catalogue,
    latest: Mapping[str, tuple[date, ResourceRef]],
) -> ScheduleApplied:
    tests = []
    for test in dict.fromkeys(test for s in pack.schedules for test in s.tests):
        on, observation = latest.get(test, (None, None))
        tests.append(TestDone(test, catalogue.tests[test].title, on, observation))
    return ScheduleApplied(
        drug_group=pack.drug_group,
        rule=pack.ref,
        title=pack.title,
        status=pack.status,
        effective_from=pack.effective_from,
        reviewed_by=pack.reviewed_by,
        approved_on=pack.approved_on,
        verified=pack.verified,
        current=therapy.current,
        therapy_start=therapy.start,
        phase_anchor=therapy.anchor,
        medication=therapy.latest.ref,
        ingredient=therapy.ingredient,
        matched_by=therapy.method,
        statements=statements(pack, catalogue),
        tests=tests,
    )


def _results(rules: RuleSet, record: PatientRecord, as_of: date) -> list[ResultConsidered]:
    analytes = rules.catalogue.analytes
    return [
        ResultConsidered(
            observation=r.ref,
            on=r.effective,
            analyte=r.analyte,
            title=analytes[r.analyte].title,
            value=r.value,
            unit=r.unit,
            normalised=r.normalised,
            ref_low=r.ref_low,
            ref_high=r.ref_high,
        )
        for r in sorted(record.results, key=lambda r: (r.effective, r.analyte, r.ref))
        if r.effective <= as_of
    ]


def _instant(value: object) -> datetime | None:
    """A FHIR instant or dateTime as an aware datetime (UTC when no offset); None if unusable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _last_updated(resource: Mapping[str, Any]) -> datetime | None:
    return _instant((resource.get("meta") or {}).get("lastUpdated"))


def _order(version: Mapping[str, Any]) -> tuple[datetime, int]:
    """Versions oldest first: by ``meta.lastUpdated``, then by a numeric versionId."""
    number = version_of(version) or ""
    return _last_updated(version) or _NEVER, int(number) if number.isdigit() else 0


def _written(
    histories: Iterable[Sequence[Resource]],
    findings: Mapping[str, FindingRecord],
    cutoff: datetime,
) -> list[WrittenResource]:
    """Each resource as its last version before the cut-off, with the versions up to then."""
    out = []
    for history in histories:
        kept = sorted((v for v in history if (_last_updated(v) or _NEVER) < cutoff), key=_order)
        if kept:
            out.append(_resource(kept, findings.get(str(kept[-1]["id"]))))
    return sorted(out, key=lambda r: (r.versions[0].last_updated or _NEVER, r.reference))


def _resource(versions: Sequence[Resource], finding: FindingRecord | None) -> WrittenResource:
    latest = versions[-1]
    item = resource_item(latest, finding)
    holder = latest if latest["resourceType"] == "Flag" else latest.get("restriction") or {}
    period = holder.get("period") or {}
    return WrittenResource(
        reference=item.reference,
        kind=item.kind,
        description=item.description,
        rule=item.rule,
        source=item.source,
        severity=item.severity,
        status=item.status,
        stage=item.stage,
        period_start=period.get("start"),
        period_end=period.get("end"),
        versions=[_version(v, versions[n - 1] if n else None) for n, v in enumerate(versions)],
    )


def _version(resource: Mapping[str, Any], before: Mapping[str, Any] | None) -> Version:
    is_task = resource["resourceType"] == "Task"
    business = resource.get("businessStatus") or {}
    code = next(
        (c.get("code") for c in business.get("coding", ()) if c.get("system") == BUSINESS_STATUS),
        business.get("text"),
    )
    owner = resource.get("owner") or {}
    previous = (before or {}).get("note", [])
    return Version(
        version=version_of(resource),
        last_updated=_last_updated(resource),
        status=str(resource.get("status", "")),
        business_status=code,
        stage=stage_of(resource) if is_task else None,
        owner=owner.get("display") or owner.get("reference"),
        notes=[_note(n) for n in resource.get("note", []) if n not in previous],
    )


def _note(note: Mapping[str, Any]) -> str:
    author = note.get("authorString") or (note.get("authorReference") or {}).get("display")
    return f"{author}: {note.get('text', '')}" if author else str(note.get("text", ""))


def _attestations(resources: Iterable[Resource], cutoff: datetime) -> list[Attestation]:
    found = [_attestation(r) for r in resources]
    kept = [a for a in found if (a.recorded or _NEVER) < cutoff]
    return sorted(kept, key=lambda a: (a.recorded or _NEVER, a.reference))


def _attestation(resource: Mapping[str, Any]) -> Attestation:
    activity = resource.get("activity") or {}
    action = next(
        (c.get("code") for c in activity.get("coding", ()) if c.get("system") == WORKFLOW_ACTION),
        None,
    )
    return Attestation(
        reference=f"Provenance/{resource['id']}",
        recorded=_instant(resource.get("recorded")),
        activity=str(activity.get("text") or action or ""),
        action=action,
        agents=[_agent(a) for a in resource.get("agent", ())],
        reason="; ".join(str(r.get("text", "")) for r in resource.get("reason", ())),
        targets=[f"{ref}/_history/{v}" if v else ref for ref, v in provenance_targets(resource)],
        sources=[
            str((e.get("what") or {}).get("reference", "")) for e in resource.get("entity", ())
        ],
    )


def _agent(agent: Mapping[str, Any]) -> Agent:
    who = agent.get("who") or {}
    roles = [
        c.get("code")
        for concept in agent.get("role", ())
        for c in concept.get("coding", ())
        if c.get("system") == USER_ROLE
    ]
    kinds = [c.get("code") for c in (agent.get("type") or {}).get("coding", ())]
    return Agent(
        name=str(who.get("display") or who.get("reference") or ""),
        username=(who.get("identifier") or {}).get("value"),
        role=roles[0] if roles else None,
        type=kinds[0] if kinds else None,
    )


def _event(event: WorkflowEventRecord) -> LedgerEvent:
    return LedgerEvent(
        at=event.at,
        task_id=event.task_id,
        actor=event.actor,
        role=event.role,
        action=event.action,
        stage_before=event.stage_before,
        stage_after=event.stage_after,
        detail=orjson.loads(event.detail),
        written=event.written.split(),
    )


def _ledger_findings(rows: Iterable[FindingRecord], cutoff: datetime) -> list[LedgerFinding]:
    """The findings opened by the cut-off; one closed after it is shown open."""
    out = []
    for row in sorted(rows, key=lambda r: (r.opened_at, r.identifier)):
        if row.opened_at >= cutoff:
            continue
        closed = row.closed_at is not None and row.closed_at < cutoff
        out.append(
            LedgerFinding(
                identifier=row.identifier,
                kind=row.kind.value,
                drug_group=row.drug_group,
                rule=row.rule,
                check=row.check,
                severity=row.severity,
                due_date=row.due_date,
                resource=f"{row.resource_type.value}/{row.resource_id}",
                opened_at=row.opened_at,
                closed_at=row.closed_at if closed else None,
                close_reason=row.close_reason if closed else None,
                reason=row.reason,
            )
        )
    return out
