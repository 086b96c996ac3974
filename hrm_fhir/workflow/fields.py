"""Reading the fields of the resources the workflow writes (Task, Flag, Communication,
Patient): pure functions of plain dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.values import parse_date
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.domain import Severity
from hrm_fhir.errors import (
    WorkflowError,
    WorkflowNotFoundError,
)
from hrm_fhir.programme import (
    Action,
    Actor,
    Stage,
    require_practice,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.workflow.resources import (
    Resource,
)
from hrm_fhir.workflow.views import (
    HistoryItem,
    PatientDetails,
)

NO_PATIENT = "the FHIR server has no such Patient"
"""What a read of an unknown patient, or of another practice's, is told."""
SEVERITY_RANK: dict[Severity | None, int] = {None: 0, **{s: s.rank for s in Severity}}
"""Severities ranked for sorting, no severity lowest."""


def version_of(resource: Mapping[str, Any]) -> str | None:
    """The resource's ``meta.versionId``."""
    value = (resource.get("meta") or {}).get("versionId")
    return str(value) if value is not None else None


def reference_of(resource: Mapping[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def code_of(resource: Mapping[str, Any]) -> str:
    codings = (resource.get("code") or {}).get("coding") or [{}]
    return str(codings[0].get("code") or "")


def typed_entries(entries: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    """Task input/output entries of our type ``kind``."""
    return [
        e
        for e in entries
        if any(c.get("code") == kind for c in (e.get("type") or {}).get("coding") or ())
    ]


def references_in(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(e["valueReference"]["reference"]) for e in entries if "valueReference" in e]


def tests_of(task: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(e["valueCodeableConcept"]["coding"][0]["code"])
        for e in typed_entries(task.get("input", ()), "required-test")
        if (e.get("valueCodeableConcept") or {}).get("coding")
    )


def rule_of(resource: Mapping[str, Any]) -> str:
    """``<rule-id>@<version>#<check>`` from the rule extension (or a GP Task's rule input)."""
    for ext in resource.get("extension", ()):
        if ext.get("url") == t.RULE_EXTENSION:
            return str(ext.get("valueString", ""))
    found = typed_entries(resource.get("input", ()), "rule")
    return str(found[0].get("valueString", "")) if found else ""


def source_of(resource: Mapping[str, Any]) -> str | None:
    for ext in resource.get("extension", ()):
        if ext.get("url") == t.SOURCE_EXTENSION:
            return str(ext.get("valueUri"))
    return None


def patient_of(resource: Mapping[str, Any]) -> str:
    holder = resource.get("for") or resource.get("subject") or {}
    reference = holder.get("reference")
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise WorkflowError(f"{reference_of(resource)} is not about a patient")
    return reference


def due_of(task: Mapping[str, Any]) -> date | None:
    return parse_date(((task.get("restriction") or {}).get("period") or {}).get("end"))


def overdue_days(due: date | None, as_of: date) -> int:
    return max(0, (as_of - due).days) if due is not None else 0


def is_severely_overdue(task: Mapping[str, Any]) -> bool:
    """Whether the sweep marked a monitoring Task severely overdue."""
    return any(
        ext.get("url") == t.SEVERELY_OVERDUE_EXTENSION and ext.get("valueBoolean") is True
        for ext in task.get("extension", ())
    )


def results_of(task: Mapping[str, Any]) -> list[str]:
    """Observations that satisfied the Task (outputs) or that it is about (evidence)."""
    refs = references_in(typed_entries(task.get("output", ()), "result"))
    refs += references_in(typed_entries(task.get("input", ()), "evidence"))
    return list(dict.fromkeys(r for r in refs if r.startswith("Observation/")))


def flag_observation(flag: Mapping[str, Any]) -> str | None:
    for ext in flag.get("extension", ()):
        if ext.get("url") == t.FLAG_DETAIL:
            return str((ext.get("valueReference") or {}).get("reference"))
    return None


def flag_severity(flag: Mapping[str, Any], finding: FindingRecord | None) -> Severity | None:
    if finding is not None and finding.severity is not None:
        return finding.severity
    suffix = code_of(flag).rpartition("-")[2]
    return next((s for s in Severity if s.value == suffix), None)


def org_id(practice: str | None) -> str:
    """A practice given as ``x`` or ``Organization/x``, as the bare id a Scope takes."""
    return (practice or "").removeprefix("Organization/")


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
        reference=reference_of(resource),
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


def history_of(
    communications: Iterable[Resource], events: Iterable[WorkflowEventRecord]
) -> list[HistoryItem]:
    """Contact attempts from the server, and the other actions from the ledger, oldest first."""
    items = [contact_item(c) for c in communications]
    items += [_event_item(e) for e in events if e.action != Action.CONTACT.value]
    return sorted(items, key=lambda item: item.at)


def general_practitioners_of(patient: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(
        str(gp["reference"])
        for gp in patient.get("generalPractitioner", ())
        if str(gp.get("reference", "")).startswith("Organization/")
    )


def drug_group_of(task: Mapping[str, Any], finding: FindingRecord | None) -> str:
    if finding is not None:
        return finding.drug_group
    named = typed_entries(task.get("input", ()), "drug-group")
    return str(named[0].get("valueString")) if named else rule_of(task).partition("@")[0]


def test_title(rules: RuleSet, test: str) -> str:
    found = rules.catalogue.tests.get(test)
    return found.title if found is not None else test


def flag_stage(flag: Mapping[str, Any], event: WorkflowEventRecord | None) -> Stage:
    """A Flag's stage: completed once inactive; else as the last sign-off left it."""
    if flag.get("status") != "active":
        return Stage.COMPLETED
    if event is not None and event.stage_after is not None:
        return Stage(event.stage_after)
    return Stage.AWAITING_PHARMACIST


def patient_in_reach(
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
