"""A migrated database per test (``database_url``: once on SQLite, once on PostgreSQL) and a
session on it; engines are always disposed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.database import init_db, make_session_factory


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = init_db(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with make_session_factory(engine)() as session:
        yield session
