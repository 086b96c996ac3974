"""What people read: units from one table, one date style, the age of a result."""

from __future__ import annotations

from datetime import date

import pytest

from hrm_fhir.display import age, day, quantity, readable, unit

TODAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("10*9/L", "×10⁹/L"),
        ("{INR}", ""),
        ("m[IU]/L", "mU/L"),
        ("umol/L", "µmol/L"),
        ("mL/min/{1.73_m2}", "mL/min/1.73 m²"),
        ("mmol/L", "mmol/L"),
        (None, ""),
    ],
)
def test_units_read_as_a_uk_laboratory_prints_them(code: str | None, shown: str) -> None:
    assert unit(code) == shown


def test_a_quantity_has_no_unit_when_its_unit_reads_as_nothing() -> None:
    assert quantity(8.4, "{INR}") == "8.4"
    assert quantity(0.8, "10*9/L") == "0.8 ×10⁹/L"
    assert quantity(None, "mmol/L") == "no value"


def test_a_day_is_written_without_a_leading_zero() -> None:
    assert day(date(2026, 11, 7)) == "7 Nov 2026"
    assert day(None) == ""


@pytest.mark.parametrize(
    ("then", "said"),
    [
        (TODAY, "today"),
        (date(2026, 11, 26), "yesterday"),
        (date(2026, 11, 14), "13 days ago"),
        (date(2026, 11, 13), "2 weeks ago"),
        (date(2026, 9, 28), "8 weeks ago"),
        (date(2026, 9, 27), "2 months ago"),
        (date(2025, 12, 9), "11 months ago"),
        (date(2024, 11, 28), "23 months ago"),
        (date(2024, 11, 27), "2 years ago"),
        (date(2026, 12, 1), "in the future"),
    ],
)
def test_the_age_of_a_date_is_said_in_the_unit_people_use(then: date, said: str) -> None:
    assert age(then, TODAY) == said


def test_free_text_gets_human_units_and_dates_and_nothing_else_changes() -> None:
    reason = (
        "INR 8.4 {INR} on 2026-11-07 is at or above 8 {INR}: stop warfarin; "
        "Neutrophil count 0.8 10*9/L on 2026-10-13 is below 1 10*9/L; eGFR 77 mL/min/{1.73_m2}; "
        "TSH 12 m[IU]/L; 1 a week; due 2026-02-30; taken 2026-11-07T09:30"
    )
    assert readable(reason) == (
        "INR 8.4 on 7 Nov 2026 is at or above 8: stop warfarin; "
        "Neutrophil count 0.8 ×10⁹/L on 13 Oct 2026 is below 1 ×10⁹/L; eGFR 77 mL/min/1.73 m²; "
        "TSH 12 mU/L; 1 a week; due 2026-02-30; taken 2026-11-07T09:30"
    )
