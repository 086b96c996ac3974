"""Idempotent, convergent writeback of Tasks and Flags, recorded in the ledger.

The sweep hands over what the findings want on the server (``desired``), what the ledger says
is open, and the server's own copies of those resources (read in bulk); ``plan`` decides,
purely, what to create, repair, update or close, so a dry run plans exactly what a real run
does; ``Writer.apply`` (``writer.py``) does it:

- every resource has a deterministic id (the finding's business identifier) and is created with
  ``PUT``, so a rerun or a sweep killed half way can never duplicate it;
- the server is trusted, not the ledger: a resource the ledger holds open that the server lost
  is written again (repaired); one already as wanted is recorded, not rewritten (so a rerun
  after a crash between the write and the ledger commit converges);
- updates change only the fields the service owns and send ``If-Match``; on a version conflict
  the resource is re-read and the change re-applied, a bounded number of times;
- workflow fields other people own (status, businessStatus, owner, notes, outputs) are kept;
- closing never deletes: Tasks are cancelled or moved on, Flags made inactive, with a reason;
- a failed write is recorded in the write audit and left open in the ledger, so the next sweep
  tries again.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from hrm_fhir import terminology as t
from hrm_fhir.adapters.store.records import FindingRecord, ResourceType
from hrm_fhir.domain import Finding, FindingKind, ResourceRef
from hrm_fhir.programme import Stage
from hrm_fhir.tasks.build import TECHNICIANS, resource_body, validated

Resource = dict[str, Any]
MONITORED_ELSEWHERE = "monitored elsewhere"
"""Why a routine monitoring Task closes when another organisation monitors the drug group."""
MANAGED_FIELDS = {
    "Task": (
        "identifier",
        "meta",
        "text",
        "extension",
        "intent",
        "priority",
        "code",
        "description",
        "for",
        "focus",
        "requester",
        "restriction",
        "input",
    ),
    "Flag": ("identifier", "meta", "text", "extension", "category", "code", "subject", "author"),
}


def managed(resource: Resource) -> Resource:
    """The fields the service owns on a Task or Flag (``meta`` reduced to our tag)."""
    kind = resource["resourceType"]
    out = {key: resource[key] for key in MANAGED_FIELDS[kind] if key in resource}
    tags = [
        tag for tag in (resource.get("meta") or {}).get("tag", []) if tag.get("system") == t.TAG
    ]
    out["meta"] = {"tag": tags}
    if "text" in out:
        # Servers re-serialise XHTML (HAPI writes ' for &#x27; and &quot; for "): compare text.
        out["text"] = html.unescape(str(out["text"].get("div", "")))
    if kind == "Flag":
        out["period.start"] = (resource.get("period") or {}).get("start")
    return out


def content_hash(resource: Resource) -> str:
    return hashlib.sha256(orjson.dumps(managed(resource), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Desired:
    finding: Finding
    resource: Resource
    digest: str

    @property
    def resource_type(self) -> ResourceType:
        return ResourceType(self.resource["resourceType"])

    @property
    def key(self) -> str:
        """``Type/id`` on the server."""
        return f"{self.resource['resourceType']}/{self.resource['id']}"


def desired_resources(
    findings: Iterable[Finding], as_of: date, window_days: int
) -> dict[str, Desired]:
    """The Task or Flag each finding wants on the server, keyed by business identifier."""
    out: dict[str, Desired] = {}
    for finding in findings:
        body = resource_body(finding, as_of, window_days)
        out[finding.identifier] = Desired(finding, body, content_hash(body))
    return out


@dataclass(frozen=True)
class PatientContext:
    """What closing a finding needs to know about its patient now."""

    alive: bool
    current_groups: frozenset[str]
    """The drug groups still monitored: on current therapy, or within a schedule that continues
    after stopping (``Evaluator.followed``)."""
    latest_results: Mapping[str, tuple[date, ResourceRef]]
    """Per test id, the newest result that shows it done."""
    elsewhere: frozenset[str] = frozenset()
    """Drug groups another organisation monitors (shared care): no routine Tasks for them."""


@dataclass(frozen=True)
class Closure:
    identifier: str
    patient: str
    resource_type: ResourceType
    resource_id: str
    reason: str
    kind: FindingKind
    current: Resource | None = None
    """The server's copy; None when the server does not hold it."""


