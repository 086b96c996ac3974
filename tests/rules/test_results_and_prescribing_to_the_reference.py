"""Issue 10, results and prescribing: each check the reference gives, in its own words.

Every test quotes the line of the monitoring reference it encodes (sections 3, 4, 5, 7) and
runs a synthetic record through the real reader and engine.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hrm_fhir.domain import Finding, Severity
from tests.builders import (
    AS_OF,
    LOINC,
    SNOMED,
    evaluate,
    observation,
    of_kind,
    patient,
    prescription,
    reader,
    repeats,
)

LONG, RECENT = AS_OF - timedelta(days=800), AS_OF - timedelta(days=10)
DAY = AS_OF - timedelta(days=5)
LITHIUM, EGFR, TOXIC = "1006681000000100", "1011481000000105", "166957006"
TSH, FT4, FT3 = "1022791000000101", "1016971000000106", "1016961000000104"
INR, HB = "6301-6", "1022431000000105"


def _on(text: str, born: str = "1970-01-01", **kw: Any) -> list[dict[str, Any]]:
    return [patient(born=born), *repeats(text, LONG, RECENT, **kw)]


def _with(found: list[Finding], check: str) -> list[Finding]:
    return [f for f in found if f.check == check]


def _result(code: str, value: float | None, unit: str, on: date = DAY, **kw: Any) -> Any:
    return observation(code, value, unit, on, **kw)


# ------------------------------------------------------------------ lithium (reference section 3)


def test_lithium_with_an_nsaid_ace_inhibitor_or_arb_is_a_review_finding() -> None:
    """ "Every 3 months for at-risk groups: ... interacting drugs"; "> 1.0 ... look for causes
    (dehydration, NSAIDs, ACE inhibitors/ARBs, diuretics ...)"."""
    lithium = _on("Priadel 400mg MR tablets")
    for text in ("Naproxen 500mg tablets", "Ramipril 5mg capsules", "Losartan 50mg tablets"):
        found = evaluate([*lithium, *repeats(text, DAY - timedelta(days=60), DAY)])
        [interaction] = _with(found, "with-nsaid-ace-inhibitor-or-arb")
        assert (interaction.kind.value, interaction.severity) == ("prescribing", Severity.REVIEW)
        assert interaction.rule == "lithium@3"
    assert _with(evaluate(lithium), "with-nsaid-ace-inhibitor-or-arb") == []


def test_lithium_with_a_diuretic_is_an_action_finding() -> None:
    """ "Abnormal sodium or a new diuretic -> S2 [S/D]"."""
    found = evaluate(
        [*_on("Priadel 400mg MR tablets"), prescription("Bendroflumethiazide 2.5mg tablets", DAY)]
    )
    [diuretic] = _with(found, "with-diuretic")
    assert (diuretic.kind.value, diuretic.severity) == ("prescribing", Severity.ACTION)
    assert "diuretic" in diuretic.reason


def _egfrs(*values: float, last: date = DAY, every: int = 60) -> list[dict[str, Any]]:
    n = len(values)
    return [
        _result(EGFR, v, "mL/min/{1.73_m2}", last - timedelta(days=every * (n - 1 - i)))
        for i, v in enumerate(values)
    ]


def test_egfr_falling_over_two_or_more_tests_is_a_review_finding() -> None:
    """ "eGFR falling over two or more tests -> 3-monthly monitoring and review: S3 [V SPS]"."""
    lithium = _on("Priadel 400mg MR tablets")
    [falling] = of_kind(evaluate([*lithium, *_egfrs(80, 76, 72)]), "out_of_range", "lithium")
    assert (falling.check, falling.severity) == ("egfr-falling", Severity.REVIEW)
    assert "80 (" in falling.reason
    assert "72 (" in falling.reason
    assert of_kind(evaluate([*lithium, *_egfrs(80, 76, 77)]), "out_of_range", "lithium") == []


