"""Which monitored drugs a patient is on: medication matching, courses, currency, dose changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from operator import itemgetter
from typing import NamedTuple, Protocol

from hrm_fhir.domain import Coding, MatchMethod, Prescription
from hrm_fhir.rules.catalogue import Catalogue, Combination
from hrm_fhir.rules.model import Ingredient, RulePack
from hrm_fhir.rules.strength import Strength, ingredient_strength

COUNTING_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order", "plan"}
)
IGNORED_STATUSES = frozenset({"entered-in-error", "cancelled", "draft"})
CURRENT_WHILE_ISSUED = frozenset({"completed", "unknown"})
AUTHORISATION_STATUSES = frozenset({"active", "stopped", "on-hold"})
"""Statuses that speak for the authorisation: a later one supersedes an earlier active request
of the same product (a later completed issue does not)."""


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


_UNSEEN = MedicationMatch("", "", MatchMethod.TEXT)
"""``MedicationIndex.match``'s mark for a product not looked at yet."""


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
        found = self._seen.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = self._seen[key] = self._match(product)
        return found

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


ProductKey = tuple[tuple[Coding, ...], str]
"""What makes two requests the same product: the same codes and the same medication text."""


class ProductRequest(NamedTuple):
    """A product of a drug group (or class) and the request that speaks for it: its newest.
    (A named tuple: one is made for every current product of every patient.)"""

    ingredient: str
    request: Prescription
    """The product's newest request: the dose in force."""
    method: MatchMethod
    unissued_since: date | None = None
    """Set when the product is current only through an active request and nothing of it was
    issued or authored for longer than the review limit: the date of its last issue."""


class CourseRequest(NamedTuple):
    """One request of a course: when it was authored, the last day it covers (an active
    request covers every day until superseded, stopped or ended), and its ingredient."""

    authored_on: date
    covers_until: date
    ingredient: str


@dataclass(frozen=True, slots=True)
class Therapy:
    """A patient's course of one drug group (or co-medication class)."""

    group: str
    start: date
    """The start of continuous therapy: the first request of the course."""
    anchor: date
    """Where the schedule's phases are measured from: course start or last dose change."""
    products: tuple[ProductRequest, ...]
    """Every product current on the as-of date, the newest request last; empty when none is."""
    newest: tuple[Prescription, MedicationMatch]
    """The newest request of the course, current or not, and how it was matched."""
    last_cover: date
    """The last day the course's requests cover: the newest issue, or the day an active
    request was stopped, superseded or ended (the as-of date while it stands)."""
    course: tuple[CourseRequest, ...] = ()
    """Every request of the course, oldest first (who had what when: ``ingredient_span``)."""

    def ingredient_span(self, ingredient: str) -> tuple[date, date] | None:
        """When the ingredient was first and last prescribed in this course (authored dates)."""
        days = [r.authored_on for r in self.course if r.ingredient == ingredient]
        return (days[0], days[-1]) if days else None

    @property
    def current(self) -> bool:
        return bool(self.products)

    @property
    def latest(self) -> Prescription:
        """The request the therapy rests on: the newest current product's, else the newest."""
        return self.products[-1].request if self.products else self.newest[0]

    @property
    def ingredient(self) -> str:
        """The ingredient of ``latest``."""
        return self.products[-1].ingredient if self.products else self.newest[1].ingredient

    @property
    def method(self) -> MatchMethod:
        """How ``latest`` was recognised."""
        return self.products[-1].method if self.products else matched_by(*self.newest)


def counts(prescription: Prescription, as_of: date) -> bool:
    """Requests that count: not erroneous, cancelled or draft; real orders; not in the future."""
    return (
        prescription.status not in IGNORED_STATUSES
        and prescription.intent in COUNTING_INTENTS
        and prescription.authored_on <= as_of
    )


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


@dataclass(frozen=True, slots=True)
class Currency:
    """The dates that decide which requests are current on one as-of date."""

    as_of: date
    lookback_start: date
    """An issued (completed) request authored on or after this day is current."""
    unissued_before: date
    """A product current only through an active request, with nothing issued or authored on
    or after this day, is current but raises a review."""
    course_gap: timedelta
    """Requests whose cover is further apart than this start a new course."""
    rarer_than: float = 0.0
    """Administrations per day: an issue whose dosage is given less often than this (a depot
    injection every 3 or 6 months) covers its dosing interval, and counts as current for the
    issue look-back after that."""

    def issued_recently(self, request: Prescription) -> bool:
        """Issued (completed) within the look-back window; for a product given at long intervals
        (a 6-monthly depot), within the look-back after its next dose falls due."""
        return (
            request.status in CURRENT_WHILE_ISSUED
            and _covered_until(request, self) >= self.lookback_start
        )

    def still_valid(self, request: Prescription) -> bool:
        """Its validity period did not end before the look-back window."""
        return request.validity_end is None or request.validity_end >= self.lookback_start

    def is_current(self, request: Prescription) -> bool:
        """One request on its own, whatever else of its product was prescribed: active and still
        valid, or issued recently (a product's currency is ``build_therapies``')."""
        if request.status == "active":
            return self.still_valid(request)
        return self.issued_recently(request)


