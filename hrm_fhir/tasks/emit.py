"""Idempotent, convergent writeback of Tasks and Flags, recorded in the ledger.

The sweep hands over what the findings want on the server (``desired``), what the ledger says
is open, and the server's own copies of those resources (read in bulk); ``plan`` decides,
purely, what to create, repair, update or close, so a dry run plans exactly what a real run
does; ``apply`` does it:

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import FindingRecord, ResourceType, WriteAction, WriteOutcome
from hrm_fhir.domain import Finding, FindingKind, ResourceRef
from hrm_fhir.errors import FHIRError, FHIRFatalError, VersionConflict
from hrm_fhir.programme import TECHNICIAN_STAGES, Stage, stage_of
from hrm_fhir.tasks.build import PHARMACIST, TECHNICIANS, resource_body, validated

Resource = dict[str, Any]
CONFLICT_RETRIES = 3
BATCH_SIZE = 100
LEDGER_CHUNK = 500
"""Ledger rows for resources already as wanted are committed this many at a time."""
REPAIR_REASON = "recreated: the server no longer held it"
MONITORED_ELSEWHERE = "monitored elsewhere"
"""Why a routine monitoring Task closes when another organisation monitors the drug group."""
TERMINAL_TASK = frozenset({"completed", "cancelled", "failed", "entered-in-error", "rejected"})
_MANAGED = {
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
    out = {key: resource[key] for key in _MANAGED[kind] if key in resource}
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


class Writer:
    """Applies a plan through the gateway and records every step in the ledger."""

    def __init__(
        self,
        gateway: FHIRGateway,
        sessions: sessionmaker[Session],
        *,
        sweep_id: int,
        as_of: date,
        practice_of: Callable[[str], str | None],
        clock: Callable[[], datetime],
    ) -> None:
        self._gateway = gateway
        self._sessions = sessions
        self._sweep_id = sweep_id
        self._as_of = as_of
        self._practice_of = practice_of
        self._clock = clock

    def apply(self, work: Plan, contexts: Mapping[str, PatientContext]) -> Counts:
        """Every write of the plan; ledger rows are committed as each write lands, so a sweep
        that stops half way keeps what it did. A failed write is audited and counted. New and
        repaired resources are written in batches; nothing is read first (the plan was made
        against the server's copies), except to re-apply a change after a version conflict.
        """
        counts = Counts(unchanged=work.unchanged)
        for start in range(0, len(work.adopts), LEDGER_CHUNK):
            chunk = work.adopts[start : start + LEDGER_CHUNK]
            with self._sessions.begin() as session:
                for wanted, current in chunk:
                    self._open(session, wanted, current, version=_version(current), action=None)
            counts.unchanged += len(chunk)
        for wanted, error in work.invalid:
            invalid = FHIRFatalError(error)
            self._failed(counts, wanted.finding.identifier, wanted.resource_type, invalid)
        for items, repair in ((work.creates, False), (work.repairs, True)):
            for start in range(0, len(items), BATCH_SIZE):
                self._create_batch(items[start : start + BATCH_SIZE], counts, repair=repair)
        for wanted, current in work.updates:
            try:
                self._update(wanted, current, counts)
            except FHIRError as exc:
                self._failed(counts, wanted.finding.identifier, wanted.resource_type, exc)
        for closure in work.closes:
            try:
                self._close(closure, contexts.get(closure.patient), counts)
            except FHIRError as exc:
                self._failed(counts, closure.identifier, closure.resource_type, exc)
        return counts

    def _update(self, wanted: Desired, current: Resource, counts: Counts) -> None:
        """A resource that differs from what is wanted: rewrite the service's own fields."""
        written, version = self._put(_merge(current, wanted.resource), _version(current), wanted)
        with self._sessions.begin() as session:
            self._open(session, wanted, written, version=version, action=WriteAction.UPDATE)
        counts.updated += 1

    def _create_batch(self, chunk: list[Desired], counts: Counts, *, repair: bool) -> None:
        """PUT resources by id in one batch Bundle; each entry succeeds or fails alone."""
        entries = [
            {"resource": w.resource, "request": {"method": "PUT", "url": w.key}} for w in chunk
        ]
        try:
            reply = self._gateway.transaction(
                {"resourceType": "Bundle", "type": "batch", "entry": entries}
            )
        except FHIRError as exc:
            for wanted in chunk:
                self._failed(counts, wanted.finding.identifier, wanted.resource_type, exc)
            return
        responses = [entry.get("response") or {} for entry in reply.get("entry") or ()]
        failures: list[tuple[Desired, FHIRError]] = []
        with self._sessions.begin() as session:
            for n, wanted in enumerate(chunk):
                response = responses[n] if n < len(responses) else {}
                status = str(response.get("status", ""))
                if status.startswith("2"):
                    self._open(
                        session,
                        wanted,
                        wanted.resource,
                        version=_etag_version(response.get("etag")),
                        action=WriteAction.CREATE,
                        reason=REPAIR_REASON if repair else None,
                    )
                    if repair:
                        counts.repaired += 1
                    else:
                        counts.created += 1
                else:
                    code = int(status[:3]) if status[:3].isdigit() else None
                    problem = f"batch entry: {status or 'no response'}"
                    failures.append((wanted, FHIRFatalError(problem, status=code)))
        for wanted, error in failures:
            self._failed(counts, wanted.finding.identifier, wanted.resource_type, error)

    def _failed(
        self, counts: Counts, identifier: str, resource_type: ResourceType, error: FHIRError
    ) -> None:
        counts.errors += 1
        with self._sessions.begin() as session:
            existing = ledger.find_finding(session, identifier)
            conflict = isinstance(error, VersionConflict)
            ledger.record_write(
                session,
                sweep_id=self._sweep_id,
                resource_type=resource_type,
                resource_id=identifier,
                action=WriteAction.UPDATE if existing else WriteAction.CREATE,
                outcome=WriteOutcome.CONFLICT if conflict else WriteOutcome.FAILED,
                reason="write failed; retried at the next sweep",
                now=self._clock(),
                http_status=error.status,
                detail=str(error),
                finding_identifier=identifier,
            )

    def _close(self, closure: Closure, context: PatientContext | None, counts: Counts) -> None:
        kind, rid = closure.resource_type.value, closure.resource_id
        version: str | None = None
        status = "unknown"
        for attempt in range(CONFLICT_RETRIES + 1):
            current = closure.current if attempt == 0 else self._gateway.read(kind, rid)
            if current is None:
                status = "missing"
                break
            closed = _closed(current, closure, context, self._as_of)
            if closed is None:
                status, version = str(current.get("status")), _version(current)
                break
            try:
                result = self._gateway.update(closed, if_match=_version(current))
            except VersionConflict:
                if attempt == CONFLICT_RETRIES:
                    raise
                continue
            status, version = str(closed["status"]), result.version_id
            with self._sessions.begin() as session:
                action = WriteAction.CLOSE if kind == "Flag" else WriteAction.CANCEL
                if closed["status"] == "in-progress":
                    action = WriteAction.UPDATE
                self._audit(
                    session,
                    closure.resource_type,
                    rid,
                    action,
                    version,
                    closure.reason,
                    closure.identifier,
                )
            break
        with self._sessions.begin() as session:
            ledger.close_finding(
                session,
                closure.identifier,
                reason=closure.reason,
                status=status,
                version_id=version,
                sweep_id=self._sweep_id,
                now=self._clock(),
            )
        counts.closed += 1

    def _put(
        self, body: Resource, version: str | None, wanted: Desired
    ) -> tuple[Resource, str | None]:
        """PUT with If-Match; on a conflict re-read, re-apply our fields and try again."""
        kind, rid = body["resourceType"], body["id"]
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                result = self._gateway.update(body, if_match=version)
                return result.resource or body, result.version_id
            except VersionConflict:
                if attempt == CONFLICT_RETRIES:
                    raise
                current = self._gateway.read(kind, rid)
                body = wanted.resource if current is None else _merge(current, wanted.resource)
                version = None if current is None else _version(current)
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(
        self,
        session: Session,
        wanted: Desired,
        written: Resource,
        *,
        version: str | None,
        action: WriteAction | None,
        reason: str | None = None,
    ) -> None:
        rid = wanted.resource["id"]
        existing = ledger.find_finding(session, wanted.finding.identifier)
        if existing is not None and existing.closed_at is None:
            ledger.record_finding_write(
                session,
                wanted.finding,
                status=str(written.get("status", "")),
                content_hash=wanted.digest,
                version_id=version,
            )
        else:
            ledger.open_finding(
                session,
                wanted.finding,
                practice=self._practice_of(wanted.finding.patient),
                resource_type=wanted.resource_type,
                resource_id=rid,
                status=str(written.get("status", "")),
                content_hash=wanted.digest,
                version_id=version,
                sweep_id=self._sweep_id,
                now=self._clock(),
            )
        if action is not None:
            self._audit(
                session,
                wanted.resource_type,
                rid,
                action,
                version,
                reason or wanted.finding.reason,
                wanted.finding.identifier,
            )

    def _audit(
        self,
        session: Session,
        resource_type: ResourceType,
        rid: str,
        action: WriteAction,
        version: str | None,
        reason: str,
        identifier: str,
    ) -> None:
        ledger.record_write(
            session,
            sweep_id=self._sweep_id,
            resource_type=resource_type,
            resource_id=rid,
            action=action,
            outcome=WriteOutcome.OK,
            reason=reason,
            now=self._clock(),
            version_id=version,
            finding_identifier=identifier,
        )


def _etag_version(etag: object) -> str | None:
    """``W/"3"`` -> ``3``."""
    if not isinstance(etag, str):
        return None
    return etag.removeprefix("W/").strip('"') or None


def _version(resource: Resource) -> str | None:
    value = (resource.get("meta") or {}).get("versionId")
    return str(value) if value is not None else None


def _merge(current: Resource, wanted: Resource) -> Resource:
    """The server copy with the service's own fields replaced by the wanted ones."""
    merged = {k: v for k, v in current.items() if k not in _MANAGED[wanted["resourceType"]]}
    merged.update({k: wanted[k] for k in _MANAGED[wanted["resourceType"]] if k in wanted})
    meta = dict(current.get("meta") or {})
    meta["tag"] = (wanted.get("meta") or {}).get("tag", [])
    merged["meta"] = {k: v for k, v in meta.items() if k in ("tag", "profile", "security")}
    if wanted["resourceType"] == "Flag":
        period = dict(current.get("period") or {})
        period["start"] = (wanted.get("period") or {}).get("start")
        merged["period"] = {k: v for k, v in period.items() if v is not None}
    return merged


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


def _closed(
    current: Resource, closure: Closure, context: PatientContext | None, as_of: date
) -> Resource | None:
    """The resource as it should be once the finding no longer holds; None if already so."""
    body = dict(current)
    body.pop("meta", None)
    reason = {"text": closure.reason}
    if current["resourceType"] == "Flag":
        if current.get("status") != "active":
            return None
        body["status"] = "inactive"
        body["period"] = {**(current.get("period") or {}), "end": as_of.isoformat()}
        return body
    if current.get("status") in TERMINAL_TASK:
        return None
    if closure.reason == "result received" and context is not None:
        # Booked, sample taken, chased or routed for non-engagement: the result moves the Task
        # on to the pharmacist. One already with the pharmacist or the GP stays as it is.
        if stage_of(current) in (Stage.AWAITING_PHARMACIST, Stage.ESCALATED_GP):
            return None
        tests = [
            i["valueCodeableConcept"]["coding"][0]["code"]
            for i in current.get("input", [])
            if i.get("valueCodeableConcept", {}).get("coding")
        ]
        outputs = [
            {
                "type": {"coding": [{"system": t.TASK_INPUT, "code": "result"}], "text": test},
                "valueReference": {"reference": context.latest_results[test][1]},
            }
            for test in tests
            if test in context.latest_results
        ]
        body["status"] = "in-progress"
        body["businessStatus"] = {
            "coding": [{"system": t.BUSINESS_STATUS, "code": "awaiting-pharmacist"}],
            "text": "result received: awaiting pharmacist review",
        }
        body["owner"] = PHARMACIST
        body["output"] = [*current.get("output", []), *outputs]
        return body
    code = "closed"
    if closure.reason == MONITORED_ELSEWHERE:
        # A Task with the pharmacist or the GP keeps its review; the chase stops.
        if stage_of(current) not in TECHNICIAN_STAGES:
            return None
        code = Stage.MONITORED_ELSEWHERE.value
    body["status"] = "cancelled"
    body["statusReason"] = reason
    body["businessStatus"] = {
        "coding": [{"system": t.BUSINESS_STATUS, "code": code}],
        "text": closure.reason,
    }
    return body
