"""flaskr-style fixtures: an app on a temporary SQLite database with API keys, its client and
CLI runner. The FHIR base is a closed local port, so anything that reaches it fails fast."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.app import create_app, service_state

READ_KEY = "read-key-0123456789"
OPERATOR_KEY = "operator-key-0123456789"
READ = {"X-API-Key": READ_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}
UNREACHABLE_FHIR = "http://127.0.0.1:9/fhir"

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    """Build apps with overrides on top of the test defaults; each is closed afterwards."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "database_url": f"sqlite:///{tmp_path / 'hrm.db'}",
                "fhir_base_url": UNREACHABLE_FHIR,
                "fhir_max_retries": 0,
                "fhir_timeout": 2.0,
                "api_keys": {READ_KEY: "read", OPERATOR_KEY: "operator"},
                **overrides,
            }
        )
        made.append(app)
        return app

    yield factory
    for app in made:
        service_state(app).close(timeout=10)


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
