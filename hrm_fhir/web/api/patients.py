"""One patient's monitoring, evaluated live from the FHIR server, with their open ledger items;
and their evidence pack (hrm_fhir/audit/evidence.py). A caller bound to a practice gets a 404 for
another practice's patient, as for none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from hrm_fhir import clock
from hrm_fhir.adapters.fhir.fetch import FetchReport, read_rule_records
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.records import FindingRecord
from hrm_fhir.audit.evidence import build_pack
from hrm_fhir.audit.evidence_render import to_html, to_json
from hrm_fhir.audit.evidence_source import read_evidence
from hrm_fhir.domain import PatientRef, Skipped
from hrm_fhir.evaluation import evaluate_records
from hrm_fhir.rules.therapy import Therapy
from hrm_fhir.web.api.api_keys import acting_user, require_visible
from hrm_fhir.web.api.schemas import (
    MonitoringSchema,
    load_evidence_query,
    load_monitoring_query,
    load_patient_ref,
)
from hrm_fhir.web.request_scope import db_session, fhir_gateway
from hrm_fhir.web.state import ServiceState, service_state
from hrm_fhir.workflow.fields import NO_PATIENT, general_practitioners_of

bp = Blueprint("patients", __name__, url_prefix="/patients")


@dataclass(frozen=True)
class Monitoring:
    patient: PatientRef
    as_of: date
    therapies: list[Therapy]
    findings: list[dict[str, object]]
    open_tasks: list[FindingRecord]
    skipped: list[Skipped]


def evaluate_patient(
    state: ServiceState, session: Session, patient: PatientRef, as_of: date | None
) -> Monitoring:
    """Read the patient's record from the FHIR server and evaluate it on ``as_of`` (default
    today); NotFound when the server has no such Patient."""
    day = as_of or clock.today()
    resources = read_rule_records(fhir_gateway(), state.rules, [patient], FetchReport())[patient]
    found = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if found is None:
        raise NotFound(NO_PATIENT)
    require_visible(general_practitioners_of(found), NO_PATIENT)
    evaluation = evaluate_records(
        state.rules, resources, day, window_days=state.settings.due_window_days
    )
    therapies = evaluation.evaluator.therapies(evaluation.record(patient))
    return Monitoring(
        patient=patient,
        as_of=day,
        therapies=[therapies[group] for group in sorted(therapies)],
        findings=[finding.to_json() for finding in evaluation.findings_of(patient)],
        open_tasks=ledger.open_findings(session, patient=patient),
        skipped=evaluation.skipped,
    )


@bp.get("/<patient_id>/monitoring")
def monitoring(patient_id: str) -> Response:
    patient = load_patient_ref(patient_id)
    query = load_monitoring_query(request.args)
    result = evaluate_patient(service_state(), db_session(), patient, query.as_of)
    return jsonify(MonitoringSchema().dump(result))


@bp.get("/<patient_id>/evidence")
def evidence(patient_id: str) -> Response:
    """The patient's evidence pack as JSON, or printable HTML with ``format=html``. It names the
    patient, so like the patient card it acts for a person, kept to their practice."""
    acting_user()
    patient = load_patient_ref(patient_id)
    query = load_evidence_query(request.args)
    state = service_state()
    source = read_evidence(fhir_gateway(), db_session(), patient, state.rules)
    if source is None:
        raise NotFound(NO_PATIENT)
    require_visible(general_practitioners_of(source.patient), NO_PATIENT)
    pack = build_pack(
        source,
        state.rules,
        as_of=query.as_of or clock.today(),
        generated_at=datetime.now(UTC),
    )
    if query.format == "html":
        return Response(to_html(pack), mimetype="text/html")
    return Response(to_json(pack), mimetype="application/json")
