"""Deterministic synthetic GP practice: FHIR R4 resources for tests and benchmarks.

Every patient is invented: family name "Testpatient", NHS numbers from the 999 test range with a
valid Modulus 11 check digit. The same (patients, seed, as_of) always gives byte-identical output;
the only source of randomness is one ``random.Random(seed)``.

The population mixes all twelve monitored drug groups with patients on unmonitored drugs only
(about 40%), and covers therapy phases (established, overdue bloods, new and recent starts, dose
changes, stopped), out-of-range results, unit variants, unusual statuses and dates, medication
representations (coded, text only, referenced, contained), structured and free-text dosage, and a
small share (about 0.2%) of malformed resources.
"""

from __future__ import annotations

import copy
import html
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

Resource = dict[str, Any]
Override = tuple[tuple[str, float], ...]
"""Analyte values forced onto the latest blood draw, e.g. ``(("inr", 5.5),)``."""

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
BASE_URL = "https://example.org/fhir"
BUNDLE_PATIENTS = 500
_COURSE = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"


# ---------------------------------------------------------------- observations
@dataclass(frozen=True, slots=True)
class _Analyte:
    display: str
    snomed: str | None
    loinc: str
    unit: str
    low: float
    """Normal values are drawn uniformly from [low, high]."""
    high: float
    digits: int
    category: str = "laboratory"
    reference: tuple[float | None, float | None] | None = None


# fmt: off
_ANALYTES: dict[str, _Analyte] = {
    "wbc": _Analyte("Total white cell count", "1022541000000102", "6690-2", "10*9/L", 4, 11, 1),
    "neutrophils": _Analyte("Neutrophil count", "1022551000000104", "26499-4", "10*9/L", 2, 7, 1),
    "platelets": _Analyte("Platelet count", "1022651000000100", "777-3", "10*9/L", 160, 400, 0),
    "haemoglobin": _Analyte("Haemoglobin concentration", "1022431000000105", "718-7", "g/L",
                            122, 160, 0),
    "alt": _Analyte("Serum alanine aminotransferase level", "1018251000000107", "1742-6", "U/L",
                    10, 38, 0, reference=(None, 40)),
    "creatinine": _Analyte("Serum creatinine level", "1000731000000107", "14682-9", "umol/L",
                           60, 100, 0),
    "egfr": _Analyte("eGFR using creatinine (CKD-EPI) per 1.73 square metres", "1011481000000105",
                     "62238-1", "mL/min/{1.73_m2}", 65, 100, 0),
    "lithium": _Analyte("Serum lithium level", "1006681000000100", "14334-7", "mmol/L",
                        0.5, 0.8, 2),
    "tsh": _Analyte("Serum TSH level", "1022791000000101", "3016-3", "m[IU]/L", 0.5, 4, 2,
                    reference=(0.27, 4.2)),
    "ft4": _Analyte("Serum free T4 level", "1016971000000106", "14920-3", "pmol/L", 12, 21, 1,
                    reference=(12, 22)),
    "calcium": _Analyte("Serum calcium level", "1000691000000101", "2000-8", "mmol/L",
                        2.2, 2.55, 2),
    "inr": _Analyte("INR in Platelet poor plasma by Coagulation assay", None, "6301-6", "{INR}",
                    2, 3, 1),
    "hba1c": _Analyte("Haemoglobin A1c level - IFCC standardised", "999791000000106", "59261-8",
                      "mmol/mol", 32, 41, 0),
    "cholesterol": _Analyte("Serum total cholesterol level", "1005671000000105", "14647-2",
                            "mmol/L", 3.5, 5.8, 1),
    "hdl": _Analyte("Serum HDL cholesterol level", "1005681000000107", "14646-4", "mmol/L",
                    0.9, 1.8, 1),
    "weight": _Analyte("Body weight", "27113001", "29463-7", "kg", 55, 105, 1, "vital-signs"),
    "sbp": _Analyte("Systolic blood pressure", "72313002", "8480-6", "mm[Hg]", 112, 138, 0),
    "dbp": _Analyte("Diastolic blood pressure", "1091811000000102", "8462-4", "mm[Hg]",
                    68, 86, 0),
    "qtc": _Analyte("QTc interval", None, "8636-3", "ms", 390, 440, 0, "procedure"),
}
# fmt: on
_FBC = ("wbc", "haemoglobin", "neutrophils", "platelets")
_Variant = tuple[str, str | None, Callable[[float], float], int]
_COUNTS: _Variant = ("10*3/uL", None, lambda v: v, 1)
_UNIT_VARIANTS: dict[str, _Variant] = {
    "wbc": _COUNTS,
    "neutrophils": _COUNTS,
    "platelets": _COUNTS,
    "creatinine": ("mg/dL", "2160-0", lambda v: v / 88.42, 2),
    "hba1c": ("%", "4548-4", lambda v: v / 10.929 + 2.15, 1),
    "lithium": ("meq/L", None, lambda v: v, 2),
}
"""Canonical value -> (unit, replacement LOINC or None, conversion, digits)."""


# ---------------------------------------------------------------- medications
@dataclass(frozen=True, slots=True)
class _Dose:
    text: str
    mg: float | None = None
    """Per administration; None when the text gives no dose."""
    frequency: int | None = 1
    """Administrations per period; None when there is no structured timing (As directed)."""
    period: float = 1
    period_unit: str = "d"


@dataclass(frozen=True, slots=True)
class _Product:
    text: str
    ingredient: str
    codes: tuple[tuple[str, str], ...]
    strength_mg: float | None
    """Per tablet or capsule; None for patches."""
    form: str
    doses: tuple[_Dose, ...]


def _product(
    text: str, ingredient: str, codes: str, strength: float | None, form: str, *doses: _Dose
) -> _Product:
    """``codes`` is "rxnorm" or "rxnorm snomed"; the SNOMED code is a dm+d VTM, VMP or AMP."""
    rxnorm, *snomed = codes.split()
    coding = ((RXNORM, rxnorm), *((SNOMED, code) for code in snomed))
    return _Product(text, ingredient, coding, strength, form, doses)


def _d(text: str, mg: float, times: int = 1) -> _Dose:
    return _Dose(text, mg, times)


_AS_DIRECTED = _Dose("As directed", None, None)
_EVERY_72H = _Dose("Apply one patch every 72 hours", None, 1, 72, "h")

