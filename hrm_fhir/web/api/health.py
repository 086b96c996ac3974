"""Liveness and readiness probes; no authentication."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.errors import FHIRError
from hrm_fhir.web.api.schemas import ReadinessSchema
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state

READY_TIMEOUT_SECONDS = 3.0
"""How long the readiness probe waits for the FHIR server's CapabilityStatement."""
bp = Blueprint("health", __name__)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    database: str
    fhir: str

    @property
    def is_ready(self) -> bool:
        return self.database == self.fhir == "ok"


def check_readiness() -> Readiness:
    """Whether the database answers a query and the FHIR server its ``/metadata``.

    The CapabilityStatement is public in FHIR and SMART, so no credentials are sent.
    """
    database = fhir = "ok"
    try:
        db_session().execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database unavailable", extra={"error": type(exc).__name__})
        database = "unavailable"
    gateway = FHIRGateway(
        service_state().settings.fhir_base_url, timeout=READY_TIMEOUT_SECONDS, max_retries=0
    )
    try:
        gateway.capabilities()
    except FHIRError as exc:
        extra = {"error": type(exc).__name__, "http_status": exc.status}
        logger.warning("readiness: FHIR server unavailable", extra=extra)
        fhir = "unavailable"
    finally:
        gateway.close()
    return Readiness(database, fhir)


@bp.get("/health")
def health() -> Response:
    return jsonify(status="ok")


@bp.get("/ready")
def ready() -> tuple[Response, int]:
    readiness = check_readiness()
    return jsonify(ReadinessSchema().dump(readiness)), 200 if readiness.is_ready else 503
