"""The sweep reads coded findings (Condition) and target ranges (Goal) from a real HAPI server.

"Lithium level high - toxic" (SNOMED 166957006) recorded as a Condition is an urgent result;
an INR target of 3.0-4.0 recorded as a Goal moves the warfarin grading (reference 3 and 5.1).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hrm_fhir import terminology
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.config import Settings
from hrm_fhir.sweep.run import run_sweep
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import LOINC, SNOMED, observation, rules
from tests.integration.practice import AS_OF, Practice, Resource

pytestmark = pytest.mark.hapi


def _records(p: Practice) -> list[Resource]:
    long_ago, recent = AS_OF - timedelta(days=700), AS_OF - timedelta(days=6)
    day = AS_OF - timedelta(days=3)
    toxic = {
        "resourceType": "Condition",
        "id": f"{p.run}-tox",
        "subject": {"reference": f"Patient/{p.pid('lith')}"},
        "code": {"coding": [{"system": SNOMED, "code": "166957006"}]},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "onsetDateTime": day.isoformat(),
    }
    valve = {
        "resourceType": "Goal",
        "id": f"{p.run}-goal",
        "lifecycleStatus": "active",
        "subject": {"reference": f"Patient/{p.pid('valve')}"},
        "description": {"text": "INR target range, mechanical mitral valve"},
        "startDate": "2025-01-10",
        "target": [
            {
                "measure": {"coding": [{"system": LOINC, "code": "6301-6"}]},
                "detailRange": {"low": {"value": 3.0}, "high": {"value": 4.0}},
            }
        ],
    }

    def inr(name: str) -> dict[str, Any]:
        return observation(
            "6301-6", 3.6, "{INR}", day, pid=p.pid(name), system=LOINC, rid=f"{p.run}-{name}-inr"
        )

    return [
        p.organization(),
        p.patient("lith", born="1970-05-05"),
        *p.repeats("lith", "Priadel 400mg MR tablets", long_ago, recent),
        toxic,
        p.patient("valve", born="1950-01-01"),
        *p.repeats("valve", "Warfarin 3mg tablets", long_ago, recent),
        valve,
        inr("valve"),
        p.patient("usual", born="1950-01-01"),
        *p.repeats("usual", "Warfarin 3mg tablets", long_ago, recent),
        inr("usual"),
    ]


def test_the_sweep_flags_a_coded_toxic_lithium_and_reads_the_inr_target_from_a_goal(
    fhir_base: str, run_id: str, tmp_path: Path
) -> None:
    practice = Practice(run_id)
    settings = Settings(
        fhir_base_url=fhir_base,
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        practice=practice.org,
    )
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in _records(practice)
        ]
        gateway.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        summary = run_sweep(
            settings,
            make_session_factory(engine),
            gateway,
            rules(),
            as_of=AS_OF,
            chases=SweepChases.of(settings, gateway, rules()),
        )
        assert summary.counts.errors == 0

        def flags(name: str) -> list[dict[str, Any]]:
            found = gateway.search(
                "Flag",
                {
                    "subject": f"Patient/{practice.pid(name)}",
                    "_tag": f"{terminology.TAG}|hrm-fhir",
                },
            )
            return found.resources

        [toxic] = flags("lith")
        assert "URGENT" in toxic["code"]["text"]
        assert "Lithium level high - toxic" in toxic["code"]["text"]
        assert flags("valve") == []
        [usual] = flags("usual")
        assert "ACTION" in usual["code"]["text"]
        assert "2.0-3.0 is assumed" in usual["code"]["text"]
    finally:
        gateway.close()
        engine.dispose()
