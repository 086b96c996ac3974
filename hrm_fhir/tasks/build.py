"""Turn findings into FHIR R4 Task and Flag resources (fhir.resources R4B models), purely.

- due / overdue monitoring, prescribing reviews, review-grade results and incomplete
  assessments (a rule that could not be assessed: the pharmacist finds the missing data) -> Task
- out-of-range results graded ``action`` or ``urgent`` -> Flag (never a Flag for overdue bloods)
Each resource's logical id is the finding's deterministic business identifier, so a rerun can
PUT the same id and never duplicate.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, NamedTuple

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.task import Task

from hrm_fhir import terminology as t
from hrm_fhir.domain import Finding, FindingKind, Severity

SERVICE = {"display": "hrm-fhir monitoring service"}
TECHNICIANS = {"display": "Practice monitoring technicians"}
PHARMACIST = {"display": "Practice pharmacist"}
_PRIORITY = {Severity.URGENT: "stat", Severity.ACTION: "urgent", Severity.REVIEW: "routine"}


def is_flag(finding: Finding) -> bool:
    """Out-of-range results at ``action`` or ``urgent`` are shown as Flags."""
    return finding.kind is FindingKind.OUT_OF_RANGE and finding.severity in (
        Severity.ACTION,
        Severity.URGENT,
    )


def resource_body(finding: Finding, as_of: date, window_days: int = 14) -> dict[str, Any]:
    """The Task or Flag a finding becomes, as JSON data (not yet validated)."""
    if is_flag(finding):
        return flag_body(finding)
    return task_body(finding, as_of, window_days)


def validated(body: dict[str, Any]) -> Task | Flag:
    """The fhir.resources model of a Task or Flag body; raises when the body is not valid FHIR."""
    model = Flag if body["resourceType"] == "Flag" else Task
    return model.model_validate(body)


def build_resource(finding: Finding, as_of: date, window_days: int = 14) -> Task | Flag:
    """The Task or Flag a finding becomes, validated."""
    return validated(resource_body(finding, as_of, window_days))


def _common(finding: Finding) -> dict[str, Any]:
    text = html.escape(finding.reason, quote=False).replace('"', "&quot;")
    div = f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{text}</p></div>'
    return {
        "id": finding.identifier,
        "meta": {"tag": [{"system": t.TAG, "code": "hrm-fhir"}]},
        "text": {"status": "generated", "div": div},
        "identifier": [{"system": t.FINDING_IDENTIFIER, "value": finding.identifier}],
    }


def _rule_extensions(finding: Finding) -> list[dict[str, Any]]:
    return [
        {"url": t.RULE_EXTENSION, "valueString": f"{finding.rule}#{finding.check}"},
        {"url": t.SOURCE_EXTENSION, "valueUri": finding.source},
    ]


class _TaskKind(NamedTuple):
    """What kind of Task a finding makes: its code and title, first stage, owner, priority."""

    code: str
    text: str
    status: str
    owner: dict[str, Any]
    priority: str


def _task_kind(finding: Finding) -> _TaskKind:
    """Monitoring due or overdue goes to the technicians (asap when severely overdue); a
    prescribing review, an incomplete assessment or a result review to the pharmacist."""
    if finding.kind in (FindingKind.DUE, FindingKind.OVERDUE):
        priority = "urgent" if finding.kind is FindingKind.OVERDUE else "routine"
        if finding.severely_overdue:
            priority = "asap"
        return _TaskKind(
            "monitoring-due", "Drug monitoring blood test due", "to-contact", TECHNICIANS, priority
        )
    priority = _PRIORITY[finding.severity or Severity.REVIEW]
    if finding.kind is FindingKind.PRESCRIBING:
        code, text = "prescribing-review", "Prescribing safety review"
    elif finding.kind is FindingKind.INCOMPLETE:
        code, text = "assessment-incomplete", "Monitoring could not be assessed"
    else:
        code, text = "result-review", "Result review"
    return _TaskKind(code, text, "awaiting-pharmacist", PHARMACIST, priority)


def _task_inputs(finding: Finding) -> list[dict[str, Any]]:
    """The tests required, the data missing, the rule, its source and the evidence."""

    def typed(code: str) -> dict[str, Any]:
        return {"coding": [{"system": t.TASK_INPUT, "code": code}]}

    return [
        *(
            {
                "type": typed("required-test"),
                "valueCodeableConcept": {
                    "coding": [{"system": t.MONITORING_TEST, "code": test}],
                    "text": test,
                },
            }
            for test in finding.tests
        ),
        *({"type": typed("missing-data"), "valueString": m} for m in finding.missing),
        {"type": typed("rule"), "valueString": finding.rule},
        {"type": typed("source"), "valueUrl": finding.source},
        *(
            {"type": typed("evidence"), "valueReference": {"reference": r}}
            for r in finding.evidence
        ),
    ]


def task_body(finding: Finding, as_of: date, window_days: int = 14) -> dict[str, Any]:
    """A Task for monitoring that is due or overdue, a prescribing review or a result review."""
    kind = _task_kind(finding)
    extensions = _rule_extensions(finding)
    if finding.severely_overdue:
        extensions.append({"url": t.SEVERELY_OVERDUE_EXTENSION, "valueBoolean": True})
    body: dict[str, Any] = {
        "resourceType": "Task",
        **_common(finding),
        "extension": extensions,
        "status": "requested",
        "businessStatus": {
            "coding": [{"system": t.BUSINESS_STATUS, "code": kind.status}],
            "text": kind.status,
        },
        "intent": "order",
        "priority": kind.priority,
        "code": {"coding": [{"system": t.TASK_CODE, "code": kind.code}], "text": kind.text},
        "description": finding.reason,
        "for": {"reference": finding.patient},
        "focus": {"reference": finding.medication},
        "authoredOn": as_of.isoformat(),
        "requester": SERVICE,
        "owner": kind.owner,
        "input": _task_inputs(finding),
    }
    if finding.due_date is not None:
        start = finding.due_date - timedelta(days=window_days)
        body["restriction"] = {
            "period": {"start": start.isoformat(), "end": finding.due_date.isoformat()}
        }
    return body


def flag_body(finding: Finding) -> dict[str, Any]:
    """A Flag for an out-of-range result: what a clinician sees in the record."""
    observation = next((r for r in finding.evidence if r.startswith("Observation/")), None)
    extensions = _rule_extensions(finding)
    if observation is not None:
        extensions.append({"url": t.FLAG_DETAIL, "valueReference": {"reference": observation}})
    body: dict[str, Any] = {
        "resourceType": "Flag",
        **_common(finding),
        "extension": extensions,
        "status": "active",
        "category": [{"coding": [{"system": t.FLAG_CATEGORY, "code": "lab", "display": "Lab"}]}],
        "code": {
            "coding": [{"system": t.FLAG_CODE, "code": f"{finding.analyte}-{finding.severity}"}],
            "text": f"[{(finding.severity or Severity.ACTION).value.upper()}] {finding.reason}",
        },
        "subject": {"reference": finding.patient},
        "author": SERVICE,
    }
    if finding.observed_on is not None:
        body["period"] = {"start": finding.observed_on.isoformat()}
    return body


def build_bundle(findings: Iterable[Finding], as_of: date, window_days: int = 14) -> dict[str, Any]:
    """A collection Bundle of every Task and Flag, as JSON-ready data."""
    entries = []
    for finding in findings:
        resource = build_resource(finding, as_of, window_days)
        name = f"{t.FINDING_IDENTIFIER}/{finding.identifier}"
        full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"
        entries.append({"fullUrl": full_url, "resource": resource})
    bundle = Bundle.model_validate(
        {"resourceType": "Bundle", "type": "collection", "entry": entries}
    )
    dumped: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return dumped
