"""Read ``MedicationRequest.dosageInstruction``: structured timing first, text second.

The text reader knows the phrasing of UK prescriptions (dm+d / EPS dosage text and the usual
abbreviations: od, om, on, bd, tds, qds, mane, nocte, prn, q4h, "ONE to be taken TWICE a day",
"1 in the morning and 2 at night", "10 mg once a week on Monday"). Where a text names several
frequencies it takes the highest and where it names a range ("1-2", "every 4-6 hours") the
higher end: the worst case is what the safety checks must see. What it cannot read stays None,
so the engine can say "frequency not stated" instead of guessing. ``QD`` is deliberately not
read: it means four times a day to some UK prescribers and once a day in US usage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    "milligram": 1.0,
    "milligrams": 1.0,
    "g": 1000.0,
    "gram": 1000.0,
    "grams": 1000.0,
    "ug": 0.001,
    "mcg": 0.001,
    "µg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
}
_VOLUME_UNITS = frozenset({"ml", "mls", "millilitre", "millilitres", "ml{}"})
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
_DAYS_IN_MONTH = 30.4375

# ---------------------------------------------------------------- text: normalising
_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "ii": "2",
    "iii": "3",
}
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b")
_DOTTED = re.compile(r"\b(?:[a-z]\.){1,3}[a-z]\b\.?")
_AND_A_HALF = re.compile(r"\b(\d+)\s+and\s+a\s+half\b")
_HALF = re.compile(r"\b(?:a\s+)?half(?:\s+(?:of\s+)?an?)?\b|½|(?<![\d./])1/2\b")
_NEGATED = re.compile(r"\b(?:not|never)\b[^.;]{0,30}$")

NUM = r"\d+(?:\.\d+)?"
RANGE = rf"({NUM})(?:\s*(?:-|to|or)\s*({NUM}))?"
_MASS = r"mg|milligrams?|g|grams?|micrograms?|mcg|ug|µg"
_FORMS = (
    r"tablets?|tabs?|caplets?|capsules?|caps?|patch(?:es)?|sachets?|lozenges?|films?"
    r"|suppositor(?:y|ies)|doses?"
)
_DAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)days?"

# ---------------------------------------------------------------- text: frequency
_PERIOD = (
    r"(?:a|per|each|every|/)?\s*(?:(?P<day>day|daily|24\s*(?:hours?|hrs?|h))|(?P<week>week|weekly)"
    r"|(?P<fortnight>fortnight)|(?P<month>month))\b"
)
_PERIOD_LENGTH = {"day": 1.0, "week": 7.0, "fortnight": 14.0, "month": _DAYS_IN_MONTH}
_COUNTED = re.compile(rf"\b{RANGE}\s*(?:times?|x)\s*{_PERIOD}")
"""``N times a day / week / fortnight / month``: the higher end of a range."""
_WORDED = re.compile(rf"\b(?P<word>once|twice|thrice)\s*{_PERIOD}")
_ONCE = {"once": 1.0, "twice": 2.0, "thrice": 3.0}
_EVERY = re.compile(
    rf"\bevery\s+{RANGE}\s*(?:(?P<hour>hours?|hrs?|h)|(?P<day>days?)|(?P<week>weeks?)"
    r"|(?P<month>months?))\b"
)
"""``every N hours / days / weeks / months``: the shorter interval of a range."""
_HOURLY = re.compile(
    rf"\bq\s*{RANGE}\s*h\b|\b(?P<lo>{NUM})(?:\s*(?:-|to|or)\s*(?P<hi>{NUM}))?\s*-?\s*hourly\b"
)
"""``q4h``, ``4-6 hourly``."""
_WEEKDAYS = re.compile(rf"\b(?:on|every|each)\s+{_DAY}(?:\s*(?:,|and|&)\s*{_DAY})*")
"""Named weekdays: each one a dose a week."""
_FIXED = re.compile(
    r"\b(?:(?P<four>qds|qid)|(?P<three>tds|tid|td)"
    r"|(?P<two>bds?|bid|mn|nm|morning\s+and\s+(?:at\s+)?night)|(?P<six>qqh)"
    r"|(?P<alternate>every\s+other\s+day|alternate\s+days|alt\s+die)|(?P<fortnightly>fortnightly)"
    r"|(?P<monthly>monthly|every\s+month|each\s+month)|(?P<weekly>weekly|(?:every|each|per|a)\s+week)"
    r"|(?P<daily>daily|(?:every|each|per|a)\s+day|od|qam|qpm|qhs|hs))\b"
    r"|/\s*(?:(?P<per_week>week|wk)|(?P<per_day>day|d|24\s*(?:hours?|hrs?|h)))\b"
)
"""Words and abbreviations with a fixed number of administrations a day."""
_FIXED_PER_DAY = {
    "four": 4.0,
    "three": 3.0,
    "two": 2.0,
    "six": 6.0,
    "alternate": 0.5,
    "fortnightly": 1 / 14,
    "monthly": 1 / _DAYS_IN_MONTH,
    "weekly": 1 / 7,
    "per_week": 1 / 7,
    "daily": 1.0,
    "per_day": 1.0,
}
_SLOTS = re.compile(
    "|".join(
        f"(?P<s{n}>{pattern})"
        for n, pattern in enumerate(
            (
                r"\b(?:in\s+the|every|each)\s+morning\b|\bmane\b|\bom\b"
                r"|\b(?:at|with|before|after)\s+breakfast\b",
                r"\bat\s+(?:midday|noon|lunch(?:time)?)\b|\b(?:with|before|after)\s+lunch\b",
                r"\b(?:in\s+the|every|each)\s+evening\b|\bat\s+teatime\b"
                r"|\bwith\s+(?:tea|evening\s+meal)\b",
                r"\bat\s+(?:night|bedtime)\b|\b(?:every|each)\s+night\b|\bnocte\b|\bbefore\s+bed\b"
                r"|\bon\b(?=\s*(?:$|[.,;)]|\b(?:and|prn|when|if|with|for)\b))",
            )
        )
    )
)
"""Times of the day (morning, midday, evening, night): each one named is a dose."""
_WEEKDAY = re.compile(_DAY)

# ---------------------------------------------------------------- text: dose
_STRENGTH_COUNT = re.compile(rf"\b{RANGE}\s*(?:x\s*)?({NUM})\s*({_MASS})\s+(?:{_FORMS})\b")
"""``two 10mg tablets``: a count of a stated strength."""
_MASS_DOSE = re.compile(
    rf"\b{RANGE}\s*({_MASS})\b(?!\s*/\s*(?!(?:day|d|24\s*(?:hours?|hrs?|h)|week|wk)\b))"
)
_VOLUME_DOSE = re.compile(rf"\b{RANGE}\s*(ml|mls|millilitres?)\b(?!\s*/)")
_NOT_A_COUNT = (
    rf"(?!\s*(?:(?:-|to|or)\s*{NUM}\s*)?(?:{_MASS}|ml|mls|%|times?|x\b|hourly|hours?|hrs?|h\b"
    r"|days?|weeks?|months?|/|\.\d))"
)
_UNIT_DOSE = tuple(
    re.compile(pattern)
    for pattern in (
        rf"\b{RANGE}\s*(?:x\s*)?(?:{_FORMS})\b",
        rf"\b(?:an?)\s+(?:{_FORMS})\b",
        rf"\b{RANGE}\s+to\s+be\s+(?:taken|given|used|applied|inserted|dissolved|chewed|sucked)\b",
        rf"\b(?:take|apply|give|use|insert|chew|dissolve)\s+{RANGE}\b{_NOT_A_COUNT}",
        rf"^\s*{RANGE}\b{_NOT_A_COUNT}",
    )
)
_SLOT_AMOUNT = re.compile(rf"({NUM})\s*(?:({_MASS})|{_FORMS})?(?:\s+to\s+be\s+taken)?\s*$")


def parse_dosage(instructions: Any) -> Dosage:
    """Administrations per day and dose per administration from every dosage instruction:
    several instructions with one ``sequence`` (or none) are taken together (their doses add
    up); instructions in sequence are a course of steps, and the highest step counts."""
    readings = [_parse_one(i) for i in instructions or () if isinstance(i, dict)]
    if not readings:
        return Dosage(text="", per_day=None, dose_value=None, dose_unit=None, source="none")
    if len(readings) == 1:
        return readings[0][1]
    together = len({sequence for sequence, _ in readings}) == 1
    return _combine([dosage for _, dosage in readings], together)


def _parse_one(instruction: dict[str, Any]) -> tuple[object, Dosage]:
    text = str(instruction.get("text") or instruction.get("patientInstruction") or "")
    per_day = _structured_frequency(instruction.get("timing"))
    dose_value, dose_unit = _structured_dose(instruction.get("doseAndRate"))
    source = "structured" if per_day is not None or dose_value is not None else "none"
    if per_day is None or dose_value is None:
        read = _read_text(text)
        if per_day is None:
            per_day = read.per_day
        if dose_value is None:
            dose_value, dose_unit = read.dose_value, read.dose_unit
        if source == "none" and (per_day is not None or dose_value is not None):
            source = "text"
    dosage = Dosage(
        text=text, per_day=per_day, dose_value=dose_value, dose_unit=dose_unit, source=source
    )
    return instruction.get("sequence"), dosage


def _combine(dosages: list[Dosage], together: bool) -> Dosage:
    text = "; ".join(d.text for d in dosages if d.text)
    source = next((d.source for d in dosages if d.source == "structured"), dosages[0].source)
    frequencies = [d.per_day for d in dosages if d.per_day is not None]
    if len(frequencies) < len(dosages):
        return Dosage(text, None, None, None, source)
    units = {d.dose_unit for d in dosages}
    unit = units.pop() if len(units) == 1 else None
    doses = [d.dose_value for d in dosages if d.dose_value is not None]
    if unit is None or len(doses) < len(dosages):
        per_day = sum(frequencies) if together else max(frequencies)
        return Dosage(text, per_day, None, None, source)
    if together:
        per_day = sum(frequencies)
        total = sum(f * v for f, v in zip(frequencies, doses, strict=True))
        return Dosage(text, per_day, total / per_day, unit, source)
    return Dosage(text, max(frequencies), max(doses), unit, source)


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
        for times in (repeat.get("when"), repeat.get("timeOfDay")):
            if isinstance(times, list) and times:
                return float(len(times))
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
        if not isinstance(item, dict):
            continue
        quantity = item.get("doseQuantity")
        if not isinstance(quantity, dict):
            quantity = (item.get("doseRange") or {}).get("high")
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
    if unit in _VOLUME_UNITS:
        return value, "ml"
    if unit in _FORM_UNITS or unit.rstrip("s") in _FORM_UNITS:
        return value, "unit"
    return None, None


# ---------------------------------------------------------------- text


def _normalise(text: str) -> str:
    """Lower case, abbreviation dots dropped (``b.d.`` -> ``bd``), numbers as digits."""
    text = text.lower()
    if "." in text:
        text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _WORD_NUMBER.sub(lambda m: _NUMBER_WORDS[m.group(1)], text)
    if "half" in text or "½" in text or "1/2" in text:
        text = _AND_A_HALF.sub(lambda m: f"{m.group(1)}.5", text)
        text = _HALF.sub("0.5", text)
    return text


def _live(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches not negated ("do not take daily")."""
    if "not" not in text and "never" not in text:
        return list(pattern.finditer(text))
    return [m for m in pattern.finditer(text) if not _NEGATED.search(text[: m.start()])]


