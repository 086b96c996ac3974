"""What an incremental sweep notices, against a real HAPI FHIR server: a change to any resource a
rule reads (the record types, the shared-care entries and arrangement Tasks, coded Conditions,
Goals) brings its patient back, and only those patients; they are re-read in groups with every
type a rule reads, not from the snapshot kept at the last sweep."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import orjson
import pytest

from hrm_fhir.adapters.store import ledger
from hrm_fhir.sweep.run import SweepSummary, run_sweep
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import PRACTICE_CODES, SNOMED, rules_with_shared_care_entries
from tests.integration.harness import Harness
from tests.integration.practice import (
    AS_OF,
    LITHIUM,
    TOXIC_LITHIUM,
    Practice,
    Resource,
    lithium_level,
    several,
)

pytestmark = pytest.mark.hapi
RULES = rules_with_shared_care_entries()
"""The shipped rules with coded shared-care entries, so that the sweep searches Conditions and
Flags for them (the shipped catalogue lists no entry codes; Procedures are read whole)."""
STRUCTURED_MEDICATION_REVIEW = {"system": SNOMED, "code": "1239511000000100"}
SHARED_CARE = {"system": PRACTICE_CODES, "code": "shared-care"}


def _sweep(h: Harness) -> SweepSummary:
    summary = run_sweep(
        h.settings,
        h.sessions,
        h.gateway,
        RULES,
        as_of=AS_OF,
        chases=SweepChases.of(h.settings, h.gateway, RULES),
    )
    assert summary.counts.errors == 0
    return summary


def _one_change_each(p: Practice) -> dict[str, Resource]:
    """Per patient, the one resource that changes after the first sweep, one of each type a
    rule reads (the patient's name -> the resource)."""
    day = AS_OF - timedelta(days=1)
    return {
        "mtx0": p.patient("mtx0", telecom=[{"system": "phone", "value": "01632 960000"}]),
        "opioid0": p.prescription("opioid0", "Morphine sulfate 60mg modified-release tablets", day),
        "statin0": p.statement(
            "statin0", "Lithium carbonate 400mg MR tablets", day - timedelta(days=200), "800mg"
        ),
        "statin1": p.prescription("statin1", "Methotrexate 2.5mg tablets", day, dosage="weekly"),
        "lith0": p.result("lith0", LITHIUM, 0.7, "mmol/L", day),
        "mtx1": {
            "resourceType": "DiagnosticReport",
            "id": p.pid("mtx1-report"),
            "status": "final",
            "code": {"text": "Full blood count"},
            "subject": {"reference": f"Patient/{p.pid('mtx1')}"},
            "effectiveDateTime": day.isoformat(),
        },
        "lith1": p.condition("lith1", {"system": SNOMED, "code": TOXIC_LITHIUM}, day),
        "warf": p.inr_goal("warf", 2.5, 3.5),
        "lith2": p.condition("lith2", SHARED_CARE, day),
        "opioid1": p.entry(
            "Procedure", "opioid1", SHARED_CARE, status="completed", performedDateTime=str(day)
        ),
        "opioid2": p.entry("Flag", "opioid2", SHARED_CARE, status="active"),
        "opioid3": p.entry(
            "Procedure",
            "opioid3",
            STRUCTURED_MEDICATION_REVIEW,
            status="completed",
            performedDateTime=str(day),
        ),
        "mtx2": p.monitored_elsewhere(
            "mtx2", "methotrexate", "Rheumatology, Oakfield Hospital", AS_OF + timedelta(days=90)
        ),
    }


def _unread_changes(p: Practice) -> dict[str, Resource]:
    """Changes no rule reads: a Condition coded as nothing a pack or the shared-care list
    names (a known patient), and a result of a patient on no monitored drug."""
    hypertension = {"system": SNOMED, "code": "38341003"}
    return {
        "mtx3": p.condition("mtx3", hypertension, AS_OF - timedelta(days=1)),
        "statin2": p.result("statin2", LITHIUM, 0.5, "mmol/L", AS_OF - timedelta(days=1)),
    }


def _snapshot(h: Harness, name: str) -> dict[tuple[str, str], str]:
    """The patient's snapshot kept by the last sweep: (type, id) -> version."""
    with h.sessions.begin() as session:
        body = ledger.load_snapshots(session).get(f"Patient/{h.practice.pid(name)}")
    resources = orjson.loads(body) if body else []
    return {(r["resourceType"], r["id"]): (r.get("meta") or {}).get("versionId") for r in resources}


@pytest.mark.usefixtures("database_url")
def test_an_incremental_sweep_re_reads_a_patient_after_a_change_of_any_type_a_rule_reads(
    harness: Harness,
) -> None:
    h = harness
    h.settings = dataclasses.replace(h.settings, watermark_overlap_seconds=0)
    h.upload([*several(h.practice, 4), *h.practice.warfarin("warf", 2.5)])
    assert _sweep(h).mode == "full"
    changes = _one_change_each(h.practice)
    unread = _unread_changes(h.practice)
    h.upload([*changes.values(), *unread.values()])
    written = {name: (r["resourceType"], r["id"], "1") for name, r in changes.items()}
    written["mtx0"] = ("Patient", h.practice.pid("mtx0"), "2")

    summary = _sweep(h)

    assert summary.mode == "incremental"
    for name, (kind, rid, version) in written.items():
        assert _snapshot(h, name).get((kind, rid)) == version, f"{kind} of {name} re-read"
    assert summary.records_read == len(changes), "the changed patients, in groups, and no one else"
    assert ("Condition", unread["mtx3"]["id"]) not in _snapshot(h, "mtx3")
    assert _snapshot(h, "statin2") == {}, "not on a monitored drug: not followed"


def _open_lithium(h: Harness, name: str) -> set[str]:
    """The kinds of the patient's open lithium findings."""
    patient = f"Patient/{h.practice.pid(name)}"
    with h.sessions.begin() as session:
        rows = ledger.open_findings(session, patient=patient)
        return {row.kind.value for row in rows if row.drug_group == "lithium"}


@pytest.mark.usefixtures("database_url")
def test_an_incremental_sweep_re_reads_a_patient_whose_result_was_deleted(
    harness: Harness,
) -> None:
    """A change search cannot show a deletion: without the type histories, the deleted lithium
    level would stay in the snapshot, the level would count as done and no overdue finding
    would open until the next full sweep (hazard H74)."""
    h = harness
    h.settings = dataclasses.replace(h.settings, watermark_overlap_seconds=0)
    practice = several(h.practice, 2)
    h.upload(practice)
    assert _sweep(h).mode == "full"
    level = ("Observation", lithium_level(h.practice, practice, "lith0")["id"])
    assert level in _snapshot(h, "lith0")
    assert "out_of_range" in _open_lithium(h, "lith0")
    h.gateway.request("DELETE", "/".join(level), "delete the lithium level")

    summary = _sweep(h)

    assert summary.mode == "incremental"
    assert summary.records_read == 1, "the patient whose record lost a resource, and no one else"
    assert level not in _snapshot(h, "lith0")
    assert _open_lithium(h, "lith0") == {"overdue"}, "no level on record: due now, not in range"
    assert "out_of_range" in _open_lithium(h, "lith1"), "an unchanged patient keeps its finding"


@pytest.mark.usefixtures("database_url")
def test_a_result_moved_to_another_patient_leaves_the_first_patients_record(
    harness: Harness,
) -> None:
    """A lithium level filed to the wrong patient, then corrected to name the right one: the
    change search names only the new patient, so the first would keep the level in its snapshot
    (the level counted as done) unless whoever held it is re-read too (hazard H74)."""
    h = harness
    h.settings = dataclasses.replace(h.settings, watermark_overlap_seconds=0)
    practice = several(h.practice, 2)
    h.upload(practice)
    assert _sweep(h).mode == "full"
    level = lithium_level(h.practice, practice, "lith0")
    h.upload([{**level, "subject": {"reference": f"Patient/{h.practice.pid('lith1')}"}}])

    summary = _sweep(h)

    assert summary.mode == "incremental"
    assert summary.records_read == 2, "the patient who had the level and the one who has it"
    assert ("Observation", level["id"]) not in _snapshot(h, "lith0")
    assert _open_lithium(h, "lith0") == {"overdue"}


@pytest.mark.usefixtures("database_url")
def test_a_medication_recoded_as_a_monitored_drug_brings_its_patients_in(
    harness: Harness,
) -> None:
    """Prescriptions that reference a Medication recorded as a statin, whose Medication is then
    corrected to methotrexate: neither the prescriptions nor the patient changed, so only the
    Medication's change, traced back to whoever is prescribed it, can bring the patient in."""
    h = harness
    h.settings = dataclasses.replace(h.settings, watermark_overlap_seconds=0)
    p = h.practice
    medication = {
        "resourceType": "Medication",
        "id": p.pid("med"),
        "code": {"text": "Atorvastatin 20mg tablets"},
    }
    chain = p.repeats(
        "recoded",
        "unused",
        AS_OF - timedelta(days=400),
        AS_OF - timedelta(days=10),
        dosage="10mg once weekly",
    )
    for request in chain:
        del request["medicationCodeableConcept"]
        request["medicationReference"] = {"reference": f"Medication/{medication['id']}"}
    h.upload([*several(p, 1), p.patient("recoded"), medication, *chain])
    assert _sweep(h).mode == "full"
    assert _snapshot(h, "recoded") == {}, "on a statin: not followed"
    h.upload([{**medication, "code": {"text": "Methotrexate 2.5mg tablets"}}])

    summary = _sweep(h)

    assert summary.mode == "incremental"
    assert summary.records_read == 1, "the patient prescribed the recoded Medication"
    assert ("Medication", medication["id"]) in _snapshot(h, "recoded")
    patient = f"Patient/{p.pid('recoded')}"
    with h.sessions.begin() as session:
        groups = {row.drug_group for row in ledger.open_findings(session, patient=patient)}
    assert "methotrexate" in groups
