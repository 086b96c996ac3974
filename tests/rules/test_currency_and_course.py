"""Which products are current, where a course starts, and when an initiation-phase test is due:
each product judged on its own, as a pharmacist reads the medication record."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir.cli.main import main
from hrm_fhir.register import register_csv
from tests.builders import (
    AS_OF,
    LOINC,
    assess,
    baseline,
    bloods,
    evaluate,
    observation,
    of_kind,
    patient,
    prescription,
    repeats,
)

DAILY = {"frequency": 1, "period": 1, "periodUnit": "d"}
WEEKLY = {"frequency": 1, "period": 1, "periodUnit": "wk"}
MTX = "Methotrexate 2.5mg tablets"
LITHIUM = "1006681000000100"
INR = "6301-6"


def _ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


def _codes(found: list[Any]) -> set[str]:
    return {f.code for f in found if f.code}


# ------------------------------------------------------------------ currency per product


def test_a_later_stopped_oxycodone_does_not_hide_an_active_tramadol() -> None:
    tramadol = repeats(
        "Tramadol 50mg capsules", _ago(400), _ago(20), dosage="100mg four times a day"
    )
    oxycodone = repeats(
        "Oxycodone 20mg modified-release tablets", _ago(100), _ago(10), dosage="40mg twice a day"
    )
    oxycodone[-1]["status"] = "stopped"
    result = assess([patient(), *tramadol, *oxycodone])
    [entry] = result.register
    assert entry.drug_group == "opioid"
    assert entry.medication == f"MedicationRequest/{tramadol[-1]['id']}"
    [review] = of_kind(result.findings, "overdue", "opioid")
    assert review.medication == f"MedicationRequest/{tramadol[-1]['id']}"
    # the stopped oxycodone (40 mg twice a day = 120 mg/day OME) is not counted; tramadol is 40
    assert "opioid-ome-120-or-more" not in _codes(result.findings)


def test_an_active_request_stands_while_later_issues_are_older_than_the_look_back() -> None:
    authorisation = prescription(MTX, _ago(700), timing=WEEKLY)
    issues = [
        prescription(MTX, _ago(days), status="completed", timing=WEEKLY)
        for days in range(690, 140, -28)
    ]
    found = evaluate([patient(), authorisation, *issues, *bloods(_ago(200))])
    assert of_kind(found, "overdue", "methotrexate"), "the standing authorisation keeps it current"
    assert "active-not-issued" not in _codes(found), "issued 5 months ago: within the limit"


@pytest.mark.parametrize(("ended_days_ago", "current"), [(80, True), (100, False)])
def test_an_active_request_ends_with_its_validity_period(
    ended_days_ago: int, current: bool
) -> None:
    request = prescription(MTX, _ago(400), timing=WEEKLY, validity_end=_ago(ended_days_ago))
    result = assess([patient(), request, *bloods(_ago(200))])
    assert bool(result.register) is current
    assert bool(of_kind(result.findings, "overdue", "methotrexate")) is current


def test_an_active_request_is_superseded_by_a_later_stop_of_the_same_product_only() -> None:
    active = prescription(MTX, _ago(300), timing=WEEKLY)
    same_stopped = prescription(MTX, _ago(30), timing=WEEKLY, status="stopped")
    assert assess([patient(), active, same_stopped]).register == []
    other_stopped = prescription(
        "Methotrexate 10mg tablets", _ago(30), timing=WEEKLY, status="stopped"
    )
    [entry] = assess([patient(), active, other_stopped]).register
    assert entry.medication == f"MedicationRequest/{active['id']}"


def test_a_later_active_request_of_the_same_product_supersedes_the_earlier_one() -> None:
    old = prescription(
        "Morphine sulfate 30mg modified-release tablets", _ago(300), dosage="60mg twice daily"
    )
    new = prescription(
        "Morphine sulfate 30mg modified-release tablets", _ago(30), dosage="30mg twice daily"
    )
    found = evaluate([patient(), old, new])
    assert "opioid-ome-120-or-more" not in _codes(found), "only the newer dose (60 mg/day) counts"


# ------------------------------------------------------------------ active but not issued


@pytest.mark.parametrize(("authored_days_ago", "raised"), [(184, False), (185, True)])
def test_an_active_request_not_issued_for_six_months_is_counted_and_said(
    authored_days_ago: int, raised: bool
) -> None:
    # 2026-11-27 less 6 calendar months is 2026-05-27, 184 days back
    authored = _ago(authored_days_ago)
    warfarin = prescription("Warfarin 3mg tablets", authored, dosage="as directed by the clinic")
    found = evaluate([patient(), warfarin])
    assert of_kind(found, "overdue", "warfarin"), "monitoring still follows the request"
    hits = [f for f in found if f.code == "active-not-issued"]
    assert bool(hits) is raised
    if raised:
        [hit] = hits
        assert hit.kind.value == "prescribing"
        assert hit.severity is not None
        assert hit.severity.value == "review"
        assert f"active but not issued since {authored.isoformat()}" in hit.reason
        assert hit.evidence == (f"MedicationRequest/{warfarin['id']}",)
        assert "opensafely/pincer-measures" in hit.source
        assert hit.verified is False


def test_a_request_valid_past_the_as_of_date_is_not_reported_unissued() -> None:
    batch = prescription(
        "Warfarin 3mg tablets", _ago(300), dosage="as directed", validity_end=_ago(-60)
    )
    found = evaluate([patient(), batch])
    assert of_kind(found, "overdue", "warfarin")
    assert "active-not-issued" not in _codes(found)


def test_recent_issues_of_the_product_keep_an_old_authorisation_quiet() -> None:
    chain = [prescription("Warfarin 3mg tablets", _ago(900), dosage="as directed")]
    chain += [prescription("Warfarin 3mg tablets", _ago(d), status="completed") for d in (90, 40)]
    assert "active-not-issued" not in _codes(evaluate([patient(), *chain]))


# ------------------------------------------------------------------ course start


def _methadone_since_2016() -> list[dict[str, Any]]:
    text = "Methadone 1mg/ml oral solution sugar free"
    authorisation = prescription(text, date(2016, 3, 1), dosage="30ml once daily")
    early = [
        prescription(text, date(2016, 3, 1) + timedelta(days=d), status="completed")
        for d in range(28, 900, 28)
    ]
    recent = [prescription(text, _ago(d), status="completed") for d in (84, 56, 28)]
    return [patient(), authorisation, *early, *recent]


def test_a_long_running_active_request_is_not_cut_at_a_gap_in_issues() -> None:
    result = assess(_methadone_since_2016())
    [entry] = result.register
    assert entry.course_start == date(2016, 3, 1)
    [review] = of_kind(result.findings, "overdue", "opioid")
    assert review.due_date == date(2016, 6, 1), "the review is due 3 months into the course"
    [row] = register_csv(result.register).splitlines()[1:]
    assert row.split(",")[4:] == ["2016-03-01", "review", "2016-06-01", "", ""]


def test_an_established_methotrexate_course_is_not_treated_as_a_new_start_after_a_gap() -> None:
    authorisation = prescription(MTX, date(2016, 3, 1), timing=WEEKLY)
    early = [
        prescription(MTX, date(2016, 3, 1) + timedelta(days=d), status="completed", timing=WEEKLY)
        for d in range(28, 900, 28)
    ]
    recent = [prescription(MTX, _ago(d), status="completed", timing=WEEKLY) for d in (84, 56, 28)]
    result = assess([patient(), authorisation, *early, *recent, *bloods(_ago(40))])
    assert of_kind(result.findings, "overdue") == [], "12-weekly once established, not 2-weekly"
    [entry] = result.register
    assert entry.course_start == date(2016, 3, 1)
    assert dict(entry.next_due)["fbc"] == _ago(40) + timedelta(weeks=12)


def test_issues_more_than_six_months_apart_with_nothing_standing_start_a_new_course() -> None:
    old = [prescription(MTX, _ago(d), status="completed", timing=WEEKLY) for d in (900, 872)]
    new = prescription(MTX, _ago(20), timing=WEEKLY)
    [entry] = assess([patient(), *old, new]).register
    assert entry.course_start == _ago(20)


def test_two_strengths_taken_together_do_not_restart_the_initiation_schedule() -> None:
    text_400, text_200 = (
        "Priadel 400mg modified-release tablets",
        "Priadel 200mg modified-release tablets",
    )
    chain = repeats(text_400, _ago(700), _ago(5), dosage="400mg at night")
    chain += repeats(text_200, _ago(690), _ago(15), dosage="200mg at night")
    level = observation(LITHIUM, 0.6, "mmol/L", _ago(60))  # 2026-09-28
    [entry] = assess([patient(born="1970-01-01"), *chain, level]).register
    assert dict(entry.next_due)["lithium"] == date(2027, 3, 28), "6-monthly, not weekly"


def test_adding_a_second_strength_is_a_dose_change() -> None:
    text_400, text_200 = (
        "Priadel 400mg modified-release tablets",
        "Priadel 200mg modified-release tablets",
    )
    chain = repeats(text_400, _ago(700), _ago(5), dosage="400mg at night")
    added = _ago(10)
    chain.append(prescription(text_200, added, dosage="200mg at night"))
    level = observation(LITHIUM, 0.6, "mmol/L", _ago(60))
    [entry] = assess([patient(born="1970-01-01"), *chain, level]).register
    assert dict(entry.next_due)["lithium"] == added + timedelta(weeks=1)


# ------------------------------------------------------------------ initiation phases


def test_warfarin_started_eight_weeks_ago_with_no_inr_is_overdue_from_its_first_due_date() -> None:
    """With its baseline on record (a week before the start, the INR included), the first INR
    of the initiation schedule is due two days after the start."""
    start = _ago(56)
    chain = repeats("Warfarin 3mg tablets", start, _ago(7), every_days=7)
    result = assess([patient(), *chain, *baseline("warfarin", start - timedelta(days=7))])
    [overdue] = of_kind(result.findings, "overdue", "warfarin")
    assert overdue.due_date == start + timedelta(days=2)
    assert dict(result.register[0].next_due)["inr"] == start + timedelta(days=2)


@pytest.mark.parametrize(("inr_day", "due_after"), [(41, 7), (42, 84)])
def test_the_weekly_inr_phase_is_judged_on_the_day_of_the_last_inr(
    inr_day: int, due_after: int
) -> None:
    start = _ago(60)
    chain = repeats("Warfarin 3mg tablets", start, _ago(7), every_days=7)
    inr = observation(INR, 2.5, "{INR}", start + timedelta(days=inr_day), system=LOINC)
    [entry] = assess([patient(), *chain, inr]).register
    assert dict(entry.next_due)["inr"] == start + timedelta(days=inr_day + due_after)


def test_lithium_started_ten_weeks_ago_with_no_level_is_overdue_a_week_after_the_start() -> None:
    start = _ago(70)
    chain = repeats("Lithium carbonate 400mg modified-release tablets", start, _ago(14))
    first = baseline("lithium", start - timedelta(days=3))
    found = evaluate([patient(born="1970-01-01"), *chain, *first])
    [overdue] = of_kind(found, "overdue", "lithium")
    assert overdue.due_date == start + timedelta(weeks=1)


# ------------------------------------------------------------------ the register


def test_the_register_shows_the_real_course_start_and_first_due_dates(tmp_path: Path) -> None:
    """``evaluate --format json`` (``monitored``) and ``--format csv``, end to end."""
    warfarin_start = _ago(56)
    warfarin = repeats("Warfarin 3mg tablets", warfarin_start, _ago(7), every_days=7, pid="p2")
    first = baseline("warfarin", warfarin_start - timedelta(days=7), pid="p2")
    resources = [*_methadone_since_2016(), patient("p2"), *warfarin, *first]
    (tmp_path / "export.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    runner = CliRunner()
    args = ["evaluate", "--as-of", AS_OF.isoformat(), str(tmp_path)]
    doc = json.loads(runner.invoke(main, args, catch_exceptions=False).stdout)
    register = {line["patient"]: line for line in doc["monitored"]}
    assert register["Patient/p1"]["course_start"] == "2016-03-01"
    assert register["Patient/p1"]["next_due"] == {"review": "2016-06-01"}
    assert register["Patient/p2"]["course_start"] == warfarin_start.isoformat()
    first_inr = (warfarin_start + timedelta(days=2)).isoformat()
    assert register["Patient/p2"]["next_due"] == {"inr": first_inr}
    csv_out = runner.invoke(main, [*args, "--format", "csv"], catch_exceptions=False).stdout
    rows = {row.split(",")[0]: row.split(",")[4:] for row in csv_out.splitlines()[1:]}
    assert rows == {
        "Patient/p1": ["2016-03-01", "review", "2016-06-01", "", ""],
        "Patient/p2": [warfarin_start.isoformat(), "inr", first_inr, "", ""],
    }


def test_an_old_active_medication_statement_is_followed_and_reviewed_like_a_request() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2016-03-01"},
        "medicationCodeableConcept": {"text": "Clozapine 100mg tablets"},
    }
    result = assess([patient(), statement])
    [entry] = result.register
    assert (entry.course_start, entry.matched_by.value) == (date(2016, 3, 1), "statement")
    [review] = [f for f in result.findings if f.code == "active-not-issued"]
    assert review.matched_by.value == "statement"
    assert "active but not issued since 2016-03-01" in review.reason
