"""``sweep --bulk`` against the HAPI sandbox: the same population gives the same Tasks and Flags
whether the records are read through a Bulk Data export or by searches, full and incremental."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir.adapters.store import ledger
from hrm_fhir.cli.main import main
from hrm_fhir.sweep import reads as sweep_reads
from hrm_fhir.sweep.run import SweepSummary
from tests.integration.harness import Harness, a_new_start
from tests.integration.practice import AS_OF, LITHIUM, lithium_level, starter
from tests.integration.test_sweep_server_hapi import _lithium_and_warfarin, _new_entries

pytestmark = pytest.mark.hapi


@pytest.fixture
def twins(fhir_base: str, run_id: str, tmp_path: Path) -> Iterator[tuple[Harness, Harness]]:
    """One practice on the server, two ledgers: one swept by export, one by searches."""
    pair = []
    for name in ("bulk", "paged"):
        h = Harness(fhir_base, run_id, f"sqlite:///{tmp_path / name}.db")
        h.settings = dataclasses.replace(
            h.settings, bulk_poll_ceiling=2.0, watermark_overlap_seconds=0
        )
        pair.append(h)
    yield pair[0], pair[1]
    for h in pair:
        h.close()


def plans(bulk: Harness, paged: Harness, **kw: object) -> tuple[SweepSummary, SweepSummary]:
    """A dry run of each; they must plan the same writes for the same patients."""
    by_export = by_export_only(bulk, dry_run=True, **kw)
    by_search = paged.sweep(dry_run=True, bulk=False, **kw)
    assert (by_export.source, by_search.source) == ("bulk", "search")
    assert by_export.plan == by_search.plan
    assert (by_export.patients, by_export.findings, by_export.counts) == (
        by_search.patients,
        by_search.findings,
        by_search.counts,
    )
    return by_export, by_search


def by_export_only(h: Harness, **kw: object) -> SweepSummary:
    """A bulk sweep that fails if it pages through the scope or searches for changes."""

    def paging(*_args: object, **_kw: object) -> None:
        raise AssertionError("a bulk sweep read by searches")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_reads, "read_scope", paging)
        patch.setattr(sweep_reads, "changed_patients", paging)
        return h.sweep(bulk=True, **kw)


def open_findings(h: Harness) -> set[tuple[str, str]]:
    with h.sessions.begin() as session:
        return {(r.identifier, r.patient) for r in ledger.open_findings(session)}


def test_a_bulk_sweep_writes_the_tasks_and_flags_a_paged_sweep_would(
    twins: tuple[Harness, Harness],
) -> None:
    bulk, paged = twins
    p = bulk.practice
    bulk.upload([*starter(p), *_lithium_and_warfarin(p), *_new_entries(p)])

    planned, _ = plans(bulk, paged, full=True)
    assert planned.counts.created >= 6

    written = by_export_only(bulk)
    assert (written.source, written.mode, written.counts.errors) == ("bulk", "full", 0)
    assert written.counts.created == planned.counts.created
    again = paged.sweep(bulk=False)
    assert (again.counts.created, again.counts.updated, again.counts.closed) == (0, 0, 0)
    assert again.counts.unchanged == written.counts.created
    assert open_findings(bulk) == open_findings(paged)
    assert [f["status"] for f in bulk.ours("Flag", "lith")] == ["active"]


def test_an_incremental_bulk_sweep_exports_since_the_watermark_and_agrees_with_searches(
    twins: tuple[Harness, Harness],
) -> None:
    bulk, paged = twins
    p = bulk.practice
    bulk.upload(starter(p))
    first = by_export_only(bulk)
    paged.sweep(bulk=False)
    bulk.upload(
        [p.result("lith", LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=1)), *a_new_start(p)]
    )

    planned, _ = plans(bulk, paged)
    assert planned.mode == "incremental"
    assert planned.records_read == 2, "lith and new: nobody else changed"

    changed = by_export_only(bulk)
    assert (changed.mode, changed.counts.errors) == ("incremental", 0)
    assert changed.counts == planned.counts
    assert changed.watermark is not None
    assert first.watermark is not None
    assert changed.watermark > first.watermark
    assert [f["status"] for f in bulk.ours("Flag", "lith")] == ["inactive"]
    assert bulk.ours("Task", "new") != []


def test_the_sweep_command_takes_bulk(
    twins: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, _ = twins
    bulk.upload(starter(bulk.practice))
    monkeypatch.setenv("HRM_DATABASE_URL", bulk.settings.database_url)
    monkeypatch.setenv("HRM_BULK_POLL_CEILING", "2")
    args = ["sweep", "--fhir-base", bulk.settings.fhir_base_url, "--practice", bulk.practice.org]
    result = CliRunner().invoke(
        main, [*args, "--as-of", AS_OF.isoformat(), "--bulk"], catch_exceptions=False
    )

    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert (summary["source"], summary["errors"]) == ("bulk", 0)
    assert summary["created"] == summary["findings"] >= 4


def test_an_incremental_bulk_sweep_sees_a_deleted_result_as_a_paged_one_does(
    twins: tuple[Harness, Harness],
) -> None:
    """An export ``_since`` holds no deleted resource; both sweeps find the deletion in the
    type histories and re-read the one patient whose snapshot held it (hazard H74)."""
    bulk, paged = twins
    p = bulk.practice
    practice = starter(p)
    bulk.upload(practice)
    by_export_only(bulk)
    paged.sweep(bulk=False)
    level = lithium_level(p, practice, "lith")["id"]
    bulk.gateway.request("DELETE", f"Observation/{level}", "delete the lithium level")

    planned, _ = plans(bulk, paged)

    assert planned.mode == "incremental"
    assert planned.records_read == 1, "lith, whose record lost its level"
    changed = by_export_only(bulk)
    assert [f["status"] for f in bulk.ours("Flag", "lith")] == ["inactive"]
    assert changed.counts.created >= 1, "the lithium level, now overdue"
