"""The sweep trusts the server, not its memory: repairs, reset detection and dry runs that plan
exactly what the real run does, against a real HAPI FHIR server."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import WriteAction
from hrm_fhir.sweep.reconcile import MARKER_TYPE
from hrm_fhir.sweep.run import SweepSummary
from tests.builders import SNOMED
from tests.conftest import Sandbox
from tests.integration.harness import Harness, a_week_of_changes
from tests.integration.practice import (
    AS_OF,
    LITHIUM,
    TOXIC_LITHIUM,
    Practice,
    Resource,
    several,
    starter,
)

pytestmark = pytest.mark.hapi
REVIEW_ON = AS_OF + timedelta(days=10)


def _urgent_flags(h: Harness) -> list[Resource]:
    flags = h.ours("Flag", "lith") + h.ours("Flag", "warf")
    return [f for f in flags if f["status"] == "active" and "URGENT" in f["code"]["text"]]


def _delete(h: Harness, key: str) -> None:
    deleted = requests.delete(f"{h.settings.fhir_base_url}/{key}", timeout=30)
    assert deleted.status_code in (200, 204), key


def _writes(h: Harness, summary: SweepSummary) -> dict[str, set[str]]:
    """The sweep's successful writes by action, as ``Type/id``."""
    out: dict[str, set[str]] = {}
    with h.sessions.begin() as session:
        for write in ledger.sweep_writes(session, summary.sweep_id):
            if write.outcome.value == "ok":
                key = f"{write.resource_type.value}/{write.resource_id}"
                out.setdefault(write.action.value, set()).add(key)
    return out


def test_after_the_server_restarts_and_is_reloaded_a_plain_sweep_brings_the_urgent_flags_back(
    restartable: Sandbox, run_id: str, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'hrm.db'}"
    h = Harness(restartable.base, run_id, database)
    try:
        data = [*starter(h.practice), *h.practice.warfarin("warf", 8.4)]
        h.upload(data)
        first = h.sweep()
        flags = sorted(f["id"] for f in _urgent_flags(h))
        assert len(flags) == 2, "the INR 8.4 and lithium 1.6 Flags"
        restartable.restart()
        h.gateway.close()
        h = Harness(restartable.base, run_id, database)
        h.upload(data)
        assert _urgent_flags(h) == [], "the restarted server lost them"
        plain = h.sweep()
        assert plain.reset
        assert plain.mode == "full"
        assert any("server reset detected" in w for w in plain.warnings)
        assert (plain.counts.repaired, plain.counts.created) == (first.findings, 0)
        assert sorted(f["id"] for f in _urgent_flags(h)) == flags
        again = h.sweep()
        assert not again.reset
        assert again.mode == "incremental"
        assert (again.counts.created, again.counts.repaired, again.counts.updated) == (0, 0, 0)
    finally:
        h.close()


@pytest.mark.usefixtures("database_url")
def test_a_server_without_the_ledgers_marker_is_taken_as_reset_and_reconciled_in_full(
    harness: Harness,
) -> None:
    harness.upload(starter(harness.practice))
    harness.sweep()
    scope = f"Organization/{harness.practice.org}"
    with harness.sessions.begin() as session:
        kept = ledger.poll_cursor(session, scope)
        marker = kept.server_marker if kept else None
    assert marker is not None
    written = harness.gateway.read(MARKER_TYPE, marker)
    assert written is not None
    outcome = harness.gateway.validate(written)
    assert [i for i in outcome.get("issue", []) if i["severity"] in ("error", "fatal")] == []
    second = harness.sweep()
    assert not second.reset
    assert harness.gateway.read(MARKER_TYPE, marker) == written, "kept, not rewritten"
    _delete(harness, f"{MARKER_TYPE}/{marker}")
    third = harness.sweep()
    assert third.reset
    assert third.mode == "full"
    assert third.counts.repaired == 0, "every Task and Flag is still there"
    assert harness.gateway.read(MARKER_TYPE, marker) is not None, "written again"


