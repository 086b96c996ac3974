"""An incremental bulk sweep's changes (``sweep/reads._export_changes``) against a small in-memory
server: what a ``_since`` export cannot show (a Medication recoded in place, a deleted Patient)
must still reach the patients it concerns, as a paged sweep's changes do (hazards H71, H74). The
real server's answers are tested against HAPI in tests/integration/test_sweep_changes_hapi.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import orjson
import pytest

from hrm_fhir.adapters.fhir.fetch import FetchReport, Resource, Scope, group_records
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.config import Settings
from hrm_fhir.sweep import reads
from hrm_fhir.sweep.reads import SweepRead
from tests.adapters.fhir.payloads import BASE
from tests.builders import rules

WATERMARK = "2026-11-27T08:00:00.000+00:00"
BEFORE = "2026-11-01T08:00:00.000+00:00"
AFTER = "2026-11-27T09:00:00.000+00:00"


class FakeServer:
    """Enough of a FHIR server for the sweep's searches and type histories: one page each."""

    page_size = 200

    def __init__(self, resources: Sequence[Resource], deleted: Sequence[str] = ()) -> None:
        self.resources = list(resources)
        self.deleted = list(deleted)

    def iter_pages(
        self,
        resource_type: str,
        params: Mapping[str, str],
        *,
        count: int | None = None,
        history: bool = False,
    ) -> Iterator[Resource]:
        meta = {"lastUpdated": AFTER}
        if history:
            entries = [
                {"request": {"method": "DELETE", "url": f"{ref}/_history/2"}}
                for ref in self.deleted
                if ref.startswith(f"{resource_type}/")
            ]
            entries += [
                {
                    "resource": {"resourceType": resource_type, "id": r["id"], "meta": r["meta"]},
                    "request": {
                        "method": "PUT" if r["meta"]["versionId"] != "1" else "POST",
                        "url": f"{_ref(r)}/_history/{r['meta']['versionId']}",
                    },
                }
                for r in self.resources
                if r["resourceType"] == resource_type
                and r["meta"]["lastUpdated"] >= params["_since"]
            ]
            yield {"resourceType": "Bundle", "type": "history", "meta": meta, "entry": entries}
            return
        found = [r for r in self.resources if r["resourceType"] == resource_type]
        found = [r for r in found if all(self._matches(r, k, v) for k, v in params.items())]
        if "_include" in params:
            wanted = {(r.get("medicationReference") or {}).get("reference") for r in found}
            found += [r for r in self.resources if _ref(r) in wanted]
        entries = [{"resource": r} for r in found]
        yield {"resourceType": "Bundle", "type": "searchset", "meta": meta, "entry": entries}

    def _matches(self, resource: Resource, name: str, value: str) -> bool:
        if name == "_lastUpdated":
            return str(resource["meta"]["lastUpdated"]) > value.removeprefix("gt")
        if name == "_id":
            return str(resource["id"]) in value.split(",")
        if name == "subject":
            return (resource.get("subject") or {}).get("reference") in value.split(",")
        if name == "medication":
            return (resource.get("medicationReference") or {}).get("reference") in value.split(",")
        if name in ("general-practitioner", "subject:Patient.general-practitioner"):
            key = resource["id"] if resource["resourceType"] == "Patient" else None
            key = key or resource["subject"]["reference"].split("/")[1]
            patient = next(
                (r for r in self.resources if r["resourceType"] == "Patient" and r["id"] == key),
                {},
            )
            return value in [d["reference"] for d in patient.get("generalPractitioner", [])]
        return name in ("_elements", "_include")  # the extra searches (codes, tags) find none


def _ref(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _meta(version: str, updated: str) -> dict[str, str]:
    return {"versionId": version, "lastUpdated": updated}


def _patient(pid: str, practice: str = "org1") -> Resource:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": _meta("1", BEFORE),
        "generalPractitioner": [{"reference": f"Organization/{practice}"}],
    }


