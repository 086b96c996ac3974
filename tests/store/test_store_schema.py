"""Schema migrations, foreign keys and timezone-aware timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store import acquire_lock, get_sweep, record_write
from hrm_fhir.db import (
    MIGRATIONS,
    alembic_config,
    init_db,
    make_engine,
    make_session_factory,
    upgrade,
)
from hrm_fhir.records import Base, LockRecord, ResourceType, WriteAction, WriteOutcome
from tests.store.examples import LONDON, NOW, start

HEAD = "0003"
TABLES = {
    "sweeps",
    "findings",
    "writes",
    "poll_cursors",
    "locks",
    "snapshots",
    "users",
    "workflow_events",
    "alembic_version",
}


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_init_db_creates_the_schema_on_first_run_and_keeps_data_on_the_next(
    database_url: str,
) -> None:
    engine = init_db(database_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        assert _revision(engine) == HEAD
        with make_session_factory(engine).begin() as session:
            sweep_id = start(session).id
    finally:
        engine.dispose()

    engine = init_db(database_url)
    try:
        assert _revision(engine) == HEAD
        with make_session_factory(engine)() as session:
            assert get_sweep(session, sweep_id) is not None
    finally:
        engine.dispose()


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(engine: Engine) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) == TABLES


def test_developer_alembic_ini_migrates_the_settings_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    monkeypatch.setenv("HRM_DATABASE_URL", url)
    config = Config(str(MIGRATIONS / "alembic.ini"))
    command.upgrade(config, "head")
    command.check(config)
    engine = make_engine(url)
    try:
        assert _revision(engine) == HEAD
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced_on_sqlite(session: Session) -> None:
    with pytest.raises(IntegrityError):
        record_write(
            session,
            sweep_id=999,
            resource_type=ResourceType.TASK,
            resource_id="hrm-1",
            action=WriteAction.CREATE,
            outcome=WriteOutcome.OK,
            reason="overdue",
            now=NOW,
        )


def test_timestamps_round_trip_as_aware_utc(engine: Engine) -> None:
    with make_session_factory(engine).begin() as session:
        sweep_id = start(session).id
    with make_session_factory(engine)() as session:
        sweep = get_sweep(session, sweep_id)
        assert sweep is not None
        assert sweep.started_at == NOW
        assert sweep.started_at.tzinfo is UTC
        assert sweep.started_at == datetime(2026, 7, 6, 6, 0, tzinfo=UTC)


def test_timestamps_are_stored_as_utc_text_on_sqlite(engine: Engine) -> None:
    with make_session_factory(engine)() as session:
        acquire_lock(session, "sweep", "a", ttl_seconds=60, now=NOW)
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT acquired_at, expires_at FROM locks").one()
    assert tuple(stored) == ("2026-07-06 06:00:00.000000", "2026-07-06 06:01:00.000000")


def test_naive_timestamps_are_refused(session: Session) -> None:
    session.add(LockRecord(name="x", holder="a", acquired_at=datetime(2026, 7, 6), expires_at=NOW))
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_expiry_compares_instants_not_wall_clocks(session: Session) -> None:
    assert NOW.tzinfo is LONDON
    assert acquire_lock(session, "sweep", "a", ttl_seconds=1800, now=NOW)
    just_before = datetime(2026, 7, 6, 6, 29, 59, tzinfo=UTC)
    assert not acquire_lock(session, "sweep", "b", ttl_seconds=60, now=just_before)
    assert acquire_lock(
        session, "sweep", "b", ttl_seconds=60, now=just_before.replace(second=0, minute=30)
    )
