"""The strength of one ingredient read from a product's name, also in combination products.

``Co-codamol 30mg/500mg tablets`` is codeine 30 mg (the co-name's ingredients come in the order
of the strengths in its dm+d names); ``Acetaminophen 325 MG / Oxycodone Hydrochloride 10 MG Oral
Tablet`` is oxycodone 10 mg. A combination whose name does not put a strength beside the
ingredient gives no strength: an unknown strength is reported as not counted, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hrm_fhir.rules.catalogue import Combination

Strength = tuple[float, str]
"""A unit strength: (value, ``mg``) or, for transdermal patches, (value, ``ug/h``)."""

_MASS = r"mg|milligrams?|g|grams?|micrograms?|mcg|ug|µg"
_AMOUNT = re.compile(rf"(\d+(?:\.\d+)?)\s*({_MASS})\b(\s*/\s*(?:hours?|hr|h)\b)?")
_TO_MG = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001}
_PAIR = re.compile(rf"(\d+(?:\.\d+)?)\s*({_MASS})?\s*/\s*(\d+(?:\.\d+)?)\s*({_MASS})?\b")
"""``30mg/500mg``, and ``30/500`` (mg) after a co-name."""
_PARTS = re.compile(r"\s/\s|\s\+\s|\band\b|\bwith\b")
"""Separators between the ingredients of a combination product's name."""
_CO_NAME = re.compile(r"\bco-[a-z]+")


def first_strength(text: str) -> Strength | None:
    """The first strength in ``text``: ``10mg`` -> (10, mg); ``25 micrograms/hour`` -> (25,
    ug/h)."""
    return _strength(_AMOUNT.search(text))


def single_strength(text: str) -> Strength | None:
    """The first strength of a name of one ingredient; None for a combination (``a / b``,
    ``a and b``, ``co-codamol``), whose strengths need to know which ingredient is wanted."""
    if len(_PARTS.split(text)) > 1 or _CO_NAME.search(text):
        return None
    return first_strength(text)


def ingredient_strength(
    text: str, ingredient: str, names: Iterable[str], combinations: Iterable[Combination]
) -> Strength | None:
    """The strength of ``ingredient`` (called any of ``names``) in a lower-case product name.

    A co-name (``co-codamol 30mg/500mg``) gives the strength at the ingredient's place; a name of
    several ingredients (split at `` / ``, `` + ``, ``and``, ``with``) gives the strength written
    after the ingredient's own name; a single-ingredient name gives its first strength.
    """
    for combination in combinations:
        found = _co_strengths(text, combination)
        if found is not None:
            place = combination.ingredients.index(ingredient)
            return found[place] if place < len(found) else None
    parts = _PARTS.split(text)
    if len(parts) == 1:
        return first_strength(text)
    pattern = _names_pattern(names)
    for part in parts:
        named = pattern.search(part)
        if named is not None:
            return first_strength(part[named.end() :]) or first_strength(part)
    return None


def _co_strengths(text: str, combination: Combination) -> tuple[Strength, ...] | None:
    """``co-codamol 30mg/500mg`` or ``co-codamol 30/500`` -> ((30, mg), (500, mg))."""
    at = re.search(rf"\b{re.escape(combination.name)}\b", text)
    if at is None:
        return None
    pair = _PAIR.search(text, at.end())
    if pair is None or _AMOUNT.search(text, at.end(), pair.start()):
        return None
    second_unit = pair.group(4) or "mg"
    first = _strength_of(pair.group(1), pair.group(2) or second_unit, per_hour=False)
    second = _strength_of(pair.group(3), second_unit, per_hour=False)
    return first, second


def _names_pattern(names: Iterable[str]) -> re.Pattern[str]:
    alternation = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    return re.compile(rf"\b(?:{alternation})\b")


def _strength(match: re.Match[str] | None) -> Strength | None:
    if match is None:
        return None
    return _strength_of(match.group(1), match.group(2), per_hour=bool(match.group(3)))


def _strength_of(value: str, unit: str, *, per_hour: bool) -> Strength:
    mg = float(value) * _TO_MG[_unit(unit)]
    return (round(mg * 1000, 6), "ug/h") if per_hour else (round(mg, 6), "mg")


def _unit(unit: str) -> str:
    if unit.startswith("microgram"):
        return "ug"
    if unit.startswith("milligram"):
        return "mg"
    if unit.startswith("gram"):
        return "g"
    return unit
