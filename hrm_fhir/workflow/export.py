"""The worklist as people and tools read it: a table, CSV for batch-messaging tools, or JSON.

Names, NHS numbers and phone numbers are read from the Patient resources when the list is
printed; they are never stored or logged.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.untrusted import csv_writer, safe_cell
from hrm_fhir.workflow.fields import contact_details
from hrm_fhir.workflow.views import PatientDetails, WorklistEntry

CSV_COLUMNS = ("NHS number", "Name", "Phone", "Preferred contact", "Tests needed", "Due date")
PATIENTS_PER_SEARCH = 20
_NO_DETAILS = PatientDetails(name="", nhs_number="", phone="", preferred_contact="")


def patient_details(gateway: FHIRGateway, patients: Sequence[str]) -> dict[str, PatientDetails]:
    """Contact details of each ``Patient/<id>``, twenty patients per search."""
    out: dict[str, PatientDetails] = {}
    for start in range(0, len(patients), PATIENTS_PER_SEARCH):
        ids = [p.removeprefix("Patient/") for p in patients[start : start + PATIENTS_PER_SEARCH]]
        for found in gateway.search("Patient", {"_id": ",".join(ids)}).resources:
            out[f"Patient/{found['id']}"] = contact_details(found)
    return out


def _due(day: date | None) -> str:
    return day.isoformat() if day else ""


def to_csv(entries: Iterable[WorklistEntry], details: Mapping[str, PatientDetails]) -> str:
    """One row per patient: NHS number, name, phone, preferred contact, tests needed, due date."""
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        who = details.get(entry.patient, _NO_DETAILS)
        row = (
            who.nhs_number,
            who.name,
            who.phone,
            who.preferred_contact,
            "; ".join(entry.test_titles),
            _due(entry.due_date),
        )
        writer.writerow([safe_cell(value) for value in row])
    return buffer.getvalue()


def to_table(entries: Sequence[WorklistEntry], details: Mapping[str, PatientDetails]) -> str:
    """A fixed-width table, most pressing first, with the chase due this week marked."""
    rows = [("PRIORITY", "NAME", "NHS NUMBER", "TESTS", "DUE", "OVERDUE", "STAGE", "CHASE")]
    for entry in entries:
        who = details.get(entry.patient, _NO_DETAILS)
        chase = entry.next_chase.value if entry.next_chase else "-"
        rows.append(
            (
                entry.priority.value,
                who.name or entry.patient,
                who.nhs_number or "-",
                ", ".join(entry.test_titles),
                _due(entry.due_date) or "-",
                f"{entry.days_overdue}d" if entry.days_overdue else "-",
                entry.stage.label,
                f"{chase} (due this week)" if entry.chase_due else chase,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    if len(rows) == 1:
        lines.append("(nobody to contact)")
    return "\n".join(lines)


def to_json(
    entries: Iterable[WorklistEntry], details: Mapping[str, PatientDetails], as_of: date
) -> dict[str, Any]:
    """Every entry with the patient's contact details."""
    return {
        "as_of": as_of,
        "entries": [
            {**asdict(entry), "details": asdict(details.get(entry.patient, _NO_DETAILS))}
            for entry in entries
        ],
    }
