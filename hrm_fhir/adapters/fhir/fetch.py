"""What a sweep reads from the FHIR server: narrow searches, deduplicated resources.

- A full read pages through each record type in scope once (Patient, MedicationRequest and
  MedicationStatement with the Medications they reference, Observation, DiagnosticReport and
  Procedure: a medication review or a chest X-ray recorded as a procedure) and runs what the
  rules name beyond them (``record_searches``: shared-care entries and arrangement Tasks,
  Conditions coded as a finding a rule fires on, Goals in force), optionally within one practice
  (chained on the patient's general practitioner).
- An incremental sweep finds the patients whose records changed since the watermark
  (``_lastUpdated=gt``, the server's own clock minus an overlap) with one light search per
  record type and per extra search, and re-reads their records twenty patients per search
  (never a giant OR-list, integration guide C5), unless there are so many that paging the whole
  scope costs less.
- The service's own Tasks and Flags are found in bulk by its tag, and any others it needs by
  ``_id``, fifty per search: never one read per resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.values import patient_key
from hrm_fhir.programme import ARRANGEMENT_TASK_CODE
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.terminology import TAG, TASK_CODE

Resource = dict[str, Any]
PATIENTS_PER_SEARCH = 20
"""HAPI slows sharply past about 20 comma-separated references (integration guide C5)."""
CODES_PER_SEARCH = 10
"""Codes per ``code`` search of the extra searches (never one giant OR-list)."""
BATCH_SEARCH_COST = 0.5
"""What a search for twenty patients' records costs against a page of the scope, as a sweep
weighs them: measured 0.15 to 0.3 on the local sandbox with pages of 500 at 20,000 patients
(bench/README.md); counted as half, which errs towards paging with smaller pages too and with a
server far away, whose round trip adds the same to both."""
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")
"""Evidence of therapy: prescriptions, and statements of what the patient takes."""
RESULT_TYPES = ("Observation", "DiagnosticReport", "Procedure")
"""What shows a test done: results, reports, and procedures such as a medication review."""
RECORD_TYPES = ("Patient", *MEDICATION_TYPES, *RESULT_TYPES)
CHANGE_TYPES = (*RECORD_TYPES, "Medication")
"""What the change searches look at: the record types and the Medications they reference."""
Search = tuple[str, dict[str, str]]
"""A search beyond the record types: resource type and the parameters that narrow it."""
IDS_PER_SEARCH = 50
"""Ids per ``_id`` search: HAPI resolves ids directly, not through a reference join."""
OURS_TAG = f"{TAG}|hrm-fhir"
"""The tag on every resource the service writes."""
OPEN_TASK_STATUSES = "requested,received,accepted,ready,in-progress,on-hold"
"""Task statuses still being worked (not completed, cancelled, failed, rejected or in error)."""


def arrangement_searches(rules: RuleSet) -> list[Search]:
    """Searches for statements of who monitors (shared care) that the record types do not hold:
    the service's arrangement Tasks, and Condition and Flag entries when the catalogue lists
    shared-care entry codes (Observations and Procedures are read whole anyway). R4 gives Flag
    no ``code`` search parameter (HAPI answers 400), so every Flag but the service's own is
    read and its code matched locally."""
    searches: list[Search] = [
        ("Task", {"code": f"{TASK_CODE}|{ARRANGEMENT_TASK_CODE}", "_tag": OURS_TAG})
    ]
    shared = rules.catalogue.shared_care
    codes = sorted({f"{c.system}|{c.code}" for c in shared.entries}) if shared else []
    for chunk in _chunks(codes, CODES_PER_SEARCH):
        searches.append(("Condition", {"code": ",".join(chunk)}))
    if codes:
        searches.append(("Flag", {"_tag:not": OURS_TAG}))
    return searches


def finding_searches(rules: RuleSet) -> list[Search]:
    """Searches for what a rule reads outside Observations: Conditions coded as a finding a pack
    fires on (``recorded``: "lithium level high - toxic"), and Goals when a pack reads the
    patient's own target range (every one: a Goal has no search parameter for what it measures,
    and one that stops being in force must be seen to change)."""
    coded = sorted(
        {t.analyte for pack in rules.packs for t in pack.thresholds if t.op == "recorded"}
    )
    analytes = rules.catalogue.analytes
    codes = sorted({f"{c.system}|{c.code}" for a in coded for c in analytes[a].codes})
    searches: list[Search] = [
        ("Condition", {"code": ",".join(chunk)}) for chunk in _chunks(codes, CODES_PER_SEARCH)
    ]
    if any(pack.targets for pack in rules.packs):
        searches.append(("Goal", {}))
    return searches


def record_searches(rules: RuleSet) -> list[Search]:
    """Every search beyond the record types a sweep runs: shared care, coded findings, goals."""
    return [*arrangement_searches(rules), *finding_searches(rules)]


@dataclass(frozen=True)
class Scope:
    """The whole server, or the patients of one practice (Organization id)."""

    practice: str = ""

    @property
    def label(self) -> str:
        return f"Organization/{self.practice}" if self.practice else "all"

    def params(self, resource_type: str) -> dict[str, str]:
        if not self.practice or resource_type == "Medication":  # a Medication names no patient
            return {}
        org = f"Organization/{self.practice}"
        if resource_type == "Patient":
            return {"general-practitioner": org}
        return {"subject:Patient.general-practitioner": org}


@dataclass
class FetchReport:
    """What the reads returned: server time for the next watermark, and any paging shortfall."""

    server_time: str | None = None
    searches: int = 0
    resources: int = 0
    shortfalls: list[str] = field(default_factory=list)

    def note_time(self, value: str | None) -> None:
        """Keep the earliest server time seen: nothing changed after it is missed next time."""
        if value and (self.server_time is None or value < self.server_time):
            self.server_time = value


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _search(
    gateway: FHIRGateway, report: FetchReport, resource_type: str, params: dict[str, str]
) -> list[Resource]:
    result = gateway.search(resource_type, params)
    report.searches += 1
    report.note_time(result.server_time)
    if result.shortfall:
        report.shortfalls.append(
            f"{resource_type} search returned {len(result.resources)} of {result.total}"
        )
    return result.resources


def record_counts(
    gateway: FHIRGateway, scope: Scope, report: FetchReport, extra: Sequence[Search] = ()
) -> list[int]:
    """How many resources each search of a whole read of ``scope`` matches (the record types,
    then the ``extra`` searches): one ``_summary=count`` request each, no resources sent."""
    counts: list[int] = []
    for resource_type, params in _scope_searches(scope, extra):
        params = {k: v for k, v in params.items() if k != "_include"}
        first = next(
            gateway.iter_pages(resource_type, {**params, "_summary": "count", "_total": "accurate"})
        )
        report.searches += 1
        report.note_time((first.get("meta") or {}).get("lastUpdated"))
        total = first.get("total")
        counts.append(total if isinstance(total, int) else 0)
    return counts


def page_requests(counts: Iterable[int], page_size: int) -> int:
    """Requests that paging through searches matching ``counts`` resources takes (one at least
    for each, whose last page tells that there is no more)."""
    return sum(max(1, -(-total // page_size)) for total in counts)


def searches_per_group(extra: Sequence[Search]) -> int:
    """Searches that reading one group of twenty patients' records takes."""
    return len(RECORD_TYPES) + len(extra)


