"""ISO 8601 calendar durations as rule packs write them (``P2W``, ``P3M``, ``P1Y``, ``P14D``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from dateutil.relativedelta import relativedelta

_PATTERN = re.compile(r"^P(\d+)([DWMY])$")


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
        """The calendar date this duration after ``day`` (month ends clamp, as calendars do)."""
        return day + self.delta()

    def before(self, day: date) -> date:
        """The calendar date this duration before ``day``."""
        return day - self.delta()

    def delta(self) -> relativedelta:
        return {
            "D": relativedelta(days=self.amount),
            "W": relativedelta(weeks=self.amount),
            "M": relativedelta(months=self.amount),
            "Y": relativedelta(years=self.amount),
        }[self.unit]

    def __str__(self) -> str:
        return f"P{self.amount}{self.unit}"

    def describe(self) -> str:
        """Plain English, e.g. ``12 weeks``."""
        word = {"D": "day", "W": "week", "M": "month", "Y": "year"}[self.unit]
        return f"{self.amount} {word}{'' if self.amount == 1 else 's'}"
