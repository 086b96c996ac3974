"""Write one monthly report's files: HTML, PDF, CSV tables and patient lists, the FHIR
MeasureReport, and the report as JSON; optionally post the MeasureReport to the FHIR server."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import orjson

from hrm_fhir.adapters.fhir.answers import WriteResult
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.audit.measure_report import measure_report
from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.audit.render import render_html, render_pdf, report_to_json, write_tables

HTML = "report.html"
PDF = "report.pdf"
MEASURE_REPORT = "measure-report.json"
JSON = "report.json"
TABLES = "csv"


def write_report(report: MonthlyReport, out_dir: Path) -> list[Path]:
    """Every file of the report in ``out_dir`` (created); the same report writes the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html = render_html(report)
    files = {
        HTML: html.encode(),
        PDF: render_pdf(report),
        MEASURE_REPORT: orjson.dumps(measure_report(report), option=orjson.OPT_INDENT_2),
        JSON: orjson.dumps(report_to_json(report), option=orjson.OPT_INDENT_2),
    }
    written = []
    for name, content in files.items():
        path = out_dir / name
        path.write_bytes(content)
        written.append(path)
    return [*written, *write_tables(report, out_dir / TABLES)]


def report_folder(base: Path, slug: str, month: date) -> Path:
    """``base/<slug>/<YYYY-MM>``: ValueError unless it stays inside ``base`` (a slug is a
    ``safe_name``, so it always does; this is the second lock)."""
    folder = base / slug / f"{month:%Y-%m}"
    if base.resolve() not in folder.resolve().parents:
        raise ValueError(f"the report folder for {slug!r} would leave {base}")
    return folder


def post_measure_report(gateway: FHIRGateway, report: MonthlyReport) -> WriteResult:
    """PUT the MeasureReport by its deterministic id: a rerun replaces, never duplicates."""
    return gateway.update(measure_report(report))


def previous_month(today: date) -> date:
    """The first day of the month before ``today``'s."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def first_working_day(month: date) -> date:
    """The first Monday-to-Friday day of the month (bank holidays are not known here)."""
    day = month.replace(day=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day
