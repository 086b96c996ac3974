"""Which monitored drugs a patient is on: medication matching, courses, currency, dose changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from hrm_fhir.domain import Coding, MatchMethod, Prescription
from hrm_fhir.rules.model import Catalogue, Combination, Ingredient, RulePack
from hrm_fhir.rules.strength import Strength, ingredient_strength

COUNTING_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order", "plan"}
)
IGNORED_STATUSES = frozenset({"entered-in-error", "cancelled", "draft"})
CURRENT_WHILE_ISSUED = frozenset({"completed", "unknown"})


class Product(Protocol):
    """What names a medication: a Prescription, or a product as it is read."""

    @property
    def codings(self) -> tuple[Coding, ...]: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class MedicationMatch:
    group: str
    """A drug group (rule pack) or a co-medication class id."""
    ingredient: str
    method: MatchMethod
    strength: Strength | None = None
    """The strength of ``ingredient`` in the product's name (not of the other ingredients)."""


class MedicationIndex:
    """Recognise products by code first (the packs' codes and the catalogue's code lists), then
    by ingredient name, synonym, brand or co-name in the text; read the matched ingredient's
    strength."""

    def __init__(self, packs: tuple[RulePack, ...], catalogue: Catalogue) -> None:
        self._codes: dict[tuple[str, str], tuple[str, str]] = {}
        names: dict[str, tuple[str, str]] = {}
        groups: dict[str, str] = {}
        sources: list[tuple[str, tuple[Ingredient, ...]]] = [
            (p.drug_group, p.ingredients) for p in packs
        ]
        sources.extend((c.id, c.ingredients) for c in catalogue.classes.values())
        for group, ingredients in sources:
            for ingredient in ingredients:
                groups.setdefault(ingredient.name, group)
                for code in ingredient.codes:
                    self._codes.setdefault((code.system, code.code), (group, ingredient.name))
                for name in (ingredient.name, *ingredient.synonyms):
                    names.setdefault(name, (group, ingredient.name))
        for key, product in catalogue.products.items():
            owner = groups.get(product.ingredient)
            if owner is not None:
                self._codes.setdefault(key, (owner, product.ingredient))
                if product.brand:
                    names.setdefault(product.brand, (owner, product.ingredient))
        self._combinations: dict[str, tuple[Combination, ...]] = {}
        for combination in catalogue.combinations.values():
            member = next((i for i in combination.ingredients if i in groups), None)
            if member is not None:
                names.setdefault(combination.name, (groups[member], member))
            for part in combination.ingredients:
                self._combinations[part] = (*self._combinations.get(part, ()), combination)
        self._names = names
        self._spellings: dict[str, list[str]] = {}
        for name, (_, spelt) in names.items():
            self._spellings.setdefault(spelt, []).append(name)
        alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        self._pattern = re.compile(rf"\b({alternation})\b") if names else None
        self._seen: dict[tuple[tuple[tuple[str, str], ...], str], MedicationMatch | None] = {}

    def match(self, product: Product) -> MedicationMatch | None:
        """The group and ingredient a prescription (or product) belongs to, cached per product."""
        key = (product.codings, product.text)
        if key not in self._seen:
            self._seen[key] = self._match(product)
        return self._seen[key]

    def is_relevant(self, product: Product) -> bool:
        return self.match(product) is not None

    def strength(self, text: str, ingredient: str) -> Strength | None:
        """The strength of ``ingredient`` in a lower-case product name."""
        return ingredient_strength(
            text,
            ingredient,
            self._spellings.get(ingredient, (ingredient,)),
            self._combinations.get(ingredient, ()),
        )

    def _match(self, product: Product) -> MedicationMatch | None:
        found = self._by_code(product.codings)
        method = MatchMethod.CODE
        if found is None:
            found = self._by_name(product.text)
            method = MatchMethod.TEXT
        if found is None:
            return None
        group, ingredient = found
        return MedicationMatch(group, ingredient, method, self.strength(product.text, ingredient))

    def _by_code(self, codings: tuple[Coding, ...]) -> tuple[str, str] | None:
        for coding in codings:
            hit = self._codes.get(coding)
            if hit is not None:
                return hit
        return None

    def _by_name(self, text: str) -> tuple[str, str] | None:
        found = self._pattern.search(text) if self._pattern is not None else None
        return None if found is None else self._names[found.group(1)]


