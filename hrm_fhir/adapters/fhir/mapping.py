"""Translate parsed FHIR R4 resources (plain dicts) into domain records, purely.

Each resource either becomes a domain object, is ignored because it is out of scope (an
unmonitored analyte, a product no rule uses), or is skipped with a reason a person can act on.
Dates are read as calendar dates in the service's time zone (``clock.py``); a partial date takes
its first day.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from hrm_fhir.adapters.fhir.arrangements import ArrangementReader
from hrm_fhir.adapters.fhir.lab_values import ResultReader, Taken
from hrm_fhir.adapters.fhir.products import ProductReader
from hrm_fhir.adapters.fhir.values import (
    Moment,
    first_code,
    goal_limits,
    parse_date,
    parse_moment,
    reference,
)
from hrm_fhir.domain import (
    LabResult,
    Patient,
    PatientRecord,
    PatientRef,
    Prescription,
    RecordedTarget,
    ResourceRef,
    Skipped,
)
from hrm_fhir.rules.catalogue import Catalogue
from hrm_fhir.rules.therapy import MedicationIndex

RESULT_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
"""Observation statuses whose values are read (``preliminary`` only for thresholds)."""
_NO_RESULT = {
    "cancelled": "cancelled",
    "entered-in-error": "entered in error",
    "registered": "registered, no result yet",
}
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
_NOT_CONFIRMED = frozenset({"refuted", "entered-in-error"})
"""Condition verification statuses that say the finding is not the patient's."""
_NOT_CURRENT = frozenset({"inactive", "resolved", "remission"})
"""Condition clinical statuses that say the episode is over."""
_GOALS_IN_FORCE = frozenset({"active", "accepted", "on-hold"})

Resource = dict[str, Any]
_UNPARSED: Moment = (date.min, None, None)
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


class MappingError(ValueError):
    """A resource is malformed in a way that stops it being used."""