# fmt: off
_MTX = _product(
    "Methotrexate 2.5mg tablets", "methotrexate", "6851 68887009", 2.5, "tablet",
    _Dose("15mg once weekly", 15, 1, 1, "wk"), _Dose("20mg once weekly", 20, 1, 1, "wk"),
    _Dose("10mg once weekly", 10, 1, 1, "wk"), _Dose("As directed", None, 1, 1, "wk"),
)
_MTX_DAILY = _d("10mg once daily", 10)
_LEFLUNOMIDE = _product("Leflunomide 10mg tablets", "leflunomide", "27169", 10, "tablet",
                        _d("20mg once daily", 20), _d("10mg once daily", 10))
_PREGABALIN = _product("Pregabalin 150mg capsules", "pregabalin", "187832", 150, "capsule",
                       _d("150mg twice daily", 150, 2), _d("300mg twice daily", 300, 2))
_DIAZEPAM = _product("Diazepam 5mg tablets", "diazepam", "3322", 5, "tablet",
                     _d("5mg three times daily", 5, 3))
_TRIMETHOPRIM = _product("Trimethoprim 200mg tablets", "trimethoprim", "10829", 200, "tablet",
                         _d("200mg twice daily", 200, 2))
_HIGH_OME = (
    _product("Oxycodone 10mg modified-release tablets", "oxycodone", "7804 777027001", 10,
             "tablet", _d("60mg twice daily", 60, 2)),
    _product("Morphine sulfate 30mg modified-release tablets", "morphine", "7052 773372004", 30,
             "tablet", _d("60mg twice daily", 60, 2), _d("90mg twice daily", 90, 2)),
    _product("Fentanyl 75micrograms/hour transdermal patches", "fentanyl", "4337", None, "patch",
             _EVERY_72H),
)
_UNMONITORED = (
    _product("Atorvastatin 20mg tablets", "atorvastatin", "83367", 20, "tablet",
             _d("20mg at night", 20)),
    _product("Ramipril 5mg capsules", "ramipril", "35296", 5, "capsule", _d("5mg once daily", 5)),
    _product("Amlodipine 5mg tablets", "amlodipine", "17767", 5, "tablet", _d("5mg once daily", 5)),
    _product("Metformin 500mg tablets", "metformin", "6809", 500, "tablet",
             _d("500mg twice daily", 500, 2)),
    _product("Levothyroxine sodium 50microgram tablets", "levothyroxine", "10582", None, "tablet",
             _Dose("50 micrograms once daily")),
    _product("Omeprazole 20mg gastro-resistant capsules", "omeprazole", "7646", 20, "capsule",
             _d("20mg once daily", 20)),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class _Group:
    name: str
    weight: int
    products: tuple[_Product, ...]
    panel: tuple[str, ...]
    """Analytes checked together; "bp" is a blood-pressure panel with two components."""
    in_date: int
    """An in-date result is at most this many days old."""
    overdue: tuple[int, int]
    """Age range, in days, of the last result when monitoring is overdue."""
    ages: tuple[int, int]
    abnormal: tuple[Override, ...] = ()
    draws: int = 1
    review: int = 0
    """When above 0, a medication review is recorded and is in date up to this many days."""
    course: tuple[int, int] = (200, 500)
    """Length range, in days, of an established course (3-4 issues, at most 168 days apart)."""


_DMARD = ("neutrophils", "platelets", "alt", "creatinine", "egfr")
_DMARD_ABNORMAL: tuple[Override, ...] = (
    (("neutrophils", 1.2),), (("neutrophils", 0.8),), (("platelets", 120),),
    (("platelets", 45),), (("alt", 130),), (("egfr", 48),),
)  # fmt: skip
# fmt: off
_GROUPS: dict[str, _Group] = {g.name: g for g in (
    _Group("methotrexate", 8, (_MTX,), _DMARD, 70, (120, 365), (30, 85), _DMARD_ABNORMAL),
    _Group("azathioprine", 4, (
        _product("Azathioprine 50mg tablets", "azathioprine", "1256", 50, "tablet",
                 _d("100mg once daily", 100), _d("150mg once daily", 150),
                 _d("50mg twice daily", 50, 2)),
    ), _DMARD, 70, (120, 365), (25, 85), _DMARD_ABNORMAL),
    _Group("sulfasalazine", 5, (
        _product("Sulfasalazine 500mg gastro-resistant tablets", "sulfasalazine", "9524", 500,
                 "tablet", _d("1g twice daily", 1000, 2), _d("1g at night", 1000),
                 _d("1.5g twice daily", 1500, 2)),
    ), _DMARD, 70, (120, 365), (25, 85), _DMARD_ABNORMAL),
    _Group("leflunomide", 2, (_LEFLUNOMIDE,), (*_DMARD, "bp", "weight"), 70, (120, 365), (30, 85),
           (*_DMARD_ABNORMAL, (("sbp", 158), ("dbp", 96)))),
    _Group("mycophenolate", 2, (
        _product("Mycophenolate mofetil 500mg tablets", "mycophenolate mofetil", "68149", 500,
                 "tablet", _d("1g twice daily", 1000, 2), _d("500mg twice daily", 500, 2)),
        _product("Mycophenolic acid 360mg gastro-resistant tablets", "mycophenolic acid", "7145",
                 360, "tablet", _d("720mg twice daily", 720, 2)),
    ), _DMARD, 70, (120, 365), (25, 75), (*_DMARD_ABNORMAL, (("creatinine", 160),))),
    _Group("lithium", 3, (
        _product("Priadel 400mg modified-release tablets (lithium carbonate)", "lithium carbonate",
                 "42351 766311000001100", 400, "tablet", _d("800mg at night", 800),
                 _d("400mg at night", 400), _d("1200mg at night", 1200)),
        _product("Lithium carbonate 250mg tablets", "lithium carbonate", "42351 321730000", 250,
                 "tablet", _d("500mg twice daily", 500, 2)),
    ), ("lithium", "creatinine", "egfr", "tsh", "calcium", "weight"), 80, (120, 365), (25, 80), (
        (("lithium", 1.3),), (("lithium", 1.6),), (("lithium", 0.9),), (("egfr", 42),),
        (("tsh", 8.5),), (("calcium", 2.75),),
    )),
    _Group("amiodarone", 3, (
        _product("Amiodarone 200mg tablets", "amiodarone", "703", 200, "tablet",
                 _d("200mg once daily", 200), _d("100mg once daily", 100)),
    ), ("tsh", "ft4", "alt", "creatinine", "qtc"), 150, (200, 400), (55, 90),
        ((("tsh", 12),), (("tsh", 0.05), ("ft4", 31)), (("alt", 130),))),
    _Group("warfarin", 6, tuple(
        _product(f"Warfarin {mg}mg tablets", "warfarin", f"11289 {vmp}", mg, "tablet",
                 _AS_DIRECTED)
        for mg, vmp in ((1, "319733000"), (3, "319734006"), (5, "319735007"))
    ), ("inr",), 35, (100, 200), (50, 92),
        ((("inr", 5.5),), (("inr", 8.4),), (("inr", 3.6),), (("inr", 1.6),)), draws=3),
    _Group("doac", 16, (
        _product("Apixaban 5mg tablets", "apixaban", "1364430 703908001", 5, "tablet",
                 _d("5mg twice daily", 5, 2)),
        _product("Apixaban 2.5mg tablets", "apixaban", "1364430 703907006", 2.5, "tablet",
                 _d("2.5mg twice daily", 2.5, 2)),
        _product("Rivaroxaban 20mg tablets", "rivaroxaban", "1114195 19842211000001107", 20,
                 "tablet", _d("20mg once daily", 20)),
        _product("Rivaroxaban 15mg tablets", "rivaroxaban", "1114195", 15, "tablet",
                 _d("15mg once daily", 15)),
        _product("Edoxaban 60mg tablets", "edoxaban", "1599538 29903411000001101", 60, "tablet",
                 _d("60mg once daily", 60)),
        _product("Edoxaban 30mg tablets", "edoxaban", "1599538", 30, "tablet",
                 _d("30mg once daily", 30)),
        _product("Dabigatran etexilate 150mg capsules", "dabigatran", "1037042 19469811000001101",
                 150, "capsule", _d("150mg twice daily", 150, 2)),
        _product("Dabigatran etexilate 110mg capsules", "dabigatran", "1037042 13532811000001109",
                 110, "capsule", _d("110mg twice daily", 110, 2)),
    ), ("haemoglobin", "creatinine", "egfr", "alt", "weight"), 75, (400, 600), (60, 92),
        ((("haemoglobin", 98),), (("egfr", 40), ("creatinine", 140)), (("alt", 95),)), review=60),
    _Group("antipsychotic", 10, (
        _product("Olanzapine 10mg tablets", "olanzapine", "61381", 10, "tablet",
                 _d("10mg at night", 10), _d("5mg at night", 5)),
        _product("Risperidone 2mg tablets", "risperidone", "35636", 2, "tablet",
                 _d("2mg twice daily", 2, 2), _d("4mg at night", 4)),
        _product("Aripiprazole 10mg tablets", "aripiprazole", "89013", 10, "tablet",
                 _d("10mg once daily", 10), _d("15mg once daily", 15)),
        _product("Quetiapine 100mg tablets", "quetiapine", "51272", 100, "tablet",
                 _d("150mg twice daily", 150, 2), _d("300mg at night", 300)),
    ), ("hba1c", "cholesterol", "hdl", "weight", "bp"), 70, (430, 700), (19, 70), (
        (("hba1c", 50),), (("hba1c", 44),), (("cholesterol", 7.8),), (("sbp", 152), ("dbp", 95)),
    ), course=(440, 500)),
    _Group("opioid", 18, (
        _product("Oxycodone 10mg modified-release tablets", "oxycodone", "7804 777027001", 10,
                 "tablet", _d("20mg twice daily", 20, 2), _d("10mg twice daily", 10, 2)),
        _product("Morphine sulfate 30mg modified-release tablets", "morphine", "7052 773372004",
                 30, "tablet", _d("30mg twice daily", 30, 2)),
        _product("Codeine phosphate 30mg tablets", "codeine", "2670", 30, "tablet",
                 _d("Two tablets four times a day", 60, 4)),
        _product("Tramadol 50mg capsules", "tramadol", "10689", 50, "capsule",
                 _d("100mg four times daily", 100, 4), _d("50mg four times daily", 50, 4)),
        _product("Fentanyl 25micrograms/hour transdermal patches", "fentanyl", "4337", None,
                 "patch", _EVERY_72H),
        _product("Buprenorphine 10micrograms/hour seven day transdermal patches", "buprenorphine",
                 "1819", None, "patch", _Dose("Apply one patch every 7 days", None, 1, 7, "d")),
    ), (), 0, (120, 365), (30, 88), review=60),
    _Group("gabapentinoid", 14, (
        _product("Gabapentin 300mg capsules", "gabapentin", "25480", 300, "capsule",
                 _d("300mg three times daily", 300, 3), _d("600mg three times daily", 600, 3)),
        _PREGABALIN,
    ), ("creatinine",), 300, (400, 700), (25, 88), ((("creatinine", 210),),),
        review=300),
)}
# fmt: on
_GROUP_NAMES = tuple(_GROUPS)
_GROUP_WEIGHTS = tuple(g.weight for g in _GROUPS.values())


def _previous_dose(product: _Product, dose: _Dose, group: _Group) -> tuple[_Product, _Dose] | None:
    """A different dose of the same ingredient to precede a dose change; None if there is none."""
    for other in product.doses:
        if other.mg is not None and other.mg != dose.mg:
            return product, other
    for other_product in group.products:
        same = other_product.ingredient == product.ingredient
        if same and other_product.strength_mg != product.strength_mg:
            return other_product, other_product.doses[0]
    return None


# ---------------------------------------------------------------- plans
@dataclass(frozen=True, slots=True)
class _Plan:
    """One patient: drug group (None: unmonitored drugs only), phase and edge cases."""

    group: str | None
    phase: str = "established"
    flags: frozenset[str] = frozenset()
    abnormal: Override = ()


_PHASES = ("established", "overdue", "new", "recent", "dose_change", "stopped")
_PHASE_WEIGHTS = (45, 20, 8, 10, 8, 9)
# fmt: off
_GENERIC_FLAGS = (
    ("structured", 0.35), ("req_eie", 0.02), ("req_cancelled", 0.02), ("req_draft", 0.02),
    ("proposal", 0.02), ("unit_variant", 0.1), ("unknown_unit", 0.005), ("res_eie", 0.02),
    ("res_prelim", 0.02), ("res_future", 0.02), ("period_date", 0.03), ("issued_date", 0.03),
    ("diag_report", 0.3), ("creatinine_rise", 0.03),
)
_GROUP_FLAGS: dict[str, tuple[tuple[str, float], ...]] = {
    "methotrexate": (("daily", 0.03), ("with_leflunomide", 0.03), ("with_trimethoprim", 0.03)),
    "lithium": (("age65", 0.3),),
    "doac": (("low_crcl", 0.15),),
    "opioid": (("high_ome", 0.15), ("benzo", 0.1), ("with_gabapentinoid", 0.12)),
}
# fmt: on
_REPRESENTATIONS = (("med_ref", 0.05), ("contained", 0.05), ("text_only", 0.04))
_NON_COUNTING = ("req_eie", "req_cancelled", "req_draft", "proposal")
_MALFORMED = ("bad_subject", "bad_date", "bad_authored")


def _plan(
    *flags: str, group: str | None, phase: str = "established", abnormal: Override = ()
) -> _Plan:
    return _Plan(group, phase, frozenset(flags), abnormal)


# fmt: off
_SHOWCASE: tuple[_Plan, ...] = (
    _plan("structured", group="methotrexate"),
    _plan(group="azathioprine", abnormal=(("neutrophils", 1.2),)),
    _plan("text_only", group="sulfasalazine", phase="overdue"),
    _plan(group="leflunomide", phase="new"),
    _plan(group="mycophenolate", phase="recent", abnormal=(("egfr", 48),)),
    _plan("age65", group="lithium", abnormal=(("lithium", 1.3),)),
    _plan("med_ref", group="amiodarone", phase="overdue"),
    _plan(group="warfarin", abnormal=(("inr", 5.5),)),
    _plan("low_crcl", group="doac"),
    _plan(group="antipsychotic", abnormal=(("hba1c", 50),)),
    _plan("high_ome", "benzo", group="opioid"),
    _plan("structured", group="gabapentinoid"),
    _plan(group=None),
    _plan("daily", "structured", group="methotrexate"),
    _plan(group="methotrexate", phase="dose_change"),
    _plan(group="methotrexate", phase="stopped"),
    _plan("creatinine_rise", group="methotrexate"),
    _plan("age65", group="lithium", phase="overdue", abnormal=(("lithium", 1.6),)),
    _plan(group="warfarin", abnormal=(("inr", 8.4),)),
    _plan("with_gabapentinoid", group="opioid"),
    _plan("deceased", group="azathioprine"),
    _plan("contained", "unit_variant", group="azathioprine", abnormal=(("platelets", 120),)),
    _plan("diag_report", "unit_variant", group="methotrexate", abnormal=(("alt", 130),)),
    _plan("unit_variant", group="lithium"),
    _plan("unit_variant", group="antipsychotic"),
    _plan("unit_variant", "low_crcl", group="doac"),
    _plan("unknown_unit", "res_eie", "res_prelim", group="methotrexate"),
    _plan("res_future", "period_date", group="methotrexate"),
    _plan("issued_date", group="amiodarone"),
    _plan("req_eie", "req_cancelled", group="methotrexate"),
    _plan("req_draft", "proposal", group="leflunomide"),
    _plan("proposal", group=None),
    _plan("bad_subject", group="methotrexate"),
    _plan("bad_date", group="azathioprine"),
    _plan("bad_authored", group=None),
    _plan("with_leflunomide", group="methotrexate"),
    _plan("with_trimethoprim", group="methotrexate"),
    _plan("high_ome", "structured", group="opioid", phase="dose_change"),
    _plan("diag_report", group="doac", phase="overdue"),
    _plan("med_ref", "structured", group="doac", phase="dose_change"),
)
"""The first patients of every practice, so that each edge case appears at any size."""
# fmt: on


def _random_plan(rng: random.Random) -> _Plan:
    flags = {"deceased"} if rng.random() < 0.01 else set()
    if rng.random() < 0.012:
        flags.add(rng.choice(_MALFORMED))
    if rng.random() < 0.4:
        if rng.random() < 0.04:
            flags.add(rng.choice(_NON_COUNTING))
        return _Plan(None, "established", frozenset(flags))
    group = rng.choices(_GROUP_NAMES, _GROUP_WEIGHTS)[0]
    phase = rng.choices(_PHASES, _PHASE_WEIGHTS)[0]
    for flag, chance in (*_GENERIC_FLAGS, *_GROUP_FLAGS.get(group, ())):
        if rng.random() < chance:
            flags.add(flag)
    pick = rng.random()
    for flag, chance in _REPRESENTATIONS:
        if pick < chance:
            flags.add(flag)
            break
        pick -= chance
    options = _GROUPS[group].abnormal
    abnormal = rng.choice(options) if options and rng.random() < 0.15 else ()
    return _Plan(group, phase, frozenset(flags), abnormal)


# ---------------------------------------------------------------- helpers
def _instant(day: date, time: str = "09:30:00") -> str:
    return f"{day.isoformat()}T{time}+00:00"


def _number(value: float, digits: int) -> float | int:
    return round(value) if digits == 0 else round(value, digits)


def _quantity(value: float | int, unit: str, *, ucum: bool = True) -> Resource:
    if not ucum:
        return {"value": value, "unit": unit}
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _every(start: date, end: date, interval: int) -> list[date]:
    days = (end - start).days
    return [start + timedelta(days=i) for i in range(0, days + 1, interval)]


def nhs_check_digit(nine: str) -> int | None:
    """Modulus 11 check digit for the first nine digits; None when the number is invalid."""
    total = sum(int(digit) * (10 - i) for i, digit in enumerate(nine))
    check = 11 - total % 11
    return None if check == 10 else check % 11


def _nhs_numbers(seed: int) -> Iterator[str]:
    """Distinct test-range numbers (999 prefix, valid check digit), starting at a seed offset."""
    serial = seed * 7919 % 1_000_000
    while True:
        nine = f"999{serial:06d}"
        check = nhs_check_digit(nine)
        if check is not None:
            yield f"{nine}{check}"
        serial = (serial + 1) % 1_000_000


def _concept(product: _Product) -> Resource:
    return {
        "coding": [{"system": s, "code": c, "display": product.text} for s, c in product.codes],
        "text": product.text,
    }


def _med_body(product: _Product) -> Resource:
    """``code`` and ``ingredient`` of a Medication; strength only for tablets and capsules."""
    ingredient: Resource = {"itemCodeableConcept": {"text": product.ingredient}}
    if product.strength_mg is not None and product.form != "patch":
        form, code = ("capsule", "{cap}") if product.form == "capsule" else ("tablet", "{tbl}")
        ingredient["strength"] = {
            "numerator": _quantity(product.strength_mg, "mg"),
            "denominator": {"value": 1, "unit": form, "system": UCUM, "code": code},
        }
    return {"code": _concept(product), "ingredient": [ingredient]}


# ---------------------------------------------------------------- one patient
class _PatientBuilder:
    """Build one patient's resources from a plan, drawing every choice from the shared rng."""

    def __init__(
        self, rng: random.Random, seed: int, number: int, as_of: date, plan: _Plan
    ) -> None:
        self.rng = rng
        self.key = f"{seed}-{number}"
        self.practice = f"Organization/practice-{seed}"
        self.as_of = as_of
        self.plan = plan
        self.flags = plan.flags
        self.serial = 0
        self.medications: list[Resource] = []
        self.requests: list[Resource] = []
        self.observations: list[Resource] = []
        self.reports: list[Resource] = []

    def build(self, nhs_number: str) -> list[Resource]:
        group = _GROUPS[self.plan.group] if self.plan.group else None
        age = self._age(group)
        end = self.as_of
        patient = self._patient(nhs_number, age, group)
        if "deceased" in self.flags:
            end = self.as_of - timedelta(days=self.rng.randint(20, 400))
            patient["deceasedDateTime"] = _instant(end, "14:00:00")
        if group is None:
            self._unmonitored(end)
        else:
            self._monitored(group, end)
        malformed = self._malformed()
        return [
            patient,
            *self.medications,
            *self.requests,
            *self.observations,
            *self.reports,
            *malformed,
        ]

    # -- identity
    def _id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.key}-{self.serial}"

    def _subject(self) -> Resource:
        return {"reference": f"Patient/p-{self.key}"}

    def _age(self, group: _Group | None) -> int:
        if "low_crcl" in self.flags:
            return self.rng.randint(82, 93)
        if "age65" in self.flags:
            return self.rng.randint(66, 88)
        low, high = group.ages if group else (18, 95)
        return self.rng.randint(low, high)

    def _patient(self, nhs_number: str, age: int, group: _Group | None) -> Resource:
        born = self.as_of - timedelta(days=age * 365 + age // 4 + self.rng.randint(1, 360))
        gender = self.rng.choice(("female", "male")) if self.rng.random() > 0.005 else "unknown"
        label = f"{group.name if group else 'unmonitored'} {self.plan.phase.replace('_', ' ')}"
        return {
            "resourceType": "Patient",
            "id": f"p-{self.key}",
            "identifier": [{"system": NHS_NUMBER, "value": nhs_number}],
            "name": [{"family": "Testpatient", "given": [label.title()]}],
            "gender": gender,
            "birthDate": born.isoformat(),
            "generalPractitioner": [{"reference": self.practice}],
            "managingOrganization": {"reference": self.practice},
        }

    # -- prescribing
    def _unmonitored(self, end: date) -> None:
        count = 1 if self.rng.random() < 0.7 else 2
        for product in self.rng.sample(_UNMONITORED, count):
            start = end - timedelta(days=self.rng.randint(0, 27) + 28 * self.rng.randint(0, 1))
            dates = _every(start, end, 28)
            self._chain([(product, product.doses[0])] * len(dates), dates)
        if self.rng.random() < 0.35:
            key = self.rng.choice(("cholesterol", "hba1c", "weight", "bp"))
            day = end - timedelta(days=self.rng.randint(30, 700))
            self.observations.extend(self._draw(day, (key,), {}))
        if self.flags.intersection(_NON_COUNTING):
            group = _GROUPS[self.rng.choice(_GROUP_NAMES)]
            product = self.rng.choice(group.products)
            self._non_counting(product, product.doses[0], end)

    def _monitored(self, group: _Group, end: date) -> None:
        rng = self.rng
        product = rng.choice(_HIGH_OME if "high_ome" in self.flags else group.products)
        dose = _MTX_DAILY if "daily" in self.flags else rng.choice(product.doses)
        dates, change = self._issue_dates(group, end)
        items = [(product, dose)] * len(dates)
        previous = _previous_dose(product, dose, group)
        if change is not None and previous is not None:
            items[:change] = [previous] * change
        elif change is not None:
            change = None
        representation = next(
            (f for f in ("med_ref", "contained", "text_only") if f in self.flags), "coded"
        )
        self._chain(items, dates, representation)
        self._companions(dates, end)
        self._non_counting(product, dose, dates[-1])
        latest = self._latest_check(group, dates, change, end)
        if latest is not None and group.panel:
            self._bloods(group, latest, end)
        if latest is not None and group.review:
            self._review(group, latest, end)

    def _issue_dates(self, group: _Group, end: date) -> tuple[list[date], int | None]:
        """Issue dates, oldest first, and the index of the first request after a dose change."""
        rng, phase = self.rng, self.plan.phase
        if phase == "new":
            return _every(end - timedelta(days=rng.randint(3, 41)), end, 28), None
        if phase == "recent":
            span = rng.randint(45, 180)
            return _every(end - timedelta(days=span), end, 28 * (span // 84 + 1)), None
        if phase == "stopped":
            last = end - timedelta(days=rng.randint(400, 1500))
            count = rng.randint(2, 3)
            return [last - timedelta(days=28 * (count - 1 - i)) for i in range(count)], None
        span = rng.randint(*group.course)
        gaps = 2 if span <= 336 else 3
        last = end - timedelta(days=rng.randint(0, 27))
        if phase == "dose_change":
            last = end - timedelta(days=rng.randint(7, 70))
        dates = [last - timedelta(days=span * (gaps - i) // gaps) for i in range(gaps + 1)]
        if phase != "dose_change":
            return dates, None
        return [*dates[:-1], *_every(last, end, 28)], gaps

    def _chain(
        self,
        items: list[tuple[_Product, _Dose]],
        dates: list[date],
        representation: str = "coded",
        course: str = "continuous",
    ) -> None:
        """A repeat chain: completed issues, the latest active (or stopped when therapy ended)."""
        final = "stopped" if self.plan.phase == "stopped" and course == "continuous" else "active"
        med_ids: dict[str, str] = {}
        for index, (day, (product, dose)) in enumerate(zip(dates, items, strict=True)):
            status = final if index == len(dates) - 1 else "completed"
            if representation == "med_ref" and product.text not in med_ids:
                med_ids[product.text] = self._medication_resource(product)
            medication = self._medication(product, representation, med_ids.get(product.text))
            self.requests.append(self._request(product, day, dose, status, course, medication))

    def _medication_resource(self, product: _Product) -> str:
        """A separate Medication resource for ``medicationReference``; returns its id."""
        med_id = self._id("med")
        self.medications.append({"resourceType": "Medication", "id": med_id, **_med_body(product)})
        return med_id

    def _medication(
        self, product: _Product, representation: str, med_id: str | None = None
    ) -> tuple[str, Resource]:
        """How a request names its medication: (element name, value), fresh dicts each time."""
        if representation == "text_only":
            return "medicationCodeableConcept", {"text": product.text}
        if representation == "contained":
            return "#med", {"resourceType": "Medication", "id": "med", **_med_body(product)}
        if med_id is not None:
            return "medicationReference", {"reference": f"Medication/{med_id}"}
        return "medicationCodeableConcept", _concept(product)

    def _request(
        self,
        product: _Product,
        day: date,
        dose: _Dose,
        status: str,
        course: str,
        medication: tuple[str, Resource],
        intent: str = "order",
    ) -> Resource:
        request: Resource = {
            "resourceType": "MedicationRequest",
            "id": self._id("mr"),
            "status": status,
            "intent": intent,
            "subject": self._subject(),
            "authoredOn": day.isoformat(),
            "courseOfTherapyType": {"coding": [{"system": _COURSE, "code": course}]},
            "dosageInstruction": [self._dosage(product, dose)],
        }
        kind, value = medication
        if kind == "#med":
            request["contained"] = [value]
            request["medicationReference"] = {"reference": "#med"}
        else:
            request[kind] = value
        return request

    def _dosage(self, product: _Product, dose: _Dose) -> Resource:
        dosage: Resource = {"text": dose.text}
        if "structured" not in self.flags or dose.frequency is None:
            return dosage
        dosage["timing"] = {
            "repeat": {
                "frequency": dose.frequency,
                "period": dose.period,
                "periodUnit": dose.period_unit,
            }
        }
        if dose.mg is not None and product.strength_mg and product.form != "patch":
            units = dose.mg / product.strength_mg
            form, code = ("capsule", "{cap}") if product.form == "capsule" else ("tablet", "{tbl}")
            dosage["doseAndRate"] = [
                {
                    "doseQuantity": {
                        "value": _number(units, 0 if units.is_integer() else 2),
                        "unit": form,
                        "system": UCUM,
                        "code": code,
                    }
                }
            ]
        return dosage

    def _companions(self, dates: list[date], end: date) -> None:
        """Interacting co-prescriptions: opioid + benzodiazepine or gabapentinoid, MTX + others."""
        for flag, product in (
            ("benzo", _DIAZEPAM),
            ("with_gabapentinoid", _PREGABALIN),
            ("with_leflunomide", _LEFLUNOMIDE),
        ):
            if flag in self.flags:
                self._chain([(product, self.rng.choice(product.doses))] * len(dates), dates)
        if "with_trimethoprim" in self.flags:
            day = end - timedelta(days=self.rng.randint(0, 10))
            self._chain([(_TRIMETHOPRIM, _TRIMETHOPRIM.doses[0])], [day], course="acute")

    def _non_counting(self, product: _Product, dose: _Dose, day: date) -> None:
        """Requests the engine must ignore: entered in error, cancelled, draft, proposal."""
        for flag, status, intent in (
            ("req_eie", "entered-in-error", "order"),
            ("req_cancelled", "cancelled", "order"),
            ("req_draft", "draft", "order"),
            ("proposal", "active", "proposal"),
        ):
            if flag in self.flags:
                medication = self._medication(product, "coded")
                self.requests.append(
                    self._request(product, day, dose, status, "continuous", medication, intent)
                )

    # -- results
    def _latest_check(
        self, group: _Group, dates: list[date], change: int | None, end: date
    ) -> date | None:
        """When monitoring was last done, by phase; None for a new start with no baseline."""
        rng, phase = self.rng, self.plan.phase
        if phase == "established":
            return end - timedelta(days=rng.randint(7, group.in_date or group.review))
        if phase == "overdue":
            return end - timedelta(days=rng.randint(*group.overdue))
        if phase == "new":
            return dates[0] - timedelta(days=rng.randint(3, 21)) if rng.random() < 0.7 else None
        if phase == "recent":
            return end - timedelta(days=rng.randint(10, 40))
        if phase == "dose_change" and change is not None:
            return dates[change] - timedelta(days=rng.randint(3, 14))
        return dates[-1] - timedelta(days=rng.randint(0, 60))

    def _review(self, group: _Group, latest: date, end: date) -> None:
        """A coded "medication review done" Observation (no value)."""
        if self.plan.phase == "established":
            latest = end - timedelta(days=self.rng.randint(7, group.review))
        self.observations.append(
            {
                "resourceType": "Observation",
                "id": self._id("obs"),
                "status": "final",
                "code": {
                    "coding": [
                        {"system": SNOMED, "code": "314530002", "display": "Medication review done"}
                    ],
                    "text": "Medication review done",
                },
                "subject": self._subject(),
                "effectiveDateTime": _instant(latest, "11:00:00"),
            }
        )

    def _bloods(self, group: _Group, latest: date, end: date) -> None:
        rng = self.rng
        overrides: dict[str, float] = dict(self.plan.abnormal)
        if "low_crcl" in self.flags:
            overrides |= {
                "weight": round(rng.uniform(44, 58), 1),
                "creatinine": rng.randint(150, 220),
                "egfr": rng.randint(24, 38),
            }
        if "creatinine_rise" in self.flags and "creatinine" in group.panel:
            baseline = rng.randint(62, 85)
            overrides["creatinine"] = round(baseline * rng.uniform(1.35, 1.6))
            earlier = latest - timedelta(days=rng.randint(150, 330))
            self.observations.extend(self._draw(earlier, ("creatinine",), {"creatinine": baseline}))
        day = latest
        for draw in range(group.draws):
            current = draw == 0
            self.observations.extend(
                self._draw(day, group.panel, overrides if current else {}, latest=current)
            )
            day -= timedelta(days=rng.randint(21, 42))
        self._result_oddities(group, latest, end)

    def _draw(
        self, day: date, keys: tuple[str, ...], overrides: dict[str, float], *, latest: bool = False
    ) -> list[Resource]:
        """One blood draw (or clinic check): Observations, or a DiagnosticReport for the FBC."""
        variant = latest and "unit_variant" in self.flags
        report_keys: tuple[str, ...] = ()
        if latest and "diag_report" in self.flags and any(k in _FBC for k in keys):
            report_keys = _FBC
            keys = tuple(k for k in keys if k not in _FBC)
        out = [self._observation(k, day, overrides, variant=variant) for k in keys]
        if latest and "unknown_unit" in self.flags and out:
            value = out[0]["valueQuantity"]["value"]
            out[0]["valueQuantity"] = _quantity(value, "furlongs", ucum=False)
        if latest and "period_date" in self.flags and out:
            del out[0]["effectiveDateTime"]
            out[0]["effectivePeriod"] = {"start": _instant(day), "end": _instant(day, "09:45:00")}
        if latest and "issued_date" in self.flags and out:
            out[-1].pop("effectiveDateTime", None)
            out[-1].pop("effectivePeriod", None)
            out[-1]["issued"] = _instant(day + timedelta(days=1), "16:05:00")
        if report_keys:
            self.reports.append(self._report(day, report_keys, overrides, variant))
        return out

    def _observation(
        self,
        key: str,
        day: date,
        overrides: dict[str, float],
        *,
        variant: bool = False,
        status: str = "final",
    ) -> Resource:
        if key == "bp":
            return self._blood_pressure(day, overrides)
        analyte = _ANALYTES[key]
        value = overrides.get(key, self.rng.uniform(analyte.low, analyte.high))
        resource: Resource = {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "status": status,
            "category": [{"coding": [{"system": _OBS_CATEGORY, "code": analyte.category}]}],
            "code": {},
            "subject": self._subject(),
            "effectiveDateTime": _instant(day),
        }
        resource.update(self._value(key, value, variant))
        if analyte.reference is not None:
            low, high = analyte.reference
            bounds = {"low": low, "high": high}
            resource["referenceRange"] = [
                {name: _quantity(v, analyte.unit) for name, v in bounds.items() if v is not None}
            ]
        return resource

    def _value(self, key: str, value: float, variant: bool) -> Resource:
        """``code`` and ``valueQuantity`` for one analyte, in its canonical unit or a variant."""
        analyte = _ANALYTES[key]
        unit, loinc, digits = analyte.unit, analyte.loinc, analyte.digits
        if variant and key in _UNIT_VARIANTS:
            unit, other_loinc, convert, digits = _UNIT_VARIANTS[key]
            loinc, value = other_loinc or loinc, convert(value)
        coding = [{"system": LOINC, "code": loinc, "display": analyte.display}]
        if analyte.snomed is not None:
            coding.insert(0, {"system": SNOMED, "code": analyte.snomed, "display": analyte.display})
        return {
            "code": {"coding": coding, "text": analyte.display},
            "valueQuantity": _quantity(_number(value, digits), unit),
        }

    def _blood_pressure(self, day: date, overrides: dict[str, float]) -> Resource:
        components = []
        for key in ("sbp", "dbp"):
            analyte = _ANALYTES[key]
            value = overrides.get(key, self.rng.uniform(analyte.low, analyte.high))
            components.append(self._value(key, value, False))
        return {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "status": "final",
            "category": [{"coding": [{"system": _OBS_CATEGORY, "code": "vital-signs"}]}],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": "75367002", "display": "Blood pressure"},
                    {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"},
                ],
                "text": "Blood pressure",
            },
            "subject": self._subject(),
            "effectiveDateTime": _instant(day),
            "component": components,
        }

    def _report(
        self, day: date, keys: tuple[str, ...], overrides: dict[str, float], variant: bool
    ) -> Resource:
        contained = []
        for index, key in enumerate(keys, start=1):
            analyte = _ANALYTES[key]
            value = overrides.get(key, self.rng.uniform(analyte.low, analyte.high))
            contained.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{index}",
                    "status": "final",
                    **self._value(key, value, variant),
                }
            )
        return {
            "resourceType": "DiagnosticReport",
            "id": self._id("dr"),
            "contained": contained,
            "status": "final",
            "category": [{"coding": [{"system": _REPORT_CATEGORY, "code": "HM"}]}],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": "1022441000000101", "display": "Full blood count"},
                    {"system": LOINC, "code": "58410-2", "display": "Full blood count"},
                ],
                "text": "Full blood count",
            },
            "subject": self._subject(),
            "effectiveDateTime": _instant(day),
            "issued": _instant(day, "16:00:00"),
            "result": [{"reference": f"#o{i}"} for i in range(1, len(keys) + 1)],
        }

    def _result_oddities(self, group: _Group, latest: date, end: date) -> None:
        """Results that must never count as the test done: entered in error (skipped with a
        reason), preliminary (compared with thresholds, the finding says so), dated after as-of
        (skipped with a reason and a run warning)."""
        key = next(k for k in group.panel if k != "bp")
        analyte = _ANALYTES[key]
        wild = {key: analyte.high * 3}
        for flag, status, day in (
            ("res_eie", "entered-in-error", latest + timedelta(days=1)),
            ("res_prelim", "preliminary", latest + timedelta(days=2)),
            ("res_future", "final", end + timedelta(days=self.rng.randint(1, 30))),
        ):
            if flag in self.flags:
                self.observations.append(self._observation(key, day, wild, status=status))

    # -- malformed
    def _malformed(self) -> list[Resource]:
        """At most one broken copy of an existing resource, with a fresh id."""
        observations = [o for o in self.observations if o["status"] == "final"]
        if "bad_authored" in self.flags or (
            self.flags & {"bad_subject", "bad_date"} and not observations
        ):
            broken = {**copy.deepcopy(self.requests[-1]), "id": self._id("mr")}
            del broken["authoredOn"]
            return [broken]
        if "bad_subject" in self.flags:
            broken = {**copy.deepcopy(observations[0]), "id": self._id("obs")}
            del broken["subject"]
            return [broken]
        if "bad_date" in self.flags:
            broken = {**copy.deepcopy(observations[0]), "id": self._id("obs")}
            for name in ("effectiveDateTime", "effectivePeriod", "issued"):
                broken.pop(name, None)
            return [broken]
        return []


