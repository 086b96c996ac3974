"""The request-scoped database session: opened on first use, closed when the request ends."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from hrm_fhir.web.state import service_state


def db_session() -> Session:
    """This request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = service_state().sessions()()
    session: Session = g.db_session
    return session


def close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Close each request's session when its app context ends."""
    app.teardown_appcontext(close_session)
