"""PostgreSQL for the tests: a throwaway cluster from Debian's ``postgresql`` package, or the
server ``HRM_TEST_DATABASE_URL`` names; each test gets an empty schema of its own.

The cluster is made with ``initdb`` in a temporary folder and listens on 127.0.0.1 only, on
``HRM_TEST_POSTGRES_PORT`` or a free port. PostgreSQL refuses to run as root, so under root the
cluster belongs to the ``postgres`` user (``HRM_TEST_POSTGRES_USER``) and its programs run through
``runuser``. Durability is off (``fsync``, ``full_page_writes``): the cluster lives for one run.
See tests/README.md for the fixtures built on this.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError

SCHEMA_PREFIX = "hrm_test_"
SUPERUSER = "hrm"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL to test against: the cluster did not start, or the given URL does not
    answer. The tests fail on it; they never skip."""


def _binaries() -> Path:
    """The newest Debian PostgreSQL's bin folder, else wherever ``initdb`` is on PATH."""
    versions = sorted(
        (p.parent for p in DEBIAN_BINARIES.glob("*/bin/initdb") if p.parts[-3].isdigit()),
        key=lambda folder: int(folder.parent.name),
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found is None:
        raise PostgresUnavailableError(
            "PostgreSQL is not installed (no initdb): run `make test`, which installs Debian's "
            "postgresql package, or point HRM_TEST_DATABASE_URL at a server"
        )
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a private cluster and yield its superuser URL; stop and delete it afterwards."""
    binaries = _binaries()
    port = int(os.environ.get("HRM_TEST_POSTGRES_PORT") or _free_port())
    folder = Path(tempfile.mkdtemp(prefix="hrm-pg-"))
    runner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam(os.environ.get("HRM_TEST_POSTGRES_USER", "postgres"))
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        runner = ["runuser", "-u", owner.pw_name, "--"]
    password = secrets.token_urlsafe(16)
    password_file = folder / "password"
    password_file.write_text(password)
    if runner:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    data, log = folder / "data", folder / "server.log"

    def run(*command: str) -> None:
        done = subprocess.run(
            [*runner, str(binaries / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=folder,
        )
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailableError(
                f"{command[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}\n{tail}"
            )

    try:
        run(
            "initdb",
            f"--pgdata={data}",
            f"--username={SUPERUSER}",
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        settings = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        run("pg_ctl", f"--pgdata={data}", f"--log={log}", "--wait", "-o", settings, "start")
        try:
            yield f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", f"--pgdata={data}", "--mode=immediate", "--wait", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def database_for(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database a fixture that builds an app or a harness should use: the test's
    ``database_url`` when the test asks for it (by argument or ``usefixtures``), so that test
    runs on SQLite and PostgreSQL; otherwise a SQLite file in ``tmp_path``."""
    if "database_url" in request.fixturenames:
        url: str = request.getfixturevalue("database_url")
        return url
    return f"sqlite:///{tmp_path / 'hrm.db'}"


class PostgresServer:
    """A reachable PostgreSQL database in which each test gets an empty schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
        try:
            with self._admin.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except OperationalError as error:
            self._admin.dispose()
            shown = make_url(url).render_as_string(hide_password=True)
            raise PostgresUnavailableError(f"{shown} does not answer: {error}") from error

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """The URL of a new, empty schema (first on the ``search_path``), dropped afterwards.

        The URL carries the schema, so anything given it (engines, ``HRM_DATABASE_URL`` for a
        command, a child process) works in that schema only.
        """
        schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(self.url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with self._admin.connect() as connection:
                connection.exec_driver_sql("SET lock_timeout = '30s'")
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")

    def close(self) -> None:
        self._admin.dispose()
