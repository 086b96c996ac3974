"""Reads what one patient's evidence pack rests on: the FHIR server and the ledger.

The pack itself is assembled, without I/O, by ``hrm_fhir/audit/evidence.py``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.fhir.answers import Resource
from hrm_fhir.adapters.fhir.fetch import OURS_TAG, FetchReport, read_records
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.records import FindingRecord, WorkflowEventRecord
from hrm_fhir.audit.evidence import EvidenceSource
from hrm_fhir.workflow.reads import referring


def read_evidence(gateway: FHIRGateway, session: Session, patient: str) -> EvidenceSource | None:
    """The patient's record, the Tasks and Flags the service wrote with every version, the
    Communications and Provenance about them, and the ledger's rows; None when the server has
    no such Patient (or ``patient``, an id or ``Patient/<id>``, is not a FHIR id)."""
    patient_id = patient.removeprefix("Patient/")
    try:
        found = gateway.read("Patient", patient_id)
    except ValueError:  # not a FHIR id: no Patient can have it
        return None
    if found is None:
        return None
    ref = f"Patient/{patient_id}"
    tasks = gateway.search("Task", {"patient": ref, "_tag": OURS_TAG}).resources
    flags = gateway.search("Flag", {"subject": ref, "_tag": OURS_TAG}).resources
    task_refs = [f"Task/{task['id']}" for task in tasks]
    flag_refs = [f"Flag/{flag['id']}" for flag in flags]
    return EvidenceSource(
        patient=found,
        record=read_records(gateway, [ref], FetchReport())[ref],
        tasks=[_versions(gateway, task) for task in tasks],
        flags=[_versions(gateway, flag) for flag in flags],
        communications=referring(gateway, "Communication", "based-on", task_refs),
        provenance=referring(gateway, "Provenance", "target", [*task_refs, *flag_refs]),
        events=list(
            session.scalars(select(WorkflowEventRecord).where(WorkflowEventRecord.patient == ref))
        ),
        findings=list(session.scalars(select(FindingRecord).where(FindingRecord.patient == ref))),
    )


def _versions(gateway: FHIRGateway, resource: Resource) -> list[Resource]:
    """Every stored version; the current one alone when the server keeps no history."""
    return gateway.history(resource["resourceType"], resource["id"]) or [resource]