def test_egfr_falling_fast_is_an_action_finding() -> None:
    """ "eGFR falling rapidly, or < 45 -> review with the specialist and consider renal
    referral: S2 [V NHS GGC]"; rapidly as NICE NG203 defines accelerated progression (a
    sustained decrease of 15 ml/min/1.73 m2 or more within a year)."""
    lithium = _on("Priadel 400mg MR tablets")
    [fast] = of_kind(evaluate([*lithium, *_egfrs(90, 75)]), "out_of_range", "lithium")
    assert (fast.check, fast.severity) == ("egfr-falling-fast", Severity.ACTION)
    assert "below the highest result of the previous 12 months (90" in fast.reason
    assert of_kind(evaluate([*lithium, *_egfrs(90, 75.1)]), "out_of_range", "lithium") == []
    older = _egfrs(90, 75, every=400)
    assert of_kind(evaluate([*lithium, *older]), "out_of_range", "lithium") == []


def test_the_coded_finding_lithium_level_high_toxic_is_an_urgent_result() -> None:
    """ "Lithium level high - toxic" (finding) 166957006 [V]; "toxicity ... -> stop lithium,
    urgent medical assessment; 'medical emergency': S1 [V NHS GGC]"."""
    lithium = _on("Priadel 400mg MR tablets")
    coded = _result(TOXIC, None, "1", rid="tox")
    [urgent] = of_kind(evaluate([*lithium, coded]), "out_of_range", "lithium")
    assert (urgent.check, urgent.severity) == ("lithium-toxic-coded", Severity.URGENT)
    assert urgent.evidence[0] == "Observation/tox"
    assert "recorded on" in urgent.reason
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SNOMED, "code": TOXIC}]},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "onsetDateTime": DAY.isoformat(),
    }
    [as_condition] = of_kind(evaluate([*lithium, condition]), "out_of_range", "lithium")
    assert as_condition.severity is Severity.URGENT
    assert as_condition.evidence[0] == "Condition/c1"


def test_a_later_lithium_level_supersedes_the_coded_finding_and_a_resolved_one_is_not_used() -> (
    None
):
    """The coded finding stands until a later level shows the test done again."""
    lithium = _on("Priadel 400mg MR tablets")
    coded = _result(TOXIC, None, "1", on=DAY - timedelta(days=2))
    later = _result(LITHIUM, 0.6, "mmol/L", on=DAY)
    assert of_kind(evaluate([*lithium, coded, later]), "out_of_range", "lithium") == []
    resolved = {
        "resourceType": "Condition",
        "id": "c2",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SNOMED, "code": TOXIC}]},
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "onsetDateTime": DAY.isoformat(),
    }
    read = reader([*lithium, resolved])
    assert [s.reason for s in read.skipped] == ["Condition clinicalStatus 'resolved': not used"]


def test_a_coded_toxic_finding_too_old_to_act_on_is_shown_with_its_age() -> None:
    lithium = _on("Priadel 400mg MR tablets")
    old = _result(TOXIC, None, "1", on=AS_OF - timedelta(days=400))
    found = evaluate([*lithium, old])
    assert of_kind(found, "out_of_range", "lithium") == []
    [monitoring] = of_kind(found, "overdue", "lithium")
    assert "Lithium level high - toxic (coded finding) recorded on" in monitoring.reason
    assert "too old to act on" in monitoring.reason


# ---------------------------------------------------------------- amiodarone (reference section 4)


def _amiodarone() -> list[dict[str, Any]]:
    return _on("Amiodarone 200mg tablets", born="1950-01-01")


def _tft(tsh: float, ft4: float | None = None, on: date = DAY, ft4_day: date | None = None) -> Any:
    out = [_result(TSH, tsh, "m[IU]/L", on, ref_range=(0.35, 5.5))]
    if ft4 is not None:
        out.append(_result(FT4, ft4, "pmol/L", ft4_day or on, ref_range=(10.0, 20.0)))
    return out


def _thyroid(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.drug_group == "amiodarone" and f.analyte in ("tsh", "ft4", "ft3")]


def test_tsh_above_4_5_with_ft4_low_is_an_action_finding() -> None:
    """ "FT4 low and TSH > 4.5 mU/L -> consider levothyroxine: S2" [V SPS]."""
    [hypo] = _thyroid(evaluate([*_amiodarone(), *_tft(6.0, ft4=8.0)]))
    assert (hypo.kind.value, hypo.check, hypo.severity) == (
        "out_of_range",
        "tsh-above-4-5-ft4-low",
        Severity.ACTION,
    )


