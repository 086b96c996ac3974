"""Monitored elsewhere (shared care): read from the record or the pharmacist's decision, it stops
the practice's routine monitoring for that drug group, keeps the patient on the register, still
raises out-of-range results, and asks for the results when none reach the practice."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.mapping import RecordBuilder
from hrm_fhir.domain import ArrangementSource, Finding, MatchMethod, RegisterEntry
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet
from tests.builders import (
    AS_OF,
    PRACTICE_CODES,
    SNOMED,
    observation,
    patient,
    repeats,
    rules,
    rules_with_shared_care_entries,
)
from tests.builders import done as _done

UKCORE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationPrescribingOrganizationType"
UKCORE_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-MedicationPrescribingOrganizationType"
GPC = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescribingAgency-1"
GPC_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescribingAgency-1"
START = AS_OF - timedelta(days=3 * 365)
LITHIUM_LEVEL = "1006681000000100"


WITH_ENTRIES = rules_with_shared_care_entries()


def _assess(
    resources: list[dict[str, Any]], rule_set: RuleSet | None = None, as_of: date = AS_OF
) -> tuple[list[Finding], list[RegisterEntry]]:
    rule_set = rule_set or rules()
    builder = RecordBuilder(rule_set.catalogue, rule_set.medicines())
    for resource in resources:
        builder.add("test", resource)
    evaluator = Evaluator.create(rule_set, as_of)
    findings: list[Finding] = []
    register: list[RegisterEntry] = []
    for _, record in sorted(builder.finish().items()):
        assessment = evaluator.assess(record)
        findings += assessment.findings
        register += assessment.register
    return findings, register


def _hospital(request: dict[str, Any], url: str = UKCORE, system: str = UKCORE_SYSTEM) -> None:
    request["extension"] = [
        {
            "url": url,
            "valueCodeableConcept": {
                "coding": [{"system": system, "code": "prescribed-by-another-organisation"}]
            },
        }
    ]
    request["requester"] = {"display": "Oakfield CMHT"}


def _lithium(last_level: date | None = None, value: float = 0.6) -> list[dict[str, Any]]:
    out = [
        patient(born="1970-01-01"),
        *repeats("lithium carbonate 400mg modified-release tablets", START, AS_OF - timedelta(7)),
    ]
    if last_level is not None:
        out.append(observation(LITHIUM_LEVEL, value, "mmol/L", last_level))
    return out


def _kinds(findings: list[Finding], group: str) -> set[str]:
    return {f.kind.value for f in findings if f.drug_group == group}


def test_a_hospital_prescribed_drug_is_monitored_elsewhere_not_overdue() -> None:
    resources = _lithium(AS_OF - timedelta(days=60))
    _hospital(resources[-2])
    findings, [entry] = _assess(resources)
    assert _kinds(findings, "lithium").isdisjoint({"due", "overdue"})
    assert entry.monitored_elsewhere is not None
    assert entry.monitored_elsewhere.by == "Oakfield CMHT"
    assert entry.monitored_elsewhere.source is ArrangementSource.RECORD
    assert entry.next_due, "the register still says what the schedule asks for"
    assert entry.to_json()["monitored_elsewhere"]["by"] == "Oakfield CMHT"  # type: ignore[index]


def test_the_practice_monitors_when_the_record_says_nothing() -> None:
    findings, [entry] = _assess(_lithium(AS_OF - timedelta(days=400)))
    assert "overdue" in _kinds(findings, "lithium")
    assert entry.monitored_elsewhere is None
    assert entry.to_json()["monitored_elsewhere"] is None


@pytest.mark.parametrize(
    ("url", "system"),
    [
        (UKCORE, UKCORE_SYSTEM),
        (GPC, GPC_SYSTEM),
        (
            "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-MedicationPrescribingAgency-1",
            "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-MedicationPrescribingAgency-1",
        ),
    ],
)
def test_every_known_prescribing_organisation_extension_is_read(url: str, system: str) -> None:
    resources = _lithium(AS_OF - timedelta(days=400))
    _hospital(resources[-2], url, system)
    findings, [entry] = _assess(resources)
    assert entry.monitored_elsewhere is not None
    assert "overdue" not in _kinds(findings, "lithium")


def test_a_prescription_by_another_organisation_category_is_read() -> None:
    resources = _lithium(AS_OF - timedelta(days=60))
    resources[-2]["category"] = [{"coding": [{"system": SNOMED, "code": "394828003"}]}]
    [entry] = _assess(resources)[1]
    assert entry.monitored_elsewhere is not None
    assert entry.monitored_elsewhere.by == "another organisation"


def test_prescribed_at_the_practice_says_who_prescribes_not_who_monitors() -> None:
    resources = _lithium(AS_OF - timedelta(days=400))
    resources[-2]["extension"] = [
        {
            "url": UKCORE,
            "valueCodeableConcept": {
                "coding": [{"system": UKCORE_SYSTEM, "code": "prescribed-at-gp-practice"}]
            },
        }
    ]
    findings, [entry] = _assess(resources)
    assert entry.monitored_elsewhere is None
    assert "overdue" in _kinds(findings, "lithium")


def test_a_hospital_prescription_no_longer_current_stops_speaking_for_the_drug() -> None:
    """The hospital item was issued long ago; the practice prescribes now."""
    resources = _lithium(AS_OF - timedelta(days=400))
    old = resources[1]
    _hospital(old)
    [entry] = _assess(resources)[1]
    assert entry.monitored_elsewhere is None


def _hospital_statement(**period: str) -> dict[str, Any]:
    """Clozapine as the GP record often holds a hospital-only drug: a MedicationStatement."""
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": "clozapine",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": START.isoformat(), **period},
        "medicationCodeableConcept": {"text": "Clozapine 100mg tablets"},
    }
    _hospital(statement)
    del statement["requester"]
    statement["informationSource"] = {"display": "Oakfield CMHT"}
    return statement


def test_a_hospital_medication_statement_alone_is_therapy_monitored_elsewhere() -> None:
    """A statement is evidence of therapy (matched_by statement); prescribed by another
    organisation, it also says who monitors: on the register, no routine monitoring."""
    findings, [entry] = _assess([patient(born="1970-01-01"), _hospital_statement()])
    assert (entry.drug_group, entry.matched_by) == ("antipsychotic", MatchMethod.STATEMENT)
    assert entry.monitored_elsewhere is not None
    assert entry.monitored_elsewhere.by == "Oakfield CMHT"
    assert _kinds(findings, "antipsychotic").isdisjoint({"due", "overdue"})


def test_a_hospital_statement_whose_period_ended_no_longer_speaks_for_the_drug() -> None:
    """The hospital's supply ended; the practice prescribes the same drug now and monitors it."""
    ended = _hospital_statement(end=(AS_OF - timedelta(days=400)).isoformat())
    practice = repeats("Clozapine 100mg tablets", AS_OF - timedelta(days=390), AS_OF)
    findings, [entry] = _assess([patient(born="1970-01-01"), ended, *practice])
    assert entry.monitored_elsewhere is None
    assert "overdue" in _kinds(findings, "antipsychotic")
    findings, [entry] = _assess([patient(born="1970-01-01"), _hospital_statement(), *practice])
    assert entry.monitored_elsewhere is not None, "while the statement stands, it speaks"


