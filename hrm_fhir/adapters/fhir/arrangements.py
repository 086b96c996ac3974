"""Statements of who monitors a drug group (shared care), read from FHIR resources, purely.

- a MedicationRequest or MedicationStatement whose prescribing organisation (UK Core, CareConnect
  or GP Connect extension, or ``category``) says it is prescribed by another organisation (or at
  the practice) is a statement about its own drug;
- an Observation, Condition, Procedure or Flag coded with one of the catalogue's shared-care
  codes is a statement about the drug it names (``focus``/``evidence`` reference, a drug-specific
  code, an ingredient name in its text) or, naming none, a generic one;
- the service's own arrangement Task (``code`` monitored-elsewhere) is the pharmacist's decision.

Scoping a statement to a drug group is the engine's job (``rules/arrangements.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

from hrm_fhir import terminology as t
from hrm_fhir.domain import Arrangement, ArrangementSource, PatientRef, ResourceRef
from hrm_fhir.programme import ARRANGEMENT_TASK_CODE
from hrm_fhir.rules.catalogue import ArrangementCode, SharedCare

Resource = dict[str, Any]
DateOf = Callable[[Any], date | None]
RECORD_ENTRY_TYPES = ("Observation", "Condition", "Procedure", "Flag")
"""The resource types whose code may say who monitors (with the catalogue's ``entries``)."""
_PRESCRIPTIONS = ("MedicationRequest", "MedicationStatement")
_VOID = frozenset({"entered-in-error", "cancelled", "draft"})
_STATEMENT_IN_FORCE = frozenset({"active", "intended"})
_RESULT_STATUSES = frozenset({"final", "amended", "corrected"})


class ArrangementReader:
    """Reads statements of who monitors from resources, with the catalogue's shared-care codes."""

    def __init__(self, shared_care: SharedCare | None) -> None:
        self._extensions = frozenset(shared_care.extensions) if shared_care else frozenset()
        self._prescribed = _by_code(shared_care.prescribed if shared_care else ())
        self._entries = _by_code(shared_care.entries if shared_care else ())

    @property
    def reads_entries(self) -> bool:
        """Whether coded entries can say anything (the catalogue lists entry codes)."""
        return bool(self._entries)

    def read(self, resource: Resource, date_of: DateOf) -> list[Arrangement]:
        """The statements one resource makes; none for anything else. Never raises on a
        malformed resource: what cannot be read says nothing."""
        kind = resource.get("resourceType")
        if kind in _PRESCRIPTIONS:
            found = self._prescription(resource, date_of)
            return [found] if found is not None else []
        if kind in RECORD_ENTRY_TYPES and self._entries:
            found = self._entry(resource, date_of)
            return [found] if found is not None else []
        if kind == "Task" and _is_arrangement_task(resource):
            return list(_workflow(resource, date_of))
        return []

    def _prescription(self, resource: Resource, date_of: DateOf) -> Arrangement | None:
        concepts = [
            ext.get("valueCodeableConcept")
            for ext in resource.get("extension") or ()
            if isinstance(ext, dict) and ext.get("url") in self._extensions
        ]
        category = resource.get("category")
        if category:
            concepts.extend(_as_list(category))
        code = _first(self._prescribed, concepts) if concepts else None
        if code is None:
            return None
        patient = _patient(resource.get("subject"))
        status = resource.get("status")
        if resource["resourceType"] == "MedicationStatement":
            void = status not in _STATEMENT_IN_FORCE
        else:
            void = status in _VOID
        if patient is None or void or not _id(resource):
            return None
        recorded = (
            date_of(resource.get("authoredOn"))
            or date_of(resource.get("dateAsserted"))
            or date_of(resource.get("effectiveDateTime"))
            or date_of((resource.get("effectivePeriod") or {}).get("start"))
        )
        if recorded is None:
            return None
        ref = ResourceRef(f"{resource['resourceType']}/{resource['id']}")
        medication = resource.get("medicationCodeableConcept")
        return Arrangement(
            ref=ref,
            patient=patient,
            elsewhere=code.elsewhere,
            recorded_on=recorded,
            source=ArrangementSource.RECORD,
            by=_display(resource.get("requester"), resource.get("informationSource")),
            groups=code.groups,
            about=(ref,),
            codings=tuple(_codings(medication)),
            text=_text(medication),
            code=f"{code.system}|{code.code}",
        )

    def _entry(self, resource: Resource, date_of: DateOf) -> Arrangement | None:
        patient = _patient(resource.get("subject"))
        if patient is None or not _id(resource) or not _entry_in_force(resource):
            return None
        code = _first(self._entries, [resource.get("code")])
        if code is None:
            return None
        recorded = _entry_date(resource, date_of)
        if recorded is None:
            return None
        kind = resource["resourceType"]
        notes = " ".join(str(n.get("text", "")) for n in _as_list(resource.get("note")))
        return Arrangement(
            ref=ResourceRef(f"{kind}/{resource['id']}"),
            patient=patient,
            elsewhere=code.elsewhere,
            recorded_on=recorded,
            source=ArrangementSource.RECORD,
            by=_entry_author(resource),
            ended_on=date_of((resource.get("period") or {}).get("end"))
            or date_of(resource.get("abatementDateTime")),
            groups=code.groups,
            about=tuple(_medication_references(resource)),
            text=f"{_text(resource.get('code'))} {notes}".lower().strip(),
            code=f"{code.system}|{code.code}",
        )


def _by_code(codes: Iterable[ArrangementCode]) -> dict[tuple[str, str], ArrangementCode]:
    return {(c.system, c.code): c for c in codes}


def _first(
    known: dict[tuple[str, str], ArrangementCode], concepts: Iterable[Any]
) -> ArrangementCode | None:
    for concept in concepts:
        for system, code in _codings(concept):
            found = known.get((system, code))
            if found is not None:
                return found
    return None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def _codings(concept: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(concept, dict):
        return
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict) and coding.get("code") is not None:
            yield str(coding.get("system", "")), str(coding["code"])


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [str(concept.get("text") or "")]
    parts += [
        str(c.get("display") or "") for c in concept.get("coding") or () if isinstance(c, dict)
    ]
    return " ".join(p for p in parts if p).lower()


def _id(resource: Resource) -> bool:
    rid = resource.get("id")
    return isinstance(rid, str) and bool(rid)


def _patient(value: Any) -> PatientRef | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    if isinstance(ref, str) and ref.startswith("Patient/") and ref.count("/") == 1:
        return PatientRef(ref)
    return None


def _display(*holders: Any) -> str:
    for holder in holders:
        if isinstance(holder, dict) and holder.get("display"):
            return str(holder["display"])
    return ""


def _entry_in_force(resource: Resource) -> bool:
    kind = resource["resourceType"]
    status = resource.get("status")
    if kind == "Observation":
        return status in _RESULT_STATUSES
    if kind == "Procedure":
        return status in ("completed", "in-progress")
    if kind == "Flag":
        return status == "active"
    clinical = {code for _, code in _codings(resource.get("clinicalStatus"))}
    verification = {code for _, code in _codings(resource.get("verificationStatus"))}
    return not (clinical & {"inactive", "resolved", "remission"}) and not (
        verification & {"entered-in-error", "refuted"}
    )


def _entry_date(resource: Resource, date_of: DateOf) -> date | None:
    for key in ("effectiveDateTime", "performedDateTime", "recordedDate", "onsetDateTime"):
        found = date_of(resource.get(key))
        if found is not None:
            return found
    for key in ("effectivePeriod", "performedPeriod", "period"):
        found = date_of((resource.get(key) or {}).get("start"))
        if found is not None:
            return found
    return date_of(resource.get("issued"))


def _entry_author(resource: Resource) -> str:
    performers = _as_list(resource.get("performer"))
    actors = [p.get("actor") if "actor" in p else p for p in performers if isinstance(p, dict)]
    return _display(*actors, resource.get("asserter"), resource.get("author"))


def _medication_references(resource: Resource) -> Iterator[ResourceRef]:
    """MedicationRequests and MedicationStatements an entry points at (Observation.focus,
    Procedure.reasonReference and usedReference, Condition.evidence.detail, flag-detail)."""
    holders: list[Any] = [*_as_list(resource.get("focus"))]
    holders += _as_list(resource.get("reasonReference")) + _as_list(resource.get("usedReference"))
    for evidence in _as_list(resource.get("evidence")):
        holders += _as_list(evidence.get("detail"))
    holders += [
        ext.get("valueReference")
        for ext in _as_list(resource.get("extension"))
        if ext.get("url") == t.FLAG_DETAIL
    ]
    for holder in holders:
        ref = holder.get("reference") if isinstance(holder, dict) else None
        if isinstance(ref, str) and ref.split("/")[0] in _PRESCRIPTIONS and ref.count("/") == 1:
            yield ResourceRef(ref)


def _is_arrangement_task(resource: Resource) -> bool:
    codes = {(s, c) for s, c in _codings(resource.get("code"))}
    tags = {
        (str(tag.get("system")), str(tag.get("code")))
        for tag in (resource.get("meta") or {}).get("tag", ())
    }
    return (t.TASK_CODE, ARRANGEMENT_TASK_CODE) in codes and (t.TAG, "hrm-fhir") in tags


def _workflow(resource: Resource, date_of: DateOf) -> Iterator[Arrangement]:
    """The pharmacist's decision: monitored elsewhere from ``restriction.period.start`` (review by
    its ``end``) until the Task is completed, then by the practice from ``executionPeriod.end``."""
    patient = _patient(resource.get("for"))
    group = next(
        (
            str(i.get("valueString"))
            for i in _as_list(resource.get("input"))
            if ("drug-group" in {c for _, c in _codings(i.get("type"))})
        ),
        None,
    )
    status = resource.get("status")
    if (
        patient is None
        or group is None
        or not _id(resource)
        or status not in ("on-hold", "completed")
    ):
        return
    ref = ResourceRef(f"Task/{resource['id']}")
    period = resource.get("restriction", {}).get("period") or {}
    since = date_of(period.get("start"))
    ended = (
        date_of((resource.get("executionPeriod") or {}).get("end"))
        if status == "completed"
        else None
    )
    code = f"{t.TASK_CODE}|{ARRANGEMENT_TASK_CODE}"
    workflow = ArrangementSource.WORKFLOW
    if since is not None:
        yield Arrangement(
            ref,
            patient,
            elsewhere=True,
            recorded_on=since,
            source=workflow,
            by=_display(resource.get("owner")),
            review_on=date_of(period.get("end")),
            ended_on=ended,
            groups=(group,),
            code=code,
        )
    if ended is not None:
        yield Arrangement(ref, patient, False, ended, workflow, groups=(group,), code=code)
