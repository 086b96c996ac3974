"""Pages through Flask's test client: an app on a temporary SQLite database with three users.
The FHIR base is a closed local port, so anything that reaches it fails fast."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.store.users import create_user
from hrm_fhir.web.request_scope import db_session
from tests.apps import AppFactory, app_factory
from tests.databases import database_for

PASSWORD = "correct horse battery staple"  # noqa: S105 - test accounts only
USERS = {"tech": "technician", "pharm": "pharmacist", "gp": "gp", "boss": "admin"}
PRACTICE = "org-1"


@pytest.fixture
def make_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AppFactory]:
    """Apps on SQLite; a test that uses ``database_url`` gets them on both backends."""
    with app_factory(tmp_path, database_url=database_for(request, tmp_path)) as factory:
        yield factory


def add_users(app: Flask) -> None:
    with app.app_context():
        session = db_session()
        for username, role in USERS.items():
            create_user(
                session,
                username,
                role=role,
                password=PASSWORD,
                practice=PRACTICE,
                display_name=f"Test {role}",
            )
        session.commit()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    app = make_app()
    add_users(app)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Clock:
    """A clock for ``app.config["CLOCK"]`` that moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def token_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns a CSRF token valid for the signed-in session."""
    token = token_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.text
    return token_of(client.get(response.headers["Location"]).text)
