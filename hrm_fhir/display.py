"""How people read values: units, dates and the age of a result, for the pages and the console.

The engine, the ledger and FHIR keep UCUM codes and ISO dates (``10*9/L``, ``{INR}``,
``2026-11-07``): they are exact and compared by machines. What a person reads goes through here,
so the whole service writes ``×10⁹/L``, an INR with no unit, and ``7 Nov 2026`` from one table.
"""

from __future__ import annotations

import re
from datetime import date

HUMAN_UNITS: dict[str, str] = {
    "1": "",
    "{INR}": "",
    "10*9/L": "×10⁹/L",
    "10*12/L": "×10¹²/L",
    "10*3/uL": "×10³/µL",
    "m[IU]/L": "mU/L",
    "[IU]/L": "IU/L",
    "mm[Hg]": "mmHg",
    "umol/L": "µmol/L",
    "ug/L": "µg/L",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²",
    "kg/m2": "kg/m²",
}
"""UCUM code -> what a UK laboratory report prints; codes not listed read as they are."""

_IN_TEXT = sorted((code for code in HUMAN_UNITS if not code.isalnum()), key=len, reverse=True)
"""Codes rewritten inside free text (a bare ``1`` could be any number, so never)."""
_UNIT_IN_TEXT = re.compile(
    r"(?P<space> ?)(?<![\w/*\[{])(?P<code>"
    + "|".join(re.escape(code) for code in _IN_TEXT)
    + r")(?![\w/*\]}])"
)
_ISO_DATE = re.compile(r"(?<![\w-])(\d{4})-(\d{2})-(\d{2})(?![\w-]|:\d)")


def unit(code: str | None) -> str:
    """The unit as people read it (``10*9/L`` -> ``×10⁹/L``; ``{INR}`` -> nothing)."""
    return HUMAN_UNITS.get(code, code) if code else ""


def quantity(value: float | None, code: str | None) -> str:
    """``0.8 ×10⁹/L``, ``8.4`` (an INR), or ``no value``."""
    if value is None:
        return "no value"
    shown = unit(code)
    return f"{value:g} {shown}" if shown else f"{value:g}"


def day(value: date | None) -> str:
    """``7 Nov 2026``: unambiguous on any practice PC."""
    return f"{value.day} {value:%b %Y}" if value else ""


def age(then: date, today: date) -> str:
    """How long before ``today`` a date is, in the unit people use for it: ``today``,
    ``yesterday``, ``5 days ago``, ``3 weeks ago``, ``11 months ago``, ``2 years ago``."""
    days = (today - then).days
    if days < 0:
        return "in the future"
    if days < 2:
        return ("today", "yesterday")[days]
    months = (today.year - then.year) * 12 + today.month - then.month - (today.day < then.day)
    if days < 14:
        amount, what = days, "day"
    elif months < 2:
        amount, what = days // 7, "week"
    elif months < 24:
        amount, what = months, "month"
    else:
        amount, what = months // 12, "year"
    return f"{amount} {what}{'' if amount == 1 else 's'} ago"


def readable(text: str) -> str:
    """Free text (a Task's description, a finding's reason) with its ISO dates written as
    ``7 Nov 2026`` and its UCUM codes as people read them."""

    def unit_of(match: re.Match[str]) -> str:
        shown = HUMAN_UNITS[match["code"]]
        return f"{match['space']}{shown}" if shown else ""

    def day_of(match: re.Match[str]) -> str:
        try:
            return day(date(int(match[1]), int(match[2]), int(match[3])))
        except ValueError:
            return match[0]

    return _ISO_DATE.sub(day_of, _UNIT_IN_TEXT.sub(unit_of, text))
