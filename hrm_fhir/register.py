"""The register of an evaluation run as CSV: who is on which monitored drug, what is next due."""

from __future__ import annotations

import io
from collections.abc import Iterable

from hrm_fhir.domain import RegisterEntry
from hrm_fhir.untrusted import csv_writer, safe_cell

COLUMNS = (
    "patient",
    "drug_group",
    "medication",
    "matched_by",
    "course_start",
    "test",
    "next_due",
    "monitored_elsewhere_by",
    "review_on",
)


def register_csv(entries: Iterable[RegisterEntry]) -> str:
    """One row per patient, drug group and test (one row with no test when nothing is
    scheduled, e.g. sulfasalazine after its first stable year); a group another organisation
    monitors names them and the review date (empty when the practice monitors)."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(COLUMNS)
    for entry in entries:
        line = (
            entry.patient,
            entry.drug_group,
            entry.medication,
            entry.matched_by.value,
            entry.course_start.isoformat(),
        )
        held = entry.monitored_elsewhere
        review = held.review_on.isoformat() if held and held.review_on else ""
        for test, due in entry.next_due or (("", None),):
            row = (*line, test, due.isoformat() if due else "", held.by if held else "", review)
            writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
