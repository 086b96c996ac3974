"""The workflow's reads from the FHIR server and the ledger."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.fhir.fetch import OPEN_TASK_STATUSES, OURS_TAG, Scope
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.workflow.resources import (
    Resource,
)

TASKS_PER_SEARCH = 20
"""References per search when searching by reference (URLs stay short)."""


@functools.cache
def default_rules() -> RuleSet:
    return load_rule_set()


def search(gateway: FHIRGateway, kind: str, params: Mapping[str, str]) -> list[Resource]:
    return gateway.search(kind, params).resources


def open_tasks(gateway: FHIRGateway, scope: Scope) -> list[Resource]:
    params = {"_tag": OURS_TAG, "status": OPEN_TASK_STATUSES, **scope.params("Task")}
    return search(gateway, "Task", params)


def active_flags(gateway: FHIRGateway, scope: Scope, patient: str | None = None) -> list[Resource]:
    """The service's active Flags (R4 has no Flag ``status`` search parameter: filtered here)."""
    params = {"_tag": OURS_TAG, **scope.params("Flag")}
    if patient is not None:
        params["subject"] = patient
    return [f for f in search(gateway, "Flag", params) if f.get("status") == "active"]


def referring(
    gateway: FHIRGateway, resource_type: str, param: str, references: Sequence[str]
) -> list[Resource]:
    """Every ``resource_type`` whose reference search parameter ``param`` names one of these
    references (``Task/x``...), twenty references per search, each resource once."""
    found: dict[str, Resource] = {}
    for start in range(0, len(references), TASKS_PER_SEARCH):
        chunk = ",".join(references[start : start + TASKS_PER_SEARCH])
        for resource in search(gateway, resource_type, {param: chunk}):
            found[resource["id"]] = resource
    return list(found.values())


def communications_of(gateway: FHIRGateway, task_ids: Sequence[str]) -> list[Resource]:
    """Every Communication based on these Tasks, whoever wrote it."""
    return referring(gateway, "Communication", "based-on", [f"Task/{t}" for t in task_ids])


def findings_for(session: Session, ids: Iterable[str]) -> dict[str, FindingRecord]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.scalars(select(FindingRecord).where(FindingRecord.identifier.in_(wanted)))
    return {row.identifier: row for row in rows}


def events_for(session: Session, task_ids: Iterable[str]) -> list[WorkflowEventRecord]:
    wanted = sorted(set(task_ids))
    if not wanted:
        return []
    query = (
        select(WorkflowEventRecord)
        .where(WorkflowEventRecord.task_id.in_(wanted))
        .order_by(WorkflowEventRecord.at, WorkflowEventRecord.id)
    )
    return list(session.scalars(query))
