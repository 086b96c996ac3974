"""Sweep behaviour on server answers a real HAPI will not give on demand (``responses``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import orjson
import pytest
import responses
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.records import SweepStatus
from hrm_fhir.config import Settings
from hrm_fhir.errors import FHIRCapabilityError, FHIRTemporaryError
from hrm_fhir.sweep.run import SweepBusyError, run_sweep, utc_now
from hrm_fhir.sweep.source import IncompleteExportError
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import rules

BASE = "http://fhir.test/fhir"


def _capabilities(*types: str) -> dict[str, object]:
    resources = [
        {
            "type": t,
            "interaction": [{"code": c} for c in ("read", "search-type", "create", "update")],
        }
        for t in types
    ]
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "resource": resources}],
    }


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = init_db(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@responses.activate
def test_refuses_a_server_that_cannot_store_flags_and_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    responses.get(f"{BASE}/metadata", json=_capabilities("Patient", "Task"))
    gateway = FHIRGateway(BASE, sleep=lambda s: None)
    with pytest.raises(FHIRCapabilityError, match="Flag"):
        run_sweep(
            Settings(fhir_base_url=BASE),
            sessions,
            gateway,
            rules(),
            as_of=date(2026, 11, 27),
            chases=SweepChases.of(Settings(fhir_base_url=BASE), gateway, rules()),
        )
    with sessions.begin() as session:
        assert ledger.list_sweeps(session) == []
        assert ledger.live_lock(session, ledger.SWEEP_LOCK, now=utc_now()) is None, "lock released"
    gateway.close()


@responses.activate
def test_server_unavailable_marks_the_sweep_failed_and_keeps_no_watermark(
    sessions: sessionmaker[Session],
) -> None:
    responses.get(f"{BASE}/metadata", json=_capabilities("Patient", "Task", "Flag"))
    unavailable = responses.get(
        re.compile(rf"{re.escape(BASE)}/(Task|Patient|MedicationRequest).*"),
        status=503,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "transient"}],
        },
    )
    gateway = FHIRGateway(BASE, max_retries=2, sleep=lambda s: None)
    with pytest.raises(FHIRTemporaryError):
        run_sweep(
            Settings(fhir_base_url=BASE),
            sessions,
            gateway,
            rules(),
            as_of=date(2026, 11, 27),
            chases=SweepChases.of(Settings(fhir_base_url=BASE), gateway, rules()),
        )
    assert unavailable.call_count == 3, (
        "the first read was tried three times, then the sweep failed"
    )
    with sessions.begin() as session:
        [sweep] = ledger.list_sweeps(session)
        assert sweep.status is SweepStatus.FAILED
        assert "FHIRTemporaryError" in (sweep.error or "")
        assert ledger.get_cursor(session, "all") is None
    gateway.close()


def test_a_second_sweeper_is_refused_while_the_lock_is_held(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        assert ledger.acquire_lock(
            session, ledger.SWEEP_LOCK, "otherhost:1", ttl_seconds=600, now=utc_now()
        )
    gateway = FHIRGateway(BASE)
    with pytest.raises(SweepBusyError):
        run_sweep(
            Settings(fhir_base_url=BASE),
            sessions,
            gateway,
            rules(),
            as_of=date(2026, 11, 27),
            chases=SweepChases.of(Settings(fhir_base_url=BASE), gateway, rules()),
        )
    gateway.close()


@responses.activate
def test_a_bulk_sweep_whose_export_reports_errors_fails_and_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    status = f"{BASE}/$export-poll-status?_jobId=j1"
    manifest = {
        "transactionTime": "2026-11-27T06:00:00Z",
        "requiresAccessToken": True,
        "output": [{"type": "Patient", "url": f"{BASE}/Binary/p"}],
        "error": [{"type": "OperationOutcome", "url": f"{BASE}/Binary/e"}],
    }
    failed = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "Observation lost"}],
    }
    responses.get(f"{BASE}/metadata", json=_capabilities("Patient", "Task", "Flag"))
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": status})
    responses.get(status, json=manifest)
    responses.get(f"{BASE}/Binary/p", body=b'{"resourceType":"Patient","id":"p1"}\n')
    responses.get(f"{BASE}/Binary/e", body=orjson.dumps(failed))
    responses.delete(status, status=202)
    responses.get(
        re.compile(rf"{re.escape(BASE)}/[A-Z][A-Za-z]+(\?.*)?$"),
        json={"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []},
    )
    writes = responses.put(re.compile(rf"{re.escape(BASE)}/.*"))
    gateway = FHIRGateway(BASE, sleep=lambda s: None)

    with pytest.raises(IncompleteExportError, match="1 error"):
        run_sweep(
            Settings(fhir_base_url=BASE),
            sessions,
            gateway,
            rules(),
            as_of=date(2026, 11, 27),
            bulk=True,
            chases=SweepChases.of(Settings(fhir_base_url=BASE), gateway, rules()),
        )

    assert writes.call_count == 0
    with sessions.begin() as session:
        [sweep] = ledger.list_sweeps(session)
        assert sweep.status is SweepStatus.FAILED
        assert "the export is incomplete" in (sweep.error or "")
        assert ledger.get_cursor(session, "all") is None
    gateway.close()