@dataclass(frozen=True, slots=True)
class _TextReading:
    per_day: float | None
    dose_value: float | None
    dose_unit: str | None


def _read_text(raw: str) -> _TextReading:
    text = _normalise(raw)
    slots = _live(_SLOTS, text)
    per_day = _text_frequency(text, slots)
    doses = _slot_doses(text, slots)
    if doses is not None:
        return _TextReading(max(doses[0], per_day or 0.0), doses[1], doses[2])
    dose_value, dose_unit = _text_dose(text)
    return _TextReading(per_day, dose_value, dose_unit)


def _text_frequency(text: str, slots: list[re.Match[str]]) -> float | None:
    """The highest administrations per day any (not negated) phrase names. Each pattern runs
    only when a word it needs is in the text: a dosage is read once per distinct instruction,
    but real records have many."""
    found = [_FIXED_PER_DAY[str(m.lastgroup)] for m in _live(_FIXED, text)]
    if "time" in text or "x" in text:
        found += [_high(m) / _PERIOD_LENGTH[_period(m)] for m in _live(_COUNTED, text)]
    if "once" in text or "twice" in text or "thrice" in text:
        found += [_ONCE[m["word"]] / _PERIOD_LENGTH[_period(m)] for m in _live(_WORDED, text)]
    if "every" in text:
        for match in _live(_EVERY, text):
            low = _low(match)
            if low > 0:
                unit = _period(match, ("hour", "day", "week", "month"))
                found.append(1 / (low * (1 / 24 if unit == "hour" else _PERIOD_LENGTH[unit])))
    if "hourly" in text or "q" in text:
        for match in _live(_HOURLY, text):
            low = _low(match) if match.group(1) else _low(match, "lo", "hi")
            if low > 0:
                found.append(24 / low)
    if "day" in text:
        found += [len(set(_WEEKDAY.findall(m.group(0)))) / 7 for m in _live(_WEEKDAYS, text)]
    named = {m.lastgroup for m in slots}
    if named:
        found.append(float(len(named)))
    return max(found) if found else None


