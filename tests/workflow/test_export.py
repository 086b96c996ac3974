"""The worklist's CSV and table, from entries built here (no server)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from hrm_fhir.programme import ChaseStep, Priority, Stage
from hrm_fhir.untrusted import safe_cell
from hrm_fhir.workflow.export import to_csv, to_table
from hrm_fhir.workflow.service import PatientDetails, WorklistEntry


def _entry(patient: str) -> WorklistEntry:
    return WorklistEntry(
        patient=patient,
        practice="Organization/org-1",
        tasks=[],
        tests=["fbc", "lft"],
        test_titles=["Full blood count", "Liver function tests"],
        drug_groups=["methotrexate"],
        due_date=date(2026, 11, 1),
        days_overdue=26,
        stage=Stage.INVITED,
        chase_due=True,
        next_chase=ChaseStep.REMIND,
        contacts=[],
        priority=Priority.OVERDUE,
        out_of_range=False,
    )


def test_csv_rows_are_safe_to_open_in_a_spreadsheet() -> None:
    details = {
        "Patient/a": PatientDetails("=HYPERLINK(1)", "9990001112", "+44 7700 900123", "sms"),
        "Patient/b": PatientDetails("-2+3", "", "", ""),
    }
    text = to_csv([_entry("Patient/a"), _entry("Patient/b"), _entry("Patient/c")], details)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == [
        "9990001112",
        "'=HYPERLINK(1)",
        "+44 7700 900123",
        "sms",
        "Full blood count; Liver function tests",
        "2026-11-01",
    ]
    assert rows[2][1] == "'-2+3"
    assert rows[3][:4] == ["", "", "", ""], "a patient the server no longer has still gets a row"


def test_the_table_marks_chases_due_this_week() -> None:
    details = {"Patient/a": PatientDetails("Ada Example", "9990001112", "", "")}
    lines = to_table([_entry("Patient/a")], details).splitlines()
    assert lines[0].split() == [
        "PRIORITY",
        "NAME",
        "NHS",
        "NUMBER",
        "TESTS",
        "DUE",
        "OVERDUE",
        "STAGE",
        "CHASE",
    ]
    assert "Ada Example" in lines[1]
    assert lines[1].endswith("remind (due this week)")
    assert "26d" in lines[1]
    assert to_table([], {}).splitlines()[1] == "(nobody to contact)"


@pytest.mark.parametrize(
    "cell",
    [" =HYPERLINK(1)", "   +1+1", "\u00a0@SUM(A1)", "  -2+3", " \tx", "\r=1", "\t=1"],
)
def test_a_formula_after_leading_spaces_is_neutralised(cell: str) -> None:
    """Issue 11: the worklist CSV let a formula through when it began with a space."""
    details = {"Patient/a": PatientDetails(cell, "9990001112", cell, "sms")}
    rows = list(csv.reader(io.StringIO(to_csv([_entry("Patient/a")], details), newline="")))
    assert len(rows) == 2, "a line break in a cell never splits its row"
    assert rows[1][1] == f"'{cell}"
    assert rows[1][2] == f"'{cell}"


@pytest.mark.parametrize("cell", [" +44 7700 900123", "-12", "Ada = Example", "x+1"])
def test_phone_numbers_and_plain_text_are_kept(cell: str) -> None:
    assert safe_cell(cell) == cell
