"""CSV cells a spreadsheet opens as text, never as a formula (CSV injection)."""

from __future__ import annotations

import re

_PHONE = re.compile(r"[+\-][\d ()-]+")


def safe_cell(value: str) -> str:
    """``value``, quoted with a leading ``'`` when a spreadsheet would run it as a formula
    (phone numbers such as +44 and negative numbers are kept as they are)."""
    risky = value.startswith(("=", "@", "\t", "\r")) or (
        value.startswith(("+", "-")) and not _PHONE.fullmatch(value)
    )
    return f"'{value}" if risky else value
