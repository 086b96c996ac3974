"""One laboratory value read from an Observation (or a component): its analyte by code, its
value, comparator and unit normalised to the canonical unit (or kept as written and reported
when the unit cannot be read), its laboratory range and interpretation flag."""

from __future__ import annotations

from typing import Any, NamedTuple

from hrm_fhir.adapters.fhir.values import (
    COMPARATORS,
    UCUM_SYSTEM,
    Moment,
    Resource,
    interpretation_flag,
    reference_range,
    text_value,
)
from hrm_fhir.domain import LabResult, PatientRef, ResourceRef, Skipped
from hrm_fhir.rules.catalogue import Catalogue
from hrm_fhir.rules.units import UnitTable


class Taken(NamedTuple):
    """What the values of one Observation (and its components) share. (A named tuple: one is
    made per Observation read.)"""

    ref: ResourceRef
    patient: PatientRef
    effective: Moment
    issued: int
    """POSIX seconds, -1 when not recorded."""
    preliminary: bool


class ResultReader:
    """Reads analytes and values with the catalogue's codes and units; a value whose unit
    cannot be read is added to ``skipped`` (the builder's list) with the reason."""

    def __init__(self, catalogue: Catalogue, skipped: list[Skipped]) -> None:
        self._codes = catalogue.code_index
        self.units = UnitTable(catalogue)
        self._skipped = skipped

    def analyte(self, concept: Any) -> str | None:
        """The analyte a CodeableConcept names (by any of its codings), or None."""
        if not isinstance(concept, dict):
            return None
        for coding in concept.get("coding") or ():
            analyte = self._codes.get((coding.get("system"), coding.get("code")))
            if analyte is not None:
                return analyte
        return None

    def read(self, taken: Taken, analyte: str, element: Resource) -> LabResult:
        """One analyte's value: from ``valueQuantity`` (with its comparator), ``valueString``
        (``9.2``, ``>8.0``, ``<0.1 mmol/L``) or ``valueInteger``; its range and flag; its unit
        normalised, or kept as written (and reported) when it cannot be read."""
        quantity = element.get("valueQuantity")
        if quantity.__class__ is dict:  # the common case, read here: this path runs per result
            value = quantity.get("value")
            comparator = quantity.get("comparator")
            comparator = COMPARATORS.get(comparator) if comparator else None
            unit = quantity.get("code") if quantity.get("system") == UCUM_SYSTEM else None
            unit = unit or quantity.get("unit")
            if value.__class__ is int:
                value = float(value)
            elif value.__class__ is not float:  # absent, text or a bool: no number
                value = None
        else:
            value, comparator, unit = text_value(element)
        day, seconds, _ = taken.effective
        time = -1 if seconds is None else seconds
        flags = element.get("interpretation")
        interpretation = None if flags is None else interpretation_flag(flags)
        if value is None or self.units.presence_only(analyte):
            return LabResult(
                taken.ref, taken.patient, analyte, day, None, None, False,
                None, None, time, taken.issued, None, interpretation, taken.preliminary,
            )  # fmt: skip
        ranges = element.get("referenceRange")
        low, high, range_unit = (None, None, None) if ranges is None else reference_range(ranges)
        normal = self.units.normalise(analyte, value, unit)
        if normal is None:
            self._skipped.append(
                Skipped(
                    source=taken.ref,
                    reason=f"unit {unit!r} for {analyte} cannot be read: not counted as the test "
                    "done, never compared with a threshold (an incomplete finding names it)",
                )
            )
            return LabResult(
                taken.ref, taken.patient, analyte, day, value, unit, False,
                low, high, time, taken.issued, comparator, interpretation, taken.preliminary,
            )  # fmt: skip
        if low is not None or high is not None:
            low, high = self._normal_range(analyte, low, high, range_unit or unit)
        return LabResult(
            taken.ref, taken.patient, analyte, day, normal[0], normal[1], True,
            low, high, time, taken.issued, comparator, interpretation, taken.preliminary,
        )  # fmt: skip

    def _normal_range(
        self, analyte: str, low: float | None, high: float | None, unit: str | None
    ) -> tuple[float | None, float | None]:
        """The laboratory range in the canonical unit (none when its unit cannot be read)."""
        limits = []
        for limit in (low, high):
            normal = None if limit is None else self.units.normalise(analyte, limit, unit)
            limits.append(None if normal is None else normal[0])
        return limits[0], limits[1]