def test_one_tsh_rule_grades_a_raised_tsh_with_normal_ft4_as_review() -> None:
    """ "FT4 normal and TSH > 10 for more than 6 months -> treat, or repeat in 3 months: S3";
    one TSH rule, not two overlapping ones: TSH 12 gives one review finding."""
    for tsh in (6.0, 12.0):
        [raised] = _thyroid(evaluate([*_amiodarone(), *_tft(tsh, ft4=15.0)]))
        assert (raised.check, raised.severity) == ("tsh-above-4-5", Severity.REVIEW)


def test_a_raised_tsh_without_an_ft4_of_the_same_sample_says_the_action_rule_is_open() -> None:
    """The FT4 condition reads the FT4 of the same day (the TSH's own sample): none, or one of
    another day, leaves "FT4 low and TSH > 4.5" open, said at its grade."""
    for tft in (_tft(6.0), _tft(6.0, ft4=8.0, ft4_day=DAY - timedelta(days=30))):
        found = _thyroid(evaluate([*_amiodarone(), *tft]))
        raised = [f for f in found if f.kind.value == "out_of_range"]
        unsure = [f for f in found if f.kind.value == "incomplete"]
        assert [(f.check, f.severity) for f in raised] == [("tsh-above-4-5", Severity.REVIEW)]
        assert [(f.check, f.code, f.severity) for f in unsure] == [
            ("tsh-above-4-5-ft4-low", "ft4-unknown", Severity.ACTION)
        ]
        assert unsure[0].missing == ("free t4 of the same day",)


def test_ft4_or_ft3_high_with_tsh_suppressed_is_the_hyperthyroid_pattern() -> None:
    """ "Hyperthyroid pattern (high FT4/FT3, suppressed TSH) -> seek specialist advice: S2"."""
    tsh = _result(TSH, 0.01, "m[IU]/L", ref_range=(0.35, 5.5))
    for code, check in ((FT4, "ft4-high-tsh-suppressed"), (FT3, "ft3-high-tsh-suppressed")):
        high = _result(code, 30.0, "pmol/L", ref_range=(10.0, 20.0))
        found = _thyroid(evaluate([*_amiodarone(), tsh, high]))
        pattern = [f for f in found if f.check == check]
        assert [(f.kind.value, f.severity) for f in pattern] == [("out_of_range", Severity.ACTION)]


def test_ft4_high_with_a_normal_tsh_is_a_review_of_its_own() -> None:
    """FT4 thresholds of their own: an abnormal thyroid function test (CKS: specialist advice)."""
    found = _thyroid(evaluate([*_amiodarone(), *_tft(2.0, ft4=25.0)]))
    assert [(f.check, f.severity) for f in found] == [("ft4-high", Severity.REVIEW)]


def test_an_ecg_coded_in_snomed_counts_as_the_annual_ecg() -> None:
    """ "ECG: annually [V CKS]"; an ECG recorded as its SNOMED CT summary finding (DICOM CID 3677:
    Normal ECG 164854000) counts as well as a LOINC QTc."""
    bloods = [
        _result("1016851000000107", None, "1", RECENT),
        _result("997531000000108", None, "1", RECENT),
        _result(EGFR, 80, "mL/min/{1.73_m2}", RECENT),
    ]
    base = [*_amiodarone(), *bloods]
    due = [f for f in evaluate(base) if f.kind.value in ("due", "overdue")]
    assert [f.tests for f in due] == [("ecg",)]
    ecg = _result("164854000", None, "1", RECENT)
    assert [f for f in evaluate([*base, ecg]) if f.kind.value in ("due", "overdue")] == []


# ------------------------------------------------------------------ warfarin (reference section 5.1)


def _warfarin(dosage: str = "As directed by the anticoagulation clinic") -> list[dict[str, Any]]:
    return _on("Warfarin 3mg tablets", born="1950-01-01", dosage=dosage)


def _inr(value: float, on: date = DAY) -> dict[str, Any]:
    return _result(INR, value, "{INR}", on, system=LOINC)


def _graded(found: list[Finding]) -> list[tuple[str, Severity | None]]:
    return [(f.check, f.severity) for f in of_kind(found, "out_of_range", "warfarin")]