@pytest.mark.usefixtures("database_url")
def test_a_server_holding_none_of_the_open_resources_is_taken_as_reset(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    first = harness.sweep()
    with harness.sessions.begin() as session:
        keys = [f"{f.resource_type.value}/{f.resource_id}" for f in ledger.open_findings(session)]
    for key in keys:
        _delete(harness, key)
    summary = harness.sweep()
    assert summary.reset
    assert summary.mode == "full"
    assert f"none of the {len(keys)} Tasks and Flags" in " ".join(summary.warnings)
    assert summary.counts.repaired == first.findings == len(keys)


def test_a_full_dry_run_right_after_a_full_sweep_plans_no_writes(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    harness.sweep(full=True)
    plan = harness.sweep(full=True, dry_run=True)
    assert plan.counts.as_dict() | {"unchanged": 0} == dict.fromkeys(plan.counts.as_dict(), 0)
    assert plan.counts.unchanged == plan.findings


def _changes(h: Harness) -> None:
    """Every kind of write: in copy 0 a result arrives (the Task moves on), the lithium level
    falls (the Flag goes inactive) and the opioid is stopped (its Task is cancelled); a new
    patient (a new Task); in copy 1 a Flag deleted on the server (repaired) and a Task's
    description edited there (updated)."""
    a_week_of_changes(h, 2)
    [flag] = h.ours("Flag", "lith1")
    _delete(h, f"Flag/{flag['id']}")
    [task] = [t for t in h.ours("Task", "mtx1") if t["status"] == "requested"]
    task["description"] = "edited by hand"
    h.gateway.update(task, if_match=task["meta"]["versionId"])


@pytest.mark.parametrize(
    ("full", "overlap", "copies", "path"),
    [
        (True, 300, 2, "everything"),
        (False, 0, 2, "changed patients: four of nine"),
        (False, 300, 6, "everything: 25 patients changed, more than 20 cost less to page"),
    ],
)
def test_a_dry_run_plans_exactly_what_the_next_real_run_does(
    fhir_base: str,
    run_id: str,
    database_url: str,
    full: bool,
    overlap: int,
    copies: int,
    path: str,
) -> None:
    harness = Harness(fhir_base, run_id, database_url)
    try:
        harness.settings = dataclasses.replace(harness.settings, watermark_overlap_seconds=overlap)
        harness.upload(several(harness.practice, copies))
        harness.sweep()
        _changes(harness)
        planned = harness.sweep(full=full, dry_run=True)
        real = harness.sweep(full=full)
        assert planned.mode == real.mode == ("full" if full else "incremental")
        assert planned.counts == real.counts
        assert planned.routed == real.routed
        assert real.counts.errors == 0
        assert min(real.counts.created, real.counts.repaired, real.counts.updated) >= 1, path
        assert real.counts.closed >= 3
        assert planned.plan is not None
        writes = _writes(harness, real)
        assert set(planned.plan["create"]) | set(planned.plan["repair"]) == writes.get(  # type: ignore[arg-type]
            WriteAction.CREATE.value, set()
        )
        closed = {c["resource"] for c in planned.plan["close"]}  # type: ignore[attr-defined]
        assert closed == writes.get("cancel", set()) | writes.get("close", set()) | (
            writes.get("update", set()) - set(planned.plan["update"])  # type: ignore[arg-type]
        )
        if path.startswith("changed patients"):
            assert real.records_read == 4, "mtx0, lith0, opioid0 and the new patient"
        else:
            assert real.records_read == real.patients
    finally:
        harness.close()


def _lithium_and_warfarin(p: Practice) -> list[Resource]:
    """A lithium patient with a level in range and a warfarin patient with an INR of 3.6
    (above the usual 2.0-3.0), and a patient on nothing the service monitors yet."""
    long_ago, recent = AS_OF - timedelta(days=700), AS_OF - timedelta(days=6)
    return [
        p.patient("lithc", born="1970-05-05"),
        *p.repeats("lithc", "Lithium carbonate 400mg MR tablets", long_ago, recent),
        p.result("lithc", LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=10)),
        *p.warfarin("valve", 3.6, born="1950-01-01"),
        p.patient("stmt"),
    ]


def _new_entries(p: Practice) -> list[Resource]:
    """What the rules read beyond the record types, arriving after a sweep: a coded toxic
    lithium (Condition), an INR target of 3.0-4.0 (Goal: a mechanical mitral valve),
    methotrexate taken as the patient says (MedicationStatement), and the pharmacist's decision
    that a hospital monitors the methotrexate until ``REVIEW_ON`` (the service's arrangement
    Task)."""
    toxic = {"system": SNOMED, "code": TOXIC_LITHIUM}
    return [
        p.condition("lithc", toxic, AS_OF - timedelta(days=1)),
        p.inr_goal("valve", 3.0, 4.0),
        p.statement(
            "stmt", "Methotrexate 2.5mg tablets", AS_OF - timedelta(days=200), "10mg once weekly"
        ),
        p.monitored_elsewhere("mtx", "methotrexate", "Rheumatology, Oakfield Hospital", REVIEW_ON),
    ]


def _planned_then_real(h: Harness, **kw: object) -> SweepSummary:
    """A dry run and the real run after it: the same counts, the real run without errors."""
    planned = h.sweep(dry_run=True, **kw)
    real = h.sweep(**kw)
    assert (planned.mode, planned.records_read) == (real.mode, real.records_read)
    assert planned.counts == real.counts
    assert real.counts.errors == 0
    return real


def _routine(h: Harness, name: str) -> Resource:
    [task] = [t for t in h.ours("Task", name) if t["code"]["coding"][0]["code"] == "monitoring-due"]
    return task


@pytest.mark.usefixtures("database_url")
def test_conditions_goals_statements_and_arrangements_bring_their_patient_back_and_are_acted_on(
    harness: Harness,
) -> None:
    h = harness
    h.settings = dataclasses.replace(h.settings, watermark_overlap_seconds=0)
    h.upload([*starter(h.practice), *_lithium_and_warfarin(h.practice)])
    first = h.sweep()
    assert first.counts.errors == 0
    [above] = h.ours("Flag", "valve")
    assert h.ours("Flag", "lithc") == []
    assert h.ours("Task", "stmt") == []
    routine = _routine(h, "mtx")
    assert routine["status"] == "requested"

    h.upload(_new_entries(h.practice))
    changed = _planned_then_real(h)
    assert changed.mode == "incremental"
    assert changed.records_read == 4, "lithc, valve, stmt and mtx: nobody else changed"
    [toxic] = [f for f in h.ours("Flag", "lithc") if f["status"] == "active"]
    assert "Lithium level high - toxic" in toxic["code"]["text"]
    assert h.gateway.read("Flag", above["id"])["status"] == "inactive"  # type: ignore[index]
    assert [t["status"] for t in h.ours("Task", "stmt")] != []
    elsewhere = h.gateway.read("Task", routine["id"])
    assert elsewhere is not None
    assert (elsewhere["status"], elsewhere["businessStatus"]["coding"][0]["code"]) == (
        "cancelled",
        "monitored-elsewhere",
    )

    lapsed = _planned_then_real(h, as_of=REVIEW_ON + timedelta(days=1))
    assert lapsed.counts.updated >= 1
    reopened = h.gateway.read("Task", routine["id"])
    assert reopened is not None
    assert (reopened["status"], reopened["businessStatus"]["coding"][0]["code"]) == (
        "requested",
        "to-contact",
    )

    _delete(h, f"Task/{routine['id']}")
    repaired = _planned_then_real(h, as_of=REVIEW_ON + timedelta(days=1))
    assert repaired.counts.repaired == 1
    assert _routine(h, "mtx")["status"] == "requested"
