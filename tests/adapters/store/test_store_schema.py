"""Schema migrations, foreign keys, timezone-aware timestamps and text limits, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, make_url, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.database import (
    MIGRATIONS,
    alembic_config,
    init_db,
    make_engine,
    make_session_factory,
    schema_revision,
    upgrade,
)
from hrm_fhir.adapters.store.ledger import (
    acquire_lock,
    get_sweep,
    live_lock,
    poll_cursor,
    record_write,
    set_cursor,
    set_server_marker,
)
from hrm_fhir.adapters.store.records import (
    Base,
    LockRecord,
    ResourceType,
    WriteAction,
    WriteOutcome,
    WriteRecord,
)
from hrm_fhir.cli.main import main
from tests.adapters.store.examples import LONDON, NOW, start

HEAD = "0005"
TABLES = {
    "sweeps",
    "findings",
    "writes",
    "poll_cursors",
    "locks",
    "snapshots",
    "users",
    "workflow_events",
    "user_tokens",
    "user_sessions",
    "alembic_version",
}


def test_init_db_creates_the_schema_on_first_run_and_keeps_data_on_the_next(
    database_url: str,
) -> None:
    engine = init_db(database_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        assert schema_revision(engine) == HEAD
        with make_session_factory(engine).begin() as session:
            sweep_id = start(session).id
    finally:
        engine.dispose()

    engine = init_db(database_url)
    try:
        assert schema_revision(engine) == HEAD
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


def test_the_sweep_repairs_revision_adds_its_columns_and_keeps_sweeps_and_cursors(
    engine: Engine,
) -> None:
    with make_session_factory(engine).begin() as session:
        sweep_id = start(session).id
        set_cursor(session, "all", "2026-07-06T06:00:00Z", sweep_id=sweep_id, now=NOW)
        set_server_marker(session, "all", "hrm-marker-1")
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    assert "repaired" not in {c["name"] for c in inspect(engine).get_columns("sweeps")}
    upgrade(engine)
    with make_session_factory(engine)() as session:
        sweep = get_sweep(session, sweep_id)
        cursor = poll_cursor(session, "all")
        assert sweep is not None
        assert cursor is not None
        assert sweep.repaired == 0
        assert (cursor.watermark, cursor.server_marker, cursor.scope_pages) == (
            "2026-07-06T06:00:00Z",
            None,
            None,
        )


def test_developer_alembic_ini_migrates_the_settings_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", database_url)
    config = Config(str(MIGRATIONS / "alembic.ini"))
    command.upgrade(config, "head")
    command.check(config)
    engine = make_engine(database_url)
    try:
        assert schema_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_init_db_command_migrates_and_prints_the_url_without_its_password(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", database_url)
    first = CliRunner().invoke(main, ["init-db"], catch_exceptions=False)
    again = CliRunner().invoke(main, ["init-db"], catch_exceptions=False)
    assert first.exit_code == again.exit_code == 0
    assert first.output == again.output
    assert first.output.startswith(f"database ready at schema revision {HEAD}: ")
    password = make_url(database_url).password
    if password is not None:
        assert str(password) not in first.output
        assert "***" in first.output


def test_init_db_command_names_a_missing_driver_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", "postgresql+pg8000://hrm:secret@127.0.0.1:1/hrm")
    result = CliRunner().invoke(main, ["init-db"])
    assert result.exit_code == 1
    assert "install hrm-fhir[postgres]" in result.output
    assert "secret" not in result.output


def _migrate(url: str, barrier: Barrier) -> None:
    barrier.wait(timeout=60)
    init_db(url).dispose()


def test_two_processes_migrating_a_new_database_at_once_take_turns(database_url: str) -> None:
    """The API and the scheduler may start together on an empty database: both come up."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=_migrate, args=(database_url, barrier)) for _ in "ab"]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    engine = make_engine(database_url)
    try:
        assert schema_revision(engine) == HEAD
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(session: Session) -> None:
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


def test_timestamps_are_stored_as_utc_text_on_sqlite(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 'hrm.db'}")
    try:
        with make_session_factory(engine)() as session:
            acquire_lock(session, "sweep", "a", ttl_seconds=60, now=NOW)
        with engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT acquired_at, expires_at FROM locks").one()
    finally:
        engine.dispose()
    assert tuple(stored) == ("2026-07-06 06:00:00.000000", "2026-07-06 06:01:00.000000")


def test_timestamps_are_instants_on_postgresql_whatever_the_session_time_zone(
    postgres_url: str,
) -> None:
    engine = init_db(postgres_url)
    try:
        with make_session_factory(engine)() as session:
            acquire_lock(session, "sweep", "a", ttl_seconds=60, now=NOW)
        with engine.connect() as connection:
            connection.exec_driver_sql("SET TIME ZONE 'America/New_York'")
            kind = connection.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'locks' "
                "AND column_name = 'acquired_at'"
            ).scalar_one()
            utc_text = connection.exec_driver_sql(
                "SELECT to_char(acquired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM locks"
            ).scalar_one()
        with make_session_factory(engine)() as session:
            session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
            lock = live_lock(session, "sweep", now=NOW)
    finally:
        engine.dispose()
    assert kind == "timestamp with time zone"
    assert utc_text == "2026-07-06 06:00"
    assert lock is not None
    assert lock.acquired_at == NOW
    assert lock.acquired_at.tzinfo is UTC


def test_naive_timestamps_are_refused(session: Session) -> None:
    session.add(LockRecord(name="x", holder="a", acquired_at=datetime(2026, 7, 6), expires_at=NOW))
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


@pytest.mark.parametrize(
    ("holder", "message"),
    [("x" * 201, "locks.holder holds at most 200 characters, not 201"), ("a\x00b", "NUL")],
)
def test_text_a_column_cannot_hold_is_refused_on_every_backend(
    session: Session, holder: str, message: str
) -> None:
    session.add(LockRecord(name="sweep", holder=holder, acquired_at=NOW, expires_at=NOW))
    with pytest.raises(ValueError, match=message):
        session.flush()
    session.rollback()
    session.add(LockRecord(name="sweep", holder="x" * 200, acquired_at=NOW, expires_at=NOW))
    session.flush()


def test_a_server_error_with_a_nul_is_audited_with_the_nul_made_visible(session: Session) -> None:
    sweep = start(session)
    write = record_write(
        session,
        sweep_id=sweep.id,
        resource_type=ResourceType.TASK,
        resource_id="hrm-1",
        action=WriteAction.CREATE,
        outcome=WriteOutcome.FAILED,
        reason="overdue",
        detail="bad\x00byte",
        now=NOW,
    )
    session.commit()
    session.expire_all()
    assert session.get(WriteRecord, write.id).detail == "bad\ufffdbyte"


def test_expiry_compares_instants_not_wall_clocks(session: Session) -> None:
    assert NOW.tzinfo is LONDON
    assert acquire_lock(session, "sweep", "a", ttl_seconds=1800, now=NOW)
    just_before = datetime(2026, 7, 6, 6, 29, 59, tzinfo=UTC)
    assert not acquire_lock(session, "sweep", "b", ttl_seconds=60, now=just_before)
    assert acquire_lock(
        session, "sweep", "b", ttl_seconds=60, now=just_before.replace(second=0, minute=30)
    )
