"""``sweep --format summary``: the write counts, every write that failed, then what the engine
found as ``evaluate --format summary`` prints it (the successful writes are in the audit)."""

from __future__ import annotations

from pathlib import Path

from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.records import ResourceType, WriteAction, WriteOutcome
from hrm_fhir.domain import FindingKind, Severity
from hrm_fhir.offline import EvaluationRun
from hrm_fhir.sweep.run import SweepSummary, render_sweep
from hrm_fhir.tasks.emit import Counts
from tests.adapters.store.examples import AS_OF, NOW, finding, start


def test_the_summary_lists_failed_writes_and_the_findings_urgent_first(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'hrm.db'}")
    urgent = finding(
        "hrm-2",
        kind=FindingKind.OUT_OF_RANGE,
        severity=Severity.URGENT,
        reason="Serum lithium 1.6 mmol/L on 2026-07-01 is at or above 1.5 mmol/L",
    )
    try:
        with make_session_factory(engine).begin() as session:
            sweep = start(session)
            for rid, outcome in (("hrm-1", WriteOutcome.OK), ("hrm-2", WriteOutcome.FAILED)):
                ledger.record_write(session, sweep_id=sweep.id, resource_type=ResourceType.TASK,
                                   resource_id=rid, action=WriteAction.CREATE, outcome=outcome,
                                   reason="new finding", now=NOW, http_status=500)  # fmt: skip
            summary = SweepSummary(
                sweep.id, "full", False, AS_OF, "all", patients=2, findings=2,
                counts=Counts(created=1, errors=1),
                evaluation=EvaluationRun(AS_OF, [finding(), urgent], [], 2),
            )  # fmt: skip
            text = render_sweep(session, summary)
    finally:
        engine.dispose()
    lines = text.splitlines()
    assert lines[1].startswith(
        "wrote: created 1, repaired 0, updated 0, closed 0, unchanged 0, errors 1,"
    )
    assert lines[2] == "- FAILED create Task/hrm-2 [failed] new finding"
    assert "Task/hrm-1" not in text
    assert lines[lines.index("URGENT (same working day): 1") + 1] == (
        "- Patient/p1 [lithium] Serum lithium 1.6 mmol/L on 1 Jul 2026 is at or above 1.5 mmol/L"
    )
