"""Shared test configuration: hypothesis profiles (more examples in CI), a real HAPI FHIR
server for the integration and browser tests (``fhir_base``, ``run_id``), and the databases
(``database_url`` on SQLite and PostgreSQL, ``postgres_url``; see tests/README.md).

``HRM_TEST_FHIR_BASE_URL`` points the tests at any running server; otherwise the project's own
sandbox (sandbox/hapi, built from Maven Central) is started for the session and stopped after.
Likewise ``HRM_TEST_DATABASE_URL`` names a PostgreSQL database to use; otherwise a throwaway
cluster is started (tests/databases.py). Either way an unreachable server fails the run: these
tests never skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, settings

from tests.databases import PostgresServer, PostgresUnavailableError, throwaway_cluster

settings.register_profile("dev", max_examples=40, deadline=None, derandomize=True)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "sandbox" / "hapi" / "run.sh"


def _reachable(base: str) -> bool:
    try:
        return requests.get(f"{base}/metadata", timeout=10).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def fhir_base() -> Iterator[str]:
    given = os.environ.get("HRM_TEST_FHIR_BASE_URL")
    if given:
        if not _reachable(given):
            pytest.fail(f"HRM_TEST_FHIR_BASE_URL={given} does not answer GET /metadata")
        yield given.rstrip("/")
        return
    port = os.environ.get("HRM_TEST_SANDBOX_PORT", "18321")
    started = subprocess.run(
        ["bash", str(RUN), "start", port], capture_output=True, text=True, timeout=1800, check=False
    )
    if started.returncode != 0:
        pytest.fail(f"the HAPI sandbox did not start:\n{started.stderr[-3000:]}")
    base = started.stdout.strip().splitlines()[-1]
    try:
        yield base
    finally:
        subprocess.run(["bash", str(RUN), "stop"], capture_output=True, timeout=120, check=False)


@pytest.fixture
def run_id() -> str:
    """A prefix unique to this test, so its resources never meet another test's."""
    return f"t{uuid.uuid4().hex[:10]}"


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]
"""The database backends the service supports; ``database_url`` runs a test on each."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The run's PostgreSQL: ``HRM_TEST_DATABASE_URL``'s, else a throwaway cluster."""
    given = os.environ.get("HRM_TEST_DATABASE_URL")
    try:
        if given:
            server = PostgresServer(given)
            yield server
            server.close()
            return
        with throwaway_cluster() as url:
            server = PostgresServer(url)
            yield server
            server.close()
    except PostgresUnavailableError as error:
        pytest.fail(f"no PostgreSQL for the database tests: {error}")


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """An empty PostgreSQL database (a schema of its own) for this test."""
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for this test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hrm.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.fresh_database() as url:
        yield url


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use PostgreSQL directly carry the ``postgresql`` mark too."""
    for item in items:
        if {"postgres", "postgres_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgresql)
