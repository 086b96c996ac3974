"""Sweeps: start one (operator role) and read the ledger of past and running sweeps. A caller
bound to a practice sees the sweeps of that practice and of the whole server (counts, no patient
data), never another practice's."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from hrm_fhir.adapters.store import ledger
from hrm_fhir.sweep.launcher import SweepLauncher, SweepRequest
from hrm_fhir.sweep.run import SweepBusyError
from hrm_fhir.web.api.api_keys import caller
from hrm_fhir.web.api.schemas import (
    SweepSchema,
    SweepStartedSchema,
    load_sweep_list_query,
    load_sweep_request,
)
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state

bp = Blueprint("sweeps", __name__, url_prefix="/sweeps")


def start_sweep(session: Session, launcher: SweepLauncher, sweep: SweepRequest) -> int | None:
    """Start a sweep unless one is running here or another process holds the sweep lock."""
    now = datetime.now(UTC)
    if launcher.is_busy() or ledger.live_lock(session, ledger.SWEEP_LOCK, now=now) is not None:
        raise SweepBusyError("a sweep is already running")
    return launcher.start(sweep)


@bp.post("")
def create() -> tuple[Response, int]:
    sweep = load_sweep_request(request.get_json() if request.get_data() else {})
    sweep_id = start_sweep(db_session(), service_state().sweeps, sweep)
    status = "started" if sweep_id is None else "completed"
    body = SweepStartedSchema().dump({"sweep": sweep_id, "status": status})
    return jsonify(body), 202


@bp.get("")
def index() -> Response:
    query = load_sweep_list_query(request.args)
    sweeps = ledger.list_sweeps(db_session(), limit=query.limit, scopes=_visible_scopes())
    return jsonify(sweeps=SweepSchema(many=True).dump(sweeps))


def _visible_scopes() -> tuple[str, ...] | None:
    own = caller().organization
    return None if own is None else ("all", own)


@bp.get("/<int:sweep_id>")
def show(sweep_id: int) -> Response:
    sweep = ledger.get_sweep(db_session(), sweep_id)
    scopes = _visible_scopes()
    if sweep is None or (scopes is not None and sweep.scope not in scopes):
        raise NotFound(f"no sweep {sweep_id}")
    return jsonify(SweepSchema().dump(sweep))
