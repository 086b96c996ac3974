"""Issue 10, schedule side: each item built from the monitoring reference's own words (quoted).

Baselines at initiation, thyroid function after stopping amiodarone, methotrexate with leflunomide,
the lithium 3-monthly triggers, the antipsychotic annual check, depots, and the DOAC weight,
review and CrCl. Generated boundaries (both sides) are in ``test_rule_boundaries.py``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.evaluate import Evaluator
from tests.builders import (
    AS_OF,
    LOINC,
    SNOMED,
    assess,
    baseline,
    done,
    evaluate,
    observation,
    of_kind,
    patient,
    prescription,
    reader,
    records,
    repeats,
    rules,
)

CALCIUM, TSH, WEIGHT, CREAT = "1000691000000101", "1022791000000101", "27113001", "1000731000000107"
SMR, MED_REVIEW = "1239511000000100", "314530002"


def _ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


def _monitoring(found: list[Any], group: str) -> list[Any]:
    return of_kind(found, "overdue", group) + of_kind(found, "due", group)


def _next_due(resources: list[dict[str, Any]], group: str) -> dict[str, date]:
    [entry] = [e for e in assess(resources).register if e.drug_group == group]
    return dict(entry.next_due)


def _stopped(text: str, start: date, last: date, **kw: Any) -> list[dict[str, Any]]:
    """Issues from ``start`` to ``last``, all completed: nothing issued since ``last``."""
    chain = repeats(text, start, last, **kw)
    for request in chain:
        request["status"] = "completed"
    return chain


def _procedure(code: str, on: date, status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"proc-{code}-{on}-{status}",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "performedDateTime": on.isoformat(),
        **extra,
    }


# ------------------------------------------------------------------ baselines at initiation


def test_a_new_methotrexate_start_is_overdue_for_the_sps_baseline_from_its_start() -> None:
    """Reference 2.2: "Methotrexate Baseline [V SPS]: albumin, BP, weight, height, chest X-ray
    or lung assessment, FBC, LFT, creatinine/eGFR, hepatitis B/C and HIV serology". With only
    the bloods on record before the start, the rest is overdue since the start; the bloods'
    own first routine test is two weeks on."""
    start = _ago(10)
    chain = repeats("Methotrexate 2.5mg tablets", start, start, dosage="10mg once weekly")
    found = evaluate([patient(), *chain, *done(("fbc", "lft", "renal"), start - timedelta(5))])
    [overdue] = of_kind(found, "overdue", "methotrexate")
    assert overdue.due_date == start
    missing = {"bp", "weight", "height", "chest_xray", "hepatitis_b", "hepatitis_c", "hiv"}
    assert missing <= set(overdue.tests)
    assert "Chest X-ray (no result on record; due " in overdue.reason
    assert "baseline at the start of the course" in overdue.reason
    due = _next_due([patient(), *chain, *done(("fbc",), start - timedelta(5))], "methotrexate")
    assert due["fbc"] == start + timedelta(weeks=2)


def test_someone_on_methotrexate_for_ten_years_gets_no_baseline_task() -> None:
    """Decision [D] (docs/design.md): a course is a new start for its first 3 months; no
    baseline is asked of a patient on therapy for ten years with no baseline on record."""
    chain = repeats("Methotrexate 2.5mg tablets", _ago(3650), _ago(7), dosage="10mg weekly")
    found = evaluate([patient(), *chain, *done(("fbc", "lft", "renal"), _ago(20))])
    assert _monitoring(found, "methotrexate") == []


def test_a_tpmt_on_record_from_years_ago_is_the_azathioprine_baseline() -> None:
    """Reference 2.2: "Azathioprine: Baseline TPMT [V SPS]"; TPMT is not repeated, so any
    result on record counts; with none, a new start is overdue for it."""
    start = _ago(20)
    chain = repeats("Azathioprine 50mg tablets", start, start, dosage="100mg daily")
    bloods = done(("fbc", "lft", "renal"), start - timedelta(days=3))
    [overdue] = of_kind(evaluate([patient(), *chain, *bloods]), "overdue", "azathioprine")
    assert "tpmt" in overdue.tests
    assert overdue.due_date == start
    assert _next_due([patient(), *chain, *bloods], "azathioprine")["tpmt"] == start
    tpmt = done(("tpmt",), _ago(5 * 365))
    assert "tpmt" not in _next_due([patient(), *chain, *bloods, *tpmt], "azathioprine")


def test_a_tpmt_activity_in_its_laboratory_unit_counts_without_a_unit_complaint() -> None:
    """A presence-only test (unit 1 in the catalogue) is done whatever its value and unit."""
    code = rules().catalogue.analytes["tpmt"].codes[0]
    result = observation(code.code, 35, "mU/L", _ago(400), system=code.system, rid="tpmt")
    builder = reader([patient(), result])
    [record] = builder.finish().values()
    assert builder.skipped == []
    assert [(r.analyte, r.value) for r in record.results] == [("tpmt", None)]


def test_a_restart_after_a_long_gap_is_a_new_start_due_for_its_baseline() -> None:
    """Amiodarone stopped two years ago and restarted 20 days ago: a new course (the gap is
    longer than course_gap), so the SPS baseline (reference 4: "ECG Baseline [V SPS]", "Chest
    X-ray ... Baseline CXR [V SPS]") is due again from the restart."""
    restart = _ago(20)
    chain = [
        *_stopped("Amiodarone 200mg tablets", _ago(1500), _ago(800)),
        *repeats("Amiodarone 200mg tablets", restart, restart),
    ]
    recent = done(("tft", "lft", "renal"), restart - timedelta(days=10))
    [overdue] = of_kind(evaluate([patient(), *chain, *recent]), "overdue", "amiodarone")
    assert set(overdue.tests) == {"ecg", "chest_xray"}
    assert overdue.due_date == restart


@pytest.mark.parametrize(
    ("group", "text"),
    [
        ("lithium", "Lithium carbonate 400mg modified-release tablets"),
        ("doac", "Apixaban 5mg tablets"),
        ("antipsychotic", "Olanzapine 10mg tablets"),
        ("warfarin", "Warfarin 3mg tablets"),
        ("sulfasalazine", "Sulfasalazine 500mg tablets"),
        ("leflunomide", "Leflunomide 20mg tablets"),
        ("mycophenolate", "Mycophenolate mofetil 500mg tablets"),
    ],
)
def test_every_group_with_baseline_tests_asks_a_new_start_for_them(group: str, text: str) -> None:
    """Reference 3 ("Baseline [V]" for U&E, thyroid, calcium, weight), 5.2 ("Baseline serum
    creatinine, U&E and body weight", FBC and LFT "Baseline [V]"), 6 ("Baseline" weight,
    waist, pulse and BP, HbA1c, lipids), 5.1 ("Baseline bloods ... clotting screen, FBC, LFT,
    creatinine/eGFR") and the DMARD baseline [S Grampian]: none on record, all due from the
    start; all on record a week before the start, none."""
    start = _ago(15)
    chain = repeats(text, start, start)
    [entry] = [e for e in assess([patient(), *chain]).register if e.drug_group == group]
    [pack] = [p for p in rules().in_force(AS_OF) if p.drug_group == group]
    tests = {t for b in pack.baselines for t in b.tests}
    assert tests
    assert {t for t, due in entry.next_due if due == start} == tests
    with_baseline = assess([patient(), *chain, *baseline(group, start - timedelta(days=7))])
    [entry] = [e for e in with_baseline.register if e.drug_group == group]
    assert not {t for t, due in entry.next_due if due == start}


# ------------------------------------------------------------------ amiodarone after stopping


def test_amiodarone_thyroid_function_continues_for_twelve_months_after_stopping() -> None:
    """Reference 4: thyroid function "Every 6 months [V: SPS; NICE CKS AF], and for 12 months
    after stopping [V CKS]". Stopped (last issued 150 days ago): thyroid function is still
    overdue, LFT and U&E are not asked for, and there is no register line (not on therapy)."""
    chain = _stopped("Amiodarone 200mg tablets", _ago(900), _ago(150))
    old = done(("tft", "lft", "renal", "ecg"), _ago(400))
    result = assess([patient(), *chain, *old])
    [overdue] = of_kind(result.findings, "overdue", "amiodarone")
    assert overdue.tests == ("tft",)
    assert "no longer prescribed (last issued or covered" in overdue.reason
    assert "continues after stopping, until" in overdue.reason
    assert result.register == []
    thyroid_done = done(("tft",), _ago(10))
    assert _monitoring(evaluate([patient(), *chain, *old, *thyroid_done]), "amiodarone") == []


def test_a_raised_tsh_after_stopping_amiodarone_is_still_flagged() -> None:
    """The thyroid results of the continuing schedule are still judged after stopping; results
    of the schedules that stopped (ALT) are not."""
    chain = _stopped("Amiodarone 200mg tablets", _ago(900), _ago(150))
    tsh = observation(TSH, 12, "m[IU]/L", _ago(5), ref_range=(0.35, 5.5))
    alt = observation("1018251000000107", 400, "U/L", _ago(5), ref_range=(5, 40))
    found = of_kind(evaluate([patient(), *chain, tsh, alt]), "out_of_range", "amiodarone")
    assert {f.analyte for f in found} == {"tsh"}


def test_after_its_twelve_months_a_stopped_amiodarone_is_followed_no_more() -> None:
    """Evaluator.followed (which the sweep uses to close Tasks) keeps amiodarone while its thyroid
    function continues, and lets it go after: a result then closes a Task as 'result received',
    the end of the period as 'drug stopped'."""
    evaluator = Evaluator.create(rules(), AS_OF)
    for last, followed in ((_ago(150), True), (_ago(500), False)):
        chain = _stopped("Amiodarone 200mg tablets", last - timedelta(days=700), last)
        [record] = records([patient(), *chain]).values()
        assert ("amiodarone" in evaluator.followed(evaluator.therapies(record))) is followed


# ------------------------------------------------------------------ lithium 3-monthly triggers


def _lithium(*extra: dict[str, Any]) -> list[Any]:
    """Lithium for years, age 50, level 0.6 and renal function 100 days ago (6-monthly: not
    yet due)."""
    chain = repeats("Lithium carbonate 400mg modified-release tablets", _ago(1000), _ago(7))
    level = observation("1006681000000100", 0.6, "mmol/L", _ago(100))
    renal = done(("renal", "tft", "calcium", "weight"), _ago(100))
    return _monitoring(
        evaluate([patient(born="1976-05-01"), *chain, level, *renal, *extra]), "lithium"
    )


@pytest.mark.parametrize(
    "drug",
    [
        "Ibuprofen 400mg tablets",
        "Ramipril 5mg capsules",
        "Losartan 50mg tablets",
        "Bendroflumethiazide 2.5mg tablets",
    ],
)
def test_an_interacting_drug_makes_lithium_monitoring_three_monthly(drug: str) -> None:
    """Reference 3: "Every 6 months, or every 3 months for at-risk groups [V SPS]: ...
    interacting drugs" (NSAIDs, ACE inhibitors/ARBs, diuretics, as the reference names them)."""
    assert _lithium() == []
    [finding] = _lithium(*repeats(drug, _ago(60), _ago(10)))
    assert {"lithium", "renal"} <= set(finding.tests)
    assert finding.due_date == Duration(3, "M").after(_ago(100))
    assert "also prescribed" in finding.reason


@pytest.mark.parametrize(("calcium", "raised"), [(2.61, True), (2.6, False), (2.4, False)])
def test_a_raised_calcium_makes_lithium_monitoring_three_monthly(
    calcium: float, raised: bool
) -> None:
    """Reference 3: "Raised calcium (possible hyperparathyroidism) -> 3-monthly lithium
    monitoring [V SPS]": above the laboratory's range (2.2-2.6 here), not at its edge."""
    result = observation(CALCIUM, calcium, "mmol/L", _ago(90), ref_range=(2.2, 2.6), rid="ca")
    found = _lithium(result)
    assert bool(found) is raised
    if raised:
        assert {"lithium", "renal"} <= set(found[0].tests)
        assert "the latest result crosses calcium-high" in found[0].reason


def test_a_raised_calcium_too_old_to_act_on_changes_nothing() -> None:
    """The calcium is read as the threshold reads it: only while it is acted on (its 6-month
    test interval); an older raised calcium no longer shortens the interval."""
    old = observation(CALCIUM, 2.8, "mmol/L", _ago(200), ref_range=(2.2, 2.6), rid="ca")
    chain = repeats("Lithium carbonate 400mg modified-release tablets", _ago(1000), _ago(7))
    level = observation("1006681000000100", 0.6, "mmol/L", _ago(100))
    renal = done(("renal", "tft", "weight"), _ago(100))
    found = evaluate([patient(born="1976-05-01"), *chain, level, *renal, old])
    [finding] = _monitoring(found, "lithium")  # the calcium itself is now overdue
    assert finding.tests == ("calcium",)
    assert "too old to act on" in finding.reason


# ------------------------------------------------------------------ antipsychotics


def _antipsychotic(*extra: dict[str, Any], text: str = "Olanzapine 10mg tablets") -> list[Any]:
    chain = repeats(text, _ago(1200), _ago(7))
    return _monitoring(evaluate([patient(), *chain, *extra]), "antipsychotic")


def test_waist_and_pulse_are_on_the_annual_physical_health_check() -> None:
    """Reference 6: "Waist circumference: Baseline; Annually [V]"; "Pulse and BP: Baseline, 12
    weeks, 1 year; Annually [V]". Everything else done 3 months ago, waist and pulse 13 months
    ago: both are overdue; done 3 months ago, nothing is due."""
    rest = done(("weight", "bp", "hba1c", "lipids"), _ago(90))
    [finding] = _antipsychotic(*rest, *done(("waist", "pulse"), _ago(395)))
    assert set(finding.tests) == {"waist", "pulse"}
    assert _antipsychotic(*rest, *done(("waist", "pulse"), _ago(90))) == []


def test_a_fasting_glucose_counts_as_the_hba1c_check() -> None:
    """Reference 6: "HbA1c or fasting glucose: Baseline, 12 weeks, 1 year; Annually [V]"."""
    rest = done(("weight", "bp", "lipids", "waist", "pulse"), _ago(90))
    glucose = observation("1558-6", 5.2, "mmol/L", _ago(90), system=LOINC)
    assert _antipsychotic(*rest, glucose) == []
    [finding] = _antipsychotic(*rest)
    assert finding.tests == ("hba1c",)


@pytest.mark.parametrize(("now", "fires"), [(74.9, True), (74.8, False)])
def test_weight_gain_of_seven_percent_or_more_is_reviewed(now: float, fires: bool) -> None:
    """Reference 6: "Rapid or substantial weight gain (e.g. >= 7% from baseline [M]) ->
    lifestyle review and medication review: S3": 70 kg to 74.9 kg is 7.0%, at the limit."""
    chain = repeats("Olanzapine 10mg tablets", _ago(1200), _ago(7))
    weights = [observation(WEIGHT, 70, "kg", _ago(200)), observation(WEIGHT, now, "kg", _ago(9))]
    found = of_kind(evaluate([patient(), *chain, *weights]), "out_of_range", "antipsychotic")
    assert bool([f for f in found if f.check == "weight-gain"]) is fires
    if fires:
        assert "at least 7% above the baseline 70 kg" in found[0].reason


@pytest.mark.parametrize(
    "text",
    [
        "Xeplion 150mg prolonged-release suspension for injection pre-filled syringes",
        "Abilify Maintena 400mg powder and solvent for prolonged-release suspension for injection",
        "Zypadhera 300mg powder and solvent for prolonged release suspension for injection vials",
        "Risperdal Consta 25mg powder and solvent for suspension for injection vials",
        "Haloperidol decanoate 50mg/1ml solution for injection ampoules",
        "Depixol 40mg/2ml solution for injection",
    ],
)
def test_depot_and_long_acting_injections_follow_the_same_schedule(text: str) -> None:
    """Reference 6: the CG178 schedule applies "from the start of an antipsychotic", depots
    included: a long-acting injection named by brand gets the same register line and the
    same overdue annual check as an oral antipsychotic."""
    oral = _antipsychotic(*done(("weight",), _ago(400)))
    depot = _antipsychotic(*done(("weight",), _ago(400)), text=text)
    assert [(f.kind, f.tests, f.due_date) for f in depot] == [
        (f.kind, f.tests, f.due_date) for f in oral
    ]


@pytest.mark.parametrize(
    ("text", "dosage", "every", "current_for"),
    [
        ("Trevicta 350mg prolonged-release suspension for injection", "every 3 months", 91, 182),
        ("Byannli 700mg prolonged-release suspension for injection", "every 6 months", 182, 273),
    ],
)
def test_a_three_or_six_monthly_injection_stays_current_between_doses(
    text: str, dosage: str, every: int, current_for: int
) -> None:
    """A depot given every 3 or 6 months is current until its next dose is due plus the issue
    look-back (catalogue long_dosing_interval), so its monitoring does not lapse between doses;
    a week after that, it has stopped."""
    for last, current in ((current_for - 7, True), (current_for + 7, False)):
        chain = _stopped(text, _ago(last + 4 * every), _ago(last), every_days=every, dosage=dosage)
        registered = [e.drug_group for e in assess([patient(), *chain]).register]
        assert registered == (["antipsychotic"] if current else []), last


# ------------------------------------------------------------------ DOACs


def _doac(*extra: dict[str, Any], born: str = "1960-02-01") -> list[dict[str, Any]]:
    chain = repeats("Apixaban 5mg tablets", _ago(800), _ago(7))
    return [patient(born=born, sex="male"), *chain, *extra]


def test_weight_is_on_the_doac_schedule_for_the_crcl() -> None:
    """Reference 5.2: "Baseline serum creatinine, U&E and body weight"; CrCl (Cockcroft-Gault)
    annually needs the weight. A weight 13 months old is overdue."""
    recent = done(("renal", "fbc", "lft", "review"), _ago(30))
    [finding] = _monitoring(evaluate(_doac(*recent, *done(("weight",), _ago(395)))), "doac")
    assert finding.tests == ("weight",)
    assert _monitoring(evaluate(_doac(*recent, *done(("weight",), _ago(300)))), "doac") == []


@pytest.mark.parametrize(
    "review",
    [
        _procedure(SMR, _ago(20)),
        _procedure(MED_REVIEW, _ago(20)),
        observation(SMR, None, "1", _ago(20)),
        _procedure(SMR, _ago(20), performedDateTime=None, performedPeriod={"start": "2026-11-07"}),
    ],
    ids=["smr-procedure", "medication-review-procedure", "smr-observation", "performed-period"],
)
def test_the_doac_review_is_done_by_a_structured_medication_review(review: dict[str, Any]) -> None:
    """Reference 5.2: "DOAC review ... Every 3 months [V SPS]"; NHS England's structured
    medication review (SNOMED CT 1239511000000100, the Network Contract DES code) or a
    medication review, as a Procedure or an Observation, shows it done."""
    if review.get("performedDateTime", "") is None:
        del review["performedDateTime"]
    recent = done(("renal", "fbc", "lft", "weight"), _ago(30))
    assert _monitoring(evaluate(_doac(*recent, review)), "doac") == []
    [finding] = _monitoring(evaluate(_doac(*recent)), "doac")
    assert finding.tests == ("review",)


def test_a_procedure_not_completed_is_skipped_with_its_status_and_shows_nothing_done() -> None:
    recent = done(("renal", "fbc", "lft", "weight"), _ago(30))
    planned = _procedure(SMR, _ago(20), status="preparation")
    builder = reader(_doac(*recent, planned))
    builder.finish()
    assert [s.reason for s in builder.skipped] == [
        "Procedure with status 'preparation' is not a completed one: not used"
    ]
    [finding] = _monitoring(evaluate(_doac(*recent, planned)), "doac")
    assert finding.tests == ("review",)
    undated = _procedure(SMR, _ago(20), performedDateTime=None)
    del undated["performedDateTime"]
    builder = reader(_doac(*recent, undated))
    builder.finish()
    assert "no usable performedDateTime" in builder.skipped[0].reason


def test_a_crcl_worked_out_from_an_old_weight_says_so() -> None:
    """Reference 5.2: "[D] Compute CrCl from the latest creatinine + weight + age + sex"; a
    weight older than the catalogue's limit (12 months, [D]) makes the finding say the CrCl
    may be out of date; a current weight does not."""
    chain = repeats("Dabigatran etexilate 110mg capsules", _ago(800), _ago(7))
    creatinine = observation(CREAT, 200, "umol/L", _ago(20))

    def reason(weight_days: int) -> str:
        weight = observation(WEIGHT, 60, "kg", _ago(weight_days))
        resources = [patient(born="1946-01-01", sex="male"), *chain, creatinine, weight]
        [finding] = of_kind(evaluate(resources), "prescribing", "doac")
        return finding.reason

    stale = reason(400)
    assert "CrCl 22.1 mL/min (Cockcroft-Gault from the creatinine of 2026-11-07" in stale
    assert "that weight is more than 12 months old" in stale
    assert "record a current weight" in stale
    assert "more than 12 months old" not in reason(300)


def test_a_procedure_prescription_is_not_read_as_a_medication() -> None:
    """Procedures of codes outside the catalogue are out of scope, like unused Observations."""
    other = _procedure("80146002", _ago(10))  # an appendicectomy
    builder = reader([patient(), prescription("Apixaban 5mg tablets", _ago(30)), other])
    [record] = builder.finish().values()
    assert (record.results, builder.skipped) == ([], [])
