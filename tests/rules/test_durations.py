"""Calendar durations used by every schedule."""

from __future__ import annotations

from datetime import date

import pytest

from hrm_fhir.rules.durations import Duration


@pytest.mark.parametrize(
    ("text", "start", "after", "before"),
    [
        ("P14D", date(2026, 11, 27), date(2026, 12, 11), date(2026, 11, 13)),
        ("P2W", date(2026, 12, 25), date(2027, 1, 8), date(2026, 12, 11)),
        ("P3M", date(2026, 11, 30), date(2027, 2, 28), date(2026, 8, 30)),
        ("P1M", date(2024, 1, 31), date(2024, 2, 29), date(2023, 12, 31)),
        ("P1Y", date(2024, 2, 29), date(2025, 2, 28), date(2023, 2, 28)),
        ("P12M", date(2026, 11, 27), date(2027, 11, 27), date(2025, 11, 27)),
    ],
)
def test_calendar_arithmetic(text: str, start: date, after: date, before: date) -> None:
    duration = Duration.parse(text)
    assert duration.after(start) == after
    assert duration.before(start) == before
    assert str(duration) == text


@pytest.mark.parametrize("text", ["12W", "P1.5M", "P-1D", "PT1H", "", "P3MONTHS"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        Duration.parse(text)


def test_describe_reads_as_english() -> None:
    assert Duration.parse("P1W").describe() == "1 week"
    assert Duration.parse("P12W").describe() == "12 weeks"