# ---------------------------------------------------------------- public API
def generate_practice(patients: int, seed: int, as_of: date) -> Iterator[Resource]:
    """Yield the practice Organization, then each patient's resources (Patient first)."""
    # S311: synthetic test data, not security; a seeded PRNG is exactly what is wanted.
    rng = random.Random(seed)  # noqa: S311
    numbers = _nhs_numbers(seed)
    yield {
        "resourceType": "Organization",
        "id": f"practice-{seed}",
        "active": True,
        "name": f"Synthetic Practice {seed}",
    }
    for number in range(patients):
        plan = _SHOWCASE[number] if number < len(_SHOWCASE) else _random_plan(rng)
        for resource in _PatientBuilder(rng, seed, number, as_of, plan).build(next(numbers)):
            yield _as_exported(resource, as_of)


_PROFILES = {
    kind: f"https://fhir.hl7.org.uk/StructureDefinition/UKCore-{name}"
    for kind, name in (
        ("Patient", "Patient"),
        ("MedicationRequest", "MedicationRequest"),
        ("Observation", "Observation-Lab"),
        ("Medication", "Medication"),
        ("DiagnosticReport", "DiagnosticReport-Lab"),
    )
}
_SYSTEM_ID = "https://fhir.synthetic-gp-system.example/Id/record-guid"
_REPEAT_INFO = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)
_NARRATIVE_KEYS = (
    "code",
    "medicationCodeableConcept",
    "valueQuantity",
    "status",
    "authoredOn",
    "effectiveDateTime",
    "birthDate",
    "gender",
    "dosageInstruction",
)


