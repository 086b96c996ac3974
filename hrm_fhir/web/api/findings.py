"""The findings ledger: what was written back for each finding, and whether it is still open.
A caller bound to a practice sees that practice's findings only."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from hrm_fhir.adapters.store import ledger
from hrm_fhir.web.api.api_keys import scoped_practice
from hrm_fhir.web.api.schemas import FindingRecordSchema, load_finding_query
from hrm_fhir.web.request_scope import db_session

bp = Blueprint("findings", __name__, url_prefix="/findings")


@bp.get("")
def index() -> Response:
    query = load_finding_query(request.args)
    rows = ledger.list_findings(
        db_session(),
        practice=scoped_practice(query.practice),
        drug_group=query.drug_group,
        kind=query.kind,
        severity=query.severity,
        state=query.state,
        limit=query.limit,
    )
    return jsonify(findings=FindingRecordSchema(many=True).dump(rows))