def test_inr_is_graded_as_the_reference_grades_it_against_the_assumed_range() -> None:
    """ "Out of range, < 5, no bleeding -> S3, or S2 if more than 0.5-1.0 out of range [D]";
    "INR >= 5 ... S1"; "Take each patient's target from the record. Do not assume 2.5." Without
    a target on record, 2.0-3.0 is assumed and the finding says so."""
    cases = {
        3.4: [("inr-above-target", Severity.REVIEW)],
        3.6: [("inr-above-target-by-more-than-0-5", Severity.ACTION)],
        1.6: [("inr-below-target", Severity.REVIEW)],
        1.4: [("inr-below-target-by-more-than-0-5", Severity.ACTION)],
        2.5: [],
        5.0: [("inr-5-or-more", Severity.URGENT)],
    }
    for value, expected in cases.items():
        found = evaluate([*_warfarin(), _inr(value)])
        assert _graded(found) == expected, value
    [above] = of_kind(evaluate([*_warfarin(), _inr(3.4)]), "out_of_range", "warfarin")
    assert "no target range on record: the usual 2.0-3.0 is assumed" in above.reason


def _goal(**target: Any) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": "g1",
        "lifecycleStatus": target.pop("status", "active"),
        "subject": {"reference": "Patient/p1"},
        "startDate": target.pop("start", "2025-03-01"),
        "description": {"text": "INR target for a mechanical mitral valve"},
        "target": [{"measure": {"coding": [{"system": LOINC, "code": INR}]}, **target}],
    }


def test_the_patients_own_target_range_from_a_goal() -> None:
    """ "3.5 (3.0-4.0) for recurrent VTE while on warfarin and for some mechanical valves":
    a Goal whose target measures INR (LOINC 6301-6) sets the range, as a range or one value."""
    for goal in (
        _goal(detailRange={"low": {"value": 3.0}, "high": {"value": 4.0}}),
        _goal(detailQuantity={"value": 3.5}),
    ):
        assert _graded(evaluate([*_warfarin(), goal, _inr(3.6)])) == []
        assert _graded(evaluate([*_warfarin(), goal, _inr(4.6)])) == [
            ("inr-above-target-by-more-than-0-5", Severity.ACTION)
        ]
        [low] = of_kind(evaluate([*_warfarin(), goal, _inr(2.8)]), "out_of_range", "warfarin")
        assert (low.check, low.severity) == ("inr-below-target", Severity.REVIEW)
        assert "the patient's target 3.0-4.0 (Goal/g1 of 2025-03-01)" in low.reason
        assert "Goal/g1" in low.evidence


def test_the_patients_own_target_from_the_dosage_text_and_the_newest_statement_wins() -> None:
    """ "target INR 3.5" in the warfarin dosage text sets 3.0-4.0; a newer Goal overrides it."""
    text = _warfarin("As directed by the anticoagulation clinic. Target INR 3.5")
    assert _graded(evaluate([*text, _inr(3.8)])) == []
    newer = _goal(detailRange={"low": {"value": 2.0}, "high": {"value": 3.0}}, start="2026-11-20")
    assert _graded(evaluate([*text, newer, _inr(3.8)])) == [
        ("inr-above-target-by-more-than-0-5", Severity.ACTION)
    ]


def test_a_goal_not_in_force_is_skipped_with_its_status() -> None:
    cancelled = _goal(detailQuantity={"value": 3.5}, status="cancelled")
    read = reader([*_warfarin(), cancelled])
    assert [s.reason for s in read.skipped] == [
        "Goal lifecycleStatus 'cancelled': not used as a target"
    ]
    assert _graded(evaluate([*_warfarin(), cancelled, _inr(3.6)])) == [
        ("inr-above-target-by-more-than-0-5", Severity.ACTION)
    ]


# ---------------------------------------------------------- anticoagulants together, DOACs (5.2)