@dataclass(frozen=True, slots=True)
class Therapy:
    """A patient's current course of one drug group (or co-medication class)."""

    group: str
    requests: tuple[Prescription, ...]
    """The counting requests of the current course, oldest first."""
    ingredients: tuple[str, ...]
    """Matched ingredient per request, parallel to ``requests``."""
    method: MatchMethod
    start: date
    anchor: date
    """Where the schedule's phases are measured from: course start or last dose change."""
    current: bool

    @property
    def latest(self) -> Prescription:
        return self.requests[-1]

    def current_by_ingredient(self, as_of: date, lookback_start: date) -> dict[str, Prescription]:
        """The latest request per ingredient that is itself current."""
        latest: dict[str, Prescription] = {}
        for request, ingredient in zip(self.requests, self.ingredients, strict=True):
            latest[ingredient] = request
        return {name: req for name, req in latest.items() if is_current(req, as_of, lookback_start)}


def counts(prescription: Prescription, as_of: date) -> bool:
    """Requests that count: not erroneous, cancelled or draft; real orders; not in the future."""
    return (
        prescription.status not in IGNORED_STATUSES
        and prescription.intent in COUNTING_INTENTS
        and prescription.authored_on <= as_of
    )


def is_current(prescription: Prescription, as_of: date, lookback_start: date) -> bool:
    """Active requests are current; issued (completed) ones only within the look-back window."""
    if prescription.status == "active":
        return prescription.validity_end is None or prescription.validity_end >= lookback_start
    if prescription.status in CURRENT_WHILE_ISSUED:
        return prescription.authored_on >= lookback_start
    return False


def daily_dose_mg(prescription: Prescription) -> float | None:
    """mg per day from the dosage and, for tablets or capsules, the product strength."""
    dosage = prescription.dosage
    if dosage.per_day is None or dosage.dose_value is None:
        return None
    if dosage.dose_unit == "mg":
        return dosage.per_day * dosage.dose_value
    if dosage.dose_unit == "unit" and prescription.strength_unit == "mg" and prescription.strength:
        return dosage.per_day * dosage.dose_value * prescription.strength
    return None


def build_therapies(
    prescriptions: list[Prescription],
    index: MedicationIndex,
    as_of: date,
    lookback_start: date,
    course_gap_days: int,
    restart_groups: frozenset[str],
) -> dict[str, Therapy]:
    """One Therapy per matched group, for the course running at (or last before) ``as_of``."""
    grouped: dict[str, list[tuple[Prescription, MedicationMatch]]] = {}
    for prescription in prescriptions:
        if not counts(prescription, as_of):
            continue
        match = index.match(prescription)
        if match is not None:
            grouped.setdefault(match.group, []).append((prescription, match))
    therapies: dict[str, Therapy] = {}
    for group, items in grouped.items():
        items.sort(key=lambda item: (item[0].authored_on, item[0].ref))
        first = len(items) - 1
        while (
            first > 0
            and (items[first][0].authored_on - items[first - 1][0].authored_on).days
            <= course_gap_days
        ):
            first -= 1
        course = items[first:]
        requests = tuple(p for p, _ in course)
        ingredients = tuple(m.ingredient for _, m in course)
        start = requests[0].authored_on
        anchor = _last_dose_change(course) if group in restart_groups else None
        therapies[group] = Therapy(
            group=group,
            requests=requests,
            ingredients=ingredients,
            method=matched_by(*course[-1]),
            start=start,
            anchor=max(start, anchor) if anchor else start,
            current=is_current(requests[-1], as_of, lookback_start),
        )
    return therapies


def matched_by(prescription: Prescription, match: MedicationMatch) -> MatchMethod:
    """How a prescription was recognised; a MedicationStatement is labelled as a statement."""
    if prescription.ref.startswith("MedicationStatement/"):
        return MatchMethod.STATEMENT
    return match.method


def _last_dose_change(course: list[tuple[Prescription, MedicationMatch]]) -> date | None:
    """Date of the last request whose ingredient or known daily dose differs from the one before."""
    changed: date | None = None
    previous: tuple[str, float] | None = None
    for prescription, match in course:
        dose = daily_dose_mg(prescription)
        if dose is None:
            continue
        current = (match.ingredient, round(dose, 3))
        if previous is not None and current != previous:
            changed = prescription.authored_on
        previous = current
    return changed
