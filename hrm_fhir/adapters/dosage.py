"""Read ``MedicationRequest.dosageInstruction``: structured timing first, text second."""

from __future__ import annotations

import re
from typing import Any

from hrm_fhir.domain import Dosage

_PERIOD_DAYS = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 30.4375,
    "a": 365.25,
}
_TIMING_CODES = {
    "QD": 1.0,
    "AM": 1.0,
    "PM": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "QOD": 0.5,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "WK": 1 / 7,
    "MO": 1 / 30.4375,
}
_MASS_UNITS = {
    "mg": 1.0,
    "g": 1000.0,
    "ug": 0.001,
    "mcg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
}
_FORM_UNITS = (
    "tablet",
    "tablets",
    "tab",
    "tabs",
    "{tbl}",
    "capsule",
    "capsules",
    "cap",
    "caps",
    "{cap}",
    "patch",
    "patches",
    "{patch}",
)
_WORD_NUMBERS = {
    "one": 1.0,
    "two": 2.0,
    "three": 3.0,
    "four": 4.0,
    "half": 0.5,
    "a": 1.0,
    "an": 1.0,
}

_TEXT_FREQUENCY: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(pattern), per_day)
    for pattern, per_day in (
        (
            r"\b(once|one time)\s+(a|per|each|every)\s+week\b|\bonce\s+weekly\b"
            r"|\bweekly\b|\bevery\s+week\b"
            r"|\bon\s+(mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?|sundays?)\b",
            1 / 7,
        ),
        (r"\bfour\s+times\s+(a\s+day|daily)\b|\bqds\b|\bqid\b", 4.0),
        (r"\bthree\s+times\s+(a\s+day|daily)\b|\btds\b|\btid\b", 3.0),
        (r"\btwice\s+(a\s+day|daily)\b|\bbd\b|\bb\.d\.|\bbid\b|\bmorning\s+and\s+night\b", 2.0),
        (r"\bevery\s+other\s+day\b|\balternate\s+days\b", 0.5),
        (
            r"\bonce\s+(a\s+day|daily)\b|\bdaily\b|\bevery\s+day\b|\beach\s+day\b|\bod\b|\bat\s+night\b"
            r"|\bnocte\b|\bin\s+the\s+morning\b|\bmane\b|\bat\s+bedtime\b",
            1.0,
        ),
    )
)
_EVERY_HOURS = re.compile(r"\bevery\s+(\d+)\s*(hours|hrs|hr|h)\b")
_EVERY_DAYS = re.compile(r"\bevery\s+(\d+)\s*days\b")
_TEXT_DOSE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|g|micrograms?|mcg|ug)\b(?!\s*/)"
    r"|(\d+(?:\.\d+)?|one|two|three|four|half|a|an)\s+(tablets?|tabs?|capsules?|caps?|patch(?:es)?)\b"
)


def parse_dosage(instructions: Any) -> Dosage:
    """The first dosage instruction, read as administrations per day and dose per administration."""
    first = instructions[0] if isinstance(instructions, list) and instructions else None
    if not isinstance(first, dict):
        return Dosage(text="", per_day=None, dose_value=None, dose_unit=None, source="none")
    text = str(first.get("text") or first.get("patientInstruction") or "")
    per_day = _structured_frequency(first.get("timing"))
    dose_value, dose_unit = _structured_dose(first.get("doseAndRate"))
    source = "structured" if per_day is not None or dose_value is not None else "none"
    lowered = text.lower()
    if per_day is None:
        per_day = _text_frequency(lowered)
    if dose_value is None:
        dose_value, dose_unit = _text_dose(lowered)
    if source == "none" and (per_day is not None or dose_value is not None):
        source = "text"
    return Dosage(
        text=text, per_day=per_day, dose_value=dose_value, dose_unit=dose_unit, source=source
    )


def _structured_frequency(timing: Any) -> float | None:
    if not isinstance(timing, dict):
        return None
    repeat = timing.get("repeat")
    if isinstance(repeat, dict):
        frequency = repeat.get("frequencyMax") or repeat.get("frequency") or 1
        period = repeat.get("period")
        unit = repeat.get("periodUnit")
        if isinstance(period, int | float) and period > 0 and unit in _PERIOD_DAYS:
            return float(frequency) / (float(period) * _PERIOD_DAYS[unit])
        when = repeat.get("when")
        if isinstance(when, list) and when:
            return float(len(when))
    code = timing.get("code")
    if isinstance(code, dict):
        for coding in code.get("coding") or []:
            per_day = _TIMING_CODES.get(str(coding.get("code", "")).upper())
            if per_day is not None:
                return per_day
    return None


def _structured_dose(dose_and_rate: Any) -> tuple[float | None, str | None]:
    if not isinstance(dose_and_rate, list):
        return None, None
    for item in dose_and_rate:
        quantity = item.get("doseQuantity") if isinstance(item, dict) else None
        if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
            continue
        return _dose(
            float(quantity["value"]), str(quantity.get("code") or quantity.get("unit") or "")
        )
    return None, None


def _dose(value: float, unit: str) -> tuple[float | None, str | None]:
    unit = unit.strip().lower()
    if unit in _MASS_UNITS:
        return value * _MASS_UNITS[unit], "mg"
    if unit in _FORM_UNITS or unit.rstrip("s") in _FORM_UNITS:
        return value, "unit"
    return None, None


def _text_frequency(text: str) -> float | None:
    match = _EVERY_HOURS.search(text)
    if match and int(match.group(1)) > 0:
        return 24 / int(match.group(1))
    match = _EVERY_DAYS.search(text)
    if match and int(match.group(1)) > 0:
        return 1 / int(match.group(1))
    for pattern, per_day in _TEXT_FREQUENCY:
        if pattern.search(text):
            return per_day
    return None


def _text_dose(text: str) -> tuple[float | None, str | None]:
    match = _TEXT_DOSE.search(text)
    if match is None:
        return None, None
    if match.group(1):
        return _dose(float(match.group(1)), match.group(2))
    count = match.group(3)
    value = _WORD_NUMBERS[count] if count in _WORD_NUMBERS else float(count)
    return value, "unit"
