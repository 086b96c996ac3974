"""Shared test configuration: hypothesis profiles (more examples in CI), and a real HAPI FHIR
server for the integration and browser tests (``fhir_base``, ``run_id``).

``HRM_TEST_FHIR_BASE_URL`` points the tests at any running server; otherwise the project's own
sandbox (sandbox/hapi, built from Maven Central) is started for the session and stopped after.
Either way an unreachable server fails the run: these tests never skip.
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
