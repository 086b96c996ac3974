"""The monthly report as a FHIR MeasureReport: valid against the R4B models, accepted by the
real HAPI server's ``$validate``, and posted idempotently (a second post replaces the first)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.audit.measure_report import INDICATOR, POPULATION, measure_report, report_id
from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.audit.outputs import post_measure_report


def _groups(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["code"]["coding"][0]["code"]: g for g in body["group"]}


def _counts(group: dict[str, Any]) -> dict[str, int]:
    return {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}


def test_summary_for_the_month_reported_by_the_practice(report: MonthlyReport) -> None:
    body = measure_report(report)
    assert body["resourceType"] == "MeasureReport"
    assert (body["status"], body["type"]) == ("complete", "summary")
    assert body["period"] == {"start": "2027-04-01", "end": "2027-04-30"}
    assert body["reporter"] == {"reference": "Organization/practice-1"}
    assert body["id"] == report_id(report) == "hrm-audit-practice-1-2027-04"
    assert body["measure"].endswith("/Measure/monthly-audit|1")


def test_one_group_per_indicator_with_three_populations(report: MonthlyReport) -> None:
    groups = _groups(measure_report(report))
    expected = (
        [i.id for i in report.indicators]
        + [f.id for f in report.inspector_findings]
        + [f"monitoring-overdue-{g.drug_group}" for g in report.groups]
    )
    assert list(groups) == expected
    for indicator in report.indicators:
        group = groups[indicator.id]
        assert group["code"]["coding"][0]["system"] == INDICATOR
        assert _counts(group) == {
            "initial-population": indicator.initial_population.value,
            "denominator": indicator.denominator.value,
            "numerator": indicator.numerator.value,
        }
        assert all(p["code"]["coding"][0]["system"] == POPULATION for p in group["population"])
        if indicator.denominator.value:
            score = indicator.numerator.value / indicator.denominator.value
            assert group["measureScore"]["value"] == pytest.approx(score, abs=1e-4)


def test_numerator_patients_are_in_a_contained_list(report: MonthlyReport) -> None:
    body = measure_report(report)
    contained = {c["id"]: c for c in body["contained"]}
    referenced = [
        p["subjectResults"]["reference"].removeprefix("#")
        for g in body["group"]
        for p in g["population"]
        if "subjectResults" in p
    ]
    assert referenced
    assert sorted(referenced) == sorted(contained)
    for group in body["group"]:
        numerator = group["population"][2]
        if numerator["count"]:
            patients = contained[numerator["subjectResults"]["reference"][1:]]["entry"]
            assert len(patients) == numerator["count"]


def test_a_pcn_report_names_the_pcn(report: MonthlyReport) -> None:
    body = measure_report(replace(report, scope="PCN north", practices=("practice-1", "p-2")))
    assert body["id"] == "hrm-audit-pcn-north-2027-04"
    assert body["reporter"]["identifier"]["value"] == "north"


@pytest.fixture
def gateway(fhir_base: str) -> Iterator[FHIRGateway]:
    gateway = FHIRGateway(fhir_base)
    yield gateway
    gateway.close()


@pytest.mark.hapi
def test_hapi_validate_accepts_it(gateway: FHIRGateway, report: MonthlyReport) -> None:
    outcome = gateway.validate(measure_report(report))
    errors = [i for i in outcome.get("issue", []) if i["severity"] in ("error", "fatal")]
    assert errors == []


@pytest.mark.hapi
def test_posting_twice_keeps_one_report(
    gateway: FHIRGateway, report: MonthlyReport, run_id: str
) -> None:
    scoped = replace(report, scope=f"Organization/{run_id}")
    gateway.update({"resourceType": "Organization", "id": run_id, "name": "Synthetic practice"})
    for entry in measure_report(scoped)["contained"]:
        for item in entry["entry"]:
            patient = item["item"]["reference"].removeprefix("Patient/")
            gateway.update({"resourceType": "Patient", "id": patient})
    first = post_measure_report(gateway, scoped)
    second = post_measure_report(gateway, scoped)
    assert first.status in (200, 201)
    assert second.status == 200
    found = gateway.search("MeasureReport", {"_id": report_id(scoped)}).resources
    assert len(found) == 1
    assert found[0]["group"] == measure_report(scoped)["group"]
