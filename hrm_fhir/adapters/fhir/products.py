"""The products and dosages prescriptions name, read once each: a product's codes, text and the
strength of its monitored ingredient (from its Medication when it gives one, else from its name),
and whether any rule uses it; the same product or dosage met again is the cached reading."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from hrm_fhir.adapters.fhir.dosage import parse_dosage
from hrm_fhir.adapters.fhir.values import (
    coding_pairs,
    codings_of,
    concept_text,
    medication_strength,
)
from hrm_fhir.domain import Dosage
from hrm_fhir.rules.strength import Strength, single_strength
from hrm_fhir.rules.therapy import MedicationIndex

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProductReading:
    """A product as a prescription names it: codes, text, the monitored strength, and whether any
    rule uses it."""

    codings: tuple[tuple[str, str], ...]
    text: str
    strength: float | None
    strength_unit: str | None
    relevant: bool = True


class ProductReader:
    """Reads products and dosages for a RecordBuilder, caching each reading by its JSON."""

    def __init__(self, medicines: MedicationIndex | None) -> None:
        self._medicines = medicines
        self._readings: dict[bytes, ProductReading] = {}
        self._dosages: dict[bytes, Dosage] = {}

    def product(self, concept: Any, medication: Resource | None) -> ProductReading:
        """Codes, text and strength of a product; repeat issues share one cached reading."""
        key = orjson.dumps(medication if medication is not None else concept)
        product = self._readings.get(key)
        if product is None:
            codings = codings_of(concept)
            text = concept_text(concept)
            if medication is not None:
                for ingredient in medication.get("ingredient") or ():
                    item = ingredient.get("itemCodeableConcept")
                    codings.extend(codings_of(item))
                    text = f"{text} {concept_text(item)}"
            product = ProductReading(
                tuple((system, code) for system, code, _ in codings), text, None, None
            )
            strength = self._strength(product, medication)
            product = replace(
                product,
                strength=strength[0] if strength else None,
                strength_unit=strength[1] if strength else None,
                relevant=self._medicines is None or self._medicines.is_relevant(product),
            )
            self._readings[key] = product
        return product

    def _strength(self, product: ProductReading, medication: Resource | None) -> Strength | None:
        """The monitored ingredient's strength: from the Medication's ingredient of that name
        when it gives one, else from the product's name."""
        if self._medicines is None:
            return medication_strength(medication, None) or single_strength(product.text)
        match = self._medicines.match(product)
        if match is None:
            return None

        def is_monitored(item: Any) -> bool:
            assert self._medicines is not None  # noqa: S101 - checked above
            found = self._medicines.match(
                ProductReading(coding_pairs(item), concept_text(item), None, None)
            )
            return found is not None and found.ingredient == match.ingredient

        return medication_strength(medication, is_monitored) or match.strength

    def dosage(self, instructions: Any) -> Dosage:
        key = orjson.dumps(instructions)
        dosage = self._dosages.get(key)
        if dosage is None:
            dosage = self._dosages[key] = parse_dosage(instructions)
        return dosage
