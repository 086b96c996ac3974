"""Applies a writeback plan (``emit.plan``) through the gateway and records every step in the
ledger: creates with ``PUT`` in batches, repairs, updates with ``If-Match`` (re-read and
re-applied on a version conflict, a bounded number of times), and closes without deleting.
A failed write is recorded in the write audit and left open in the ledger, so the next sweep
tries again (see ``emit.py``'s docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime

from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import ResourceType, WriteAction, WriteOutcome
from hrm_fhir.errors import FHIRError, FHIRFatalError, VersionConflict
from hrm_fhir.programme import TECHNICIAN_STAGES, Stage, stage_of
from hrm_fhir.tasks.build import PHARMACIST
from hrm_fhir.tasks.emit import (
    MANAGED_FIELDS,
    MONITORED_ELSEWHERE,
    Closure,
    Counts,
    Desired,
    PatientContext,
    Plan,
    Resource,
)

CONFLICT_RETRIES = 3
BATCH_SIZE = 100
LEDGER_CHUNK = 500
"""Ledger rows for resources already as wanted are committed this many at a time."""
REPAIR_REASON = "recreated: the server no longer held it"
TERMINAL_TASK = frozenset({"completed", "cancelled", "failed", "entered-in-error", "rejected"})


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
    merged = {k: v for k, v in current.items() if k not in MANAGED_FIELDS[wanted["resourceType"]]}
    merged.update({k: wanted[k] for k in MANAGED_FIELDS[wanted["resourceType"]] if k in wanted})
    meta = dict(current.get("meta") or {})
    meta["tag"] = (wanted.get("meta") or {}).get("tag", [])
    merged["meta"] = {k: v for k, v in meta.items() if k in ("tag", "profile", "security")}
    if wanted["resourceType"] == "Flag":
        period = dict(current.get("period") or {})
        period["start"] = (wanted.get("period") or {}).get("start")
        merged["period"] = {k: v for k, v in period.items() if v is not None}
    return merged


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
