"""The integration tests' fixtures, ``fhir_base`` (a real HAPI FHIR server) and ``run_id``, live in
tests/conftest.py, so the browser tests (tests/web/browser) share the same server; ``harness`` is one
test's practice, database and gateway on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import database_for
from tests.integration.harness import Harness


@pytest.fixture
def harness(
    fhir_base: str, run_id: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Harness]:
    """On SQLite; the tests that use ``database_url`` (those that work the ledger: open,
    close, reopen, fail, die, reconcile) on PostgreSQL too."""
    h = Harness(fhir_base, run_id, database_for(request, tmp_path))
    yield h
    h.close()