def test_out_of_range_results_that_reach_the_practice_are_still_raised() -> None:
    resources = _lithium(AS_OF - timedelta(days=5), value=1.6)
    _hospital(resources[-2])
    findings, [entry] = _assess(resources)
    assert entry.monitored_elsewhere is not None
    [urgent] = [f for f in findings if f.kind.value == "out_of_range"]
    assert urgent.severity is not None
    assert urgent.severity.value == "urgent"


def test_no_result_reaching_the_practice_past_the_tolerance_asks_for_the_results() -> None:
    """Nigel's surgery 84: if the practice does not do the testing, it must see the results
    before issuing. The lithium level's tolerance is 3 months (PINCER MO_P17)."""
    level = rules().get("lithium").schedules[0]
    tolerance, interval = level.severely_overdue, level.phases[-1].interval
    assert tolerance is not None
    assert interval is not None
    # Past a 3-month tolerance, but only asked for once the 6-monthly level is overdue.
    edge = min(tolerance.after.before(AS_OF), interval.before(AS_OF) - timedelta(days=1))

    def asked(last: date) -> list[Finding]:
        resources = _lithium(last)
        _hospital(resources[-2])
        resources += _done(("renal", "tft", "calcium", "weight"), AS_OF - timedelta(days=30))
        findings = _assess(resources)[0]
        return [f for f in findings if f.code == "shared-care-results-not-seen"]

    [finding] = asked(edge)
    assert finding.kind.value == "prescribing"
    assert finding.severity is not None
    assert finding.severity.value == "review"
    assert "Oakfield CMHT" in finding.reason
    assert "Serum lithium" in finding.reason
    assert finding.source.startswith("https://www.cqc.org.uk/")
    assert asked(edge + timedelta(days=1)) == []