@dataclass
class Plan:
    """Every write a sweep will make, decided against the server's own copies."""

    creates: list[Desired] = field(default_factory=list)
    """New findings: the server does not hold their resource."""
    repairs: list[Desired] = field(default_factory=list)
    """Findings the ledger holds open whose resource the server has lost: written again."""
    updates: list[tuple[Desired, Resource]] = field(default_factory=list)
    """Resources whose service-owned fields differ from what is wanted, with the server copy."""
    adopts: list[tuple[Desired, Resource]] = field(default_factory=list)
    """Resources already as wanted that the ledger does not record so (a sweep stopped between
    the write and the ledger commit): recorded, not rewritten."""
    closes: list[Closure] = field(default_factory=list)
    invalid: list[tuple[Desired, str]] = field(default_factory=list)
    """Resources that are not valid FHIR: never written, each counted as an error."""
    unchanged: int = 0

    def counts(self) -> Counts:
        """What applying the plan counts when every write succeeds."""
        return Counts(
            created=len(self.creates),
            updated=len(self.updates),
            closed=len(self.closes),
            unchanged=self.unchanged + len(self.adopts),
            repaired=len(self.repairs),
            errors=len(self.invalid),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "create": [d.key for d in self.creates],
            "repair": [d.key for d in self.repairs],
            "update": [d.key for d, _ in self.updates],
            "close": [
                {"resource": f"{c.resource_type.value}/{c.resource_id}", "reason": c.reason}
                for c in self.closes
            ],
            "invalid": [{"resource": d.key, "error": error} for d, error in self.invalid],
            "unchanged": self.unchanged + len(self.adopts),
        }


def close_reason(record: FindingRecord, context: PatientContext | None) -> str:
    """Why an open finding no longer holds."""
    if context is None or not context.alive:
        return "patient deceased" if context is not None else "patient no longer in scope"
    if record.drug_group not in context.current_groups:
        return "drug stopped"
    if record.kind in (FindingKind.DUE, FindingKind.OVERDUE):
        if record.drug_group in context.elsewhere:
            return MONITORED_ELSEWHERE
        return "result received"
    if record.kind is FindingKind.OUT_OF_RANGE:
        return "resolved: latest result no longer out of range"
    if record.kind is FindingKind.INCOMPLETE:
        return "resolved: the missing data is now on record"
    return "no longer applies"


def plan(
    desired: Mapping[str, Desired],
    open_records: Iterable[FindingRecord],
    contexts: Mapping[str, PatientContext],
    server: Mapping[str, Resource],
) -> Plan:
    """Creates, repairs, updates and closes that make the server match the findings (pure).

    ``server`` holds the server's current copy, keyed ``Type/id``, of every resource involved
    that the server holds: one it lacks is not on the server. The server is trusted, not the
    ledger: a resource the ledger holds open but the server lost is repaired, and one that
    differs from what is wanted is updated, whatever the ledger last recorded. A routine Task
    cancelled because another organisation monitored the drug is reopened (an update) when its
    finding holds again.
    """
    result = Plan()
    open_by_id = {record.identifier: record for record in open_records}
    for identifier in sorted(desired):
        wanted = desired[identifier]
        record = open_by_id.get(identifier)
        current = server.get(wanted.key)
        reopened = _resumed(current) if current is not None else None
        if reopened is None and current is not None and content_hash(current) == wanted.digest:
            if record is None or record.content_hash != wanted.digest:
                result.adopts.append((wanted, current))
            else:
                result.unchanged += 1
            continue
        error = _invalid(wanted)
        if error is not None:
            result.invalid.append((wanted, error))
        elif current is not None:
            result.updates.append((wanted, reopened or current))
        elif record is not None:
            result.repairs.append(wanted)
        else:
            result.creates.append(wanted)
    for identifier in sorted(set(open_by_id) - set(desired)):
        record = open_by_id[identifier]
        result.closes.append(
            Closure(
                identifier=identifier,
                patient=record.patient,
                resource_type=record.resource_type,
                resource_id=record.resource_id,
                reason=close_reason(record, contexts.get(record.patient)),
                kind=record.kind,
                current=server.get(f"{record.resource_type.value}/{record.resource_id}"),
            )
        )
    return result


def _invalid(wanted: Desired) -> str | None:
    """Why a resource is not valid FHIR (fhir.resources R4B), or None when it is."""
    try:
        validated(wanted.resource)
    except ValueError as exc:
        return f"not valid FHIR, not written: {exc.__class__.__name__}"
    return None


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0
    repaired: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "closed": self.closed,
            "unchanged": self.unchanged,
            "repaired": self.repaired,
            "errors": self.errors,
        }


def _resumed(current: Resource) -> Resource | None:
    """A routine Task cancelled because another organisation monitored the drug, reopened for
    the technicians now the finding holds again (the arrangement ended or its review date
    passed); None for any other resource."""
    stage = ((current.get("businessStatus") or {}).get("coding") or [{}])[0].get("code")
    if current.get("status") != "cancelled" or stage != Stage.MONITORED_ELSEWHERE.value:
        return None
    body = {k: v for k, v in current.items() if k != "statusReason"}
    body["status"] = "requested"
    body["businessStatus"] = {
        "coding": [{"system": t.BUSINESS_STATUS, "code": Stage.TO_CONTACT.value}],
        "text": "practice monitoring resumed",
    }
    body["owner"] = TECHNICIANS
    period = {k: v for k, v in (current.get("executionPeriod") or {}).items() if k != "end"}
    body["executionPeriod"] = period
    if not period:
        body.pop("executionPeriod")
    return body
