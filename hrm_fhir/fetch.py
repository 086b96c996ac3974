"""What a sweep reads from the FHIR server: narrow searches, deduplicated resources.

- Patients on monitored drugs are found by prescription code, a few codes per search (never one
  giant OR-list), optionally within one practice (chained on the patient's general practitioner).
- Their records are then read a few patients at a time: Patient, MedicationRequest and
  MedicationStatement (with the Medications they reference), Observation, DiagnosticReport and
  Procedure (a medication review or a chest X-ray recorded as a procedure), and what the rules
  name beyond them (``record_searches``): shared-care entries, Conditions coded as a finding a
  rule fires on, and Goals in force (target ranges).
- An incremental sweep asks what changed since the last watermark (``_lastUpdated=gt``, the
  server's own clock minus an overlap) and re-reads only those patients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.adapters.fhir_mapping import patient_key
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.terminology import TAG, TASK_CODE
from hrm_fhir.workflow.model import ARRANGEMENT_TASK_CODE

Resource = dict[str, Any]
CODES_PER_SEARCH = 10
PATIENTS_PER_SEARCH = 20
"""HAPI slows sharply past about 20 comma-separated references (integration guide C5)."""
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")
"""Evidence of therapy: prescriptions, and statements of what the patient takes."""
RESULT_TYPES = ("Observation", "DiagnosticReport", "Procedure")
"""What shows a test done: results, reports, and procedures such as a medication review."""
RECORD_TYPES = ("Patient", *MEDICATION_TYPES, *RESULT_TYPES)
Search = tuple[str, dict[str, str]]


def arrangement_searches(rules: RuleSet) -> list[Search]:
    """Searches for statements of who monitors (shared care) that the record types do not hold:
    the service's arrangement Tasks, and Condition and Flag entries when the catalogue lists
    shared-care entry codes (Observations and Procedures are read whole anyway)."""
    searches: list[Search] = [
        ("Task", {"code": f"{TASK_CODE}|{ARRANGEMENT_TASK_CODE}", "_tag": f"{TAG}|hrm-fhir"})
    ]
    shared = rules.catalogue.shared_care
    codes = sorted({f"{c.system}|{c.code}" for c in shared.entries}) if shared else []
    for chunk in _chunks(codes, CODES_PER_SEARCH):
        searches += [(kind, {"code": ",".join(chunk)}) for kind in ("Condition", "Flag")]
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


def monitored_codes(rules: RuleSet) -> list[str]:
    """``system|code`` for every medication code in the packs (any version), sorted."""
    codes = {
        f"{code.system}|{code.code}"
        for pack in rules.packs
        for ingredient in pack.ingredients
        for code in ingredient.codes
    }
    return sorted(codes)


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


def _patients(resources: Iterable[Resource]) -> set[str]:
    return {key for resource in resources if (key := patient_key(resource))}


def prescribed_patients(
    gateway: FHIRGateway, rules: RuleSet, scope: Scope, report: FetchReport, since: str | None
) -> set[str]:
    """Patients with a monitored prescription (changed since ``since`` when given)."""
    found: set[str] = set()
    for resource_type in MEDICATION_TYPES:
        for codes in _chunks(monitored_codes(rules), CODES_PER_SEARCH):
            params = {
                "code": ",".join(codes),
                "_elements": "subject",
                **scope.params(resource_type),
            }
            if since:
                params["_lastUpdated"] = f"gt{since}"
            found |= _patients(_search(gateway, report, resource_type, params))
    return found


def uncoded_candidates(
    gateway: FHIRGateway,
    scope: Scope,
    report: FetchReport,
    is_monitored: Callable[[Resource], bool],
    since: str | None,
) -> set[str]:
    """Patients whose prescriptions a code search cannot find: medication named only in text,
    or held in a referenced Medication. Pages the prescriptions in scope with just the fields
    needed and matches them locally (full reconciliation, and changes in incremental sweeps)."""
    found: set[str] = set()
    for resource_type in MEDICATION_TYPES:
        params = {
            "_elements": "subject,medicationCodeableConcept,medicationReference",
            **scope.params(resource_type),
        }
        if since:
            params["_lastUpdated"] = f"gt{since}"
        for resource in _search(gateway, report, resource_type, params):
            key = patient_key(resource)
            if key and ("medicationReference" in resource or is_monitored(resource)):
                found.add(key)
    return found


def changed_patients(
    gateway: FHIRGateway,
    scope: Scope,
    report: FetchReport,
    since: str,
    extra: Sequence[Search] = (),
) -> set[str]:
    """Patients whose record (any of the types a sweep reads, and the ``extra`` searches)
    changed since ``since``."""
    found: set[str] = set()
    searches: list[Search] = [(kind, {}) for kind in RECORD_TYPES] + list(extra)
    for resource_type, narrowing in searches:
        params = {**narrowing, "_lastUpdated": f"gt{since}", **scope.params(resource_type)}
        if resource_type != "Patient":
            params["_elements"] = "for" if resource_type == "Task" else "subject"
        found |= _patients(_search(gateway, report, resource_type, params))
    return found


def read_records(
    gateway: FHIRGateway,
    patients: Iterable[str],
    report: FetchReport,
    scope: Scope | None = None,
    extra: Sequence[Search] = (),
) -> dict[str, list[Resource]]:
    """Every resource a rule may read, per patient, newest version of each resource only
    (with what the ``extra`` searches find, e.g. ``arrangement_searches``).

    Reads a few patients per search, or, when that would take more requests (a full sweep of a
    practice), pages through each type in ``scope`` once and keeps the wanted patients' own.
    """
    wanted = sorted(set(patients))
    chunked = (4 + len(extra)) * -(-len(wanted) // PATIENTS_PER_SEARCH)
    if scope is not None and wanted and _paged_requests(gateway, scope, report) < chunked:
        searches = _scope_searches(scope, extra)
    else:
        searches = _patient_searches(wanted, extra)
    return _collect(gateway, searches, report, set(wanted))


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


def _paged_requests(gateway: FHIRGateway, scope: Scope, report: FetchReport) -> int:
    """How many page requests reading every record type in scope would take."""
    pages = 0
    for resource_type in RECORD_TYPES:
        params = {**scope.params(resource_type), "_summary": "count", "_total": "accurate"}
        first = next(gateway.iter_pages(resource_type, params))
        report.searches += 1
        total = first.get("total")
        pages += -(-total // gateway.page_size) if isinstance(total, int) and total else 1
    return pages


def our_resources(gateway: FHIRGateway, scope: Scope, report: FetchReport) -> dict[str, Resource]:
    """Every Task and Flag this service wrote in scope, as ``Type/id`` -> resource (by its tag)."""
    found: dict[str, Resource] = {}
    for resource_type in ("Task", "Flag"):
        params = {"_tag": f"{TAG}|hrm-fhir", **scope.params(resource_type)}
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
