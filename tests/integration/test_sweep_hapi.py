"""The live sweep against a real HAPI FHIR server: writeback, idempotence, closing the loop."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from click.testing import CliRunner

from hrm_fhir import terminology
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.records import SweepStatus
from hrm_fhir.cli.main import main
from hrm_fhir.config import Settings
from hrm_fhir.sweep.run import run_sweep
from hrm_fhir.tasks import emit
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import rules
from tests.integration.harness import Harness
from tests.integration.practice import AS_OF, LITHIUM, Resource, starter

pytestmark = pytest.mark.hapi


@pytest.mark.usefixtures("database_url")
def test_first_sweep_writes_tasks_and_flags_and_a_second_writes_nothing(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    first = harness.sweep()
    assert first.mode == "full"
    assert first.findings >= 4
    counts = first.counts
    assert counts.created == first.findings
    assert counts.errors == 0
    [mtx_task] = [
        t for t in harness.ours("Task", "mtx") if t["code"]["coding"][0]["code"] == "monitoring-due"
    ]
    assert mtx_task["status"] == "requested"
    assert mtx_task["focus"]["reference"].startswith("MedicationRequest/")
    assert {
        i["valueCodeableConcept"]["coding"][0]["code"]
        for i in mtx_task["input"]
        if "valueCodeableConcept" in i
    } == {"fbc", "lft", "renal"}
    [flag] = harness.ours("Flag", "lith")
    assert flag["status"] == "active"
    assert "URGENT" in flag["code"]["text"]
    assert any(
        t["code"]["coding"][0]["code"] == "prescribing-review"
        for t in harness.ours("Task", "opioid")
    )
    assert harness.ours("Task", "statin") == []

    second = harness.sweep()
    assert second.mode == "incremental"
    assert (second.counts.created, second.counts.updated, second.counts.closed) == (0, 0, 0)
    assert second.counts.unchanged == first.findings
    assert [t["meta"]["versionId"] for t in harness.ours("Task", "mtx")] == [
        mtx_task["meta"]["versionId"]
    ]


@pytest.mark.usefixtures("database_url")
def test_the_sweep_command_writes_then_finds_nothing_to_do(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.upload(starter(harness.practice))
    monkeypatch.setenv("HRM_DATABASE_URL", harness.settings.database_url)
    args = [
        "sweep",
        "--fhir-base",
        harness.settings.fhir_base_url,
        "--practice",
        harness.practice.org,
        "--as-of",
        AS_OF.isoformat(),
    ]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    again = CliRunner().invoke(main, [*args, "--format", "summary"], catch_exceptions=False)
    assert (first.exit_code, again.exit_code) == (0, 0)
    summary = orjson.loads(first.output)
    assert (summary["mode"], summary["errors"]) == ("full", 0)
    assert summary["created"] == summary["findings"] >= 4
    assert "(incremental)" in again.output
    assert (
        f"wrote: created 0, repaired 0, updated 0, closed 0, unchanged {summary['created']},"
        in again.output
    )
    # then what the engine found, as evaluate --format summary prints it, urgent first
    lines = again.output.splitlines()
    urgent = next(i for i, line in enumerate(lines) if line.startswith("URGENT (same working day)"))
    assert lines[urgent + 1].startswith(f"- Patient/{harness.practice.pid('lith')} [lithium] ")
    assert any(line.startswith("DRUG GROUP") for line in lines[urgent:])
    assert not [line for line in lines if line.startswith("- FAILED")]


def test_written_resources_pass_hapi_validate(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    harness.sweep()
    written = [
        *harness.ours("Task", "mtx"),
        *harness.ours("Flag", "lith"),
        *harness.ours("Task", "opioid"),
    ]
    assert len(written) >= 3
    for resource in written:
        outcome = harness.gateway.validate(resource)
        errors = [i for i in outcome.get("issue", []) if i["severity"] in ("error", "fatal")]
        assert errors == [], (resource["resourceType"], errors)


def test_dry_run_plans_and_writes_nothing(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    plan = harness.sweep(dry_run=True)
    assert plan.plan is not None
    assert len(plan.plan["create"]) == plan.findings > 0  # type: ignore[arg-type]
    assert harness.ours("Task", "mtx") == []
    with harness.sessions.begin() as session:
        assert ledger.open_findings(session) == []
        assert ledger.get_cursor(session, f"Organization/{harness.practice.org}") is None


def test_a_sweep_on_a_date_no_rule_pack_covers_says_so(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    summary = harness.sweep(dry_run=True, as_of=date(2018, 6, 1))
    assert summary.findings == 0
    assert any("is in force on 2018-06-01" in w for w in summary.warnings)
    assert summary.to_json()["warnings"] == summary.warnings


def test_paging_across_several_pages(fhir_base: str, run_id: str, tmp_path: Path) -> None:
    h = Harness(fhir_base, run_id, f"sqlite:///{tmp_path / 'p.db'}", page_size=4)
    try:
        p = h.practice
        resources: list[Resource] = [p.organization()]
        for n in range(14):
            name = f"m{n}"
            resources += [
                p.patient(name),
                *p.repeats(
                    name,
                    "Methotrexate 2.5mg tablets",
                    AS_OF - timedelta(days=400),
                    AS_OF - timedelta(days=9),
                    dosage="10mg weekly",
                ),
            ]
        h.upload(resources)
        summary = h.sweep()
        assert summary.patients == 14
        assert summary.counts.created == 14
        assert summary.warnings == []
    finally:
        h.close()


@pytest.mark.usefixtures("database_url")
def test_new_result_moves_the_task_on_to_pharmacist_review(harness: Harness) -> None:
    p = harness.practice
    harness.upload(starter(p))
    harness.sweep()
    fresh = p.bloods("mtx", AS_OF - timedelta(days=1))
    harness.upload(fresh)
    later = harness.sweep()
    assert later.mode == "incremental"
    assert later.counts.closed >= 1
    [task] = [
        t for t in harness.ours("Task", "mtx") if t["code"]["coding"][0]["code"] == "monitoring-due"
    ]
    assert task["status"] == "in-progress"
    assert task["businessStatus"]["coding"][0]["code"] == "awaiting-pharmacist"
    outputs = {o["valueReference"]["reference"] for o in task["output"]}
    assert outputs & {f"Observation/{r['id']}" for r in fresh}
    with harness.sessions.begin() as session:
        closed = [
            f for f in ledger.list_findings(session, state="closed") if f.patient.endswith("-mtx")
        ]
        assert [f.close_reason for f in closed] == ["result received"]


@pytest.mark.usefixtures("database_url")
def test_stopped_drug_and_death_cancel_open_tasks_with_a_reason(harness: Harness) -> None:
    p = harness.practice
    resources = starter(p)
    harness.upload(resources)
    harness.sweep()
    opioid_chain = [
        r
        for r in resources
        if r["resourceType"] == "MedicationRequest"
        and r["subject"]["reference"].endswith("-opioid")
    ]
    latest = dict(opioid_chain[-1], status="stopped")
    dead = dict(
        next(r for r in resources if r.get("id") == p.pid("mtx")), deceasedDateTime="2026-11-20"
    )
    harness.upload([latest, dead])
    harness.sweep()
    for name, reason in (("opioid", "drug stopped"), ("mtx", "patient deceased")):
        tasks = harness.ours("Task", name)
        assert tasks
        assert {t["status"] for t in tasks} == {"cancelled"}, name
        assert {t["statusReason"]["text"] for t in tasks} == {reason}


def test_resolved_out_of_range_result_makes_the_flag_inactive(harness: Harness) -> None:
    p = harness.practice
    harness.upload(starter(p))
    harness.sweep()
    harness.upload([p.result("lith", LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=1))])
    harness.sweep()
    [flag] = harness.ours("Flag", "lith")
    assert flag["status"] == "inactive"
    assert flag["period"]["end"] == AS_OF.isoformat()


def test_changes_made_in_the_clinical_system_are_kept(harness: Harness) -> None:
    p = harness.practice
    harness.upload(starter(p))
    harness.sweep()
    [task] = [
        t for t in harness.ours("Task", "mtx") if t["code"]["coding"][0]["code"] == "monitoring-due"
    ]
    task["businessStatus"] = {"text": "invited"}
    task["owner"] = {"display": "Technician A"}
    task["note"] = [{"text": "SMS sent"}]
    harness.gateway.update(task, if_match=task["meta"]["versionId"])
    harness.sweep(as_of=AS_OF + timedelta(days=7), full=True)
    [after] = [t for t in harness.ours("Task", "mtx") if t["id"] == task["id"]]
    assert after["businessStatus"] == {"text": "invited"}
    assert after["owner"] == {"display": "Technician A"}
    assert after["note"] == [{"text": "SMS sent"}]


class _CrashError(RuntimeError):
    pass


@pytest.mark.usefixtures("database_url")
def test_interrupted_sweep_rerun_converges_without_duplicates(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.upload(starter(harness.practice))
    monkeypatch.setattr(emit, "BATCH_SIZE", 1)
    real_transaction = harness.gateway.transaction
    calls = {"n": 0}

    def failing_transaction(bundle: Resource) -> Any:
        calls["n"] += 1
        if calls["n"] > 2:
            raise _CrashError("killed half way")
        return real_transaction(bundle)

    harness.gateway.transaction = failing_transaction  # type: ignore[method-assign]
    with pytest.raises(_CrashError):
        harness.sweep()
    assert calls["n"] == 3, "two resources were written before the crash"
    harness.gateway.transaction = real_transaction  # type: ignore[method-assign]
    rerun = harness.sweep()
    assert rerun.mode == "full", "no watermark was saved by the failed sweep"
    assert rerun.counts.errors == 0
    with harness.sessions.begin() as session:
        open_ids = {f.identifier for f in ledger.open_findings(session)}
        sweeps = ledger.list_sweeps(session)
        assert [s.status for s in sweeps][-2:] in (
            [SweepStatus.COMPLETED, SweepStatus.FAILED],
            [SweepStatus.FAILED, SweepStatus.COMPLETED],
        )
    assert len(open_ids) == rerun.findings
    for identifier in open_ids:
        for kind in ("Task", "Flag"):
            hits = harness.gateway.search(
                kind, {"identifier": f"{terminology.FINDING_IDENTIFIER}|{identifier}"}
            )
            assert len(hits.resources) <= 1
    third = harness.sweep()
    assert (third.counts.created, third.counts.updated, third.counts.closed) == (0, 0, 0)


def _killed_sweep(base: str, db: str, org: str) -> None:
    """Runs in a child process that is killed while its writes are slowed down."""
    settings = Settings(fhir_base_url=base, database_url=db, practice=org)
    engine = init_db(db)
    gateway = FHIRGateway.from_settings(settings)
    real_transaction = gateway.transaction
    emit.BATCH_SIZE = 1

    def slow_transaction(bundle: Resource) -> Any:
        result = real_transaction(bundle)
        time.sleep(30)
        return result

    gateway.transaction = slow_transaction  # type: ignore[method-assign]
    run_sweep(
        settings,
        make_session_factory(engine),
        gateway,
        rules(),
        as_of=AS_OF,
        chases=SweepChases.of(settings, gateway, rules()),
    )


@pytest.mark.usefixtures("database_url")
def test_killed_sweep_is_marked_interrupted_and_the_next_one_completes(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    context = multiprocessing.get_context("fork")
    child = context.Process(
        target=_killed_sweep,
        args=(harness.settings.fhir_base_url, harness.settings.database_url, harness.practice.org),
    )
    child.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not harness.ours("Task", "lith") + harness.ours(
        "Flag", "lith"
    ) + harness.ours("Task", "mtx") + harness.ours("Task", "opioid"):
        time.sleep(0.5)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    summary = harness.sweep()
    assert summary.counts.errors == 0
    with harness.sessions.begin() as session:
        statuses = [s.status for s in ledger.list_sweeps(session)]
        assert SweepStatus.INTERRUPTED in statuses
        assert ledger.open_findings(session)
    again = harness.sweep()
    assert (again.counts.created, again.counts.updated, again.counts.closed) == (0, 0, 0)


@pytest.mark.usefixtures("database_url")
def test_every_sweep_recreates_a_resource_missing_from_the_server(harness: Harness) -> None:
    harness.upload(starter(harness.practice))
    harness.sweep()
    [flag] = harness.ours("Flag", "lith")
    deleted = requests.delete(f"{harness.settings.fhir_base_url}/Flag/{flag['id']}", timeout=30)
    assert deleted.status_code in (200, 204)
    assert harness.ours("Flag", "lith") == []
    incremental = harness.sweep()
    assert incremental.mode == "incremental"
    assert not incremental.reset, "one resource lost is a repair, not a reset"
    assert (incremental.counts.repaired, incremental.counts.created) == (1, 0)
    assert [f["id"] for f in harness.ours("Flag", "lith")] == [flag["id"]]
    with harness.sessions.begin() as session:
        [write] = [
            w
            for w in ledger.sweep_writes(session, incremental.sweep_id)
            if w.resource_id == flag["id"]
        ]
        assert write.reason == emit.REPAIR_REASON
    full = harness.sweep(full=True)
    assert (full.counts.repaired, full.counts.created, full.counts.updated) == (0, 0, 0)


def test_a_full_reconciliation_over_unchanged_data_writes_nothing(harness: Harness) -> None:
    p = harness.practice
    inr = "6301-6"
    warfarin = [
        p.patient("warf"),
        *p.repeats(
            "warf", "Warfarin 3mg tablets", AS_OF - timedelta(days=600), AS_OF - timedelta(days=6)
        ),
        p.result("warf", inr, 3.4, "{INR}", AS_OF - timedelta(days=3)),
    ]
    warfarin[-1]["code"]["coding"][0]["system"] = "http://loinc.org"
    harness.upload([*starter(p), *warfarin])
    first = harness.sweep(full=True)
    [review] = harness.ours("Task", "warf")
    assert "'" in review["description"], "a reason with an apostrophe, which servers re-serialise"
    again = harness.sweep(full=True)
    assert (again.counts.created, again.counts.updated, again.counts.closed) == (0, 0, 0)
    assert again.counts.unchanged == first.findings
