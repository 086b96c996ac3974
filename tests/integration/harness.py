"""One test's practice, database and gateway against the real HAPI server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir import terminology
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.config import Settings
from hrm_fhir.sweep.run import SweepSummary, run_sweep
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import rules
from tests.integration.practice import AS_OF, LITHIUM, Practice, Resource


class Harness:
    """One test's practice, database and gateway."""

    def __init__(self, base: str, run_id: str, database_url: str, page_size: int = 200) -> None:
        self.practice = Practice(run_id)
        self.settings = Settings(
            fhir_base_url=base,
            database_url=database_url,
            practice=self.practice.org,
            page_size=page_size,
        )
        self.engine = init_db(self.settings.database_url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.gateway = FHIRGateway.from_settings(self.settings)

    def upload(self, resources: list[Resource]) -> None:
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ]
        reply = self.gateway.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
        assert all(e["response"]["status"].startswith("2") for e in reply["entry"])

    def sweep(self, **kw: Any) -> SweepSummary:
        return run_sweep(
            self.settings,
            self.sessions,
            self.gateway,
            rules(),
            as_of=kw.pop("as_of", AS_OF),
            **kw,
            chases=SweepChases.of(self.settings, self.gateway, rules()),
        )

    def ours(self, kind: str, patient: str) -> list[Resource]:
        """The service's Tasks or Flags for one patient, straight from the server."""
        param = "patient" if kind == "Task" else "subject"
        found = self.gateway.search(
            kind,
            {param: f"Patient/{self.practice.pid(patient)}", "_tag": f"{terminology.TAG}|hrm-fhir"},
        )
        return found.resources

    def close(self) -> None:
        self.gateway.close()
        self.engine.dispose()


def a_week_of_changes(h: Harness, copies: int) -> None:
    """The second week, the same in each twin: for every other copy a blood result arrives, the
    lithium level falls and the opioid is stopped; one new patient starts methotrexate."""
    p = h.practice
    resources: list[Resource] = []
    for n in range(0, copies, 2):
        chain = h.gateway.search("MedicationRequest", {"subject": f"Patient/{p.pid(f'opioid{n}')}"})
        latest = max(chain.resources, key=lambda r: str(r["authoredOn"]))
        resources += [
            *p.bloods(f"mtx{n}", AS_OF - timedelta(days=1)),
            p.result(f"lith{n}", LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=1)),
            {k: v for k, v in latest.items() if k != "meta"} | {"status": "stopped"},
        ]
    h.upload([*resources, *a_new_start(p)])


def a_new_start(p: Practice, name: str = "new") -> list[Resource]:
    """A patient new to the sweep, on methotrexate for a year."""
    return [
        p.patient(name),
        *p.repeats(
            name,
            "Methotrexate 2.5mg tablets",
            AS_OF - timedelta(days=400),
            AS_OF - timedelta(days=9),
            dosage="10mg weekly",
        ),
    ]