def batch_limit(scope_pages: int, per_group: int) -> int:
    """The most patients whose records cost less to read twenty per search (``per_group``
    searches a group) than paging through the scope once (``scope_pages`` requests)."""
    searches = int(scope_pages / BATCH_SEARCH_COST) - 1
    return max(0, searches // per_group) * PATIENTS_PER_SEARCH


def changed_patients(
    gateway: FHIRGateway,
    scope: Scope,
    report: FetchReport,
    since: str,
    *,
    known: set[str],
    is_monitored: Callable[[Resource], bool],
    limit: int,
    extra: Sequence[Search] = (),
) -> tuple[set[str], set[str]] | None:
    """Patients to re-read after a change since ``since``: the ``known`` ones (monitored, or
    with an open finding) whose record changed (any record type, or what an ``extra`` search
    finds: an arrangement Task, a coded Condition, a Goal), and anyone with a changed
    prescription or statement of a monitored drug, matched locally by code or text, or held in a
    referenced Medication (no code search can see those), or whose prescriptions or statements
    reference a Medication changed since its first version (recoded: it may name a monitored
    drug now); and ``updated``, each changed resource past its first version (``Type/id``),
    which may have moved from the patient it named before (``sweep/reads.py``). One search per
    record type, for Medications and per extra search with just the fields needed, paged; None,
    without asking for more pages, as soon as more than ``limit`` patients are found."""
    found: set[str] = set()
    updated: set[str] = set()
    searches: list[Search] = [*((kind, {}) for kind in CHANGE_TYPES), *extra]
    for resource_type, narrowing in searches:
        params = {
            **narrowing,
            "_lastUpdated": f"gt{since}",
            **scope.params(resource_type),
            "_elements": _CHANGE_ELEMENTS.get(resource_type, "subject"),
        }
        for page in gateway.iter_pages(resource_type, params):
            report.searches += 1
            report.note_time((page.get("meta") or {}).get("lastUpdated"))
            for entry in page.get("entry") or ():
                resource = entry["resource"]
                key = to_reread(resource, known, is_monitored)
                if key is not None:
                    found.add(key)
                if (resource.get("meta") or {}).get("versionId") != "1":
                    updated.add(f"{resource.get('resourceType')}/{resource.get('id')}")
            if len(found) > limit:
                return None
    recoded = sorted(ref.split("/", 1)[1] for ref in updated if ref.startswith("Medication/"))
    found |= _prescribed(gateway, scope, report, recoded)
    return None if len(found) > limit else (found, updated)


def recoded_prescribers(
    gateway: FHIRGateway, scope: Scope, report: FetchReport, since: str
) -> set[str]:
    """The patients in scope whose prescriptions or statements reference a Medication changed
    since ``since`` past its first version (recoded: it may name a monitored drug now), with
    ``changed_patients``' own searches: for a sweep whose changes came from a ``_since`` export,
    where a Medication reaches only the patients whose own prescription changed too."""
    params = {"_lastUpdated": f"gt{since}", "_elements": _CHANGE_ELEMENTS["Medication"]}
    recoded = {
        str(medication.get("id"))
        for medication in _found(gateway, [("Medication", params)], report)
        if (medication.get("meta") or {}).get("versionId") != "1"
    }
    return _prescribed(gateway, scope, report, sorted(recoded))


def _prescribed(
    gateway: FHIRGateway, scope: Scope, report: FetchReport, medications: Sequence[str]
) -> set[str]:
    """The patients in scope whose prescriptions or statements reference these Medications."""
    found = set()
    for kind in MEDICATION_TYPES:
        for group in _chunks(medications, IDS_PER_SEARCH):
            params = {
                "medication": ",".join(f"Medication/{rid}" for rid in group),
                **scope.params(kind),
                "_elements": "subject",
            }
            for resource in _found(gateway, [(kind, params)], report):
                if (key := patient_key(resource)) is not None:
                    found.add(key)
    return found


def to_reread(
    resource: Resource, known: set[str], is_monitored: Callable[[Resource], bool]
) -> str | None:
    """The patient whose record a changed resource asks to re-read, if any: a ``known`` one, or
    anyone with a prescription or statement of a monitored drug (or of a referenced Medication,
    which only the whole record shows)."""
    key = patient_key(resource)
    if key is None or key in known:
        return key
    if resource.get("resourceType") in MEDICATION_TYPES and (
        "medicationReference" in resource or is_monitored(resource)
    ):
        return key
    return None


_CHANGE_ELEMENTS = {
    "Patient": "id",
    "Medication": "id",
    **dict.fromkeys(MEDICATION_TYPES, "subject,medicationCodeableConcept,medicationReference"),
    "Task": "for",
}
"""The fields a change search asks for, per type (``subject`` for the rest)."""


def read_records(
    gateway: FHIRGateway,
    patients: Iterable[str],
    report: FetchReport,
    scope: Scope | None = None,
    extra: Sequence[Search] = (),
) -> dict[str, list[Resource]]:
    """Every resource a rule may read, per patient, newest version of each resource only
    (with what the ``extra`` searches find, e.g. ``record_searches``).

    Reads a few patients per search, or, when that would cost more (``batch_limit``: most of a
    practice), pages through each search in ``scope`` once and keeps the wanted patients' own.
    """
    wanted = sorted(set(patients))
    if scope is not None and wanted:
        pages = page_requests(record_counts(gateway, scope, report, extra), gateway.page_size)
        if len(wanted) > batch_limit(pages, searches_per_group(extra)):
            return _collect(gateway, _scope_searches(scope, extra), report, set(wanted))
    return _collect(gateway, _patient_searches(wanted, extra), report, set(wanted))


def read_rule_records(
    gateway: FHIRGateway,
    rules: RuleSet,
    patients: Iterable[str],
    report: FetchReport,
    scope: Scope | None = None,
) -> dict[str, list[Resource]]:
    """Every resource a rule can read of these patients (``read_records``): the record types
    and what the rules name beyond them (``record_searches``). The one read of patients'
    records: the sweep's re-reads, the patient card, the review queue, the API's monitoring and
    the evidence pack all call it, so each shows what the sweep evaluated (hazard H73)."""
    return read_records(gateway, patients, report, scope, extra=record_searches(rules))


def read_scope(
    gateway: FHIRGateway, scope: Scope, report: FetchReport, extra: Sequence[Search] = ()
) -> dict[str, list[Resource]]:
    """Every patient's record in scope, paging each record type once (a full reconciliation)."""
    return _collect(gateway, _scope_searches(scope, extra), report, None)


def _collect(
    gateway: FHIRGateway,
    searches: Iterable[tuple[str, dict[str, str]]],
    report: FetchReport,
    wanted: set[str] | None,
) -> dict[str, list[Resource]]:
    """Run the searches; keep the resources of ``wanted`` patients (all when None)."""
    return group_records(_found(gateway, searches, report), wanted, report)


def _found(
    gateway: FHIRGateway, searches: Iterable[tuple[str, dict[str, str]]], report: FetchReport
) -> Iterator[Resource]:
    """Every resource the searches' pages hold."""
    for resource_type, params in searches:
        for page in gateway.iter_pages(resource_type, params):
            report.searches += 1
            report.note_time((page.get("meta") or {}).get("lastUpdated"))
            for entry in page.get("entry") or ():
                resource = entry.get("resource")
                if isinstance(resource, dict):
                    yield resource


def group_records(
    resources: Iterable[Resource], wanted: set[str] | None, report: FetchReport
) -> dict[str, list[Resource]]:
    """The resources of ``wanted`` patients (all when None) per patient, newest version of
    each, with the Medications their prescriptions reference (from search pages, or from the
    files of a Bulk Data export)."""
    by_patient: dict[str, dict[tuple[str, str], Resource]] = {p: {} for p in wanted or ()}
    medications: dict[str, Resource] = {}
    for resource in resources:
        report.resources += 1
        if resource.get("resourceType") == "Medication":
            medications[f"Medication/{resource.get('id')}"] = resource
            continue
        key = patient_key(resource)
        if key is None or (wanted is not None and key not in wanted):
            continue
        _keep_newest(by_patient.setdefault(key, {}), resource)
    out: dict[str, list[Resource]] = {}
    for patient, kept in by_patient.items():
        referenced = {
            ref
            for r in kept.values()
            if (ref := (r.get("medicationReference") or {}).get("reference")) in medications
        }
        out[patient] = [*kept.values(), *(medications[ref] for ref in sorted(referenced))]
    return out


def _patient_searches(wanted: list[str], extra: Sequence[Search]) -> Iterator[Search]:
    for group in _chunks(wanted, PATIENTS_PER_SEARCH):
        subjects = ",".join(group)
        yield "Patient", {"_id": ",".join(p.split("/", 1)[1] for p in group)}
        for kind in MEDICATION_TYPES:
            yield kind, {"subject": subjects, "_include": f"{kind}:medication"}
        for kind in RESULT_TYPES:
            yield kind, {"subject": subjects}
        for kind, params in extra:
            yield kind, {**params, "subject": subjects}


def _scope_searches(scope: Scope, extra: Sequence[Search]) -> Iterator[Search]:
    yield "Patient", scope.params("Patient")
    for kind in MEDICATION_TYPES:
        yield kind, {**scope.params(kind), "_include": f"{kind}:medication"}
    for kind in RESULT_TYPES:
        yield kind, scope.params(kind)
    for kind, params in extra:
        yield kind, {**params, **scope.params(kind)}


def our_open_resources(
    gateway: FHIRGateway, scope: Scope, report: FetchReport
) -> dict[str, Resource]:
    """The service's open Tasks and all its Flags in scope (R4 has no Flag ``status`` search
    parameter), as ``Type/id`` -> resource, found in bulk by the service's tag."""
    found: dict[str, Resource] = {}
    searches: tuple[tuple[str, dict[str, str]], ...] = (
        ("Task", {"status": OPEN_TASK_STATUSES}),
        ("Flag", {}),
    )
    for resource_type, extra in searches:
        params = {"_tag": OURS_TAG, **extra, **scope.params(resource_type)}
        for resource in _search(gateway, report, resource_type, params):
            found[f"{resource_type}/{resource['id']}"] = resource
    return found


def resources_by_id(
    gateway: FHIRGateway, keys: Iterable[str], report: FetchReport
) -> dict[str, Resource]:
    """The resources named ``Type/id`` that the server holds (absent ones are left out), read
    ``IDS_PER_SEARCH`` at a time with ``_id`` searches rather than one read each."""
    by_type: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        resource_type, _, rid = key.partition("/")
        by_type.setdefault(resource_type, []).append(rid)
    found: dict[str, Resource] = {}
    for resource_type, ids in by_type.items():
        for group in _chunks(ids, IDS_PER_SEARCH):
            params = {"_id": ",".join(group)}
            for resource in _search(gateway, report, resource_type, params):
                found[f"{resource_type}/{resource['id']}"] = resource
    return found


def _keep_newest(seen: dict[tuple[str, str], Resource], resource: Resource) -> None:
    """De-duplicate on type and id, keeping the highest ``meta.versionId``."""
    key = (str(resource.get("resourceType")), str(resource.get("id")))
    current = seen.get(key)
    if current is None or _version(resource) >= _version(current):
        seen[key] = resource


def _version(resource: Resource) -> int:
    value = (resource.get("meta") or {}).get("versionId")
    return int(value) if isinstance(value, str) and value.isdigit() else 0
