"""Translate parsed FHIR R4 resources (plain dicts) into domain records, purely.

Each resource either becomes a domain object, is ignored because it is out of scope (an
unmonitored analyte, a preliminary result), or is skipped with a reason a person can act on.
Dates are read as Europe/London calendar dates; a partial date takes its first day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from hrm_fhir.adapters.arrangements import ArrangementReader
from hrm_fhir.adapters.dosage import parse_dosage
from hrm_fhir.domain import (
    Dosage,
    LabResult,
    Patient,
    PatientRecord,
    PatientRef,
    Prescription,
    ResourceRef,
    Skipped,
)
from hrm_fhir.rules.model import Catalogue
from hrm_fhir.rules.strength import Strength, first_strength, single_strength
from hrm_fhir.rules.therapy import MedicationIndex
from hrm_fhir.rules.units import UnitTable

LONDON = ZoneInfo("Europe/London")
RESULT_STATUSES = frozenset({"final", "amended", "corrected"})
STATEMENT_STATUSES = {
    "active": "active",
    "completed": "stopped",
    "stopped": "stopped",
    "on-hold": "on-hold",
    "intended": "draft",
    "not-taken": "cancelled",
    "entered-in-error": "entered-in-error",
    "unknown": "unknown",
}
"""MedicationStatement status -> the request status whose currency it has (docs/design.md)."""
_MEDICATION_KINDS = ("MedicationRequest", "MedicationStatement")
_MASS_TO_MG = {
    "mg": 1.0,
    "g": 1000.0,
    "microgram": 0.001,
    "micrograms": 0.001,
    "mcg": 0.001,
    "ug": 0.001,
}

Resource = dict[str, Any]
_UNPARSED = date.min
ARRANGEMENT_TYPES = frozenset(
    {
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Condition",
        "Procedure",
        "Flag",
        "Task",
    }
)
"""Resources that may say who monitors a drug group (adapters/arrangements.py)."""
_PRESCRIPTIONS_AND_DECISIONS = frozenset({"MedicationRequest", "MedicationStatement", "Task"})


@dataclass(frozen=True, slots=True)
class _Product:
    codings: tuple[tuple[str, str], ...]
    text: str
    strength: float | None
    strength_unit: str | None
    relevant: bool = True


class MappingError(ValueError):
    """A resource is malformed in a way that stops it being used."""


def parse_date(value: Any) -> date | None:
    """A FHIR date/dateTime/instant as a Europe/London calendar date; None if absent or bad."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        if len(value) == 4:
            return date(int(value), 1, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1)
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(LONDON).date()


def _reference(value: Any, kind: str) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith(kind) and ref.count("/") == 1 and ref[len(kind)] == "/":
        return ref
    ref = ref.split("/_history/")[0]
    parts = ref.rsplit("/", 2)
    if len(parts) >= 2 and parts[-2] == kind:
        return f"{kind}/{parts[-1]}"
    if ref.startswith("urn:uuid:"):
        return f"{kind}/{ref[9:]}"
    return None


