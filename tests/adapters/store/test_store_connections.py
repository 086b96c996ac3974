"""Engines: the PostgreSQL driver, and pooled connections that never cross a ``fork``."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue

import pytest
from sqlalchemy import Engine, make_url

from hrm_fhir.adapters.store.database import make_engine
from hrm_fhir.errors import DatabaseURLError


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        return pid


def _report_backend_pid(engine: Engine, results: Queue[int]) -> None:
    results.put(_backend_pid(engine))


def test_a_forked_process_opens_its_own_connection_and_leaves_the_parents_alone(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    try:
        parent = _backend_pid(engine)
        context = multiprocessing.get_context("fork")
        results: Queue[int] = context.Queue()
        child = context.Process(target=_report_backend_pid, args=(engine, results))
        child.start()
        try:
            in_child = results.get(timeout=60)
        finally:
            child.join(timeout=60)
            results.close()
            results.join_thread()
        assert child.exitcode == 0
        assert in_child != parent
        assert _backend_pid(engine) == parent, "the parent's pooled connection still works"
    finally:
        engine.dispose()


def test_postgresql_transactions_are_read_committed_whatever_the_server_default(
    postgres_url: str,
) -> None:
    url = make_url(postgres_url)
    options = f"{url.query['options']} -cdefault_transaction_isolation=serializable"
    engine = make_engine(url.update_query_dict({"options": options}).render_as_string(False))
    try:
        with engine.begin() as connection:
            level = connection.exec_driver_sql("SHOW transaction_isolation").scalar_one()
    finally:
        engine.dispose()
    assert level == "read committed"


def test_a_bare_postgresql_url_uses_psycopg_3() -> None:
    engine = make_engine("postgresql://hrm@127.0.0.1:1/hrm")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_a_postgresql_driver_that_is_not_installed_is_a_clear_error() -> None:
    with pytest.raises(DatabaseURLError, match=r"install hrm-fhir\[postgres\]"):
        make_engine("postgresql+pg8000://hrm@127.0.0.1:1/hrm")