class RecordBuilder:
    """Collect resources (in any order) into one PatientRecord per patient."""

    def __init__(self, catalogue: Catalogue, medicines: MedicationIndex | None = None) -> None:
        """With ``medicines``, prescriptions of products no rule can use (e.g. statins) are
        dropped as they are read (it is asked once per product) and a product's strength is
        that of its monitored ingredient; without, a combination product's strength is unknown."""
        self._arrangements = ArrangementReader(catalogue.shared_care)
        self._statement_types = (
            ARRANGEMENT_TYPES if self._arrangements.reads_entries else _PRESCRIPTIONS_AND_DECISIONS
        )
        """Types that can say who monitors: coded entries only when the catalogue lists codes."""
        self.medications: dict[str, Resource] = {}
        """Medication resources read so far, by reference (``Medication/<id>``)."""
        self._products = ProductReader(medicines)
        self._moments: dict[str, Moment | None] = {}
        self._dates: dict[str, date | None] = {}
        self._subjects: dict[str, str | None] = {}
        self._pending: list[tuple[str, Resource]] = []
        self.records: dict[PatientRef, PatientRecord] = {}
        self.skipped: list[Skipped] = []
        results = ResultReader(catalogue, self.skipped)
        self._units = results.units
        self._analyte = results.analyte
        self._result = results.read
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
            elif kind == "Procedure":
                self._procedure(resource)
            elif kind == "Condition":
                self._condition(resource)
            elif kind == "Goal":
                self._goal(resource)
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
            # positional, with its lists: half the cost of the defaults' factories
            record = self.records[patient] = PatientRecord(None, [], [], [], [])
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
            practice = reference(gp, "Organization") or practice
        practice = reference(resource.get("managingOrganization"), "Organization") or practice
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

    def _subject(self, value: Any) -> str | None:
        """The ``Patient/<id>`` a subject reference names (``reference``), remembered per
        reference: every resource of a patient names the same one."""
        ref = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(ref, str):
            return None
        patient = self._subjects.get(ref, "")
        if patient == "":
            patient = self._subjects[ref] = reference(value, "Patient")
        return patient

    def _moment(self, value: Any) -> Moment | None:
        """``parse_moment``, remembered: an export repeats the same dates and times many times."""
        if not isinstance(value, str):
            return None
        moment = self._moments.get(value, _UNPARSED)
        if moment is _UNPARSED:
            moment = self._moments[value] = parse_moment(value)
        return moment

    def _date(self, value: Any) -> date | None:
        """``parse_date``, remembered (requests and patients need no time of day)."""
        if not isinstance(value, str):
            return None
        day = self._dates.get(value, date.min)
        if day is date.min:
            day = self._dates[value] = parse_date(value)
        return day

    def _observation(self, resource: Resource, subject: str | None = None) -> None:
        analyte = self._analyte(resource.get("code"))
        components = resource.get("component") or []
        if analyte is None and not components:
            return
        status = resource.get("status")
        if status not in RESULT_STATUSES:
            if analyte is None and not any(self._analyte(c.get("code")) for c in components):
                return
            why = _NO_RESULT.get(str(status), f"status {status!r} is not a result")
            raise MappingError(f"Observation {why}: not used")
        rid = _require_id(resource)
        patient = self._subject(resource.get("subject")) or subject
        if patient is None:
            raise MappingError("Observation has no Patient subject")
        issued = self._moment(resource["issued"]) if "issued" in resource else None
        effective = (
            self._moment(resource.get("effectiveDateTime"))
            or self._moment((resource.get("effectivePeriod") or {}).get("start"))
            or self._moment(resource.get("effectiveInstant"))
            or issued
        )
        if effective is None:
            raise MappingError("Observation has no usable effective date or issued time")
        taken = Taken(
            ResourceRef(f"Observation/{rid}"),
            PatientRef(patient),
            effective,
            -1 if issued is None or issued[2] is None else issued[2],
            status == "preliminary",
        )
        results = self._record(taken.patient).results
        if analyte is not None:
            results.append(self._result(taken, analyte, resource))
        for component in components:
            part = self._analyte(component.get("code"))
            if part is not None:
                results.append(self._result(taken, part, component))

    def _procedure(self, resource: Resource) -> None:
        """A completed Procedure whose code shows a test done that has no value to read (a
        structured medication review, a chest X-ray): read like a panel code. Procedures of
        other codes are out of scope; one not completed is skipped with its status."""
        analyte = self._analyte(resource.get("code"))
        if analyte is None or not self._units.presence_only(analyte):
            return
        status = resource.get("status")
        if status != "completed":
            raise MappingError(f"Procedure with status {status!r} is not a completed one: not used")
        period = resource.get("performedPeriod") or {}
        moments = (resource.get("performedDateTime"), period.get("start"))
        self._without_value(
            resource, analyte, moments, "usable performedDateTime or performedPeriod"
        )

    def _diagnostic_report(self, resource: Resource) -> None:
        subject = self._subject(resource.get("subject"))
        for contained in resource.get("contained") or ():
            if isinstance(contained, dict) and contained.get("resourceType") == "Observation":
                contained = {**contained, "id": f"{resource.get('id')}-{contained.get('id')}"}
                if "effectiveDateTime" not in contained and "effectivePeriod" not in contained:
                    contained["effectiveDateTime"] = resource.get("effectiveDateTime")
                    contained.setdefault("issued", resource.get("issued"))
                self._observation(contained, subject)

    def _condition(self, resource: Resource) -> None:
        """A Condition coded as a finding a rule reads (``lithium level high - toxic``): a
        result with no value, dated by its onset (else when it was recorded). A refuted,
        erroneous, resolved or inactive one is skipped with the reason."""
        analyte = self._analyte(resource.get("code"))
        if analyte is None:
            return
        for element, unused in (
            ("verificationStatus", _NOT_CONFIRMED),
            ("clinicalStatus", _NOT_CURRENT),
        ):
            status = first_code(resource.get(element))
            if status in unused:
                raise MappingError(f"Condition {element} {status!r}: not used")
        onset = resource.get("onsetPeriod") or {}
        moments = (resource.get("onsetDateTime"), onset.get("start"), resource.get("recordedDate"))
        self._without_value(resource, analyte, moments, "onset or recorded date")

    def _without_value(
        self, resource: Resource, analyte: str, moments: tuple[Any, ...], dated_by: str
    ) -> None:
        """A record of ``analyte`` with no value to read (a Procedure done, a Condition coded as a
        finding), dated by the first of ``moments`` that can be read; none is skipped, saying
        what it lacks (``dated_by``)."""
        kind = resource["resourceType"]
        rid = _require_id(resource)
        patient = self._subject(resource.get("subject"))
        if patient is None:
            raise MappingError(f"{kind} has no Patient subject")
        moment = next((m for value in moments if (m := self._moment(value)) is not None), None)
        if moment is None:
            raise MappingError(f"{kind} has no {dated_by}")
        day, seconds, _ = moment
        record = LabResult(
            ResourceRef(f"{kind}/{rid}"),
            PatientRef(patient),
            analyte,
            day,
            value=None,
            unit=None,
            normalised=False,
            time=-1 if seconds is None else seconds,
        )
        self._record(record.patient).results.append(record)

    def _goal(self, resource: Resource) -> None:
        """A Goal whose target measures an analyte (INR) is the patient's own target range:
        ``detailRange``, or ``detailQuantity`` (one value, widened by the pack). Only a goal in
        force (``active``, ``accepted``, ``on-hold``) counts; another is skipped with its status."""
        for target in resource.get("target") or ():
            if not isinstance(target, dict):
                continue
            analyte = self._analyte(target.get("measure"))
            if analyte is None:
                continue
            status = resource.get("lifecycleStatus")
            if status not in _GOALS_IN_FORCE:
                raise MappingError(f"Goal lifecycleStatus {status!r}: not used as a target")
            limits = goal_limits(target)
            if limits is None:
                raise MappingError("Goal target has no detailRange low and high")
            patient = self._subject(resource.get("subject"))
            if patient is None:
                raise MappingError("Goal has no Patient subject")
            recorded = self._date(resource.get("startDate")) or self._date(
                resource.get("statusDate")
            )
            self._record(PatientRef(patient)).targets.append(
                RecordedTarget(
                    ResourceRef(f"Goal/{_require_id(resource)}"),
                    PatientRef(patient),
                    analyte,
                    limits[0],
                    limits[1],
                    recorded,
                )
            )
            return

    def _prescription(self, resource: Resource) -> None:
        """A MedicationRequest, or a MedicationStatement read as one (status, dates, dosage)."""
        kind = str(resource.get("resourceType"))
        rid = _require_id(resource)
        patient = self._subject(resource.get("subject"))
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
            validity_end = self._date(validity.get("end")) if validity else None
            dosage_field = resource.get("dosageInstruction")
        concept, medication_ref, medication = self._medication(resource)
        product = self._products.product(concept, medication)
        if not product.codings and not product.text.strip():
            raise MappingError(f"{kind} names no medication (no code, no text)")
        dosage = self._products.dosage(dosage_field)
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
        key = reference({"reference": ref}, "Medication")
        medication = self.medications.get(key or "")
        if medication is None:
            raise MappingError(
                f"{resource.get('resourceType')} references {ref}, which is not in the input"
            )
        return medication.get("code"), key, medication


def _require_id(resource: Resource) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise MappingError(f"{resource.get('resourceType')} has no id")
    return rid


def _label(origin: str, resource: Resource) -> str:
    rid = resource.get("id")
    kind = resource.get("resourceType", "resource")
    return f"{kind}/{rid} ({origin})" if isinstance(rid, str) else f"{kind} at {origin}"
