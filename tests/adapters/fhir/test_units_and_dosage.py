"""UCUM normalisation and dosage reading."""

from __future__ import annotations

import pytest

from hrm_fhir.adapters.fhir.dosage import parse_dosage
from hrm_fhir.adapters.fhir.values import parse_date, product_strength
from hrm_fhir.rules.units import UnitTable
from tests.builders import rules


@pytest.fixture(scope="module")
def units() -> UnitTable:
    return UnitTable(rules().catalogue)


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        ("neutrophils", 1.4, "10*3/uL", (1.4, "10*9/L")),
        ("platelets", 150, "10^9/L", (150, "10*9/L")),
        ("creatinine", 1.0, "mg/dL", (88.42, "umol/L")),
        ("creatinine", 80, "\u00b5mol/L", (80, "umol/L")),
        ("albumin", 3.5, "g/dL", (35, "g/L")),
        ("hba1c", 6.5, "%", (47.54, "mmol/mol")),  # (6.5 - 2.15) x 10.929
        ("lithium", 0.9, "meq/L", (0.9, "mmol/L")),
        ("lithium", 0.9, "mEq/L", (0.9, "mmol/L")),
        ("tsh", 3.1, "mU/L", (3.1, "m[IU]/L")),
        ("inr", 2.4, None, (2.4, "{INR}")),
        ("weight", 154, "[lb_av]", (69.85, "kg")),
    ],
)
def test_units_normalise_to_the_canonical_unit(
    units: UnitTable, analyte: str, value: float, unit: str | None, expected: tuple[float, str]
) -> None:
    got = units.normalise(analyte, value, unit)
    assert got is not None
    assert got[0] == pytest.approx(expected[0], abs=0.01)
    assert got[1] == expected[1]


@pytest.mark.parametrize(
    ("analyte", "unit"), [("neutrophils", "furlongs"), ("creatinine", None), ("lithium", "mg/L")]
)
def test_units_that_cannot_be_normalised(units: UnitTable, analyte: str, unit: str | None) -> None:
    assert units.normalise(analyte, 1.0, unit) is None


@pytest.mark.parametrize(
    ("instruction", "per_day", "dose", "unit", "source"),
    [
        ({"text": "100mg once daily"}, 1, 100, "mg", "text"),
        ({"text": "60mg twice daily"}, 2, 60, "mg", "text"),
        ({"text": "1g at night"}, 1, 1000, "mg", "text"),
        ({"text": "Take two tablets four times a day"}, 4, 2, "unit", "text"),
        ({"text": "one every 6 hours"}, 4, 1, "unit", "text"),
        ({"text": "7.5mg weekly"}, 1 / 7, 7.5, "mg", "text"),
        ({"text": "As directed"}, None, None, None, "none"),
        (
            {
                "text": "As directed",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
            },
            1 / 7,
            None,
            None,
            "structured",
        ),
        (
            {
                "timing": {"code": {"coding": [{"code": "BID"}]}},
                "doseAndRate": [{"doseQuantity": {"value": 2, "code": "{tbl}"}}],
            },
            2,
            2,
            "unit",
            "structured",
        ),
        (
            {"doseAndRate": [{"doseQuantity": {"value": 500, "unit": "microgram"}}]},
            None,
            0.5,
            "mg",
            "structured",
        ),
    ],
)
def test_dosage_is_read_structured_first_then_from_text(
    instruction: dict[str, object],
    per_day: float | None,
    dose: float | None,
    unit: str | None,
    source: str,
) -> None:
    dosage = parse_dosage([instruction])
    assert dosage.per_day == (pytest.approx(per_day) if per_day is not None else None)
    assert dosage.dose_value == (pytest.approx(dose) if dose is not None else None)
    assert dosage.dose_unit == unit
    assert dosage.source == source