def _as_exported(resource: Resource, as_of: date) -> Resource:
    """Add what a GP system's export carries besides the clinical content.

    meta, a record GUID, a generated narrative, and the people and organisations involved (by
    display only, so a server enforcing referential integrity accepts the resources). Derived
    from the resource itself: output stays deterministic and the clinical content is unchanged.
    """
    kind = resource.get("resourceType", "")
    if kind not in _PROFILES or "id" not in resource:
        return resource
    out: Resource = {
        "resourceType": kind,
        "id": resource["id"],
        "meta": {
            "versionId": "1",
            "lastUpdated": f"{as_of.isoformat()}T02:00:00+00:00",
            "source": "urn:hrm-fhir:synthetic-gp-system",
            "profile": [_PROFILES[kind]],
        },
        "text": {"status": "generated", "div": _narrative(resource)},
    }
    out.update({k: v for k, v in resource.items() if k not in out})
    guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{_SYSTEM_ID}/{kind}/{resource['id']}"))
    out["identifier"] = [*resource.get("identifier", []), {"system": _SYSTEM_ID, "value": guid}]
    if kind == "Patient":
        out["telecom"] = [{"system": "phone", "value": "0113 496 0000", "use": "home"}]
        out["address"] = [
            {
                "use": "home",
                "line": ["1 Synthetic Street"],
                "city": "Testtown",
                "postalCode": "TE5 7ZZ",
            }
        ]
    elif kind == "MedicationRequest":
        out["requester"] = {"display": "Dr A Synthetic (GP)"}
        out["recorder"] = {"display": "Practice Pharmacist (synthetic)"}
        issued = {"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": 1}
        out["extension"] = [{"url": _REPEAT_INFO, "extension": [issued]}]
        dispense = dict(out.get("dispenseRequest") or {})
        dispense.setdefault("numberOfRepeatsAllowed", 5)
        dispense.setdefault(
            "expectedSupplyDuration", {"value": 28, "unit": "day", "system": UCUM, "code": "d"}
        )
        out["dispenseRequest"] = dispense
    elif kind in ("Observation", "DiagnosticReport"):
        out["performer"] = [{"display": "Synthetic Pathology Laboratory"}]
    return out


