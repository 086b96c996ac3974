"""UCUM unit normalisation for the analytes in scope, driven by the catalogue's conversions."""

from __future__ import annotations

from hrm_fhir.rules.catalogue import Catalogue


def unit_key(unit: str) -> str:
    """Fold the spellings labs use (case, spaces, micro sign) onto one key."""
    return unit.strip().replace("\u00b5", "u").replace("\u03bc", "u").replace(" ", "").lower()


class UnitTable:
    """Per-analyte lookup from a recorded unit to its canonical unit."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._table: dict[str, dict[str, tuple[float, float]]] = {}
        for analyte in catalogue.analytes.values():
            entries = {unit_key(analyte.unit): (1.0, 0.0)}
            for conv in analyte.conversions:
                entries[unit_key(conv.unit)] = (conv.factor, conv.offset)
            self._table[analyte.id] = entries
        self._canonical = {a.id: a.unit for a in catalogue.analytes.values()}
        self._keys: dict[str, str] = {}
        """``unit_key`` of each spelling met, remembered."""

    def presence_only(self, analyte: str) -> bool:
        """Whether a result of the analyte shows only that the test was done (canonical unit
        ``1``: a panel, a procedure, a TPMT activity in any unit): its value is not read."""
        return self._canonical[analyte] == "1"

    def normalise(self, analyte: str, value: float, unit: str | None) -> tuple[float, str] | None:
        """(value, canonical unit), or None when the unit cannot be normalised.

        A missing unit is accepted only for dimensionless analytes (canonical unit ``1`` or
        ``{...}``), e.g. an INR recorded without a unit.
        """
        canonical = self._canonical[analyte]
        if unit is None or not unit.strip():
            if canonical == "1" or canonical.startswith("{"):
                return value, canonical
            return None
        key = self._keys.get(unit)
        if key is None:
            key = self._keys[unit] = unit_key(unit)
        found = self._table[analyte].get(key)
        if found is None:
            return None
        factor, offset = found
        return round((value + offset) * factor, 6), canonical
