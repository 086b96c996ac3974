"""The monthly report as people and tools read it: printable HTML (and a PDF of it), CSV tables
and a JSON document.

Every count in the HTML links to its patient list in the appendix (``#list-<list id>``); in the
CSV tables each count has its list id in the next column, and ``patient-lists.csv`` holds every
list's rows. Lists name patients by reference only (``Patient/<id>``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from jinja2 import Environment, PackageLoader, StrictUndefined

from hrm_fhir.audit.backlog import RATE_WEEKS
from hrm_fhir.audit.charts import backlog_chart, groups_chart
from hrm_fhir.audit.evidence_render import when
from hrm_fhir.audit.figures import local_day
from hrm_fhir.audit.model import (
    Figure,
    Forecast,
    GroupRow,
    IndicatorRow,
    InspectorRow,
    MonthlyReport,
    PracticeRow,
    SeverityRow,
    SweepRow,
    WeekPoint,
    Workload,
)
from hrm_fhir.untrusted import csv_writer, is_http_url, safe_cell

TEMPLATE = "audit/monthly.html"
LIST_COLUMNS = ("list_id", "title", "patient", "drug_group", "detail")
Cell = str | int | float
Table = tuple[list[str], list[list[Cell]]]


# ------------------------------------------------------------------ HTML and PDF


def render_html(report: MonthlyReport, *, compact_lists: bool = False) -> str:
    """One self-contained HTML document (inline CSS and SVG, no scripts) for screen and print;
    ``compact_lists`` gives each patient list as a line of references instead of a table."""
    context = html_context(report, compact_lists=compact_lists)
    return _environment().get_template(TEMPLATE).render(context)


def html_context(report: MonthlyReport, *, compact_lists: bool = False) -> dict[str, Any]:
    """What ``audit/monthly.html`` needs; a Flask page renders the template with the same."""
    return {
        "report": report,
        "compact_lists": compact_lists,
        "status": forecast_status(report.forecast),
        "read_after_month": report.record_as_at is not None
        and local_day(report.record_as_at) > report.period_end,
        "backlog_chart": backlog_chart(report.backlog),
        "groups_chart": groups_chart(report.groups),
        "rate_weeks": RATE_WEEKS,
        "number": number,
        "pct": pct,
        "when": when,
        "http_url": is_http_url,
    }


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("hrm_fhir.audit", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )


def render_pdf(report: MonthlyReport) -> bytes:
    """The report as an A4 PDF, its links kept (WeasyPrint)."""
    return html_to_pdf(pdf_html(report))


def pdf_html(report: MonthlyReport) -> str:
    """The HTML the PDF is made from: the patient lists are lines of references, because laying
    out one table row per patient took WeasyPrint about a minute for a 20,000-patient practice
    (bench/README.md)."""
    return render_html(report, compact_lists=True)


def html_to_pdf(html: str) -> bytes:
    """An A4 PDF of a self-contained HTML document (WeasyPrint)."""
    # Imported here: WeasyPrint loads the Pango system library, which only the PDF needs.
    from weasyprint import HTML

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}%"


def forecast_status(forecast: Forecast) -> str:
    """Whether the backlog clears in the weeks practices expect, in words."""
    low, high = forecast.expected_weeks
    expected = f"the expected {low}-{high} weeks"
    if forecast.on_track is None:
        return "Nothing to clear: no monitoring overdue at month end"
    if forecast.weeks_at_current_rate is None:
        return "Not on track: the backlog is not shrinking"
    weeks = f"{forecast.weeks_at_current_rate:g} weeks to clear at the current rate"
    if forecast.on_track:
        return f"On track: {weeks}, within {expected}"
    return f"Not on track: {weeks}, more than {expected}"


# ------------------------------------------------------------------ CSV


def write_tables(report: MonthlyReport, out_dir: Path) -> list[Path]:
    """Every table of the report as a CSV file in ``out_dir`` (created if need be), and every
    patient list's rows in ``patient-lists.csv``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_write_csv(out_dir / name, table) for name, table in _tables(report).items()]


def _tables(report: MonthlyReport) -> dict[str, Table]:
    header, rows = _table(Forecast, [report.forecast])
    tables = {
        "groups.csv": _table(GroupRow, [*report.groups, report.totals]),
        "inspector-findings.csv": _table(InspectorRow, report.inspector_findings),
        "indicators.csv": _table(IndicatorRow, report.indicators),
        "workload.csv": _table(Workload, [report.workload]),
        "results-by-severity.csv": _table(SeverityRow, report.workload.by_severity),
        "backlog-trend.csv": _table(WeekPoint, report.backlog),
        "forecast.csv": ([*header, "status"], [[*rows[0], forecast_status(report.forecast)]]),
        "sweeps.csv": _table(SweepRow, report.sweeps),
    }
    if report.practice_rows:
        tables["practices.csv"] = _table(PracticeRow, report.practice_rows)
    tables["patient-lists.csv"] = (
        list(LIST_COLUMNS),
        [
            [safe_cell(v) for v in (listed.id, listed.title, r.patient, r.drug_group, r.detail)]
            for listed in report.lists.values()
            for r in listed.rows
        ],
    )
    return tables


def _columns(kind: type[Any]) -> list[tuple[str, bool]]:
    """A report row's fields as (name, is a Figure), nested tables (``by_severity``) left out."""
    hints = get_type_hints(kind)
    nested = [
        name
        for name, hint in hints.items()
        if get_origin(hint) is tuple and is_dataclass(get_args(hint)[0])
    ]
    return [(f.name, hints[f.name] is Figure) for f in fields(kind) if f.name not in nested]


def _table(kind: type[Any], items: Sequence[Any]) -> Table:
    """One row per item; a Figure takes two columns, its value and ``<name>_list``."""
    columns = _columns(kind)
    header = [h for name, figure in columns for h in ([name, f"{name}_list"] if figure else [name])]
    rows = [[cell for name, _ in columns for cell in _cells(getattr(i, name))] for i in items]
    return header, rows


def _cells(value: object) -> list[Cell]:
    if isinstance(value, Figure):
        return [value.value, safe_cell(value.list_id)]
    if value is None:
        return [""]
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, date):
        return [value.isoformat()]
    if isinstance(value, tuple):
        return ["-".join(map(str, value))]
    return [safe_cell(str(value))]


def _write_csv(path: Path, table: Table) -> Path:
    header, rows = table
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv_writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------ JSON


def report_to_json(report: MonthlyReport) -> dict[str, Any]:
    """The whole report, patient lists included, as JSON values (dates as ISO 8601 strings)."""
    return {f.name: _plain(getattr(report, f.name)) for f in fields(report)}


def _plain(value: object) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
