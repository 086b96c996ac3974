"""A patient's own target range for an analyte (INR 3.0-4.0 for a mechanical valve).

The record states it as a FHIR Goal whose target measures the analyte (``RecordedTarget``), or
in the dosage text of a current prescription of the pack's group ("target INR 3.5", "INR range
2.0-3.0"). The newest statement wins (a Goal before a prescription of the same day); without
one, the pack's default range is used and the finding says it was assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from hrm_fhir.domain import RecordedTarget, ResourceRef
from hrm_fhir.rules.model import TargetDefault
from hrm_fhir.rules.therapy import Therapy

_NUMBER = r"(\d(?:\.\d+)?)"


@dataclass(frozen=True, slots=True)
class Target:
    """The target range a result is judged against, and where it came from."""

    low: float
    high: float
    source: ResourceRef | None
    """The Goal or prescription that states it; None when the pack's default was assumed."""
    said: str
    """In words, for a finding's reason."""

    def range_text(self) -> str:
        return f"{decimal_text(self.low)}-{decimal_text(self.high)}"


def decimal_text(value: float) -> str:
    """``2.0``, ``3.5``, ``2.25``: one decimal at least, as INR targets are written."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def patient_target(
    default: TargetDefault, recorded: list[RecordedTarget], therapy: Therapy
) -> Target:
    """The newest target the record states (a Goal, or a current prescription's text), else
    the pack's default range, said to be assumed."""
    candidates: list[tuple[date, int, Target]] = []
    for goal in recorded:
        if goal.analyte == default.analyte:
            low, high = goal.low, goal.high
            if low == high:  # one value: the range around it
                low, high = low - default.half_width, high + default.half_width
            when = goal.recorded or date.min
            said = f"the patient's target {decimal_text(low)}-{decimal_text(high)} ({goal.ref}"
            said += f" of {goal.recorded.isoformat()})" if goal.recorded else ")"
            candidates.append((when, 1, Target(low, high, goal.ref, said)))
    for product in therapy.products:
        request = product.request
        stated = target_in_text(request.dosage.text, default)
        if stated is not None:
            low, high = stated
            said = (
                f"the patient's target {decimal_text(low)}-{decimal_text(high)} "
                f'("{request.dosage.text.strip()}" on {request.ref})'
            )
            candidates.append((request.authored_on, 0, Target(low, high, request.ref, said)))
    if candidates:
        return max(candidates, key=lambda c: (c[0], c[1]))[2]
    assumed = Target(default.low, default.high, None, "")
    said = (
        f"no target range on record: the usual {assumed.range_text()} is assumed; record the "
        "patient's own target (a Goal, or in the dosage text) if it differs"
    )
    return Target(default.low, default.high, None, said)


def target_in_text(text: str, default: TargetDefault) -> tuple[float, float] | None:
    """The target range written in a dosage text: "target INR 3.5" (the value +/- the pack's
    half width), "INR range 2.0-3.0", "INR target: 2.5 to 3.5". None when the text states none
    or states one no reading of the pack's default makes plausible (outside half the default's
    low to twice its high)."""
    found = _pattern(default.names).search(text.lower())
    if found is None:
        return None
    low = float(found.group(1))
    high = float(found.group(2)) if found.group(2) else None
    if high is None:
        low, high = low - default.half_width, low + default.half_width
    if not (default.low / 2 <= low < high <= default.high * 2):
        return None
    return round(low, 3), round(high, 3)


@lru_cache(maxsize=16)
def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """``target <name>``, ``<name> target``, ``<name> range``, ``target range`` then a value or
    a range (``2-3``, ``2.0 to 3.0``), with ``of``, ``is``, ``:`` or ``=`` between."""
    name = "|".join(re.escape(n) for n in names)
    lead = rf"(?:target\s+(?:{name})|(?:{name})\s+target|(?:{name})\s+range|target\s+range)"
    return re.compile(
        rf"\b{lead}(?:\s+range)?\s*(?:of|is|:|=)?\s*{_NUMBER}"
        rf"(?:\s*(?:-|\u2013|to)\s*{_NUMBER})?(?!\.?\d)"
    )