def patient_key(resource: Resource) -> str | None:
    """The ``Patient/<id>`` a resource belongs to, if it says."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        rid = resource.get("id")
        return f"Patient/{rid}" if isinstance(rid, str) and rid else None
    return _reference(resource.get("subject") or resource.get("for"), "Patient")


def _codings(concept: Any) -> list[tuple[str, str, str]]:
    if not isinstance(concept, dict):
        return []
    out = []
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code") is not None:
            out.append(
                (str(coding.get("system", "")), str(coding["code"]), str(coding.get("display", "")))
            )
    return out


def _concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [str(concept.get("text") or "")]
    parts.extend(display for _, _, display in _codings(concept))
    return " ".join(p for p in parts if p).lower()


def product_strength(text: str) -> Strength | None:
    """Unit strength from text: ``10mg`` -> (10, mg); ``25 micrograms/hour`` -> (25, ug/h)."""
    return first_strength(text)


class RecordBuilder:
    """Collect resources (in any order) into one PatientRecord per patient."""

    def __init__(self, catalogue: Catalogue, medicines: MedicationIndex | None = None) -> None:
        """With ``medicines``, prescriptions of products no rule can use (e.g. statins) are
        dropped as they are read (it is asked once per product) and a product's strength is
        that of its monitored ingredient; without, a combination product's strength is unknown."""
        self._medicines = medicines
        self._arrangements = ArrangementReader(catalogue.shared_care)
        self._statement_types = (
            ARRANGEMENT_TYPES if self._arrangements.reads_entries else _PRESCRIPTIONS_AND_DECISIONS
        )
        """Types that can say who monitors: coded entries only when the catalogue lists codes."""
        self._codes = catalogue.code_index
        self._units = UnitTable(catalogue)
        self.medications: dict[str, Resource] = {}
        """Medication resources read so far, by reference (``Medication/<id>``)."""
        self._products: dict[bytes, _Product] = {}
        self._dosages: dict[bytes, Dosage] = {}
        self._dates: dict[str, date | None] = {}
        self._pending: list[tuple[str, Resource]] = []
        self.records: dict[PatientRef, PatientRecord] = {}
        self.skipped: list[Skipped] = []
        self.unrecognised: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        """Medication entries whose product ``is_relevant`` rejected, by (text, codings)."""

    def add(self, origin: str, resource: Resource) -> None:
        """Map one resource; malformed ones are recorded in ``skipped`` and never raise."""
        kind = resource.get("resourceType")
        try:
            if kind in self._statement_types:
                self._arrangement(resource)
            if kind == "Observation":
                self._observation(resource)
            elif kind in _MEDICATION_KINDS:
                if "medicationReference" in resource:
                    self._pending.append((origin, resource))
                else:
                    self._prescription(resource)
            elif kind == "Patient":
                self._patient(resource)
            elif kind == "Medication":
                if isinstance(resource.get("id"), str):
                    self.medications[f"Medication/{resource['id']}"] = resource
            elif kind == "DiagnosticReport":
                self._diagnostic_report(resource)
        except MappingError as exc:
            self.skipped.append(Skipped(source=_label(origin, resource), reason=str(exc)))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            self.skipped.append(
                Skipped(source=_label(origin, resource), reason=f"malformed {kind}: {exc}")
            )

    def finish(self) -> dict[PatientRef, PatientRecord]:
        """Map MedicationRequests and MedicationStatements that reference a Medication (every
        Medication is known now) and return the records."""
        for origin, resource in self._pending:
            try:
                self._prescription(resource)
            except MappingError as exc:
                self.skipped.append(Skipped(source=_label(origin, resource), reason=str(exc)))
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                self.skipped.append(
                    Skipped(
                        source=_label(origin, resource),
                        reason=f"malformed {resource.get('resourceType')}: {exc}",
                    )
                )
        self._pending.clear()
        return self.records

    def take(self) -> dict[PatientRef, PatientRecord]:
        """The records built so far; whatever is mapped after this starts new records."""
        records, self.records = self.records, {}
        return records

    def _record(self, patient: PatientRef) -> PatientRecord:
        record = self.records.get(patient)
        if record is None:
            record = self.records[patient] = PatientRecord(None)
        return record

    def _arrangement(self, resource: Resource) -> None:
        """Statements of who monitors a drug group (shared care) the resource makes."""
        for statement in self._arrangements.read(resource, self._date):
            self._record(statement.patient).arrangements.append(statement)

    def _patient(self, resource: Resource) -> None:
        rid = _require_id(resource)
        deceased_on = self._date(resource.get("deceasedDateTime"))
        deceased = bool(resource.get("deceasedBoolean")) or deceased_on is not None
        practice = None
        for gp in resource.get("generalPractitioner") or []:
            practice = _reference(gp, "Organization") or practice
        practice = _reference(resource.get("managingOrganization"), "Organization") or practice
        gender = resource.get("gender")
        patient = Patient(  # positional: keywords cost twice as much on this path
            PatientRef(f"Patient/{rid}"),
            self._date(resource.get("birthDate")),
            gender if gender in ("male", "female") else None,
            deceased,
            deceased_on,
            practice,
        )
        self._record(patient.ref).patient = patient

    def _date(self, value: Any) -> date | None:
        """``parse_date``, remembered: an export repeats the same dates and times many times."""
        if not isinstance(value, str):
            return None
        day = self._dates.get(value, _UNPARSED)
        if day is _UNPARSED:
            day = self._dates[value] = parse_date(value)
        return day

    def _observation(self, resource: Resource, subject: str | None = None) -> None:
        if resource.get("status") not in RESULT_STATUSES:
            return
        analyte = self._analyte(resource.get("code"))
        components = resource.get("component") or []
        if analyte is None and not components:
            return
        rid = _require_id(resource)
        patient = _reference(resource.get("subject"), "Patient") or subject
        if patient is None:
            raise MappingError("Observation has no Patient subject")
        effective = (
            self._date(resource.get("effectiveDateTime"))
            or self._date((resource.get("effectivePeriod") or {}).get("start"))
            or self._date(resource.get("effectiveInstant"))
            or self._date(resource.get("issued"))
        )
        if effective is None:
            raise MappingError("Observation has no usable effective date or issued time")
        ref = ResourceRef(f"Observation/{rid}")
        results = self._record(PatientRef(patient)).results
        if analyte is not None:
            results.append(self._result(ref, PatientRef(patient), analyte, effective, resource))
        for component in components:
            part = self._analyte(component.get("code"))
            if part is not None:
                results.append(self._result(ref, PatientRef(patient), part, effective, component))

    def _analyte(self, concept: Any) -> str | None:
        if not isinstance(concept, dict):
            return None
        for coding in concept.get("coding") or ():
            analyte = self._codes.get((coding.get("system"), coding.get("code")))
            if analyte is not None:
                return analyte
        return None

    def _result(
        self,
        ref: ResourceRef,
        patient: PatientRef,
        analyte: str,
        effective: date,
        element: Resource,
    ) -> LabResult:
        quantity = element.get("valueQuantity")
        low = high = None
        for rng in element.get("referenceRange") or ():
            low = _number((rng.get("low") or {}).get("value"))
            high = _number((rng.get("high") or {}).get("value"))
            break
        if not isinstance(quantity, dict) or _number(quantity.get("value")) is None:
            return LabResult(ref, patient, analyte, effective, None, None, False, low, high)
        value = float(quantity["value"])
        unit = (
            quantity.get("code") if quantity.get("system") == "http://unitsofmeasure.org" else None
        )
        unit = unit or quantity.get("unit")
        normal = self._units.normalise(analyte, value, unit)
        if normal is None:
            self.skipped.append(
                Skipped(
                    source=ref,
                    reason=f"unit {unit!r} for {analyte} cannot be normalised: counted as done, "
                    "never compared with a threshold",
                )
            )
            return LabResult(ref, patient, analyte, effective, value, unit, False, low, high)
        return LabResult(ref, patient, analyte, effective, normal[0], normal[1], True, low, high)

    def _diagnostic_report(self, resource: Resource) -> None:
        subject = _reference(resource.get("subject"), "Patient")
        for contained in resource.get("contained") or ():
            if isinstance(contained, dict) and contained.get("resourceType") == "Observation":
                contained = {**contained, "id": f"{resource.get('id')}-{contained.get('id')}"}
                if "effectiveDateTime" not in contained and "effectivePeriod" not in contained:
                    contained["effectiveDateTime"] = resource.get("effectiveDateTime")
                    contained.setdefault("issued", resource.get("issued"))
                self._observation(contained, subject)

    def _prescription(self, resource: Resource) -> None:
        """A MedicationRequest, or a MedicationStatement read as one (status, dates, dosage)."""
        kind = str(resource.get("resourceType"))
        rid = _require_id(resource)
        patient = _reference(resource.get("subject"), "Patient")
        if patient is None:
            raise MappingError(f"{kind} has no Patient subject")
        if kind == "MedicationStatement":
            status, intent, authored, validity_end, dosage_field = self._statement(resource)
        else:
            validity = (resource.get("dispenseRequest") or {}).get("validityPeriod") or {}
            status = str(resource.get("status") or "unknown")
            intent = str(resource.get("intent") or "order")
            written = self._date(resource.get("authoredOn")) or self._date(validity.get("start"))
            if written is None:
                raise MappingError("MedicationRequest has no authoredOn date")
            authored = written
            validity_end = self._date(validity.get("end"))
            dosage_field = resource.get("dosageInstruction")
        concept, medication_ref, medication = self._medication(resource)
        product = self._product(concept, medication)
        if not product.codings and not product.text.strip():
            raise MappingError(f"{kind} names no medication (no code, no text)")
        dosage = self._dosage(dosage_field)
        if not product.relevant:
            self.unrecognised[(product.text, product.codings)] += 1
            return
        prescription = Prescription(  # positional: keywords cost twice as much on this path
            ResourceRef(f"{kind}/{rid}"),
            PatientRef(patient),
            status,
            intent,
            authored,
            product.codings,
            product.text,
            product.strength,
            product.strength_unit,
            dosage,
            validity_end,
            ResourceRef(medication_ref) if medication_ref else None,
        )
        self._record(prescription.patient).prescriptions.append(prescription)

    def _statement(self, resource: Resource) -> tuple[str, str, date, date | None, Any]:
        """Status, intent, start, end and dosage of a MedicationStatement: it starts when its
        effective time does (else when it was asserted) and, when active, runs to the end of
        its effectivePeriod; see STATEMENT_STATUSES for what each status counts as."""
        period = resource.get("effectivePeriod") or {}
        start = (
            self._date(resource.get("effectiveDateTime"))
            or self._date(period.get("start"))
            or self._date(resource.get("dateAsserted"))
        )
        if start is None:
            raise MappingError("MedicationStatement has no effective date nor dateAsserted")
        status = STATEMENT_STATUSES.get(str(resource.get("status")), "unknown")
        return status, "order", start, self._date(period.get("end")), resource.get("dosage")

    def _product(self, concept: Any, medication: Resource | None) -> _Product:
        """Codes, text and strength of a product; repeat issues share one cached reading."""
        key = orjson.dumps(medication if medication is not None else concept)
        product = self._products.get(key)
        if product is None:
            codings = _codings(concept)
            text = _concept_text(concept)
            if medication is not None:
                for ingredient in medication.get("ingredient") or ():
                    item = ingredient.get("itemCodeableConcept")
                    codings.extend(_codings(item))
                    text = f"{text} {_concept_text(item)}"
            product = _Product(
                tuple((system, code) for system, code, _ in codings), text, None, None
            )
            strength = self._strength(product, medication)
            product = replace(
                product,
                strength=strength[0] if strength else None,
                strength_unit=strength[1] if strength else None,
                relevant=self._medicines is None or self._medicines.is_relevant(product),
            )
            self._products[key] = product
        return product

    def _strength(self, product: _Product, medication: Resource | None) -> Strength | None:
        """The monitored ingredient's strength: from the Medication's ingredient of that name
        when it gives one, else from the product's name."""
        if self._medicines is None:
            return _medication_strength(medication, None) or single_strength(product.text)
        match = self._medicines.match(product)
        if match is None:
            return None

        def is_monitored(item: Any) -> bool:
            assert self._medicines is not None  # noqa: S101 - checked above
            found = self._medicines.match(
                _Product(_coding_pairs(item), _concept_text(item), None, None)
            )
            return found is not None and found.ingredient == match.ingredient

        return _medication_strength(medication, is_monitored) or match.strength

    def _dosage(self, instructions: Any) -> Dosage:
        key = orjson.dumps(instructions)
        dosage = self._dosages.get(key)
        if dosage is None:
            dosage = self._dosages[key] = parse_dosage(instructions)
        return dosage

    def _medication(self, resource: Resource) -> tuple[Any, str | None, Resource | None]:
        concept = resource.get("medicationCodeableConcept")
        if concept is not None:
            return concept, None, None
        ref = (resource.get("medicationReference") or {}).get("reference")
        if not isinstance(ref, str):
            raise MappingError(
                f"{resource.get('resourceType')} has neither medicationCodeableConcept "
                "nor medicationReference"
            )
        if ref.startswith("#"):
            for contained in resource.get("contained") or ():
                if contained.get("resourceType") == "Medication" and contained.get("id") == ref[1:]:
                    return contained.get("code"), None, contained
            raise MappingError(
                f"{resource.get('resourceType')} references contained {ref} that is not there"
            )
        key = _reference({"reference": ref}, "Medication")
        medication = self.medications.get(key or "")
        if medication is None:
            raise MappingError(
                f"{resource.get('resourceType')} references {ref}, which is not in the input"
            )
        return medication.get("code"), key, medication


