"""What one request holds: its database session and its FHIR gateway, each opened on first use
and closed when the request's app context ends."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.web.state import service_state


def db_session() -> Session:
    """This request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = service_state().sessions()()
    session: Session = g.db_session
    return session


def fhir_gateway() -> FHIRGateway:
    """This request's gateway to the configured FHIR server, closed when the request ends."""
    if "fhir_gateway" not in g:
        g.fhir_gateway = FHIRGateway.from_settings(service_state().settings)
    gateway: FHIRGateway = g.fhir_gateway
    return gateway


def close_request(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
    gateway = g.pop("fhir_gateway", None)
    if gateway is not None:
        gateway.close()


def init_app(app: Flask) -> None:
    """Close each request's session and gateway when its app context ends."""
    app.teardown_appcontext(close_request)
