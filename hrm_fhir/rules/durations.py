"""ISO 8601 calendar durations as rule packs write them (``P2W``, ``P3M``, ``P1Y``, ``P14D``)."""

from __future__ import annotations

import re
from calendar import isleap
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

_PATTERN = re.compile(r"^P(\d+)([DWMY])$")
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WORDS = {"D": "day", "W": "week", "M": "month", "Y": "year"}


def add_months(day: date, months: int) -> date:
    """Calendar month arithmetic; the day clamps to the month end (31 Jan + 1 month = 28 Feb)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    last = 29 if month == 2 and isleap(year) else _MONTH_DAYS[month]
    return date(year, month, min(day.day, last))


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: str
    """One of D, W, M, Y."""

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``P<n>D|W|M|Y``; anything else raises ValueError."""
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError(f"not a duration of the form P<n>D, P<n>W, P<n>M or P<n>Y: {text!r}")
        return cls(int(match.group(1)), match.group(2))

    def after(self, day: date) -> date:
        """The calendar date this duration after ``day``."""
        return _shifted(self.amount, self.unit, day)

    def before(self, day: date) -> date:
        """The calendar date this duration before ``day``."""
        return _shifted(-self.amount, self.unit, day)

    def __str__(self) -> str:
        return f"P{self.amount}{self.unit}"

    def describe(self) -> str:
        """Plain English, e.g. ``12 weeks``."""
        word = _WORDS[self.unit]
        return f"{self.amount} {word}{'' if self.amount == 1 else 's'}"


@lru_cache(maxsize=1 << 16)
def _shifted(amount: int, unit: str, day: date) -> date:
    """``day`` moved by ``amount`` (negative: back) days, weeks, months or years. Remembered (a
    bounded cache, for a long-running service): a run asks for the same few intervals from the
    same dates tens of thousands of times."""
    if unit == "D":
        return day + timedelta(days=amount)
    if unit == "W":
        return day + timedelta(weeks=amount)
    return add_months(day, amount if unit == "M" else 12 * amount)