def _narrative(resource: Resource) -> str:
    """A generated XHTML summary: one table row per top-level clinical element present."""
    rows = []
    for key in _NARRATIVE_KEYS:
        value = resource.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            scalars = (str(v) for v in value.values() if not isinstance(v, list | dict))
            text = str(value.get("text") or " ".join(scalars))
        elif isinstance(value, list):
            text = "; ".join(str(i.get("text", "")) for i in value if isinstance(i, dict))
        else:
            text = str(value)
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>")
    body = "".join(rows)
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><table><tbody>{body}</tbody></table></div>'


def write_practice(out: Path, patients: int, seed: int, as_of: date) -> dict[str, int]:
    """Write ``out/ndjson/<Type>.ndjson`` and ``out/bundles/*.json``; return counts per type.

    The NDJSON files are laid out as a Bulk Data $export writes them (one resource per line, one
    file per type); each collection Bundle holds the same resources for up to 500 patients.
    Existing ``*.ndjson`` and ``*.json`` files in those two folders are replaced.
    """
    ndjson_dir, bundle_dir = out / "ndjson", out / "bundles"
    for folder, pattern in ((ndjson_dir, "*.ndjson"), (bundle_dir, "*.json")):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(pattern):
            stale.unlink()
    counts: dict[str, int] = {}
    entries: list[Resource] = []
    bundles = 0
    in_bundle = 0

    def flush() -> None:
        nonlocal bundles, in_bundle
        bundles += 1
        name = f"practice-{seed}-{bundles:04d}"
        bundle = {"resourceType": "Bundle", "id": name, "type": "collection", "entry": entries}
        (bundle_dir / f"{name}.json").write_bytes(orjson.dumps(bundle))
        entries.clear()
        in_bundle = 0

    with ExitStack() as stack:
        handles: dict[str, IO[bytes]] = {}
        for resource in generate_practice(patients, seed, as_of):
            kind = resource["resourceType"]
            if kind == "Patient":
                if in_bundle == BUNDLE_PATIENTS:
                    flush()
                in_bundle += 1
            handle = handles.get(kind)
            if handle is None:
                handle = handles[kind] = stack.enter_context(
                    (ndjson_dir / f"{kind}.ndjson").open("wb")
                )
            handle.write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
            counts[kind] = counts.get(kind, 0) + 1
            entries.append({"fullUrl": f"{BASE_URL}/{kind}/{resource['id']}", "resource": resource})
    if entries:
        flush()
    return dict(sorted(counts.items()))
