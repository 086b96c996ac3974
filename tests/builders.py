"""Small builders for synthetic FHIR R4 resources used by the tests (plain dicts)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.domain import Finding, PatientRecord
from hrm_fhir.rules.evaluate import Assessment, Evaluator
from hrm_fhir.rules.registry import RuleSet, _package_files, build_rule_set, load_rule_set

AS_OF = date(2026, 11, 27)
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PRACTICE_CODES = "https://example.org/practice-codes"
"""A practice's own code list, as a practice would add it to the catalogue (tests only)."""
_ids = itertools.count(1)
_RULES: list[RuleSet] = []


def rules() -> RuleSet:
    """The shipped rule set, loaded once per test session."""
    if not _RULES:
        _RULES.append(load_rule_set())
    return _RULES[0]


def rules_with_shared_care_entries() -> RuleSet:
    """The shipped rules plus coded shared-care entries a practice might use (the shipped
    catalogue lists none): a generic one, one naming lithium, and one saying the practice
    monitors."""
    catalogue, packs = _package_files()
    entries = (
        "entries = [\n"
        f'  {{ system = "{PRACTICE_CODES}", code = "shared-care", verified = false,'
        " elsewhere = true },\n"
        f'  {{ system = "{PRACTICE_CODES}", code = "lithium-by-cmht", verified = false,'
        ' elsewhere = true, groups = ["lithium"] },\n'
        f'  {{ system = "{PRACTICE_CODES}", code = "monitored-here", verified = false,'
        " elsewhere = false },\n"
        "]"
    )
    assert "entries = []" in catalogue
    return build_rule_set(catalogue.replace("entries = []", entries, 1), packs)


def patient(
    pid: str = "p1", born: str = "1960-01-01", sex: str = "female", **extra: Any
) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": born, "gender": sex, **extra}


def prescription(
    text: str,
    authored: date,
    *,
    pid: str = "p1",
    status: str = "active",
    intent: str = "order",
    dosage: str = "As directed",
    codes: tuple[tuple[str, str], ...] = (),
    timing: dict[str, Any] | None = None,
    dose: dict[str, Any] | None = None,
    rid: str | None = None,
    validity_end: date | None = None,
) -> dict[str, Any]:
    instruction: dict[str, Any] = {"text": dosage}
    if timing is not None:
        instruction["timing"] = {"repeat": timing}
    if dose is not None:
        instruction["doseAndRate"] = [{"doseQuantity": dose}]
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid or f"mr{next(_ids)}",
        "status": status,
        "intent": intent,
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": authored.isoformat(),
        "medicationCodeableConcept": {
            "coding": [{"system": s, "code": c} for s, c in codes],
            "text": text,
        },
        "dosageInstruction": [instruction],
    }
    if validity_end is not None:
        request["dispenseRequest"] = {"validityPeriod": {"end": validity_end.isoformat()}}
    return request


def repeats(
    text: str, start: date, end: date, every_days: int = 28, **kwargs: Any
) -> list[dict[str, Any]]:
    """A repeat-prescribing chain: completed issues from ``start``, the last one active."""
    out = []
    day = start
    while day <= end:
        out.append(prescription(text, day, status="completed", **kwargs))
        day += timedelta(days=every_days)
    out[-1]["status"] = kwargs.get("status", "active")
    return out


