"""The drug groups a synthetic patient may be on (products, doses, the analytes monitored and the
abnormal values some patients get), the analytes' codes, units and normal values, and how a product,
its dosage and an analyte's value are written in FHIR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hrm_fhir.synthetic.elements import LOINC, RXNORM, SNOMED, UCUM, Resource, quantity, rounded

Override = tuple[tuple[str, float], ...]
"""Analyte values forced onto the latest blood draw, e.g. ``(("inr", 5.5),)``."""


@dataclass(frozen=True, slots=True)
class Analyte:
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
ANALYTES: dict[str, Analyte] = {
    "wbc": Analyte("Total white cell count", "1022541000000102", "6690-2", "10*9/L", 4, 11, 1),
    "neutrophils": Analyte("Neutrophil count", "1022551000000104", "26499-4", "10*9/L", 2, 7, 1),
    "platelets": Analyte("Platelet count", "1022651000000100", "777-3", "10*9/L", 160, 400, 0),
    "haemoglobin": Analyte("Haemoglobin concentration", "1022431000000105", "718-7", "g/L",
                            122, 160, 0),
    "alt": Analyte("Serum alanine aminotransferase level", "1018251000000107", "1742-6", "U/L",
                    10, 38, 0, reference=(None, 40)),
    "creatinine": Analyte("Serum creatinine level", "1000731000000107", "14682-9", "umol/L",
                           60, 100, 0),
    "egfr": Analyte("eGFR using creatinine (CKD-EPI) per 1.73 square metres", "1011481000000105",
                     "62238-1", "mL/min/{1.73_m2}", 65, 100, 0),
    "lithium": Analyte("Serum lithium level", "1006681000000100", "14334-7", "mmol/L",
                        0.5, 0.8, 2),
    "tsh": Analyte("Serum TSH level", "1022791000000101", "3016-3", "m[IU]/L", 0.5, 4, 2,
                    reference=(0.27, 4.2)),
    "ft4": Analyte("Serum free T4 level", "1016971000000106", "14920-3", "pmol/L", 12, 21, 1,
                    reference=(12, 22)),
    "calcium": Analyte("Serum calcium level", "1000691000000101", "2000-8", "mmol/L",
                        2.2, 2.55, 2),
    "inr": Analyte("INR in Platelet poor plasma by Coagulation assay", None, "6301-6", "{INR}",
                    2, 3, 1),
    "hba1c": Analyte("Haemoglobin A1c level - IFCC standardised", "999791000000106", "59261-8",
                      "mmol/mol", 32, 41, 0),
    "cholesterol": Analyte("Serum total cholesterol level", "1005671000000105", "14647-2",
                            "mmol/L", 3.5, 5.8, 1),
    "hdl": Analyte("Serum HDL cholesterol level", "1005681000000107", "14646-4", "mmol/L",
                    0.9, 1.8, 1),
    "weight": Analyte("Body weight", "27113001", "29463-7", "kg", 55, 105, 1, "vital-signs"),
    "sbp": Analyte("Systolic blood pressure", "72313002", "8480-6", "mm[Hg]", 112, 138, 0),
    "dbp": Analyte("Diastolic blood pressure", "1091811000000102", "8462-4", "mm[Hg]",
                    68, 86, 0),
    "qtc": Analyte("QTc interval", None, "8636-3", "ms", 390, 440, 0, "procedure"),
}
# fmt: on


FBC = ("wbc", "haemoglobin", "neutrophils", "platelets")


_Variant = tuple[str, str | None, Callable[[float], float], int]


_COUNTS: _Variant = ("10*3/uL", None, lambda v: v, 1)


UNIT_VARIANTS: dict[str, _Variant] = {
    "wbc": _COUNTS,
    "neutrophils": _COUNTS,
    "platelets": _COUNTS,
    "creatinine": ("mg/dL", "2160-0", lambda v: v / 88.42, 2),
    "hba1c": ("%", "4548-4", lambda v: v / 10.929 + 2.15, 1),
    "lithium": ("meq/L", None, lambda v: v, 2),
}
"""Canonical value -> (unit, replacement LOINC or None, conversion, digits)."""


@dataclass(frozen=True, slots=True)
class Dose:
    text: str
    mg: float | None = None
    """Per administration; None when the text gives no dose."""
    frequency: int | None = 1
    """Administrations per period; None when there is no structured timing (As directed)."""
    period: float = 1
    period_unit: str = "d"


@dataclass(frozen=True, slots=True)
class Product:
    text: str
    ingredient: str
    codes: tuple[tuple[str, str], ...]
    strength_mg: float | None
    """Per tablet or capsule; None for patches."""
    form: str
    doses: tuple[Dose, ...]


def _product(
    text: str, ingredient: str, codes: str, strength: float | None, form: str, *doses: Dose
) -> Product:
    """``codes`` is "rxnorm" or "rxnorm snomed"; the SNOMED code is a dm+d VTM, VMP or AMP."""
    rxnorm, *snomed = codes.split()
    coding = ((RXNORM, rxnorm), *((SNOMED, code) for code in snomed))
    return Product(text, ingredient, coding, strength, form, doses)


def _d(text: str, mg: float, times: int = 1) -> Dose:
    return Dose(text, mg, times)


_AS_DIRECTED = Dose("As directed", None, None)


_EVERY_72H = Dose("Apply one patch every 72 hours", None, 1, 72, "h")


# fmt: off
_MTX = _product(
    "Methotrexate 2.5mg tablets", "methotrexate", "6851 68887009", 2.5, "tablet",
    Dose("15mg once weekly", 15, 1, 1, "wk"), Dose("20mg once weekly", 20, 1, 1, "wk"),
    Dose("10mg once weekly", 10, 1, 1, "wk"), Dose("As directed", None, 1, 1, "wk"),
)


MTX_DAILY = _d("10mg once daily", 10)


LEFLUNOMIDE = _product("Leflunomide 10mg tablets", "leflunomide", "27169", 10, "tablet",
                        _d("20mg once daily", 20), _d("10mg once daily", 10))


PREGABALIN = _product("Pregabalin 150mg capsules", "pregabalin", "187832", 150, "capsule",
                       _d("150mg twice daily", 150, 2), _d("300mg twice daily", 300, 2))


DIAZEPAM = _product("Diazepam 5mg tablets", "diazepam", "3322", 5, "tablet",
                     _d("5mg three times daily", 5, 3))


TRIMETHOPRIM = _product("Trimethoprim 200mg tablets", "trimethoprim", "10829", 200, "tablet",
                         _d("200mg twice daily", 200, 2))


HIGH_OME = (
    _product("Oxycodone 10mg modified-release tablets", "oxycodone", "7804 777027001", 10,
             "tablet", _d("60mg twice daily", 60, 2)),
    _product("Morphine sulfate 30mg modified-release tablets", "morphine", "7052 773372004", 30,
             "tablet", _d("60mg twice daily", 60, 2), _d("90mg twice daily", 90, 2)),
    _product("Fentanyl 75micrograms/hour transdermal patches", "fentanyl", "4337", None, "patch",
             _EVERY_72H),
)


UNMONITORED = (
    _product("Atorvastatin 20mg tablets", "atorvastatin", "83367", 20, "tablet",
             _d("20mg at night", 20)),
    _product("Ramipril 5mg capsules", "ramipril", "35296", 5, "capsule", _d("5mg once daily", 5)),
    _product("Amlodipine 5mg tablets", "amlodipine", "17767", 5, "tablet", _d("5mg once daily", 5)),
    _product("Metformin 500mg tablets", "metformin", "6809", 500, "tablet",
             _d("500mg twice daily", 500, 2)),
    _product("Levothyroxine sodium 50microgram tablets", "levothyroxine", "10582", None, "tablet",
             Dose("50 micrograms once daily")),
    _product("Omeprazole 20mg gastro-resistant capsules", "omeprazole", "7646", 20, "capsule",
             _d("20mg once daily", 20)),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    weight: int
    products: tuple[Product, ...]
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
GROUPS: dict[str, Group] = {g.name: g for g in (
    Group("methotrexate", 8, (_MTX,), _DMARD, 70, (120, 365), (30, 85), _DMARD_ABNORMAL),
    Group("azathioprine", 4, (
        _product("Azathioprine 50mg tablets", "azathioprine", "1256", 50, "tablet",
                 _d("100mg once daily", 100), _d("150mg once daily", 150),
                 _d("50mg twice daily", 50, 2)),
    ), _DMARD, 70, (120, 365), (25, 85), _DMARD_ABNORMAL),
    Group("sulfasalazine", 5, (
        _product("Sulfasalazine 500mg gastro-resistant tablets", "sulfasalazine", "9524", 500,
                 "tablet", _d("1g twice daily", 1000, 2), _d("1g at night", 1000),
                 _d("1.5g twice daily", 1500, 2)),
    ), _DMARD, 70, (120, 365), (25, 85), _DMARD_ABNORMAL),
    Group("leflunomide", 2, (LEFLUNOMIDE,), (*_DMARD, "bp", "weight"), 70, (120, 365), (30, 85),
           (*_DMARD_ABNORMAL, (("sbp", 158), ("dbp", 96)))),
    Group("mycophenolate", 2, (
        _product("Mycophenolate mofetil 500mg tablets", "mycophenolate mofetil", "68149", 500,
                 "tablet", _d("1g twice daily", 1000, 2), _d("500mg twice daily", 500, 2)),
        _product("Mycophenolic acid 360mg gastro-resistant tablets", "mycophenolic acid", "7145",
                 360, "tablet", _d("720mg twice daily", 720, 2)),
    ), _DMARD, 70, (120, 365), (25, 75), (*_DMARD_ABNORMAL, (("creatinine", 160),))),
    Group("lithium", 3, (
        _product("Priadel 400mg modified-release tablets (lithium carbonate)", "lithium carbonate",
                 "42351 766311000001100", 400, "tablet", _d("800mg at night", 800),
                 _d("400mg at night", 400), _d("1200mg at night", 1200)),
        _product("Lithium carbonate 250mg tablets", "lithium carbonate", "42351 321730000", 250,
                 "tablet", _d("500mg twice daily", 500, 2)),
    ), ("lithium", "creatinine", "egfr", "tsh", "calcium", "weight"), 80, (120, 365), (25, 80), (
        (("lithium", 1.3),), (("lithium", 1.6),), (("lithium", 0.9),), (("egfr", 42),),
        (("tsh", 8.5),), (("calcium", 2.75),),
    )),
    Group("amiodarone", 3, (
        _product("Amiodarone 200mg tablets", "amiodarone", "703", 200, "tablet",
                 _d("200mg once daily", 200), _d("100mg once daily", 100)),
    ), ("tsh", "ft4", "alt", "creatinine", "qtc"), 150, (200, 400), (55, 90),
        ((("tsh", 12),), (("tsh", 0.05), ("ft4", 31)), (("alt", 130),))),
    Group("warfarin", 6, tuple(
        _product(f"Warfarin {mg}mg tablets", "warfarin", f"11289 {vmp}", mg, "tablet",
                 _AS_DIRECTED)
        for mg, vmp in ((1, "319733000"), (3, "319734006"), (5, "319735007"))
    ), ("inr",), 35, (100, 200), (50, 92),
        ((("inr", 5.5),), (("inr", 8.4),), (("inr", 3.6),), (("inr", 1.6),)), draws=3),
    Group("doac", 16, (
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
    Group("antipsychotic", 10, (
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
    Group("opioid", 18, (
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
                 "1819", None, "patch", Dose("Apply one patch every 7 days", None, 1, 7, "d")),
    ), (), 0, (120, 365), (30, 88), review=60),
    Group("gabapentinoid", 14, (
        _product("Gabapentin 300mg capsules", "gabapentin", "25480", 300, "capsule",
                 _d("300mg three times daily", 300, 3), _d("600mg three times daily", 600, 3)),
        PREGABALIN,
    ), ("creatinine",), 300, (400, 700), (25, 88), ((("creatinine", 210),),),
        review=300),
)}
# fmt: on


GROUP_NAMES = tuple(GROUPS)


GROUP_WEIGHTS = tuple(g.weight for g in GROUPS.values())


def previous_dose(product: Product, dose: Dose, group: Group) -> tuple[Product, Dose] | None:
    """A different dose of the same ingredient to precede a dose change; None if there is none."""
    for other in product.doses:
        if other.mg is not None and other.mg != dose.mg:
            return product, other
    for other_product in group.products:
        same = other_product.ingredient == product.ingredient
        if same and other_product.strength_mg != product.strength_mg:
            return other_product, other_product.doses[0]
    return None


def analyte_value(key: str, value: float, variant: bool) -> Resource:
    """``code`` and ``valueQuantity`` for one analyte, in its canonical unit or a variant."""
    analyte = ANALYTES[key]
    unit, loinc, digits = analyte.unit, analyte.loinc, analyte.digits
    if variant and key in UNIT_VARIANTS:
        unit, other_loinc, convert, digits = UNIT_VARIANTS[key]
        loinc, value = other_loinc or loinc, convert(value)
    coding = [{"system": LOINC, "code": loinc, "display": analyte.display}]
    if analyte.snomed is not None:
        coding.insert(0, {"system": SNOMED, "code": analyte.snomed, "display": analyte.display})
    return {
        "code": {"coding": coding, "text": analyte.display},
        "valueQuantity": quantity(rounded(value, digits), unit),
    }


def concept(product: Product) -> Resource:
    return {
        "coding": [{"system": s, "code": c, "display": product.text} for s, c in product.codes],
        "text": product.text,
    }


def medication_body(product: Product) -> Resource:
    """``code`` and ``ingredient`` of a Medication; strength only for tablets and capsules."""
    ingredient: Resource = {"itemCodeableConcept": {"text": product.ingredient}}
    if product.strength_mg is not None and product.form != "patch":
        form, code = ("capsule", "{cap}") if product.form == "capsule" else ("tablet", "{tbl}")
        ingredient["strength"] = {
            "numerator": quantity(product.strength_mg, "mg"),
            "denominator": {"value": 1, "unit": form, "system": UCUM, "code": code},
        }
    return {"code": concept(product), "ingredient": [ingredient]}


def dosage(product: Product, dose: Dose, *, structured: bool) -> Resource:
    """A ``dosageInstruction``: the text, and when ``structured`` its timing and dose."""
    out: Resource = {"text": dose.text}
    if not structured or dose.frequency is None:
        return out
    out["timing"] = {
        "repeat": {
            "frequency": dose.frequency,
            "period": dose.period,
            "periodUnit": dose.period_unit,
        }
    }
    if dose.mg is not None and product.strength_mg and product.form != "patch":
        units = dose.mg / product.strength_mg
        form, code = ("capsule", "{cap}") if product.form == "capsule" else ("tablet", "{tbl}")
        out["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": rounded(units, 0 if units.is_integer() else 2),
                    "unit": form,
                    "system": UCUM,
                    "code": code,
                }
            }
        ]
    return out
