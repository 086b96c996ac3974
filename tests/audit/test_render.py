"""The monthly report as HTML, PDF, CSV and JSON, over the synthetic practice's April 2027: every
count links to its patient list, the tables read back as the report's numbers, spreadsheet
formulas are neutralised, and an empty report renders."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from flask import Flask, render_template
from weasyprint import HTML

from hrm_fhir.audit.definitions import AuditDefinitions
from hrm_fhir.audit.evidence_render import when
from hrm_fhir.audit.model import (
    AuditInputs,
    Figure,
    Forecast,
    GroupRow,
    ListRow,
    MonthlyReport,
    PatientList,
    PracticeRow,
)
from hrm_fhir.audit.monthly import build_monthly_report, practice_row
from hrm_fhir.audit.render import (
    forecast_status,
    html_context,
    render_html,
    render_pdf,
    report_to_json,
    write_tables,
)
from hrm_fhir.rules.registry import RuleSet
from tests.audit.conftest import CAPACITY, MONTH, PRACTICE

SECTIONS = ("groups", "inspector", "indicators", "workload", "backlog", "sweeps", "lists")
TABLES = {
    "groups.csv",
    "inspector-findings.csv",
    "indicators.csv",
    "workload.csv",
    "results-by-severity.csv",
    "backlog-trend.csv",
    "forecast.csv",
    "sweeps.csv",
    "patient-lists.csv",
}


def figures(value: object) -> Iterator[Figure]:
    """Every Figure in a report, found by walking its dataclasses and tuples."""
    if isinstance(value, Figure):
        yield value
    elif is_dataclass(value):
        for f in fields(value):
            yield from figures(getattr(value, f.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from figures(item)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def html(report: MonthlyReport) -> str:
    return render_html(report)


@pytest.fixture(scope="module")
def empty(rules: RuleSet, definitions: AuditDefinitions) -> MonthlyReport:
    """A practice with no patients and no history."""
    return build_monthly_report(
        AuditInputs(MONTH, (), (), (), (), ()),
        definitions,
        rules.in_force(date(2027, 4, 30)),
        scope="Organization/empty",
        practices=["empty"],
        capacity_per_week=CAPACITY,
    )


def with_list(report: MonthlyReport, detail: str) -> MonthlyReport:
    """The report with one more list, whose only row has ``detail``."""
    extra = PatientList("extra", "Extra", (ListRow("Patient/x", "lithium", detail),))
    return replace(report, lists={**report.lists, "extra": extra})


# ------------------------------------------------------------------ HTML


def test_every_figure_links_to_its_list_and_every_list_has_its_anchor(
    report: MonthlyReport, html: str
) -> None:
    found = list(figures(report))
    assert len(found) > 100
    for figure in found:
        link = rf'<a href="#list-{re.escape(figure.list_id)}" title="[^"]*">{figure.value}</a>'
        assert re.search(link, html), figure
    for list_id in report.lists:
        assert f'id="list-{list_id}"' in html
    targets = set(re.findall(r'href="#list-([^"]+)"', html))
    assert targets == {f.list_id for f in found}
    assert html.count('<section class="list"') == len(report.lists)


def test_the_header_documents_the_schedules_audited_against(
    report: MonthlyReport, html: str
) -> None:
    assert report.record_as_at is not None
    for text in (
        report.scope,
        PRACTICE,
        "April 2027",
        "2027-04-01 to 2027-04-30",
        when(report.record_as_at),
        report.definitions,
        *report.rule_packs,
    ):
        assert text in html


def test_a_record_read_after_the_month_says_what_the_month_end_position_leaves_out(
    report: MonthlyReport, html: str
) -> None:
    assert report.record_as_at is not None
    assert report.record_as_at.date() > date(2027, 4, 30)
    assert (
        "(read after the month: the month-end position leaves out results and prescriptions "
        "dated after 2027-04-30)"
    ) in html
    within = replace(report, record_as_at=datetime(2027, 4, 30, 6, tzinfo=UTC))
    assert "read after the month" not in render_html(within)


def test_the_totals_row_and_key_figures_are_shown(report: MonthlyReport, html: str) -> None:
    totals = re.search(r'<tr id="group-all">(.*?)</tr>', html, re.S)
    assert totals
    cells = re.findall(r"<td[^>]*>(.*?)</td>", totals.group(1), re.S)
    values = [re.sub(r"<[^>]+>", "", c).strip() for c in cells]
    t = report.totals
    assert t.in_date_pct is not None
    assert values[:4] == [
        str(t.established.value),
        str(t.in_date.value),
        f"{t.in_date_pct:g}%",
        str(t.overdue.value),
    ]
    assert f'id="backlog-count">{report.forecast.backlog}<' in html
    assert forecast_status(report.forecast) in html
    unverified = [r for r in (*report.inspector_findings, *report.indicators) if not r.verified]
    assert html.count("unverified criterion") == len(unverified) > 0
    for sweep in report.sweeps:
        assert when(sweep.started_at) in html


def test_the_charts_are_accessible_svg_with_one_bar_per_week_and_segment(
    report: MonthlyReport, html: str
) -> None:
    for chart in ("backlog-chart", "groups-chart"):
        assert f'role="img" aria-labelledby="{chart}-title {chart}-desc"' in html
        assert f'<title id="{chart}-title">' in html
    assert html.count("<title>Week ending ") == len(report.backlog) > 20
    segments = sum(
        1
        for row in report.groups
        for band in ("in_date", "overdue_up_to_4w", "overdue_4_to_12w", "overdue_over_12w")
        if getattr(row, band).value
    )
    tips = re.findall(r"<title>[^<:]+: \d+ (?:in date|overdue [^<]+)</title>", html)
    assert len(tips) == segments > 0


def test_the_page_is_self_contained_and_names_no_patient(report: MonthlyReport, html: str) -> None:
    for asset in ("<script", "<link", "src=", "url(", "@import"):
        assert asset not in html
    assert "Testpatient" not in html
    patients = {row.patient for listed in report.lists.values() for row in listed.rows}
    assert patients
    assert all(re.fullmatch(r"Patient/[\w.-]+", p) for p in patients)


def test_a_flask_app_renders_the_same_template_to_the_same_document(
    report: MonthlyReport, html: str
) -> None:
    app = Flask("hrm_fhir.audit")  # templates from hrm_fhir/audit/templates
    with app.app_context():
        assert render_template("audit/monthly.html", **html_context(report)) == html


def test_list_details_are_escaped(report: MonthlyReport) -> None:
    html = render_html(with_list(report, '<script>alert("x")</script>'))
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_a_pcn_report_has_the_practices_section(report: MonthlyReport, tmp_path: Path) -> None:
    assert 'id="practices"' not in render_html(report)
    pcn = replace(
        report,
        scope="PCN north",
        practices=(PRACTICE, "practice-2"),
        practice_rows=(
            practice_row(report, PRACTICE),
            PracticeRow("practice-2", 0, 0, None, 0, None),
        ),
    )
    html = render_html(pcn)
    section = html[html.index('id="practices"') : html.index('id="lists"')]
    assert "practice-2" in section
    assert "not clearing" in section
    assert tmp_path / "practices.csv" in write_tables(pcn, tmp_path)
    rows = read_csv(tmp_path / "practices.csv")
    assert [(r["practice"], r["backlog"]) for r in rows] == [
        (PRACTICE, str(report.forecast.backlog)),
        ("practice-2", "0"),
    ]


@pytest.mark.slow
def test_an_empty_report_renders_everywhere(empty: MonthlyReport, tmp_path: Path) -> None:
    assert all(f.value == 0 for f in figures(empty))
    html = render_html(empty)
    assert "No patients." in html
    assert "Nothing to clear: no monitoring overdue at month end" in html
    assert "No sweep completed in the month." in html
    pdf = render_pdf(empty)
    assert pdf.startswith(b"%PDF-")
    assert render_pdf(empty) == pdf  # the same report gives the same bytes
    written = write_tables(empty, tmp_path)
    assert {p.name for p in written} == TABLES
    assert read_csv(tmp_path / "patient-lists.csv") == []
    assert orjson.loads(orjson.dumps(report_to_json(empty)))["totals"]["in_date_pct"] is None


def test_a_report_with_no_weeks_or_groups_renders(empty: MonthlyReport) -> None:
    bare = replace(empty, groups=(), backlog=(), inspector_findings=(), indicators=())
    html = render_html(bare)
    assert "No weeks to chart." in html
    assert "No drug groups to chart." in html
    assert "No inspector findings are defined." in html


@pytest.mark.parametrize(
    ("backlog", "weeks", "on_track", "words"),
    [
        (0, 0.0, None, "Nothing to clear: no monitoring overdue at month end"),
        (30, 6.5, True, "On track: 6.5 weeks to clear at the current rate, within the expected"),
        (30, 14.0, False, "Not on track: 14 weeks to clear at the current rate, more than the"),
        (30, None, False, "Not on track: the backlog is not shrinking"),
    ],
)
def test_the_forecast_in_words(
    backlog: int, weeks: float | None, on_track: bool | None, words: str
) -> None:
    forecast = Forecast(backlog, 2.0, 1.0, weeks, 12.0, 3.0, (8, 12), on_track)
    assert forecast_status(forecast).startswith(words)


# ------------------------------------------------------------------ PDF


@pytest.mark.slow
def test_the_pdf_has_every_section_on_its_own_page_and_every_list_anchor(
    report: MonthlyReport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        pdf = render_pdf(report)
        document = HTML(string=render_html(report, compact_lists=True)).render()
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 50_000
    assert caplog.records == []  # every CSS property and selector is one WeasyPrint supports
    page_of = {name: i for i, page in enumerate(document.pages) for name in page.anchors}
    starts = [page_of[section] for section in SECTIONS]
    assert starts == sorted(set(starts))
    assert starts[0] == 0
    assert all(f"list-{list_id}" in page_of for list_id in report.lists)


def test_the_pdf_lists_patients_as_references(report: MonthlyReport) -> None:
    compact = render_html(report, compact_lists=True)
    listed = next(p for p in report.lists.values() if len(p.rows) > 1)
    assert ", ".join(row.patient for row in listed.rows) in compact
    assert '<table class="patients">' not in compact
    assert '<table class="patients">' in render_html(report)


# ------------------------------------------------------------------ CSV and JSON


def test_the_csv_tables_read_back_as_the_reports_numbers(
    report: MonthlyReport, tmp_path: Path
) -> None:
    written = write_tables(report, tmp_path)
    assert {p.name for p in written} == TABLES
    assert all(p.parent == tmp_path for p in written)

    groups = read_csv(tmp_path / "groups.csv")
    rows: list[GroupRow] = [*report.groups, report.totals]
    assert [g["drug_group"] for g in groups] == [r.drug_group for r in rows]
    for line, row in zip(groups, rows, strict=True):
        for f in fields(row):
            value = getattr(row, f.name)
            if isinstance(value, Figure):
                assert (int(line[f.name]), line[f"{f.name}_list"]) == (value.value, value.list_id)
        assert line["in_date_pct"] == ("" if row.in_date_pct is None else str(row.in_date_pct))
    assert groups[-1]["established"] == str(report.totals.established.value)

    indicators = read_csv(tmp_path / "indicators.csv")
    assert [(i["pincer"], int(i["numerator"]), i["verified"]) for i in indicators] == [
        (i.pincer, i.numerator.value, "yes") for i in report.indicators
    ]
    [workload] = read_csv(tmp_path / "workload.csv")
    w = report.workload
    assert int(workload["contact_attempts"]) == w.contact_attempts
    assert int(workload["tests_completed"]) == w.tests_completed.value
    assert "by_severity" not in workload
    severities = read_csv(tmp_path / "results-by-severity.csv")
    assert [(s["severity"], int(s["results"])) for s in severities] == [
        (s.severity, s.results.value) for s in w.by_severity
    ]
    trend = read_csv(tmp_path / "backlog-trend.csv")
    assert [(t["week_ending"], int(t["open_overdue"])) for t in trend] == [
        (p.week_ending.isoformat(), p.open_overdue) for p in report.backlog
    ]
    [forecast] = read_csv(tmp_path / "forecast.csv")
    assert int(forecast["backlog"]) == report.forecast.backlog
    assert forecast["expected_weeks"] == "8-12"
    assert forecast["status"] == forecast_status(report.forecast)
    sweeps = read_csv(tmp_path / "sweeps.csv")
    assert [s["started_at"] for s in sweeps] == [s.started_at.isoformat() for s in report.sweeps]
    inspector = read_csv(tmp_path / "inspector-findings.csv")
    assert [int(i["figure"]) for i in inspector] == [
        i.figure.value for i in report.inspector_findings
    ]


def test_patient_lists_csv_has_one_row_per_list_row(report: MonthlyReport, tmp_path: Path) -> None:
    write_tables(report, tmp_path)
    rows = read_csv(tmp_path / "patient-lists.csv")
    assert list(rows[0]) == ["list_id", "title", "patient", "drug_group", "detail"]
    assert len(rows) == sum(len(listed.rows) for listed in report.lists.values()) > 100
    first = next(listed for listed in report.lists.values() if listed.rows)
    assert rows[0] == {
        "list_id": first.id,
        "title": first.title,
        "patient": first.rows[0].patient,
        "drug_group": first.rows[0].drug_group,
        "detail": first.rows[0].detail,
    }


@pytest.mark.parametrize(
    ("detail", "written"),
    [
        ('=HYPERLINK("http://example.org","x")', '\'=HYPERLINK("http://example.org","x")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("due 2027-04-01, 29 days overdue", "due 2027-04-01, 29 days overdue"),
    ],
)
def test_a_formula_in_a_list_is_neutralised(
    report: MonthlyReport, tmp_path: Path, detail: str, written: str
) -> None:
    write_tables(with_list(report, detail), tmp_path)
    [row] = [r for r in read_csv(tmp_path / "patient-lists.csv") if r["list_id"] == "extra"]
    assert row["detail"] == written


def test_the_json_round_trips_through_orjson(report: MonthlyReport) -> None:
    document = report_to_json(report)
    assert orjson.loads(orjson.dumps(document)) == document
    assert report.record_as_at is not None
    assert document["month"] == "2027-04-01"
    assert document["record_as_at"] == report.record_as_at.isoformat()
    assert document["totals"]["established"] == {
        "value": report.totals.established.value,
        "list_id": "all-established",
    }
    assert document["forecast"]["expected_weeks"] == [8, 12]
    last = report.backlog[-1]
    assert document["backlog"][-1] == {
        "week_ending": "2027-04-30",
        "open_overdue": last.open_overdue,
    }
    assert {k: len(v["rows"]) for k, v in document["lists"].items()} == {
        k: len(v.rows) for k, v in report.lists.items()
    }