def observation(
    code: str,
    value: float | None,
    unit: str,
    on: date,
    *,
    pid: str = "p1",
    system: str = SNOMED,
    status: str = "final",
    ref_range: tuple[float, float] | None = None,
    rid: str | None = None,
    at: str | None = "09:30:00+00:00",
    issued: str | None = None,
    comparator: str | None = None,
    text: str | None = None,
    flag: str | None = None,
) -> dict[str, Any]:
    """An Observation taken on ``on`` at ``at`` (None: a date only); ``text`` gives the value
    as ``valueString`` instead of a quantity; ``flag`` a v3 interpretation code."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid or f"obs{next(_ids)}",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": on.isoformat() if at is None else f"{on.isoformat()}T{at}",
    }
    if issued is not None:
        obs["issued"] = issued
    if text is not None:
        obs["valueString"] = text
    elif value is not None:
        obs["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
        if comparator is not None:
            obs["valueQuantity"]["comparator"] = comparator
    if ref_range is not None:
        obs["referenceRange"] = [{"low": {"value": ref_range[0]}, "high": {"value": ref_range[1]}}]
    if flag is not None:
        obs["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
    return obs


FBC, LFT, EGFR = "1022441000000101", "997531000000108", "1011481000000105"


def bloods(on: date, egfr: float = 85, **kwargs: Any) -> list[dict[str, Any]]:
    """The DMARD blood set done on one day: FBC and LFT panels and an eGFR."""
    return [
        observation(FBC, None, "1", on, **kwargs),
        observation(LFT, None, "1", on, **kwargs),
        observation(EGFR, egfr, "mL/min/{1.73_m2}", on, **kwargs),
    ]


NEUTRAL: dict[str, tuple[str, float | None, str]] = {
    "fbc": ("fbc_panel", None, "1"),
    "lft": ("lft_panel", None, "1"),
    "renal": ("egfr", 90, "mL/min/{1.73_m2}"),
    "lithium": ("lithium", 0.6, "mmol/L"),
    "tft": ("tft_panel", None, "1"),
    "calcium": ("calcium", 2.35, "mmol/L"),
    "inr": ("inr", 2.5, "{INR}"),
    "hba1c": ("hba1c", 38, "mmol/mol"),
    "lipids": ("cholesterol", 4.5, "mmol/L"),
    "weight": ("weight", 70, "kg"),
    "bp": ("sbp", 120, "mm[Hg]"),
    "ecg": ("qtc", 400, "ms"),
    "review": ("medication_review", None, "1"),
    "tpmt": ("tpmt", None, "1"),
    "chest_xray": ("chest_xray", None, "1"),
    "height": ("height", 170, "cm"),
    "waist": ("waist", 90, "cm"),
    "pulse": ("pulse", 70, "/min"),
    "hepatitis_b": ("hbsag", None, "1"),
    "hepatitis_c": ("hcv_antibody", None, "1"),
    "hiv": ("hiv_test", None, "1"),
}
"""Per catalogue test: a normal result that shows it done, chosen so that no threshold or
modifier fires (analyte, value, unit)."""


def done(tests: Any, on: date, **kwargs: Any) -> list[dict[str, Any]]:
    """A normal result on ``on`` for each of ``tests`` (catalogue test ids)."""
    out = []
    for test in tests:
        analyte, value, unit = NEUTRAL[test]
        code = rules().catalogue.analytes[analyte].codes[0]
        out.append(observation(code.code, value, unit, on, system=code.system, **kwargs))
    return out


def baseline(group: str, on: date, **kwargs: Any) -> list[dict[str, Any]]:
    """Every baseline test the drug group's pack in force asks for, done on ``on``."""
    [pack] = [p for p in rules().in_force(AS_OF) if p.drug_group == group]
    return done(dict.fromkeys(t for b in pack.baselines for t in b.tests), on, **kwargs)


def records(resources: list[dict[str, Any]]) -> dict[str, PatientRecord]:
    return dict(reader(resources).finish())


def reader(resources: list[dict[str, Any]]) -> RecordBuilder:
    """The real reader after it has read ``resources`` (its ``skipped`` says what it left out)."""
    builder = RecordBuilder(rules().catalogue, rules().medicines())
    for resource in resources:
        builder.add("test", resource)
    return builder


def evaluate(
    resources: list[dict[str, Any]], as_of: date = AS_OF, window_days: int | None = None
) -> list[Finding]:
    """Map and evaluate resources through the real reader and evaluator."""
    evaluator = Evaluator.create(rules(), as_of, window_days)
    found: list[Finding] = []
    for _, record in sorted(records(resources).items()):
        found.extend(evaluator.evaluate(record))
    return found


def assess(resources: list[dict[str, Any]], as_of: date = AS_OF) -> Assessment:
    """Map and assess one patient's resources: findings and register lines."""
    [record] = records(resources).values()
    return Evaluator.create(rules(), as_of).assess(record)


def of_kind(findings: list[Finding], kind: str, group: str | None = None) -> list[Finding]:
    return [
        f for f in findings if f.kind.value == kind and (group is None or f.drug_group == group)
    ]
