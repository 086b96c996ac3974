"""JSON log lines, and the ``serve`` and ``scheduler`` commands."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import waitress
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo

from hrm_fhir.cli.main import main
from hrm_fhir.logs import JSONFormatter, configure_logging
from hrm_fhir.web.state import service_state


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after a command reconfigures them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("HRM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HRM_DATABASE_URL", f"sqlite:///{tmp_path / 'hrm.db'}")


def test_a_record_with_extra_fields_is_one_json_object_per_line(
    root_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("hrm_fhir.test").info(
        "sweep %s completed", 9, extra={"sweep_id": 9, "counts": {"created": 2}, "status": 202}
    )
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "sweep 9 completed"
    assert record["level"] == "INFO"
    assert record["logger"] == "hrm_fhir.test"
    assert record["time"].endswith("+00:00")
    assert (record["sweep_id"], record["counts"], record["status"]) == (9, {"created": 2}, 202)


def test_an_exception_is_logged_as_its_type_and_frames_without_its_message() -> None:
    try:
        raise ValueError("Patient/secret is malformed")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    document = json.loads(JSONFormatter().format(record))
    assert document["exc_type"] == "ValueError"
    [frame] = document["stack"]
    assert "test_api_logs_and_cli.py:" in frame
    assert "secret" not in json.dumps(document)


@pytest.mark.usefixtures("root_logging", "environment")
@pytest.mark.parametrize("with_scheduler", [False, True])
def test_serve_runs_the_app_under_waitress(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, with_scheduler: bool
) -> None:
    served: list[tuple[Flask, dict[str, Any]]] = []

    def serve(app: Flask, **options: Any) -> None:
        served.append((app, options))
        assert service_state(app).settings.database_url.endswith("hrm.db")

    monkeypatch.setattr(waitress, "serve", serve)
    args = ["serve", "--port", "8123", *(["--with-scheduler"] if with_scheduler else [])]
    before = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0
    assert signal.getsignal(signal.SIGTERM) is before
    [(app, options)] = served
    assert options == {"host": "127.0.0.1", "port": 8123, "max_request_body_size": 1_000_000}
    assert isinstance(app, Flask)


@pytest.mark.usefixtures("root_logging", "environment")
def test_scheduler_runs_in_the_foreground_until_sigterm(runner: CliRunner) -> None:
    started = threading.Event()

    class Started(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "Scheduler started":
                started.set()

    watcher = logging.getLogger("apscheduler.scheduler")
    handler = Started()
    watcher.addHandler(handler)
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def stop() -> None:
        if started.wait(30):
            signal.pthread_kill(main_thread, signal.SIGTERM)

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        result = runner.invoke(main, ["scheduler"], catch_exceptions=False)
    finally:
        started.set()
        stopper.join()
        watcher.removeHandler(handler)
    assert result.exit_code == 0
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


@pytest.mark.usefixtures("environment")
def test_flask_finds_the_factory_in_the_package() -> None:
    app = ScriptInfo(app_import_path="hrm_fhir").load_app()
    try:
        assert {rule.rule for rule in app.url_map.iter_rules()} >= {"/health", "/ready"}
    finally:
        service_state(app).close()


def test_the_rules_and_the_cli_do_not_import_flask() -> None:
    code = (
        "import sys, hrm_fhir, hrm_fhir.rules.registry, hrm_fhir.cli.main; "
        "assert 'flask' not in sys.modules, 'flask imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