@pytest.mark.parametrize(
    ("text", "per_day", "dose", "unit"),
    [
        # methotrexate read as daily (issue 9), and the UK abbreviations
        ("every morning", 1, None, None),
        ("4 tablets a day", 1, 4, "unit"),
        ("10 mg per day", 1, 10, "mg"),
        ("OM", 1, None, None),
        ("10mg/day", 1, 10, "mg"),
        ("2.5mg od", 1, 2.5, "mg"),
        ("1 ON", 1, 1, "unit"),
        ("1 nocte", 1, 1, "unit"),
        ("1 mane", 1, 1, "unit"),
        ("1 tab b.d.", 2, 1, "unit"),
        ("1 BDS", 2, 1, "unit"),
        ("1 three times a day", 3, 1, "unit"),
        ("1 TDS", 3, 1, "unit"),
        ("2 qds prn", 4, 2, "unit"),
        ("take 10mls q.d.s. p.r.n.", 4, 10, "ml"),
        ("1 q4h prn", 6, 1, "unit"),
        ("1 qqh", 6, 1, "unit"),
        # dm+d / EPS label phrasing
        ("ONE to be taken each day", 1, 1, "unit"),
        ("ONE tablet to be taken TWICE a day", 2, 1, "unit"),
        ("TWO tablets twice a day", 2, 2, "unit"),
        ("THREE to be taken once a week", 1 / 7, 3, "unit"),
        ("take 2 at night", 1, 2, "unit"),
        ("Take half a tablet daily", 1, 0.5, "unit"),
        ("One and a half tablets twice daily", 2, 1.5, "unit"),
        ("Take ONE tablet on Monday", 1 / 7, 1, "unit"),
        ("10 mg once a week on Monday", 1 / 7, 10, "mg"),
        ("15mg/week", 1 / 7, 15, "mg"),
        ("twice weekly", 2 / 7, None, None),
        ("on Mondays and Thursdays", 2 / 7, None, None),
        ("every other day", 0.5, None, None),
        ("apply one patch every 72 hours", 1 / 3, 1, "unit"),
        ("one patch every 3 days", 1 / 3, 1, "unit"),
        ("5ml four times a day", 4, 5, "ml"),
        ("2 x 10mg tablets at night", 1, 20, "mg"),
        # several doses a day, ranges: the worst case
        ("ONE in the morning and TWO at night", 2, 1.5, "unit"),
        ("10mg in the morning and 20mg at night", 2, 15, "mg"),
        ("1 mane 2 nocte", 2, 1.5, "unit"),
        ("take 1 or 2 4 times/day", 4, 2, "unit"),
        ("1-2 every 4-6 hours when required", 6, 2, "unit"),
        ("two to three times a day", 3, None, None),
        ("2.5mg daily except on Sundays", 1, 2.5, "mg"),
        ("Take 4 tablets once a week. Do not take daily", 1 / 7, 4, "unit"),
        # not stated: never guessed
        ("Take 4 tablets", None, 4, "unit"),
        ("THREE to be taken", None, 3, "unit"),
        ("As directed", None, None, None),
        ("when required", None, None, None),
        ("1 QD", None, 1, "unit"),
        ("", None, None, None),
    ],
)
def test_uk_dosage_text_is_read(
    text: str, per_day: float | None, dose: float | None, unit: str | None
) -> None:
    dosage = parse_dosage([{"text": text}])
    assert dosage.per_day == (pytest.approx(per_day) if per_day is not None else None)
    assert dosage.dose_value == (pytest.approx(dose) if dose is not None else None)
    assert dosage.dose_unit == unit


def test_instructions_taken_together_add_up_and_steps_count_the_highest() -> None:
    morning = {"text": "1 in the morning", "timing": {"repeat": {"when": ["MORN"]}}}
    night = {"text": "2 at night", "timing": {"repeat": {"when": ["NIGHT"]}}}
    together = parse_dosage([morning, night])
    assert (together.per_day, together.dose_value, together.dose_unit) == (2, 1.5, "unit")
    steps = parse_dosage([{**morning, "sequence": 1}, {**night, "sequence": 2}])
    assert (steps.per_day, steps.dose_value) == (1, 2)
    unread = parse_dosage([morning, {"text": "as directed"}])
    assert unread.per_day is None


def test_structured_dose_range_counts_its_upper_end() -> None:
    dosage = parse_dosage(
        [
            {
                "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseRange": {"low": {"value": 5}, "high": {"value": 10, "unit": "mg"}}}
                ],
            }
        ]
    )
    assert (dosage.per_day, dosage.dose_value, dosage.dose_unit) == (4, 10, "mg")


def test_product_strength_from_text() -> None:
    assert product_strength("oxycodone 10mg modified-release tablets") == (10, "mg")
    assert product_strength("fentanyl 12micrograms/hour transdermal patches") == (12, "ug/h")
    assert product_strength("lithium carbonate 1g tablets") == (1000, "mg")
    assert product_strength("methotrexate tablets") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-06-30T23:30:00Z", "2026-07-01"),  # BST: half past midnight in London
        ("2026-12-31T23:30:00Z", "2026-12-31"),  # GMT
        ("2026-06-30T23:30:00+01:00", "2026-06-30"),
        ("2026-06-30", "2026-06-30"),
        ("2026-06", "2026-06-01"),
        ("2026", "2026-01-01"),
        ("2026-06-30T10:00:00", "2026-06-30"),
    ],
)
def test_dates_are_read_as_london_calendar_dates(value: str, expected: str) -> None:
    parsed = parse_date(value)
    assert parsed is not None
    assert parsed.isoformat() == expected


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01", 20261127, None])
def test_bad_dates_are_none(value: object) -> None:
    assert parse_date(value) is None
