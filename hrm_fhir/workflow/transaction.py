"""The workflow's write engine: one action checked, planned and written in one transaction.

Every action checks the actor's role (WorkflowPermissionError), reads its subject
(WorkflowNotFoundError), checks the patient's practice (WorkflowNotFoundError, as for no Task, so
another practice's Tasks and patients are not revealed to exist), compares the subject's version
with the one the user loaded (WorkflowConflictError), plans the change (a pure ``plan_*`` of
``plans.py``; WorkflowError when the step is not allowed), and then writes everything in one
transaction Bundle whose updates carry ``ifMatch``: the Task at the user's version, any Flag or
related Task at the version just read. A stale version anywhere fails the whole Bundle, so nothing
is written. When only a resource the service read for itself moved on, the action is re-read and
re-planned (bounded); when the user's Task moved on, the user is told to reload. Never over
another user's edit.

Every action writes a Provenance whose id is derived from the subject, the version acted on and
the request, so a request retried after a timeout or submitted twice finds its first attempt
instead of writing again. The ledger row (WorkflowEventRecord) is added and flushed; the caller
commits (as the API views do). Nothing is deleted. Logs carry ids and counts, never patient
details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.records import WorkflowEventRecord
from hrm_fhir.errors import (
    FHIRFatalError,
    FHIRTemporaryError,
    WorkflowConflictError,
    WorkflowNotFoundError,
)
from hrm_fhir.programme import (
    Action,
    Actor,
    Stage,
    require_practice,
    require_role,
    stage_of,
)
from hrm_fhir.workflow.fields import (
    general_practitioners_of,
    patient_of,
    reference_of,
    version_of,
)
from hrm_fhir.workflow.resources import (
    Resource,
    provenance,
    workflow_id,
)
from hrm_fhir.workflow.views import (
    ActionResult,
)

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 2
"""Re-reads after a conflict on a resource the service read for itself, or a lost response."""


@dataclass(frozen=True)
class Write:
    """One resource an action writes."""

    resource: Resource
    if_match: str | None
    """The versionId the server must still hold; None writes a new resource by id."""

    @property
    def reference(self) -> str:
        return reference_of(self.resource)


@dataclass
class Change:
    """What an action writes, and how it is recorded."""

    stage_before: Stage
    stage_after: Stage
    writes: list[Write]
    activity: str
    detail: dict[str, object]
    reason: str | None = None
    sources: list[str] = field(default_factory=list)
    unchanged: list[tuple[str, str | None]] = field(default_factory=list)
    """Resources the action concerns but does not change (Provenance targets)."""


class _StaleError(Exception):
    """A transaction entry's ifMatch no longer held."""


Planner = Callable[[Resource, datetime], Change]


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment


def read_subject(gateway: FHIRGateway, kind: str, resource_id: str) -> Resource | None:
    try:
        return gateway.read(kind, resource_id)
    except ValueError as exc:  # not a FHIR id: nothing by that name can exist
        raise WorkflowNotFoundError(f"no {kind} {resource_id!r}") from exc


def read_task(gateway: FHIRGateway, task_id: str) -> Resource:
    task = read_subject(gateway, "Task", task_id)
    if task is None:
        raise WorkflowNotFoundError(missing("Task", task_id))
    return task


def missing(kinds: str, subject_id: str) -> str:
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
    change: Change,
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
    for write in [*change.writes, Write(record, None)]:
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


def canonical(params: Mapping[str, object]) -> str:
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()


def _versioned(ref: str, version: str | None) -> str:
    return f"{ref}/_history/{version}" if version else ref


def act(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    action: Action,
    subject_id: str,
    version: str | None,
    params: Mapping[str, object],
    plan: Planner,
    now: datetime | None,
    read: Callable[[FHIRGateway, str], Resource] = read_task,
    kinds: str = "Task",
) -> ActionResult:
    """Check, plan and write one action (see the module docstring), and record it. ``version``
    None acts on a subject that does not exist yet (``read`` returns it unsaved)."""
    require_role(actor, action)
    moment = _now(now)
    provenance_id = workflow_id(
        "provenance", subject_id, version or "new", action.value, canonical(params)
    )
    practices: dict[str, frozenset[str]] = {}
    for attempt in range(CONFLICT_RETRIES + 1):
        subject = read(gateway, subject_id)
        patient = patient_of(subject)
        if patient not in practices:
            practices[patient] = _patient_practices(gateway, patient)
        require_practice(actor, practices[patient], missing(kinds, subject_id))
        if version_of(subject) != version:
            return _replayed_or_conflict(
                gateway, session, actor, action, subject, version, provenance_id, moment
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
        subject_version = next((v for ref, v in written if ref == reference_of(subject)), version)
        _record(
            session, actor, action, subject, patient, practices[patient], change, written, moment
        )
        log.info(
            "workflow %s on %s: %d resources written",
            action.value,
            reference_of(subject),
            len(written),
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
    change: Change,
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


def _replayed_or_conflict(
    gateway: FHIRGateway,
    session: Session,
    actor: Actor,
    action: Action,
    subject: Mapping[str, Any],
    version: str | None,
    provenance_id: str,
    moment: datetime,
) -> ActionResult:
    """The subject is not at the version the user loaded: the result of this very request
    when an earlier attempt of it landed, else WorkflowConflictError (reload)."""
    replayed = _replayed(gateway, session, actor, action, subject, provenance_id, moment)
    if replayed is not None:
        return replayed
    raise WorkflowConflictError(
        f"{reference_of(subject)} has changed since it was loaded (now version "
        f"{version_of(subject)}, not {version}); reload it and try again"
    )


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
    own = reference_of(subject)
    rows = session.scalars(
        select(WorkflowEventRecord).where(
            WorkflowEventRecord.task_id == subject["id"],
            WorkflowEventRecord.written.contains(f"Provenance/{provenance_id}"),
        )
    ).first()
    stage = Stage(rows.stage_after) if rows is not None and rows.stage_after else stage_of(subject)
    if rows is None:
        change = Change(stage, stage, [], "", {"recovered": True})
        _record(
            session,
            actor,
            action,
            subject,
            patient_of(subject),
            frozenset(),
            change,
            written,
            moment,
        )
    return ActionResult(
        task_id=str(subject["id"]),
        version=next((v for ref, v in written if ref == own), version_of(subject)),
        stage=stage,
        written=[_versioned(ref, v) for ref, v in written],
    )