def _arrangement_task(
    *,
    status: str = "on-hold",
    start: date | None = AS_OF - timedelta(days=30),
    review: date | None = AS_OF + timedelta(days=180),
    ended: str | None = None,
    group: str = "lithium",
    by: str = "Oakfield CMHT",
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": f"arr-{group}",
        "meta": {"tag": [{"system": t.TAG, "code": "hrm-fhir"}]},
        "status": status,
        "intent": "plan",
        "code": {"coding": [{"system": t.TASK_CODE, "code": "monitored-elsewhere"}]},
        "for": {"reference": "Patient/p1"},
        "owner": {"display": by},
        "input": [
            {
                "type": {"coding": [{"system": t.TASK_INPUT, "code": "drug-group"}]},
                "valueString": group,
            }
        ],
    }
    period = {}
    if start is not None:
        period["start"] = start.isoformat()
    if review is not None:
        period["end"] = review.isoformat()
    if period:
        task["restriction"] = {"period": period}
    if ended is not None:
        task["executionPeriod"] = {"end": ended}
    return task


def test_the_pharmacists_decision_stops_routine_monitoring_until_its_review_date() -> None:
    findings, [entry] = _assess([*_lithium(AS_OF - timedelta(days=400)), _arrangement_task()])
    assert "overdue" not in _kinds(findings, "lithium")
    assert entry.monitored_elsewhere is not None
    assert entry.monitored_elsewhere.source is ArrangementSource.WORKFLOW
    assert entry.monitored_elsewhere.review_on == AS_OF + timedelta(days=180)
    assert not entry.monitored_elsewhere.lapsed


@pytest.mark.parametrize(("review_in_days", "lapsed"), [(0, False), (-1, True)])
def test_a_passed_review_date_returns_the_group_to_practice_monitoring(
    review_in_days: int, lapsed: bool
) -> None:
    task = _arrangement_task(review=AS_OF + timedelta(days=review_in_days))
    findings, [entry] = _assess([*_lithium(AS_OF - timedelta(days=400)), task])
    assert entry.monitored_elsewhere is not None
    assert entry.monitored_elsewhere.lapsed is lapsed
    assert ("overdue" in _kinds(findings, "lithium")) is lapsed


def test_the_decision_applies_only_to_its_drug_group() -> None:
    resources = [
        *_lithium(AS_OF - timedelta(days=400)),
        *repeats("warfarin 1mg tablets", START, AS_OF - timedelta(days=7)),
        _arrangement_task(group="warfarin"),
    ]
    findings, register = _assess(resources)
    assert "overdue" in _kinds(findings, "lithium")
    held = {e.drug_group: e.monitored_elsewhere for e in register}
    assert held["lithium"] is None
    assert held["warfarin"] is not None


def test_a_task_not_written_by_the_service_is_not_a_decision() -> None:
    task = _arrangement_task()
    task["meta"] = {}
    findings = _assess([*_lithium(AS_OF - timedelta(days=400)), task])[0]
    assert "overdue" in _kinds(findings, "lithium")


def _entry(
    code: str,
    on: date,
    *,
    kind: str = "Observation",
    text: str = "",
    **extra: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resourceType": kind,
        "id": f"{kind.lower()}-{code}-{on.isoformat()}",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": PRACTICE_CODES, "code": code}], "text": text},
    }
    if kind == "Observation":
        entry.update(status="final", effectiveDateTime=on.isoformat())
    elif kind == "Condition":
        entry["recordedDate"] = on.isoformat()
    elif kind == "Procedure":
        entry.update(status="completed", performedDateTime=on.isoformat())
    else:
        entry.update(status="active", period={"start": on.isoformat()})
    entry.update(extra)
    return entry


def _groups_elsewhere(resources: list[dict[str, Any]], as_of: date = AS_OF) -> set[str]:
    register = _assess(resources, WITH_ENTRIES, as_of)[1]
    return {e.drug_group for e in register if e.monitored_elsewhere is not None}


def _on_lithium_and_doac() -> list[dict[str, Any]]:
    return [
        *_lithium(AS_OF - timedelta(days=400)),
        *repeats("apixaban 5mg tablets", START, AS_OF - timedelta(days=7)),
    ]


