"""The database engine, the session factory, and schema migrations (Alembic, run in-process).

Two backends are supported and tested: SQLite (the embedded default) and PostgreSQL through
psycopg 3 (``postgresql+psycopg://``; a bare ``postgresql://`` means the same).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, Connection, Engine, create_engine, event, exc, make_url, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from hrm_fhir.errors import DatabaseURLError

MIGRATIONS = Path(__file__).parent / "migrations"
"""The packaged Alembic script directory."""
MIGRATION_LOCK_KEY = 0x68726D66
"""The PostgreSQL advisory lock that makes concurrent migrations of one database take turns."""
CONNECT_TIMEOUT_SECONDS = 10
"""How long a PostgreSQL connection attempt may take unless the URL says otherwise."""


def _enable_foreign_keys(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _remember_pid(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    record.info["pid"] = os.getpid()


def _refuse_other_process(_dbapi_connection: DBAPIConnection, record: Any, proxy: Any) -> None:
    """A pooled connection inherited through ``fork`` is dropped without being closed, so the
    child opens its own and never talks over (or terminates) the parent's socket.

    ``record`` and ``proxy`` are the pool's connection record and its checked-out proxy; their
    ``dbapi_connection`` is cleared as SQLAlchemy's pooling guide does for ``fork``, which the
    typed pool interfaces do not allow."""
    owner = record.info.get("pid")
    if owner != os.getpid():
        record.dbapi_connection = proxy.dbapi_connection = None
        raise exc.DisconnectionError(f"connection opened by process {owner}, not this one")


def _postgresql(url: URL) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    timeout = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    try:
        return create_engine(
            url, isolation_level="READ COMMITTED", pool_pre_ping=True, connect_args=timeout
        )
    except ImportError as error:
        raise DatabaseURLError(
            f"HRM_DATABASE_URL is a PostgreSQL URL but its driver cannot be loaded ({error}); "
            "install hrm-fhir[postgres] (psycopg 3) and the libpq library (Debian: libpq5)"
        ) from error


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL. SQLite gets cross-thread use and foreign keys on;
    PostgreSQL gets psycopg 3, a connect timeout, a liveness check before each checkout, and
    READ COMMITTED whatever the server's default: the lease's conditional UPDATE relies on a
    blocked UPDATE re-reading the row its rival committed, where REPEATABLE READ or
    SERIALIZABLE would raise a serialization failure instead of answering "held".
    On both, a process never uses a pooled connection that another process opened."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _enable_foreign_keys)
    elif backend == "postgresql":
        engine = _postgresql(parsed)
    else:
        engine = create_engine(parsed)
    event.listen(engine, "connect", _remember_pid)
    event.listen(engine, "checkout", _refuse_other_process)
    return engine


def shown_url(url: str) -> str:
    """The database URL as it may be printed or logged: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations; no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def _take_migration_turn(connection: Connection) -> None:
    """Hold the database's migration lock until this transaction ends, so two processes
    starting at once (the API and the scheduler) migrate one after the other and the second
    finds the schema current. SQLite: its write lock, taken up front; PostgreSQL: an advisory
    lock (DDL there is transactional, so a failed migration leaves nothing behind)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def upgrade(engine_or_url: Engine | str) -> None:
    """Run every migration up to head (a no-op when the schema is current)."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with engine.begin() as connection:
            _take_migration_turn(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database's schema is at (None before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def init_db(url: str) -> Engine:
    """An engine on ``url`` whose schema is migrated to head: created on first run, then kept."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
