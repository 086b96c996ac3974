"""The monthly report through every door: ``hrm-fhir report monthly``, ``GET
/api/v1/reports/monthly``, the page, and the scheduled job on the first working day."""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.store.users import create_user
from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.audit.outputs import first_working_day, previous_month, report_folder
from hrm_fhir.audit.render import report_to_json
from hrm_fhir.audit.service import monthly_report, resolve_scope
from hrm_fhir.cli.main import main
from hrm_fhir.config import Settings
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.untrusted import safe_name
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.scheduling import run_monthly_reports
from tests.apps import AppFactory, app_factory
from tests.audit.conftest import MONTH
from tests.web.pages.conftest import PASSWORD, sign_in

READ_KEY = "read-key-0123456789"
PCNS = {"north": ("practice-1", "practice-7")}


@pytest.fixture
def ledger(history_db: str, tmp_path: Path) -> str:
    """A copy of the history ledger this test may change (users, reports)."""
    copy = tmp_path / "ledger.db"
    shutil.copy(history_db.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def make_app(tmp_path: Path, ledger: str) -> Iterator[AppFactory]:
    with app_factory(
        tmp_path,
        database_url=ledger,
        api_keys={READ_KEY: "read"},
        pcns=PCNS,
        report_dir=str(tmp_path / "reports"),
    ) as factory:
        yield factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    app = make_app()
    with app.app_context():
        session = db_session()
        create_user(session, "lead", role="admin", password=PASSWORD, display_name="PCN lead")
        create_user(
            session,
            "tech",
            role="technician",
            password=PASSWORD,
            practice="practice-1",
            display_name="Technician",
        )
        session.commit()
    return app


def _report_of_practice_1(month: str, out: Path) -> Result:
    """``hrm-fhir report monthly`` for practice-1 into ``out``; it must succeed."""
    result = CliRunner().invoke(
        main, ["report", "monthly", "--month", month, "--practice", "practice-1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_cli_writes_every_output(
    ledger: str, tmp_path: Path, report: MonthlyReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", ledger)
    out = tmp_path / "out"
    result = _report_of_practice_1("2027-04", out)
    assert "Organization/practice-1, April 2027" in result.output
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "report.pdf", "measure-report.json", "report.json", "csv"} <= names
    assert orjson.loads((out / "report.json").read_bytes()) == report_to_json(report)
    with (out / "csv" / "patient-lists.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(p.rows) for p in report.lists.values())


def test_a_month_no_rule_pack_covers_is_said_on_stderr_and_in_the_report(
    ledger: str, tmp_path: Path, report: MonthlyReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert report.warnings == (), "April 2027 is covered by every pack"
    monkeypatch.setenv("HRM_DATABASE_URL", ledger)
    out = tmp_path / "out"
    result = _report_of_practice_1("2018-05", out)
    [warning] = orjson.loads((out / "report.json").read_bytes())["warnings"]
    assert "is in force on 2018-05-31" in warning
    assert f"warning: {warning}" in result.stderr
    assert "What limits this report" in (out / "report.html").read_text()


def test_cli_refuses_an_unknown_pcn_and_a_bad_month(
    ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", ledger)
    runner = CliRunner()
    unknown = runner.invoke(main, ["report", "monthly", "--pcn", "south", "--out", str(tmp_path)])
    assert unknown.exit_code == 2
    assert "unknown PCN 'south'" in unknown.output
    bad = runner.invoke(main, ["report", "monthly", "--month", "2027-13", "--out", str(tmp_path)])
    assert bad.exit_code == 2
    assert "Traceback" not in bad.output


def test_api_returns_the_report_as_json_html_and_measure_report(
    app: Flask, report: MonthlyReport
) -> None:
    client = app.test_client()
    query = "month=2027-04&practice=practice-1"
    headers = {"X-API-Key": READ_KEY}
    body = client.get(f"/api/v1/reports/monthly?{query}", headers=headers)
    assert body.status_code == 200
    assert body.json == orjson.loads(orjson.dumps(report_to_json(report)))
    html = client.get(f"/api/v1/reports/monthly?{query}&format=html", headers=headers)
    assert html.mimetype == "text/html"
    assert "April 2027" in html.text
    fhir = client.get(f"/api/v1/reports/monthly?{query}&format=measure-report", headers=headers)
    assert fhir.mimetype == "application/fhir+json"
    assert fhir.json["resourceType"] == "MeasureReport"


def test_api_validates_and_scopes(app: Flask) -> None:
    client = app.test_client()
    headers = {"X-API-Key": READ_KEY}
    assert client.get("/api/v1/reports/monthly?month=2027-04").status_code == 401
    bad = client.get("/api/v1/reports/monthly?month=April", headers=headers)
    assert bad.status_code == 400
    both = client.get("/api/v1/reports/monthly?practice=a&pcn=north", headers=headers)
    assert both.status_code == 400
    unknown = client.get("/api/v1/reports/monthly?pcn=south&month=2027-04", headers=headers)
    assert unknown.status_code == 404
    pcn = client.get("/api/v1/reports/monthly?pcn=north&month=2027-04", headers=headers)
    assert pcn.status_code == 200
    assert [row["practice"] for row in pcn.json["practice_rows"]] == ["practice-1", "practice-7"]


def _page(client: FlaskClient, query: str) -> tuple[int, str]:
    response = client.get(f"/reports/monthly?{query}")
    return response.status_code, response.text


@pytest.mark.slow
def test_page_shows_the_headline_and_links_the_report(app: Flask, report: MonthlyReport) -> None:
    client = app.test_client()
    sign_in(client, "lead")
    status, html = _page(client, "month=2027-04&practice=practice-1")
    assert status == 200
    assert "Organization/practice-1: April 2027" in html
    assert f"<td>{report.totals.established.value}</td>" in html
    document = client.get("/reports/monthly/document?month=2027-04&practice=practice-1")
    assert document.mimetype == "text/html"
    pdf = client.get("/reports/monthly/document?month=2027-04&practice=practice-1&format=pdf")
    assert pdf.data.startswith(b"%PDF")
    assert "attachment" in pdf.headers["Content-Disposition"]


def test_page_keeps_a_practice_user_to_their_practice(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "tech")
    assert _page(client, "month=2027-04")[0] == 200
    assert _page(client, "month=2027-04&practice=practice-7")[0] == 403
    assert _page(client, "month=2027-04&pcn=north")[0] == 403
    status, html = _page(client, "month=2027-4")
    assert status == 400
    assert "Enter the month as YYYY-MM" in html


def test_first_working_day_and_previous_month() -> None:
    assert first_working_day(date(2027, 5, 1)) == date(2027, 5, 3)  # 1 May 2027 is a Saturday
    assert first_working_day(date(2027, 6, 30)) == date(2027, 6, 1)
    assert previous_month(date(2027, 1, 15)) == date(2026, 12, 1)


@pytest.mark.slow
def test_scheduled_job_writes_last_month_on_the_first_working_day_only(
    app: Flask, tmp_path: Path
) -> None:
    assert run_monthly_reports(app, today=date(2027, 5, 4)) == []
    folders = run_monthly_reports(app, today=date(2027, 5, 3))
    reports = tmp_path / "reports"
    assert sorted(folders) == [
        reports / "pcn-north" / "2027-04",
        reports / "practice-1" / "2027-04",
    ]
    assert all((folder / "measure-report.json").is_file() for folder in folders)


@pytest.mark.slow
def test_fixtures_history_fills_an_empty_ledger_only(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", database_url)
    runner = CliRunner()
    args = ["fixtures", "history", "--patients", "30", "--end", "2027-01-31"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    summary = orjson.loads(first.output)
    assert summary["sweeps"] == 9  # the Mondays from 30 November 2026 to 25 January 2027
    assert summary["findings"] > 0
    again = runner.invoke(main, args)
    assert again.exit_code == 2
    assert "already holds findings" in again.output
    out = tmp_path / "report"
    month = ["report", "monthly", "--month", "2027-01", "--out", str(out)]
    assert runner.invoke(main, month).exit_code == 0
    assert (out / "report.pdf").stat().st_size > 0


@pytest.mark.slow
def test_a_scheduled_post_that_fails_is_logged_and_keeps_the_files(
    make_app: AppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(report_post=True)  # the FHIR base is a closed port
    with caplog.at_level(logging.ERROR, logger="hrm_fhir"):
        folders = run_monthly_reports(app, today=date(2027, 5, 3))
    assert len(folders) == 2
    assert all((folder / "report.pdf").is_file() for folder in folders)
    failed = [r for r in caplog.records if r.message.startswith("posting the MeasureReport failed")]
    assert sorted(r.report for r in failed) == [  # type: ignore[attr-defined]
        "hrm-audit-pcn-north-2027-04",
        "hrm-audit-practice-1-2027-04",
    ]


def test_a_pcn_row_matches_that_practice_s_own_report(
    history_sessions: sessionmaker[Session], rules: RuleSet, report: MonthlyReport
) -> None:
    settings = Settings(pcns=PCNS)
    with history_sessions() as session:
        pcn = monthly_report(
            session,
            rules,
            settings,
            MONTH,
            resolve_scope(settings, session, practice=None, pcn="north"),
        )
    row = next(r for r in pcn.practice_rows if r.practice == "practice-1")
    assert (row.established, row.in_date, row.backlog) == (
        report.totals.established.value,
        report.totals.in_date.value,
        report.forecast.backlog,
    )
    assert pcn.totals.established.value == report.totals.established.value  # practice-7 is empty
    assert [r.practice for r in pcn.practice_rows] == ["practice-1", "practice-7"]
    assert next(r for r in pcn.practice_rows if r.practice == "practice-7").established == 0


@pytest.mark.slow
@pytest.mark.parametrize("practice", ['a"b', "../x", "..", "a;b", "x\\y"])
def test_the_pdf_file_name_never_carries_an_unchecked_practice(app: Flask, practice: str) -> None:
    """Issue 11: the report file name took ``practice`` as given."""
    client = app.test_client()
    sign_in(client, "lead")
    response = client.get(
        "/reports/monthly/document", query_string={"month": "2027-04", "practice": practice}
    )
    if response.status_code == 200:  # ".." is a valid FHIR id: its name is made safe
        response = client.get(
            "/reports/monthly/document",
            query_string={"month": "2027-04", "practice": practice, "format": "pdf"},
        )
        disposition = response.headers["Content-Disposition"]
        assert disposition == 'attachment; filename="hrm-audit-_.-2027-04.pdf"'
    else:
        assert response.status_code == 400
        assert "Enter a practice as its Organization id" in response.text


@pytest.mark.slow
def test_a_scheduled_report_folder_stays_inside_the_report_dir(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """Issue 11: a practice id of ``..`` (a valid FHIR id) put the folder outside it."""
    app = make_app(practice="..")
    folders = run_monthly_reports(app, today=date(2027, 5, 3))
    reports = (tmp_path / "reports").resolve()
    assert folders
    for folder in folders:
        assert reports in folder.resolve().parents
    assert (tmp_path / "reports" / "_." / "2027-04" / "report.json").is_file()
    assert not (tmp_path / "2027-04").exists()


def test_report_folder_refuses_a_name_that_leaves_its_base(tmp_path: Path) -> None:
    assert (
        report_folder(tmp_path, "practice-1", date(2027, 4, 1))
        == tmp_path / "practice-1" / "2027-04"
    )
    with pytest.raises(ValueError, match="would leave"):
        report_folder(tmp_path, "..", date(2027, 4, 1))
    assert safe_name("..") == "_."
    assert safe_name("a/../b") == "a_.._b"
