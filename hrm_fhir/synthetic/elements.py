"""FHIR elements every synthetic resource is built from: code systems, instants, quantities and
NHS numbers from the test range.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

Resource = dict[str, Any]


SNOMED = "http://snomed.info/sct"


LOINC = "http://loinc.org"


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


UCUM = "http://unitsofmeasure.org"


NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"


def instant(day: date, time: str = "09:30:00") -> str:
    return f"{day.isoformat()}T{time}+00:00"


def rounded(value: float, digits: int) -> float | int:
    return round(value) if digits == 0 else round(value, digits)


def quantity(value: float | int, unit: str, *, ucum: bool = True) -> Resource:
    if not ucum:
        return {"value": value, "unit": unit}
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def dates_every(start: date, end: date, interval: int) -> list[date]:
    days = (end - start).days
    return [start + timedelta(days=i) for i in range(0, days + 1, interval)]


def nhs_check_digit(nine: str) -> int | None:
    """Modulus 11 check digit for the first nine digits; None when the number is invalid."""
    total = sum(int(digit) * (10 - i) for i, digit in enumerate(nine))
    check = 11 - total % 11
    return None if check == 10 else check % 11


def nhs_numbers(seed: int) -> Iterator[str]:
    """Distinct test-range numbers (999 prefix, valid check digit), starting at a seed offset."""
    serial = seed * 7919 % 1_000_000
    while True:
        nine = f"999{serial:06d}"
        check = nhs_check_digit(nine)
        if check is not None:
            yield f"{nine}{check}"
        serial = (serial + 1) % 1_000_000
