"""What a sweep reads from the FHIR server: narrow searches, deduplicated resources.

- A full read pages through each record type in scope once (Patient, MedicationRequest with
  the Medications they reference, Observation, DiagnosticReport), optionally within one
  practice (chained on the patient's general practitioner).
- An incremental sweep finds the patients whose records changed since the watermark
  (``_lastUpdated=gt``, the server's own clock minus an overlap) with one light search per
  record type, and re-reads their records twenty patients per search (never a giant OR-list,
  integration guide C5), unless there are so many that paging the whole scope costs less.
- The service's own Tasks and Flags are found in bulk by its tag, and any others it needs by
  ``_id``, fifty per search: never one read per resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.adapters.fhir_mapping import patient_key
from hrm_fhir.terminology import TAG

Resource = dict[str, Any]
PATIENTS_PER_SEARCH = 20
"""HAPI slows sharply past about 20 comma-separated references (integration guide C5)."""
BATCH_SEARCH_COST = 0.5
"""What a search for twenty patients' records costs against a page of the scope, as a sweep
weighs them: measured 0.15 to 0.3 on the local sandbox with pages of 500 at 20,000 patients
(bench/README.md); counted as half, which errs towards paging with smaller pages too and with a
server far away, whose round trip adds the same to both."""
RECORD_TYPES = ("Patient", "MedicationRequest", "Observation", "DiagnosticReport")
IDS_PER_SEARCH = 50
"""Ids per ``_id`` search: HAPI resolves ids directly, not through a reference join."""
OURS_TAG = f"{TAG}|hrm-fhir"
"""The tag on every resource the service writes."""
OPEN_TASK_STATUSES = "requested,received,accepted,ready,in-progress,on-hold"
"""Task statuses still being worked (not completed, cancelled, failed, rejected or in error)."""


@dataclass(frozen=True)
class Scope:
    """The whole server, or the patients of one practice (Organization id)."""

    practice: str = ""

    @property
    def label(self) -> str:
        return f"Organization/{self.practice}" if self.practice else "all"

    def params(self, resource_type: str) -> dict[str, str]:
        if not self.practice:
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
    gateway: FHIRGateway, scope: Scope, report: FetchReport, since: str | None = None
) -> dict[str, int]:
    """How many resources of each record type are in scope (changed since ``since`` when
    given): one ``_summary=count`` request per type, no resources transferred."""
    counts: dict[str, int] = {}
    for resource_type in RECORD_TYPES:
        params = {**scope.params(resource_type), "_summary": "count", "_total": "accurate"}
        if since:
            params["_lastUpdated"] = f"gt{since}"
        first = next(gateway.iter_pages(resource_type, params))
        report.searches += 1
        report.note_time((first.get("meta") or {}).get("lastUpdated"))
        total = first.get("total")
        counts[resource_type] = total if isinstance(total, int) else 0
    return counts


def changed_patients(
    gateway: FHIRGateway,
    scope: Scope,
    report: FetchReport,
    since: str,
    *,
    known: set[str],
    is_monitored: Callable[[Resource], bool],
    limit: int,
) -> set[str] | None:
    """Patients to re-read after a change since ``since``: the ``known`` ones (monitored, or
    with an open finding) whose record changed, and anyone with a changed prescription of a
    monitored drug, matched locally by code or text, or held in a referenced Medication (no
    code search can see those). One search per record type with just the fields needed, paged;
    None, without asking for more pages, as soon as more than ``limit`` patients are found."""
    found: set[str] = set()
    for resource_type in RECORD_TYPES:
        params = {"_lastUpdated": f"gt{since}", **scope.params(resource_type)}
        params["_elements"] = _CHANGE_ELEMENTS[resource_type]
        for page in gateway.iter_pages(resource_type, params):
            report.searches += 1
            report.note_time((page.get("meta") or {}).get("lastUpdated"))
            for entry in page.get("entry") or ():
                resource = entry["resource"]
                key = patient_key(resource)
                if key is not None and (
                    key in known
                    or (
                        resource_type == "MedicationRequest"
                        and ("medicationReference" in resource or is_monitored(resource))
                    )
                ):
                    found.add(key)
            if len(found) > limit:
                return None
    return found


def batch_limit(scope_pages: int) -> int:
    """The most patients whose records cost less to read twenty per search (four searches a
    group) than paging through the scope once (``scope_pages`` requests)."""
    searches = int(scope_pages / BATCH_SEARCH_COST) - 1
    return max(0, searches // len(RECORD_TYPES)) * PATIENTS_PER_SEARCH


_CHANGE_ELEMENTS = {
    "Patient": "id",
    "MedicationRequest": "subject,medicationCodeableConcept,medicationReference",
    "Observation": "subject",
    "DiagnosticReport": "subject",
}


def read_records(
    gateway: FHIRGateway,
    patients: Iterable[str],
    report: FetchReport,
    scope: Scope | None = None,
) -> dict[str, list[Resource]]:
    """Every resource a rule may read, per patient, newest version of each resource only.

    Reads a few patients per search, or, when that would cost more (``batch_limit``: most of a
    practice), pages through each type in ``scope`` once and keeps the wanted patients' own.
    """
    wanted = sorted(set(patients))
    if scope is not None and wanted:
        pages = page_requests(record_counts(gateway, scope, report), gateway.page_size)
        if len(wanted) > batch_limit(pages):
            return _collect(gateway, _scope_searches(scope), report, set(wanted))
    return _collect(gateway, _patient_searches(wanted), report, set(wanted))


def page_requests(counts: Mapping[str, int], page_size: int) -> int:
    """Requests that paging through the resources counted per type takes (one at least for
    each type, whose last page tells that there is no more)."""
    return sum(max(1, -(-total // page_size)) for total in counts.values())


def read_scope(
    gateway: FHIRGateway, scope: Scope, report: FetchReport
) -> dict[str, list[Resource]]:
    """Every patient's record in scope, paging each record type once (a full reconciliation)."""
    return _collect(gateway, _scope_searches(scope), report, None)


