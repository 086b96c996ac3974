"""The writeback plan trusts the server's copies, not the ledger's memory (pure: no I/O)."""

from __future__ import annotations

import copy

from hrm_fhir.adapters.store.records import FindingRecord, ResourceType
from hrm_fhir.domain import FindingKind
from hrm_fhir.tasks.emit import (
    Counts,
    Desired,
    PatientContext,
    content_hash,
    desired_resources,
    plan,
)
from hrm_fhir.terminology import BUSINESS_STATUS
from tests.adapters.store.examples import AS_OF, finding

ALIVE = PatientContext(True, frozenset({"lithium"}), {})


def _desired(*identifiers: str) -> dict[str, Desired]:
    return desired_resources([finding(i) for i in identifiers], AS_OF, 14)


def _ledger(wanted: Desired, *, digest: str | None = None) -> FindingRecord:
    """An open ledger row for ``wanted``, as a sweep that wrote it left it."""
    return FindingRecord(
        identifier=wanted.finding.identifier,
        patient=wanted.finding.patient,
        kind=wanted.finding.kind,
        drug_group=wanted.finding.drug_group,
        resource_type=ResourceType(wanted.resource["resourceType"]),
        resource_id=wanted.resource["id"],
        content_hash=digest or wanted.digest,
    )


def _on_server(wanted: Desired, **changes: object) -> dict[str, object]:
    body = copy.deepcopy(wanted.resource) | changes
    body["meta"] = {**body["meta"], "versionId": "3", "lastUpdated": "2026-07-01T00:00:00Z"}
    return body


def test_a_resource_the_ledger_holds_open_but_the_server_lost_is_repaired() -> None:
    desired = _desired("hrm-1", "hrm-2")
    kept, lost = desired["hrm-1"], desired["hrm-2"]
    work = plan(desired, [_ledger(kept), _ledger(lost)], {}, {kept.key: _on_server(kept)})
    assert [d.key for d in work.repairs] == [lost.key]
    assert (work.creates, work.updates, work.unchanged) == ([], [], 1)
    assert work.counts() == Counts(unchanged=1, repaired=1)


def test_a_new_finding_the_server_does_not_hold_is_created() -> None:
    desired = _desired("hrm-1")
    work = plan(desired, [], {}, {})
    assert [d.key for d in work.creates] == [desired["hrm-1"].key]
    assert work.repairs == []


def test_the_server_copy_decides_not_the_ledgers_hash() -> None:
    desired = _desired("hrm-1", "hrm-2", "hrm-3")
    same, edited, unrecorded = desired["hrm-1"], desired["hrm-2"], desired["hrm-3"]
    server = {
        same.key: _on_server(same, status="in-progress", note=[{"text": "booked"}]),
        edited.key: _on_server(edited, description="edited by hand"),
        unrecorded.key: _on_server(unrecorded),
    }
    ledger = [_ledger(same, digest="stale"), _ledger(edited)]
    work = plan(desired, ledger, {}, server)
    assert [(d.key, current) for d, current in work.updates] == [(edited.key, server[edited.key])]
    assert [d.key for d, _ in work.adopts] == [same.key, unrecorded.key], (
        "already as wanted on the server: recorded, not rewritten (workflow fields are not ours)"
    )
    assert work.counts() == Counts(updated=1, unchanged=2)


def test_a_closure_carries_the_server_copy_or_none_when_it_is_gone() -> None:
    gone, held = _desired("hrm-1", "hrm-2").values()
    server = {held.key: _on_server(held)}
    work = plan({}, [_ledger(gone), _ledger(held)], {"Patient/p1": ALIVE}, server)
    assert [(c.resource_id, c.current) for c in work.closes] == [
        ("hrm-1", None),
        ("hrm-2", server[held.key]),
    ]
    assert {c.reason for c in work.closes} == {"result received"}
    assert work.counts() == Counts(closed=2)


def test_a_resource_that_is_not_valid_fhir_is_planned_as_an_error_not_a_write() -> None:
    desired = _desired("hrm-1")
    broken = Desired(
        finding("hrm-1", kind=FindingKind.OVERDUE),
        {**desired["hrm-1"].resource, "authoredOn": "not a date"},
        "digest",
    )
    work = plan({"hrm-1": broken}, [], {}, {})
    assert work.creates == []
    assert [(d.key, error) for d, error in work.invalid] == [
        (broken.key, "not valid FHIR, not written: ValidationError")
    ]
    assert work.counts() == Counts(errors=1)
    assert work.to_json()["invalid"] == [
        {"resource": broken.key, "error": "not valid FHIR, not written: ValidationError"}
    ]


def test_a_task_cancelled_as_monitored_elsewhere_whose_finding_holds_again_is_reopened() -> None:
    desired = _desired("hrm-1")
    wanted = desired["hrm-1"]
    cancelled = _on_server(
        wanted,
        status="cancelled",
        statusReason={"text": "monitored elsewhere"},
        businessStatus={"coding": [{"system": BUSINESS_STATUS, "code": "monitored-elsewhere"}]},
    )
    assert content_hash(cancelled) == wanted.digest, "only the workflow fields differ"
    work = plan(desired, [], {}, {wanted.key: cancelled})
    [(updated, reopened)] = work.updates
    assert updated is wanted
    assert (reopened["status"], reopened["businessStatus"]["coding"][0]["code"]) == (
        "requested",
        "to-contact",
    )
    assert "statusReason" not in reopened
    assert reopened["meta"]["versionId"] == "3", "written over the version the server holds"
    assert work.counts() == Counts(updated=1)
    ledger = [_ledger(wanted)]
    assert plan(desired, ledger, {}, {wanted.key: cancelled}).counts() == Counts(updated=1), (
        "whatever the ledger holds"
    )