@pytest.mark.parametrize("kind", ["Observation", "Condition", "Procedure", "Flag"])
def test_a_generic_coded_entry_applies_to_the_usual_shared_care_groups(kind: str) -> None:
    """It names no drug: lithium (often monitored by a mental health team) is monitored
    elsewhere; the DOAC, not in the catalogue's generic groups, stays with the practice."""
    entry = _entry("shared-care", AS_OF - timedelta(days=10), kind=kind)
    assert _groups_elsewhere([*_on_lithium_and_doac(), entry]) == {"lithium"}


def test_an_entry_naming_a_drug_in_its_text_applies_to_that_drug_only() -> None:
    entry = _entry("shared-care", AS_OF - timedelta(days=10), text="Shared care: apixaban")
    assert _groups_elsewhere([*_on_lithium_and_doac(), entry]) == {"doac"}


def test_an_entry_about_a_prescription_applies_to_its_drug() -> None:
    resources = _on_lithium_and_doac()
    doac = next(r for r in resources if "apixaban" in str(r.get("medicationCodeableConcept")))
    entry = _entry(
        "shared-care",
        AS_OF - timedelta(days=10),
        focus=[{"reference": f"MedicationRequest/{doac['id']}"}],
    )
    assert _groups_elsewhere([*resources, entry]) == {"doac"}


def test_a_drug_specific_code_applies_to_its_group() -> None:
    entry = _entry("lithium-by-cmht", AS_OF - timedelta(days=10))
    assert _groups_elsewhere([*_on_lithium_and_doac(), entry]) == {"lithium"}


@pytest.mark.parametrize(
    "ended",
    [
        {"kind": "Condition", "clinicalStatus": {"coding": [{"code": "resolved"}]}},
        {"kind": "Condition", "abatementDateTime": (AS_OF - timedelta(days=1)).isoformat()},
        {"kind": "Flag", "status": "inactive"},
        {"kind": "Observation", "status": "entered-in-error"},
        {"kind": "Procedure", "status": "not-done"},
    ],
)
def test_an_ended_or_void_entry_says_nothing(ended: dict[str, Any]) -> None:
    entry = _entry("shared-care", AS_OF - timedelta(days=10), **ended)
    assert _groups_elsewhere([*_on_lithium_and_doac(), entry]) == set()


def test_a_statement_counts_only_from_its_date() -> None:
    day = AS_OF + timedelta(days=20)
    entry = _entry("shared-care", day)
    assert _groups_elsewhere([*_on_lithium_and_doac(), entry], day - timedelta(days=1)) == set()
    assert _groups_elsewhere([*_on_lithium_and_doac(), entry], day) == {"lithium"}


def test_the_latest_statement_wins_and_the_pharmacist_can_take_monitoring_back() -> None:
    """A generic code from last year said shared care; the pharmacist ended it last month, so
    the practice monitors; a newer coded entry would say otherwise again."""
    generic = _entry("shared-care", AS_OF - timedelta(days=365))
    ended = _arrangement_task(
        status="completed", start=None, review=None, ended=(AS_OF - timedelta(30)).isoformat()
    )
    assert _groups_elsewhere([*_on_lithium_and_doac(), generic, ended]) == set()
    newer = _entry("shared-care", AS_OF - timedelta(days=5))
    assert _groups_elsewhere([*_on_lithium_and_doac(), generic, ended, newer]) == {"lithium"}
    here = _entry("monitored-here", AS_OF - timedelta(days=2))
    assert _groups_elsewhere([*_on_lithium_and_doac(), newer, here]) == set()


def test_on_the_same_day_the_pharmacists_decision_wins_over_the_record() -> None:
    day = AS_OF - timedelta(days=3)
    generic = _entry("shared-care", day)
    ended = _arrangement_task(status="completed", start=None, review=None, ended=day.isoformat())
    assert _groups_elsewhere([*_on_lithium_and_doac(), generic, ended]) == set()


def test_unreadable_statements_are_ignored_without_a_crash() -> None:
    broken = [
        {"resourceType": "Observation", "id": "x", "subject": "Patient/p1", "code": 7},
        {"resourceType": "Task", "code": {"coding": "no"}, "for": {"reference": "Patient/p1"}},
        {"resourceType": "MedicationStatement", "id": "s", "status": "active"},
        _entry("shared-care", AS_OF, kind="Procedure", performedDateTime="not a date"),
    ]
    assert _groups_elsewhere([*_on_lithium_and_doac(), *broken]) == set()