def build_therapies(
    prescriptions: list[Prescription],
    index: MedicationIndex,
    currency: Currency,
    restart_groups: frozenset[str],
) -> dict[str, Therapy]:
    """One Therapy per matched group, for the course running at (or last before) the as-of date.

    Each product (same codes and text) is judged on its own: it is current while its newest
    request is active (and its validity period did not end before the look-back window), or
    was issued within the look-back window, or while an earlier active request of it stands,
    not stopped, put on hold or superseded by a later active request of the same product.
    """
    grouped: dict[str, list[tuple[Prescription, MedicationMatch]]] = {}
    as_of, matched = currency.as_of, index.match
    for prescription in prescriptions:
        if not counts(prescription, as_of):
            continue
        match = matched(prescription)
        if match is not None:
            grouped.setdefault(match.group, []).append((prescription, match))
    therapies: dict[str, Therapy] = {}
    for group, items in grouped.items():
        items.sort(key=lambda item: (item[0].authored_on, item[0].ref))
        therapies[group] = _therapy(group, items, currency, group in restart_groups)
    return therapies


def _therapy(
    group: str,
    items: list[tuple[Prescription, MedicationMatch]],
    currency: Currency,
    restarts: bool,
) -> Therapy:
    starts = [p.authored_on for p, _ in items]
    ends = [_covered_until(p, currency) for p, _ in items]  # the last day each request covers
    newest: dict[ProductKey, int] = {}
    standing: dict[ProductKey, int | None] = {}
    """Per product: its active request still standing (not superseded, stopped or on hold)."""
    for n, (request, _) in enumerate(items):
        key = (request.codings, request.text)
        newest[key] = n
        if request.status in AUTHORISATION_STATUSES:
            before = standing.get(key)
            if before is not None:
                ends[before] = _reach(items[before][0], request.authored_on)
            standing[key] = n if request.status == "active" else None
    current: list[tuple[int, ProductRequest]] = []
    for key, n in newest.items():
        active = standing.get(key)
        if active is not None:
            ends[active] = _reach(items[active][0], currency.as_of)
        product = _current_product(
            items[n], items[active][0] if active is not None else None, currency
        )
        if product is not None:
            current.append((n, product))
    first, reach, gap = 0, ends[0], currency.course_gap
    for n in range(1, len(items)):
        if starts[n] - reach > gap:
            first, reach = n, ends[n]
        elif ends[n] > reach:
            reach = ends[n]
    course = items[first:] if first else items
    start = starts[first]
    changed = _last_dose_change(course) if restarts else None
    if len(current) > 1:
        current.sort(key=itemgetter(0))
    return Therapy(
        group=group,
        start=start,
        anchor=max(start, changed) if changed else start,
        products=tuple(product for n, product in current if n >= first),
        newest=items[-1],
        last_cover=reach,
        course=tuple(
            map(CourseRequest, starts[first:], ends[first:], [m.ingredient for _, m in course])
        ),
    )


def _reach(active: Prescription, until: date) -> date:
    """The last day an active request covers: until ``until`` or the end of its validity."""
    end = until if active.validity_end is None else min(until, active.validity_end)
    return max(active.authored_on, end)


def _current_product(
    item: tuple[Prescription, MedicationMatch], active: Prescription | None, currency: Currency
) -> ProductRequest | None:
    """A product is current when its newest request (``item``) was issued within the look-back,
    or while an active request of it stands (validity not ended before the look-back)."""
    newest, match = item
    if currency.issued_recently(newest):
        return ProductRequest(match.ingredient, newest, matched_by(newest, match))
    if active is None or not currency.still_valid(active):
        return None
    validity_end = active.validity_end
    renewed = validity_end is not None and validity_end >= currency.as_of
    stale = newest.authored_on < currency.unissued_before and not renewed
    return ProductRequest(
        match.ingredient, newest, matched_by(newest, match), newest.authored_on if stale else None
    )


def _covered_until(issue: Prescription, currency: Currency) -> date:
    """The last day one issue covers: its own day, or the day its next dose falls due when the
    dosage is given less often than ``Currency.rarer_than``."""
    per_day = issue.dosage.per_day
    if per_day and per_day < currency.rarer_than:
        return issue.authored_on + timedelta(days=1 / per_day)
    return issue.authored_on


def matched_by(prescription: Prescription, match: MedicationMatch) -> MatchMethod:
    """How a prescription was recognised; a MedicationStatement is labelled as a statement."""
    if prescription.ref.startswith("MedicationStatement/"):
        return MatchMethod.STATEMENT
    return match.method


def _last_dose_change(course: list[tuple[Prescription, MedicationMatch]]) -> date | None:
    """Date of the last request that changed the dose: a known daily dose that differs from the
    same product's previous known one, or a new product of an ingredient new to the course (or
    whose known dose differs from that ingredient's previous known one). A second product of
    the same dose taken alongside is not a change, so alternating issues never restart."""
    changed: date | None = None
    by_product: dict[ProductKey, float | None] = {}
    by_ingredient: dict[str, float | None] = {}
    for prescription, match in course:
        dose = daily_dose_mg(prescription)
        key, ingredient = (prescription.codings, prescription.text), match.ingredient
        if key in by_product:
            before = by_product[key]
        elif ingredient in by_ingredient:
            before = by_ingredient[ingredient]
        else:
            before = None
            if by_ingredient:
                changed = prescription.authored_on
        if dose is not None and before is not None and round(dose, 3) != round(before, 3):
            changed = prescription.authored_on
        if dose is None:
            by_product.setdefault(key, None)
            by_ingredient.setdefault(ingredient, None)
        else:
            by_product[key] = by_ingredient[ingredient] = dose
    return changed
