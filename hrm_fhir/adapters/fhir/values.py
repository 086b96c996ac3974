"""FHIR datatypes read, purely: dates and moments in the service's time zone, references,
codings, values written as text (``>8.0``), interpretation flags, reference ranges, Goal limits and
a Medication's strength. ``mapping.py`` builds the domain records from them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from hrm_fhir import clock
from hrm_fhir.rules.strength import Strength, first_strength

Resource = dict[str, Any]


INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


INTERPRETATIONS = frozenset({"H", "HH", "HU", "L", "LL", "LU", "A", "AA", "N", "<", ">"})


COMPARATORS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "\u2264": "<=", "\u2265": ">="}


VALUE_STRING = re.compile(
    r"^\s*(<=|>=|<|>|\u2264|\u2265)?\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*(.*?)\s*$"
)


RANGE_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-|to|\u2013)\s*(\d+(?:\.\d+)?)")


MASS_TO_MG = {
    "mg": 1.0,
    "g": 1000.0,
    "microgram": 0.001,
    "micrograms": 0.001,
    "mcg": 0.001,
    "ug": 0.001,
}


UCUM_SYSTEM = "http://unitsofmeasure.org"


Moment = tuple[date, int | None, int | None]
"""A FHIR date or dateTime: (London calendar date, seconds after London midnight or None for a
date only, POSIX seconds or None)."""


def parse_date(value: Any) -> date | None:
    """A FHIR date/dateTime/instant as a local calendar date; None if absent or bad."""
    moment = parse_moment(value)
    return None if moment is None else moment[0]


def parse_moment(value: Any) -> Moment | None:
    """A FHIR date/dateTime/instant in the service's time zone: its date, its time of day when
    it has one, and its instant; None if absent or bad. A time without a zone is local time."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value), None, None
        if len(value) == 4:
            return date(int(value), 1, 1), None, None
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1), None, None
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    local = clock.zone()
    moment = moment.replace(tzinfo=local) if moment.tzinfo is None else moment.astimezone(local)
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return moment.date(), seconds, int(moment.timestamp())


def reference(value: Any, kind: str) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith(kind) and ref.count("/") == 1 and ref[len(kind)] == "/":
        return ref
    ref = ref.split("/_history/")[0]
    parts = ref.rsplit("/", 2)
    if len(parts) >= 2 and parts[-2] == kind:
        return f"{kind}/{parts[-1]}"
    if ref.startswith("urn:uuid:"):
        return f"{kind}/{ref[9:]}"
    return None


def patient_key(resource: Resource) -> str | None:
    """The ``Patient/<id>`` a resource belongs to, if it says."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        rid = resource.get("id")
        return f"Patient/{rid}" if isinstance(rid, str) and rid else None
    return reference(resource.get("subject") or resource.get("for"), "Patient")


def codings_of(concept: Any) -> list[tuple[str, str, str]]:
    if not isinstance(concept, dict):
        return []
    out = []
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code") is not None:
            out.append(
                (str(coding.get("system", "")), str(coding["code"]), str(coding.get("display", "")))
            )
    return out


def concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [str(concept.get("text") or "")]
    parts.extend(display for _, _, display in codings_of(concept))
    return " ".join(p for p in parts if p).lower()


def product_strength(text: str) -> Strength | None:
    """Unit strength from text: ``10mg`` -> (10, mg); ``25 micrograms/hour`` -> (25, ug/h)."""
    return first_strength(text)


def text_value(element: Resource) -> tuple[float | None, str | None, str | None]:
    """(number, comparator, unit as written) of a value that is not a ``valueQuantity``."""
    text = element.get("valueString")
    if isinstance(text, str):
        match = VALUE_STRING.match(text)
        if match is None:
            return None, None, None
        comparator, number, unit = match.groups()
        return float(number), COMPARATORS.get(comparator or ""), unit or None
    return json_number(element.get("valueInteger")), None, None


def interpretation_flag(concepts: Any) -> str | None:
    """The first v3 ObservationInterpretation flag (``H``, ``LL``, ``A``...) the laboratory gave."""
    for concept in concepts or ():
        for coding in (concept.get("coding") or ()) if isinstance(concept, dict) else ():
            code = coding.get("code")
            if code in INTERPRETATIONS and coding.get("system") in (INTERPRETATION_SYSTEM, None):
                return str(code)
    return None


def reference_range(ranges: Any) -> tuple[float | None, float | None, str | None]:
    """(low, high, unit) of the first ``referenceRange`` that has a limit, or whose text reads
    ``133-146``."""
    for entry in ranges or ():
        if not isinstance(entry, dict):
            continue
        low, high = entry.get("low") or {}, entry.get("high") or {}
        low_value, high_value = json_number(low.get("value")), json_number(high.get("value"))
        if low_value is not None or high_value is not None:
            unit = low.get("code") or low.get("unit") or high.get("code") or high.get("unit")
            return low_value, high_value, unit
        match = RANGE_TEXT.match(str(entry.get("text") or ""))
        if match is not None:
            return float(match.group(1)), float(match.group(2)), None
    return None, None, None


def first_code(concept: Any) -> str | None:
    """The first code of a CodeableConcept (a status such as ``resolved``)."""
    codings = codings_of(concept)
    return codings[0][1] if codings else None


def goal_limits(target: Resource) -> tuple[float, float] | None:
    """(low, high) of a Goal target's ``detailRange``; a ``detailQuantity`` gives (value, value)
    and the rules widen it by the pack's half width."""
    detail = target.get("detailRange")
    if isinstance(detail, dict):
        low = json_number((detail.get("low") or {}).get("value"))
        high = json_number((detail.get("high") or {}).get("value"))
        if low is not None and high is not None and low < high:
            return low, high
        return None
    quantity = target.get("detailQuantity")
    value = json_number(quantity.get("value")) if isinstance(quantity, dict) else None
    return None if value is None else (value, value)


def coding_pairs(concept: Any) -> tuple[tuple[str, str], ...]:
    return tuple((system, code) for system, code, _ in codings_of(concept))


def medication_strength(
    medication: Resource | None, is_monitored: Callable[[Any], bool] | None
) -> Strength | None:
    """The strength of the monitored ingredient of a Medication (of its only ingredient when
    ``is_monitored`` is None)."""
    if medication is None:
        return None
    ingredients = medication.get("ingredient") or ()
    if is_monitored is None and len(ingredients) != 1:
        return None
    for ingredient in ingredients:
        if is_monitored is not None and not is_monitored(ingredient.get("itemCodeableConcept")):
            continue
        ratio = ingredient.get("strength") or {}
        numerator = ratio.get("numerator") or {}
        denominator = ratio.get("denominator") or {}
        value = json_number(numerator.get("value"))
        unit = str(numerator.get("code") or numerator.get("unit") or "").lower()
        per = str(denominator.get("code") or denominator.get("unit") or "").lower()
        if value is None or unit not in MASS_TO_MG:
            continue
        if per in ("h", "hour", "hr"):
            return value * MASS_TO_MG[unit] * 1000, "ug/h"
        return value * MASS_TO_MG[unit], "mg"
    return None


def json_number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