def _collect(
    gateway: FHIRGateway,
    searches: Iterable[tuple[str, dict[str, str]]],
    report: FetchReport,
    wanted: set[str] | None,
) -> dict[str, list[Resource]]:
    """Run the searches; keep the resources of ``wanted`` patients (all when None), newest
    version of each, with the Medications their prescriptions reference."""
    by_patient: dict[str, dict[tuple[str, str], Resource]] = {p: {} for p in wanted or ()}
    medications: dict[str, Resource] = {}
    for resource_type, params in searches:
        for page in gateway.iter_pages(resource_type, params):
            report.searches += 1
            report.note_time((page.get("meta") or {}).get("lastUpdated"))
            for entry in page.get("entry") or ():
                resource = entry.get("resource")
                if not isinstance(resource, dict):
                    continue
                report.resources += 1
                if resource.get("resourceType") == "Medication":
                    medications[f"Medication/{resource.get('id')}"] = resource
                    continue
                key = patient_key(resource)
                if key is None or (wanted is not None and key not in wanted):
                    continue
                _keep_newest(by_patient.setdefault(key, {}), resource)
    out: dict[str, list[Resource]] = {}
    for patient, resources in by_patient.items():
        referenced = {
            ref
            for r in resources.values()
            if (ref := (r.get("medicationReference") or {}).get("reference")) in medications
        }
        out[patient] = [*resources.values(), *(medications[ref] for ref in sorted(referenced))]
    return out


def _patient_searches(wanted: list[str]) -> Iterator[tuple[str, dict[str, str]]]:
    for group in _chunks(wanted, PATIENTS_PER_SEARCH):
        subjects = ",".join(group)
        yield "Patient", {"_id": ",".join(p.split("/", 1)[1] for p in group)}
        yield "MedicationRequest", {"subject": subjects, "_include": "MedicationRequest:medication"}
        yield "Observation", {"subject": subjects}
        yield "DiagnosticReport", {"subject": subjects}


def _scope_searches(scope: Scope) -> Iterator[tuple[str, dict[str, str]]]:
    yield "Patient", scope.params("Patient")
    yield (
        "MedicationRequest",
        {**scope.params("MedicationRequest"), "_include": "MedicationRequest:medication"},
    )
    yield "Observation", scope.params("Observation")
    yield "DiagnosticReport", scope.params("DiagnosticReport")


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
