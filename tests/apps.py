"""Flask apps for tests: a temporary SQLite database and a FHIR base on a closed local port, so
anything that reaches the FHIR server fails fast. Each app is closed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

from hrm_fhir.web.app import create_app
from hrm_fhir.web.state import service_state

UNREACHABLE_FHIR = "http://127.0.0.1:9/fhir"
AppFactory = Callable[..., Flask]


@contextmanager
def app_factory(tmp_path: Path, **defaults: Any) -> Iterator[AppFactory]:
    """Build apps with overrides on top of the test defaults (and ``defaults``)."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "database_url": f"sqlite:///{tmp_path / 'hrm.db'}",
                "fhir_base_url": UNREACHABLE_FHIR,
                "fhir_max_retries": 0,
                "fhir_timeout": 2.0,
                **defaults,
                **overrides,
            }
        )
        made.append(app)
        return app

    yield factory
    for app in made:
        service_state(app).close(timeout=10)
