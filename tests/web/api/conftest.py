"""flaskr-style fixtures: an app on a temporary SQLite database with API keys, its client and
CLI runner. The FHIR base is a closed local port, so anything that reaches it fails fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from tests.apps import AppFactory, app_factory
from tests.databases import database_for

READ_KEY = "read-key-0123456789"
OPERATOR_KEY = "operator-key-0123456789"
INTEGRATION_KEY = "integration-key-0123456789"
READ = {"X-API-Key": READ_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}
INTEGRATION = {"X-API-Key": INTEGRATION_KEY}
KEYS = {READ_KEY: "read", OPERATOR_KEY: "operator", INTEGRATION_KEY: "integration"}


@pytest.fixture
def make_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AppFactory]:
    """Build apps with overrides on top of the test defaults; each is closed afterwards. On
    SQLite; a test that uses ``database_url`` gets them on both backends."""
    with app_factory(
        tmp_path,
        database_url=database_for(request, tmp_path),
        api_keys=KEYS,
    ) as factory:
        yield factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner() -> CliRunner:
    """Drives the ``hrm-fhir`` click group (``serve``, ``scheduler``)."""
    return CliRunner()
