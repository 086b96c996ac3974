"""The integration tests' fixtures, ``fhir_base`` (a real HAPI FHIR server) and ``run_id``, live in
tests/conftest.py, so the browser tests (tests/browser) share the same server; ``harness`` is one
test's practice, database and gateway on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Harness


@pytest.fixture
def harness(fhir_base: str, run_id: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(fhir_base, run_id, tmp_path / "hrm.db")
    yield h
    h.close()
