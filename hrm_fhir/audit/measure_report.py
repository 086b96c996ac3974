"""The monthly report as a FHIR R4 ``MeasureReport`` (type ``summary``), validated with the
fhir.resources R4B models before it leaves the service.

One group per indicator, each with ``initial-population``, ``denominator`` and ``numerator``.
Every numerator counts patients *with* a problem, so lower is better (``improvementNotation``
``decrease``); its patients are in a contained ``List`` referenced by ``subjectResults``, the
drill-down from the number to the patients. The id is deterministic per scope and month, so
posting the same month again replaces the report instead of adding a second one.
"""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B.measurereport import MeasureReport as MeasureReportModel

from hrm_fhir import terminology as t
from hrm_fhir.audit.model import Figure, MonthlyReport

MEASURE = f"{t.BASE}/Measure/monthly-audit"
INDICATOR = f"{t.BASE}/CodeSystem/audit-indicator"
REPORT_IDENTIFIER = f"{t.BASE}/id/monthly-report"
PCN_IDENTIFIER = f"{t.BASE}/id/pcn"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
IMPROVEMENT = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"


def report_id(report: MonthlyReport) -> str:
    """``hrm-audit-<scope>-<YYYY-MM>``, a valid FHIR id."""
    scope = report.scope.removeprefix("Organization/").replace("PCN ", "pcn-")
    slug = re.sub(r"[^A-Za-z0-9\-.]", "-", scope)
    return f"hrm-audit-{slug}-{report.month:%Y-%m}"[:64]


def _population(code: str, figure: Figure, report: MonthlyReport) -> dict[str, Any]:
    population: dict[str, Any] = {
        "code": {"coding": [{"system": POPULATION, "code": code}]},
        "count": figure.value,
    }
    if code == "numerator" and figure.value:
        population["subjectResults"] = {
            "reference": f"#{figure.list_id}",
            "display": report.lists[figure.list_id].title,
        }
    return population


def _group(
    report: MonthlyReport,
    code: str,
    title: str,
    initial: Figure,
    denominator: Figure,
    numerator: Figure,
) -> dict[str, Any]:
    group: dict[str, Any] = {
        "code": {"coding": [{"system": INDICATOR, "code": code, "display": title}], "text": title},
        "population": [
            _population("initial-population", initial, report),
            _population("denominator", denominator, report),
            _population("numerator", numerator, report),
        ],
    }
    if denominator.value:
        group["measureScore"] = {"value": round(numerator.value / denominator.value, 4)}
    return group


def _numerator_list(report: MonthlyReport, figure: Figure) -> dict[str, Any]:
    patients = sorted({row.patient for row in report.lists[figure.list_id].rows})
    return {
        "resourceType": "List",
        "id": figure.list_id,
        "status": "current",
        "mode": "snapshot",
        "title": report.lists[figure.list_id].title,
        "entry": [{"item": {"reference": patient}} for patient in patients],
    }


def _groups(report: MonthlyReport) -> list[tuple[dict[str, Any], Figure]]:
    """Each group with its numerator: PINCER indicators, inspector findings, drug groups."""
    rows: list[tuple[str, str, Figure, Figure, Figure]] = [
        (i.id, f"{i.pincer}: {i.title}", i.initial_population, i.denominator, i.numerator)
        for i in report.indicators
    ]
    rows += [
        (f.id, f.title, f.population, f.population, f.figure) for f in report.inspector_findings
    ]
    rows += [
        (
            f"monitoring-overdue-{g.drug_group}",
            f"{g.title}: established therapy with monitoring overdue at month end",
            Figure(g.established.value + g.new_starts.value, g.established.list_id),
            g.established,
            g.overdue,
        )
        for g in report.groups
    ]
    return [(_group(report, *row), row[4]) for row in rows]


def measure_report(report: MonthlyReport) -> dict[str, Any]:
    """The MeasureReport as JSON data, validated against the R4B model (ValueError if invalid)."""
    groups = _groups(report)
    contained = [_numerator_list(report, figure) for _, figure in groups if figure.value]
    reporter: dict[str, Any]
    if report.scope.startswith("Organization/"):
        reporter = {"reference": report.scope}
    else:
        pcn = report.scope.removeprefix("PCN ")
        reporter = {"identifier": {"system": PCN_IDENTIFIER, "value": pcn}, "display": report.scope}
    body: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "id": report_id(report),
        "meta": {"tag": [{"system": t.TAG, "code": "hrm-fhir"}]},
        "contained": contained,
        "identifier": [{"system": REPORT_IDENTIFIER, "value": report_id(report)}],
        "status": "complete",
        "type": "summary",
        "measure": f"{MEASURE}|{report.definitions.rsplit('@', 1)[-1]}",
        "reporter": reporter,
        "period": {"start": report.period_start.isoformat(), "end": report.period_end.isoformat()},
        "improvementNotation": {"coding": [{"system": IMPROVEMENT, "code": "decrease"}]},
        "group": [group for group, _ in groups],
    }
    MeasureReportModel.model_validate(body)
    return body