def _coding_pairs(concept: Any) -> tuple[tuple[str, str], ...]:
    return tuple((system, code) for system, code, _ in _codings(concept))


def _medication_strength(
    medication: Resource | None, is_monitored: Callable[[Any], bool] | None
) -> Strength | None:
    """The strength of the monitored ingredient of a Medication (of its only ingredient when
    ``is_monitored`` is None)."""
    if medication is None:
        return None
    ingredients = medication.get("ingredient") or ()
    if is_monitored is None and len(ingredients) != 1:
        return None
    for ingredient in ingredients:
        if is_monitored is not None and not is_monitored(ingredient.get("itemCodeableConcept")):
            continue
        ratio = ingredient.get("strength") or {}
        numerator = ratio.get("numerator") or {}
        denominator = ratio.get("denominator") or {}
        value = _number(numerator.get("value"))
        unit = str(numerator.get("code") or numerator.get("unit") or "").lower()
        per = str(denominator.get("code") or denominator.get("unit") or "").lower()
        if value is None or unit not in _MASS_TO_MG:
            continue
        if per in ("h", "hour", "hr"):
            return value * _MASS_TO_MG[unit] * 1000, "ug/h"
        return value * _MASS_TO_MG[unit], "mg"
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _require_id(resource: Resource) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise MappingError(f"{resource.get('resourceType')} has no id")
    return rid


def _label(origin: str, resource: Resource) -> str:
    rid = resource.get("id")
    kind = resource.get("resourceType", "resource")
    return f"{kind}/{rid} ({origin})" if isinstance(rid, str) else f"{kind} at {origin}"