def _changes(
    monkeypatch: pytest.MonkeyPatch,
    server: FakeServer,
    snapshots: dict[str, bytes],
    practice: str = "",
) -> tuple[dict[str, list[Resource]] | None, dict[str, list[Resource]] | None]:
    """The paged and the bulk incremental reads, the ``_since`` export made of the server's
    resources changed since the watermark and grouped as ``export_records`` groups them."""

    def export(*args: Any) -> dict[str, list[Resource]]:
        since = args[-1]
        changed = [r for r in server.resources if r["meta"]["lastUpdated"] > since]
        return group_records(changed, None, FetchReport())

    monkeypatch.setattr(reads, "export_records", export)
    fetched = []
    for bulk in (False, True):
        read = SweepRead(
            settings=Settings(fhir_base_url=BASE, practice=practice),
            gateway=cast(FHIRGateway, server),
            rules=rules(),
            scope=Scope(practice),
            report=FetchReport(),
            bulk=bulk,
            known=set(snapshots),
            snapshots=snapshots,
            scope_pages=1000,
        )
        changes = reads._export_changes if bulk else reads._read_changes
        fetched.append(changes(read, reads.record_searches(read.rules), WATERMARK))
    return fetched[0], fetched[1]


def test_a_medication_recoded_in_place_brings_in_its_patient_as_a_paged_sweep_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A statin corrected to methotrexate in the Medication itself: the export holds the
    # Medication, but no changed prescription references it, so grouping drops it.
    medication = {
        "resourceType": "Medication",
        "id": "m1",
        "meta": _meta("2", AFTER),
        "code": {"text": "Methotrexate 2.5mg tablets"},
    }
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "meta": _meta("1", BEFORE),
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-10-01",
        "medicationReference": {"reference": "Medication/m1"},
    }
    server = FakeServer([_patient("p1"), request, medication])

    paged, bulk = _changes(monkeypatch, server, snapshots={})

    assert paged is not None
    assert {_ref(r) for r in paged["Patient/p1"]} == {
        "Patient/p1",
        "MedicationRequest/mr1",
        "Medication/m1",
    }
    assert bulk == paged


def test_a_deleted_patient_in_a_practice_leaves_an_empty_record_as_a_paged_sweep_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The patient and the level deleted: the re-read finds no Patient, so the practice filter of
    # a bulk sweep dropped the patient and the sweep kept evaluating the old snapshot, level and
    # all; a paged sweep (and a full one) gives the patient an empty record.
    level = {
        "resourceType": "Observation",
        "id": "o2",
        "meta": _meta("1", BEFORE),
        "subject": {"reference": "Patient/p2"},
    }
    server = FakeServer([], deleted=["Patient/p2", "Observation/o2"])
    snapshots = {"Patient/p2": orjson.dumps([_patient("p2"), level])}

    paged, bulk = _changes(monkeypatch, server, snapshots, practice="org1")

    assert paged == {"Patient/p2": []}
    assert bulk == paged


def test_a_result_moved_to_a_patient_of_another_practice_leaves_the_first_patients_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A level filed to p1 (practice org1), then moved to p3 of practice org2: the change search
    # of the practice no longer finds it, but p1's snapshot still holds it.
    level = {
        "resourceType": "Observation",
        "id": "o5",
        "meta": _meta("2", AFTER),
        "subject": {"reference": "Patient/p3"},
    }
    server = FakeServer([_patient("p1"), _patient("p3", practice="org2"), level])
    was = {**level, "meta": _meta("1", BEFORE), "subject": {"reference": "Patient/p1"}}
    snapshots = {"Patient/p1": orjson.dumps([_patient("p1"), was])}

    paged, bulk = _changes(monkeypatch, server, snapshots, practice="org1")

    assert paged is not None
    assert {_ref(r) for r in paged["Patient/p1"]} == {"Patient/p1"}
    assert bulk == paged