def _ended(chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A repeat chain whose last issue is completed (no active authorisation left standing)."""
    chain[-1]["status"] = "completed"
    return chain


def test_warfarin_with_a_doac_is_urgent_when_both_are_issued_and_action_after_a_switch() -> None:
    """Issue 10: "warfarin with a DOAC, or two DOACs, is an S1/S2 prescribing finding"."""
    warfarin = _warfarin()
    together = [*warfarin, *repeats("Apixaban 5mg tablets", DAY - timedelta(days=60), DAY)]
    [urgent] = of_kind(evaluate(together), "prescribing", "warfarin")
    assert (urgent.check, urgent.severity) == ("with-doac-issued-together", Severity.URGENT)
    switch = [
        patient(born="1950-01-01"),
        *_ended(repeats("Warfarin 3mg tablets", LONG, DAY - timedelta(days=40))),
        *repeats("Apixaban 5mg tablets", DAY - timedelta(days=20), DAY),
    ]
    [action] = of_kind(evaluate(switch), "prescribing", "warfarin")
    assert (action.check, action.severity) == ("with-doac-not-ended", Severity.ACTION)


def test_two_doacs_together_are_urgent_when_both_are_issued_and_action_after_a_switch() -> None:
    apixaban = _on("Apixaban 5mg tablets", born="1950-01-01")
    both = [*apixaban, *repeats("Rivaroxaban 20mg tablets", DAY - timedelta(days=60), DAY)]
    [urgent] = _with(evaluate(both), "two-doacs-issued-together")
    assert (urgent.kind.value, urgent.severity) == ("prescribing", Severity.URGENT)
    switch = [
        patient(born="1950-01-01"),
        *_ended(repeats("Apixaban 5mg tablets", LONG, DAY - timedelta(days=40))),
        *repeats("Rivaroxaban 20mg tablets", DAY - timedelta(days=20), DAY),
    ]
    found = evaluate(switch)
    assert [f.severity for f in _with(found, "two-doacs-not-ended")] == [Severity.ACTION]
    assert _with(found, "two-doacs-issued-together") == []
    assert _with(evaluate(apixaban), "two-doacs-not-ended") == []


def test_a_falling_haemoglobin_on_a_doac_is_an_action_finding() -> None:
    """ "Falling Hb or anaemia -> assess for bleeding: S2 [D]"; falling: 20 g/L or more below the
    highest of the previous 12 months (the ISTH major-bleeding fall)."""
    doac = _on("Apixaban 5mg tablets", born="1950-01-01")

    def hb(value: float, on: date) -> dict[str, Any]:
        return _result(HB, value, "g/L", on, ref_range=(115.0, 165.0))

    [fall] = of_kind(
        evaluate([*doac, hb(150, DAY - timedelta(days=200)), hb(130, DAY)]),
        "out_of_range",
        "doac",
    )
    assert (fall.check, fall.severity) == ("haemoglobin-falling", Severity.ACTION)
    assert "assess for bleeding" in fall.reason
    small = [*doac, hb(150, DAY - timedelta(days=200)), hb(130.5, DAY)]
    assert of_kind(evaluate(small), "out_of_range", "doac") == []


# ------------------------------------------------------------------ opioids, gabapentinoids (7)


def _fentanyl(start: date) -> list[dict[str, Any]]:
    return repeats(
        "Fentanyl 12micrograms/hour transdermal patches",
        start,
        RECENT,
        dosage="one patch every 3 days",
    )


def test_a_fentanyl_patch_in_an_opioid_naive_patient_is_an_action_finding() -> None:
    """ "O5 Fentanyl patch in an opioid-naive patient: fentanyl transdermal without prior opioid
    (non-cancer) -> contraindicated: S2 [V: MHRA Sept 2020]"; naive: no other opioid in the 3
    months before the fentanyl started [D]."""
    start = AS_OF - timedelta(days=60)
    naive = evaluate([patient(), *_fentanyl(start)])
    [finding] = _with(naive, "fentanyl-opioid-naive")
    assert (finding.kind.value, finding.severity) == ("prescribing", Severity.ACTION)
    codeine_before = prescription("Codeine 30mg tablets", start - timedelta(days=60))
    assert (
        _with(evaluate([patient(), codeine_before, *_fentanyl(start)]), "fentanyl-opioid-naive")
        == []
    )
    long_ago = prescription("Codeine 30mg tablets", start - timedelta(days=120), status="completed")
    found = evaluate([patient(), long_ago, *_fentanyl(start)])
    assert len(_with(found, "fentanyl-opioid-naive")) == 1


def test_the_fentanyl_factor_is_the_one_mhra_gives() -> None:
    """ "a 12 microgram per hour fentanyl patch equates to daily doses of oral morphine of up to
    45 mg a day" (MHRA DSU Sept 2020): 3.75 mg/day per microgram/hour; 25 + 12 micrograms/hour
    with 30 mg morphine is 168.75 mg/day, above 120."""
    patches = [
        *repeats("Fentanyl 25micrograms/hour transdermal patches", LONG, RECENT),
        *repeats("Fentanyl 12micrograms/hour transdermal patches", LONG, RECENT),
        *repeats(
            "Morphine sulfate 15mg modified-release tablets",
            LONG,
            RECENT,
            dosage="one tablet twice a day",
        ),
    ]
    [high] = _with(evaluate([patient(), *patches]), "high-dose")
    assert "fentanyl 25 micrograms/hour x 3.75" in high.reason
    assert "Oral morphine equivalent 168.75 mg/day" in high.reason


def _reviews(*patches: str, last_review: date) -> list[Finding]:
    opioid = [
        r for text in patches for r in repeats(text, LONG, RECENT, dosage="one patch every 3 days")
    ]
    review = observation("314530002", None, "1", last_review)
    return [f for f in evaluate([patient(), *opioid, review]) if f.kind.value in ("due", "overdue")]


def test_the_opioid_review_interval_follows_the_ome_band() -> None:
    """ "Review interval: at least every 3 months for long-term opioids above the threshold,
    otherwise annually [D]" (threshold: O1, 120 mg/day OME)."""
    five_months = AS_OF - timedelta(days=150)
    low = _reviews("Fentanyl 12micrograms/hour transdermal patches", last_review=five_months)
    assert low == []
    high = _reviews("Fentanyl 50micrograms/hour transdermal patches", last_review=five_months)
    assert [(f.kind.value, f.tests) for f in high] == [("overdue", ("review",))]
    assert "oral morphine equivalent" not in high[0].reason
    assert "ome >= 120" in high[0].reason
    year = AS_OF - timedelta(days=370)
    assert [
        f.kind.value
        for f in _reviews("Fentanyl 12micrograms/hour transdermal patches", last_review=year)
    ] == ["overdue"]


def test_gabapentin_with_pregabalin_is_an_action_finding() -> None:
    """ "G3 Duplicate gabapentinoid: gabapentin + pregabalin concurrently -> S2 [D]"."""
    gabapentin = _on("Gabapentin 300mg capsules", dosage="one three times a day")
    both = [*gabapentin, *repeats("Pregabalin 75mg capsules", DAY - timedelta(days=30), DAY)]
    [duplicate] = _with(evaluate(both), "gabapentin-with-pregabalin")
    assert (duplicate.kind.value, duplicate.severity) == ("prescribing", Severity.ACTION)
    assert _with(evaluate(gabapentin), "gabapentin-with-pregabalin") == []


def test_goals_and_conditions_a_rule_cannot_use_are_skipped_with_a_reason_or_ignored() -> None:
    """Bad input gets a clear reason and nothing else is lost; a Condition no rule reads (a
    diagnosis) is out of scope and ignored; a weight goal is read but no rule compares weight
    with a target."""
    no_subject = {**_goal(detailQuantity={"value": 3.5}), "id": "g2"}
    del no_subject["subject"]
    no_limits = {**_goal(detailRange={"low": {"value": 3.0}}), "id": "g3"}
    weight_goal = {
        **_goal(),
        "id": "g4",
        "target": [
            {
                "measure": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                "detailQuantity": {"value": 70},
            }
        ],
    }
    undated = {
        "resourceType": "Condition",
        "id": "c3",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SNOMED, "code": TOXIC}]},
    }
    refuted = {
        **undated,
        "id": "c4",
        "onsetDateTime": DAY.isoformat(),
        "verificationStatus": {"coding": [{"code": "refuted"}]},
    }
    diagnosis = {
        "resourceType": "Condition",
        "id": "c5",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SNOMED, "code": "13746004"}]},
    }
    read = reader([*_warfarin(), no_subject, no_limits, weight_goal, undated, refuted, diagnosis])
    assert sorted(s.reason for s in read.skipped) == [
        "Condition has no onset or recorded date",
        "Condition verificationStatus 'refuted': not used",
        "Goal has no Patient subject",
        "Goal target has no detailRange low and high",
    ]
    [record] = read.finish().values()
    assert [(t.ref, t.analyte) for t in record.targets] == [("Goal/g4", "weight")]
    assert _graded(evaluate([*_warfarin(), weight_goal, _inr(3.6)])) == [
        ("inr-above-target-by-more-than-0-5", Severity.ACTION)
    ]
