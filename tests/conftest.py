"""Shared test configuration: hypothesis profiles (more examples in CI), a real HAPI FHIR
server for the integration and browser tests (``fhir_base``, ``run_id``), and the databases
(``database_url`` on SQLite and PostgreSQL, ``postgres_url``; see tests/README.md).

``HRM_TEST_FHIR_BASE_URL`` points the tests at any running server; otherwise the project's own
sandbox (sandbox/hapi, built from Maven Central) is started for the session on
``HRM_TEST_SANDBOX_PORT`` and stopped after. Likewise ``HRM_TEST_DATABASE_URL`` names a
PostgreSQL database to use; otherwise a throwaway cluster is started (tests/databases.py).
Either way an unreachable server fails the run: these tests never skip. A test that must
restart its server (``restartable``) restarts the session's own sandbox, or, with a given
server, starts one of its own on ``HRM_TEST_RESTART_PORT`` (run.sh keeps one sandbox per
checkout, so none may be running then). Only a sandbox the tests started themselves is ever
stopped or restarted: never one found already running, nor a server found by name or port.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, settings

from hrm_fhir import clock
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


@pytest.fixture(autouse=True)
def _default_zone() -> Iterator[None]:
    """Every test starts and ends in the default zone (``clock.use_zone`` is process-wide)."""
    clock.use_zone(clock.DEFAULT_ZONE)
    yield
    clock.use_zone(clock.DEFAULT_ZONE)


def _reachable(base: str) -> bool:
    try:
        return requests.get(f"{base}/metadata", timeout=10).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Sandbox:
    """The project's HAPI sandbox started through run.sh, which a test may restart (its data
    is in memory, so a restart is a reset). Only a server this object started is ever stopped
    or restarted: one run.sh found already running (started by hand in this checkout) is left
    alone."""

    port: str
    base: str = ""
    owned: bool = False
    """Whether ``start`` launched the server (rather than finding it running)."""

    def start(self) -> None:
        started = subprocess.run(
            ["bash", str(RUN), "start", self.port],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if started.returncode != 0:
            pytest.fail(f"the HAPI sandbox did not start:\n{started.stderr[-3000:]}")
        self.base = started.stdout.strip().splitlines()[-1]
        self.owned = "already running" not in started.stderr

    def stop(self) -> None:
        if self.owned:
            subprocess.run(
                ["bash", str(RUN), "stop"], capture_output=True, timeout=120, check=False
            )
            self.owned = False

    def restart(self) -> None:
        if not self.owned:
            pytest.fail(
                f"the sandbox on port {self.port} was already running when the tests started: "
                "a test restarts only a server it started itself (stop it, or give another port)"
            )
        self.stop()
        self.start()


@contextmanager
def _running(port: str) -> Iterator[Sandbox]:
    own = Sandbox(port)
    own.start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox | None]:
    """The sandbox this session started; None when ``HRM_TEST_FHIR_BASE_URL`` names a server."""
    if os.environ.get("HRM_TEST_FHIR_BASE_URL"):
        yield None
        return
    with _running(os.environ.get("HRM_TEST_SANDBOX_PORT", "18321")) as own:
        yield own


@pytest.fixture(scope="session")
def fhir_base(sandbox: Sandbox | None) -> str:
    if sandbox is not None:
        return sandbox.base
    given = os.environ["HRM_TEST_FHIR_BASE_URL"]
    if not _reachable(given):
        pytest.fail(f"HRM_TEST_FHIR_BASE_URL={given} does not answer GET /metadata")
    return given.rstrip("/")


@pytest.fixture
def restartable(sandbox: Sandbox | None) -> Iterator[Sandbox]:
    """A sandbox a test may restart: the session's own, or, when the session uses a server
    given by ``HRM_TEST_FHIR_BASE_URL`` (never restarted), one started for the test on
    ``HRM_TEST_RESTART_PORT`` (default: ``HRM_TEST_SANDBOX_PORT``, which no session sandbox
    holds then, else 18322)."""
    if sandbox is not None:
        yield sandbox
        return
    default = os.environ.get("HRM_TEST_SANDBOX_PORT", "18322")
    with _running(os.environ.get("HRM_TEST_RESTART_PORT", default)) as own:
        yield own


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
