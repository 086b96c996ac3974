"""The code catalogue as frozen dataclasses: tests, analytes and their units and ranges,
medication classes, code lists, and the programme-wide settings rule packs share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hrm_fhir.domain import Severity
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.model import Citation, Code, Ingredient


@dataclass(frozen=True, slots=True)
class UnitConversion:
    """canonical = (value + offset) * factor."""

    unit: str
    factor: float
    offset: float = 0.0
    citation: str = ""
    verified: bool = True


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    """A cited default adult range, used only when a result carries neither the laboratory's
    range nor its interpretation flag (in the analyte's canonical unit)."""

    citation: str
    verified: bool
    low: float | None = None
    high: float | None = None
    sex: str | None = None
    """``male`` or ``female`` when the range differs by sex; None for everyone."""

    def describe(self, unit: str) -> str:
        """``133-146 mmol/L``, ``up to 42 U/L`` or ``from 3.5 mmol/L``."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}-{self.high:g} {unit}"
        if self.high is not None:
            return f"up to {self.high:g} {unit}"
        return f"from {self.low:g} {unit}"


@dataclass(frozen=True, slots=True)
class Analyte:
    id: str
    title: str
    unit: str
    codes: tuple[Code, ...]
    conversions: tuple[UnitConversion, ...] = ()
    reference_ranges: tuple[ReferenceRange, ...] = ()
    monitored_with: str | None = None
    """The test whose sample also carries this analyte (sodium with renal function): its
    result is acted on for as long as that test's result counts as done."""

    def default_range(self, sex: str | None) -> ReferenceRange | None:
        """The cited default range for a patient of ``sex``; None when there is none (or it
        depends on a sex that is not recorded)."""
        for candidate in self.reference_ranges:
            if candidate.sex is None or candidate.sex == sex:
                return candidate
        return None


@dataclass(frozen=True, slots=True)
class Test:
    """A test a schedule asks for (e.g. ``fbc``) and the analytes whose results satisfy it."""

    id: str
    title: str
    analytes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MedicationClass:
    """A co-medication class the checks look for (e.g. benzodiazepines) that is not monitored."""

    id: str
    title: str
    ingredients: tuple[Ingredient, ...]


@dataclass(frozen=True, slots=True)
class CodeList:
    """A published code list of medicinal products, as cited in the catalogue."""

    id: str
    file: str
    """CSV in ``rules/codelists/`` with ``code,term,ingredient,brand``."""
    system: str
    citation: Citation
    source: str = ""
    """The list's own name and version where it is published (e.g. ``pincer/lith/6f1c2a0d``)."""


@dataclass(frozen=True, slots=True)
class ProductCode:
    """One product code (dm+d VTM, VMP or AMP) and the one ingredient it is recognised as."""

    code: str
    term: str
    ingredient: str
    brand: str
    """The brand name of a branded product (``eliquis``), lower case; empty for generics."""
    code_list: str

    def __reduce__(self) -> tuple[type[ProductCode], tuple[str, str, str, str, str]]:
        """Pickle as a constructor call: the cached rule set holds some 16,000 of these, and
        the dataclass default loads them three times slower (every run starts with that)."""
        return ProductCode, (self.code, self.term, self.ingredient, self.brand, self.code_list)


@dataclass(frozen=True, slots=True)
class Combination:
    """A co-name (``co-codamol``) and its ingredients in the order of the strengths in its
    dm+d names (``Co-codamol 30mg/500mg`` is codeine 30 mg, paracetamol 500 mg)."""

    name: str
    ingredients: tuple[str, ...]
    citation: str


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a record datum may be before what is worked out from it says it is out of date."""

    within: Duration
    citation: str
    verified: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class CockcroftGault:
    """CrCl (mL/min) = (age_offset - age) * weight * factor[sex] / creatinine (umol/L)."""

    age_offset: float
    factor_male: float
    factor_female: float
    citation: str
    verified: bool
    weight_within: Freshness | None = None
    """A CrCl worked out from a weight older than this says so (never silently stale)."""


@dataclass(frozen=True, slots=True)
class BaselineRules:
    """When a course counts as a new start, and how far before its start a baseline may be."""

    before_start: Duration
    """A result this long before the course start (or any time after it) is the baseline."""
    new_start_for: Duration
    """A course is a new start, due for its baseline, for this long after it started; a course
    older than that (on therapy for years, say) raises no baseline."""
    citation: str
    verified: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class ArrangementCode:
    """A code that says who monitors a drug group (shared care): on a prescription, its
    prescribing organisation; in the record, a coded entry."""

    system: str
    code: str
    elsewhere: bool
    """True: monitored elsewhere (a hospital or community team); False: by the practice."""
    display: str = ""
    verified: bool = True
    groups: tuple[str, ...] = ()
    """Drug groups a drug-specific code names; empty for a generic code."""


@dataclass(frozen=True, slots=True)
class ResultsNotSeen:
    """The check on a group monitored elsewhere: no result has reached the practice within the
    schedule's severely-overdue tolerance (the practice must see results before issuing)."""

    severity: Severity
    advice: str
    citation: str
    verified: bool


@dataclass(frozen=True, slots=True)
class SharedCare:
    """How the record says a drug group is monitored elsewhere, and what that changes."""

    citation: str
    generic_groups: tuple[str, ...]
    """The groups a statement that names no drug applies to (the patient's current ones)."""
    extensions: tuple[str, ...]
    """Prescribing-organisation extension URLs on MedicationRequest and MedicationStatement."""
    prescribed: tuple[ArrangementCode, ...]
    """Codes in those extensions or in the prescription's ``category``."""
    entries: tuple[ArrangementCode, ...]
    """Codes of Observation, Condition, Procedure and Flag entries."""
    results_not_seen: ResultsNotSeen
    note: str = ""


@dataclass(frozen=True, slots=True)
class UnissuedActive:
    """An active request with nothing issued or authored of its product for ``after`` raises a
    finding of ``severity`` ("active but not issued since <date>")."""

    after: Duration
    severity: Severity
    citation: str
    verified: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: int
    citations: dict[str, Citation]
    tests: dict[str, Test]
    analytes: dict[str, Analyte]
    classes: dict[str, MedicationClass]
    cockcroft_gault: CockcroftGault
    due_window_days: int
    current_issue_lookback: Duration
    course_gap: Duration
    long_dosing_interval: Duration
    """A product given at longer intervals than this (depot injections every 3 or 6 months)
    counts as current for its dosing interval plus ``current_issue_lookback``."""
    result_lookback: Duration
    """How long an out-of-range result is acted on when no schedule of the pack asks for its
    test (otherwise the schedule's maintenance interval)."""
    unissued_active: UnissuedActive
    baseline: BaselineRules
    code_index: dict[tuple[str, str], str] = field(default_factory=dict)
    """(system, code) -> analyte id, built at load."""
    combinations: dict[str, Combination] = field(default_factory=dict)
    code_lists: dict[str, CodeList] = field(default_factory=dict)
    products: dict[tuple[str, str], ProductCode] = field(default_factory=dict)
    """(system, code) -> product, from every code list; filled in by the registry."""
    shared_care: SharedCare | None = None
