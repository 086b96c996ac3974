"""The month-end clinical position: established therapy and the PINCER windows, at each boundary."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from hrm_fhir.audit.clinical import clinical_position, is_established
from hrm_fhir.audit.definitions import AuditDefinitions
from hrm_fhir.audit.model import IndicatorStatus
from hrm_fhir.evaluation import evaluate_records
from hrm_fhir.rules.evaluate import Evaluator
from tests.builders import SNOMED, observation, patient, prescription, records, repeats, rules

MONTH_END = date(2027, 4, 30)


def _result(test: str, on: date, value: float = 5.0) -> dict[str, Any]:
    """A result that shows ``test`` done: the first code and canonical unit of its first analyte."""
    catalogue = rules().catalogue
    analyte = catalogue.analytes[catalogue.tests[test].analytes[0]]
    code = analyte.codes[0]
    return observation(code.code, value, analyte.unit, on, system=code.system)


def _indicator(
    definitions: AuditDefinitions, drug: str, issued: list[date], results: list[dict[str, Any]]
) -> list[IndicatorStatus]:
    resources = [patient(), *(prescription(drug, day, status="completed") for day in issued)]
    evaluation = evaluate_records(rules(), [*resources, *results], MONTH_END)
    _, statuses = clinical_position(evaluation, definitions)
    return statuses


@pytest.mark.parametrize(
    ("start", "expected"),
    [(date(2026, 4, 30), True), (date(2026, 5, 1), False)],  # the first-year phase ends on 04-30
)
def test_lithium_is_established_after_its_first_year(start: date, expected: bool) -> None:
    evaluator = Evaluator.create(rules(), MONTH_END)
    pack = next(p for p in evaluator.packs if p.drug_group == "lithium")
    chain = repeats("lithium carbonate 400mg tablets", start, MONTH_END)
    record = records([patient(), *chain])["Patient/p1"]
    therapy = evaluator.therapies(record)["lithium"]
    assert therapy.start == start
    assert is_established(pack, therapy, MONTH_END) is expected


@pytest.mark.parametrize(
    ("earlier", "expected"),
    [
        (date(2027, 1, 30), True),  # exactly 3 months before month end: the earlier window
        (date(2027, 1, 31), False),  # a day later: only the recent window
        (date(2026, 10, 30), False),  # exactly 6 months before: outside both windows
        (date(2026, 10, 31), True),  # a day later: inside the earlier window
    ],
)
def test_methotrexate_denominator_needs_an_issue_in_both_windows(
    definitions: AuditDefinitions, earlier: date, expected: bool
) -> None:
    statuses = _indicator(
        definitions, "methotrexate 2.5mg tablets", [earlier, date(2027, 4, 10)], []
    )
    mtx = [s for s in statuses if s.indicator == "MTX-FBC-LFT-3m"]
    assert len(mtx) == 1
    assert mtx[0].denominator is expected
    assert mtx[0].numerator is expected  # no bloods at all


@pytest.mark.parametrize(
    ("fbc_on", "numerator"),
    [
        (date(2027, 1, 30), True),  # exactly 3 months before: outside the look-back
        (date(2027, 1, 31), False),  # a day later: inside
    ],
)
def test_methotrexate_numerator_at_the_three_month_look_back(
    definitions: AuditDefinitions, fbc_on: date, numerator: bool
) -> None:
    statuses = _indicator(
        definitions,
        "methotrexate 2.5mg tablets",
        [date(2026, 12, 1), date(2027, 4, 10)],
        [_result("fbc", fbc_on), _result("lft", date(2027, 4, 1), 20)],
    )
    (mtx,) = [s for s in statuses if s.indicator == "MTX-FBC-LFT-3m"]
    assert mtx.denominator
    assert mtx.numerator is numerator


def test_missing_liver_tests_alone_put_methotrexate_in_the_numerator(
    definitions: AuditDefinitions,
) -> None:
    statuses = _indicator(
        definitions,
        "methotrexate 2.5mg tablets",
        [date(2026, 12, 1), date(2027, 4, 10)],
        [_result("fbc", date(2027, 4, 1))],
    )
    (mtx,) = [s for s in statuses if s.indicator == "MTX-FBC-LFT-3m"]
    assert mtx.numerator


def test_amiodarone_uses_six_and_twelve_month_windows(definitions: AuditDefinitions) -> None:
    statuses = _indicator(
        definitions,
        "amiodarone 200mg tablets",
        [date(2026, 6, 1), date(2027, 3, 1)],
        [_result("tft", date(2026, 10, 30))],  # exactly 6 months before month end: too old
    )
    (amio,) = [s for s in statuses if s.indicator == "AMIO-TFT-6m"]
    assert amio.denominator
    assert amio.numerator


def test_a_deceased_patient_is_in_no_indicator(definitions: AuditDefinitions) -> None:
    resources = [
        patient(deceasedDateTime="2027-04-01"),
        prescription("lithium carbonate 400mg", date(2026, 12, 1), status="completed"),
        prescription("lithium carbonate 400mg", date(2027, 3, 1)),
    ]
    groups, statuses = clinical_position(
        evaluate_records(rules(), resources, MONTH_END), definitions
    )
    assert groups == []
    assert statuses == []


def test_the_month_end_position_says_severely_overdue_and_monitored_elsewhere(
    definitions: AuditDefinitions,
) -> None:
    """A methotrexate patient with no bloods for a year is severely overdue; a lithium patient
    whose lithium a mental health team prescribes is monitored elsewhere, by them."""
    start = date(2025, 1, 1)
    mtx = [patient("p1"), *repeats("methotrexate 2.5mg tablets", start, MONTH_END, pid="p1")]
    lithium = [
        patient("p2"),
        *repeats("lithium carbonate 400mg tablets", start, MONTH_END, pid="p2"),
    ]
    lithium[-1]["requester"] = {"display": "Oakfield CMHT"}
    lithium[-1]["category"] = [{"coding": [{"system": SNOMED, "code": "394828003"}]}]
    evaluation = evaluate_records(rules(), [*mtx, *lithium], MONTH_END)
    groups, _ = clinical_position(evaluation, definitions)
    by_patient = {g.patient: g for g in groups}
    assert by_patient["Patient/p1"].severely_overdue is True
    assert by_patient["Patient/p1"].monitored_elsewhere is None
    assert by_patient["Patient/p2"].monitored_elsewhere == "Oakfield CMHT"
    assert by_patient["Patient/p2"].due_date is None