def _period(match: re.Match[str], names: tuple[str, ...] = tuple(_PERIOD_LENGTH)) -> str:
    return next(name for name in names if match.group(name))


def _low(match: re.Match[str], low: str | int = 1, high: str | int = 2) -> float:
    """The lower end of a number or range."""
    first, second = match.group(low), match.group(high)
    return min(float(first), float(second)) if second else float(first)


def _slot_doses(text: str, slots: list[re.Match[str]]) -> tuple[float, float, str] | None:
    """``1 in the morning and 2 at night``: a dose per time of day, when two or more are named
    with their amounts (administrations per day, mean dose, unit)."""
    amounts: dict[str | None, tuple[float, str]] = {}
    for match in slots:
        if match.lastgroup in amounts:
            continue
        amount = _SLOT_AMOUNT.search(text[: match.start()].rstrip())
        if amount is not None:
            mass = amount.group(2)
            value = float(amount.group(1)) * (_MASS_UNITS[mass] if mass else 1.0)
            amounts[match.lastgroup] = (value, "mg" if mass else "unit")
    units = {unit for _, unit in amounts.values()}
    if len(amounts) < 2 or len(units) > 1:
        return None
    total = sum(value for value, _ in amounts.values())
    return float(len(amounts)), total / len(amounts), units.pop()


def _first(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    if "not" not in text and "never" not in text:
        return pattern.search(text)
    live = _live(pattern, text)
    return live[0] if live else None


def _high(match: re.Match[str]) -> float:
    """The higher end of a number or range in groups 1 and 2."""
    low, high = match.group(1), match.group(2)
    return max(float(low), float(high)) if high else float(low)


def _text_dose(text: str) -> tuple[float | None, str | None]:
    """Dose per administration: a count of a stated strength, else a mass, else a count of
    units (tablets, capsules, patches, or ``ONE to be taken``), else a volume in ml."""
    match = _first(_STRENGTH_COUNT, text)
    if match is not None:
        return _high(match) * float(match.group(3)) * _MASS_UNITS[match.group(4)], "mg"
    match = _first(_MASS_DOSE, text)
    if match is not None:
        return _high(match) * _MASS_UNITS[match.group(3)], "mg"
    for pattern in _UNIT_DOSE:
        match = _first(pattern, text)
        if match is not None:
            return (_high(match) if match.groups() else 1.0), "unit"
    match = _first(_VOLUME_DOSE, text)
    if match is not None:
        return _high(match), "ml"
    return None, None
