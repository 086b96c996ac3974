"""What the page views share: the acting user as the workflow's ``Actor``, the as-of date, and
patients' names for the lists."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from flask import current_app

from hrm_fhir import clock
from hrm_fhir.programme import Actor, Role
from hrm_fhir.web.pages.session import current_user
from hrm_fhir.web.request_scope import fhir_gateway
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow.fields import contact_details
from hrm_fhir.workflow.views import PatientDetails

PATIENTS_PER_SEARCH = 50
UNKNOWN = PatientDetails(name="", nhs_number="", phone="", preferred_contact="")


def actor() -> Actor:
    user = current_user()
    return Actor(
        username=user.username,
        role=Role(user.role.value),
        display_name=user.display_name,
        practice=user.practice,
    )


def as_of() -> date:
    """Today in the service's time zone (tests pin it with ``PAGES_AS_OF``)."""
    pinned = current_app.config.get("PAGES_AS_OF")
    return pinned if isinstance(pinned, date) else clock.today()


def chase_interval_days() -> int:
    """Days between chases (``HRM_CHASE_INTERVAL_DAYS``)."""
    return service_state().settings.chase_interval_days


def patient_details(patients: Iterable[str]) -> dict[str, PatientDetails]:
    """Name, NHS number and phone of each ``Patient/<id>``, read from the FHIR server in a few
    searches; a patient the server does not return gets empty details."""
    wanted = sorted({p.removeprefix("Patient/") for p in patients})
    found: dict[str, PatientDetails] = {}
    for start in range(0, len(wanted), PATIENTS_PER_SEARCH):
        chunk = wanted[start : start + PATIENTS_PER_SEARCH]
        for resource in fhir_gateway().search("Patient", {"_id": ",".join(chunk)}).resources:
            if resource.get("resourceType") == "Patient":
                found[f"Patient/{resource['id']}"] = contact_details(resource)
    return {f"Patient/{pid}": found.get(f"Patient/{pid}", UNKNOWN) for pid in wanted}
