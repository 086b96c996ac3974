"""Alembic environment for hrm_fhir's own schema.

At runtime ``hrm_fhir.adapters.store.database.upgrade`` hands over an open connection in
``config.attributes``. From the command line (see ``alembic.ini`` here) the database is
``HRM_DATABASE_URL``'s.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from hrm_fhir.adapters.store.database import make_engine
from hrm_fhir.adapters.store.records import Base
from hrm_fhir.config import load_settings


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _migrate(given)
        return
    engine = make_engine(load_settings().database_url)
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


_main()
