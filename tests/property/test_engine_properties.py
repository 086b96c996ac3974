"""Properties of evaluation that must hold for any record (hypothesis, derandomised)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from hrm_fhir.tasks.build import build_resource
from tests.builders import AS_OF, assess, evaluate, observation, patient, prescription

DRUGS = [
    "Methotrexate 2.5mg tablets",
    "Azathioprine 50mg tablets",
    "Lithium carbonate 400mg tablets",
    "Amiodarone 200mg tablets",
    "Warfarin 5mg tablets",
    "Apixaban 5mg tablets",
    "Olanzapine 10mg tablets",
    "Oxycodone 10mg tablets",
    "Pregabalin 150mg capsules",
    "Sulfasalazine 500mg tablets",
    "Leflunomide 20mg tablets",
    "Mycophenolate mofetil 500mg tablets",
    "Atorvastatin 20mg tablets",
]
DOSAGES = [
    "As directed",
    "10mg once weekly",
    "100mg once daily",
    "60mg twice daily",
    "1g at night",
    "two tablets four times a day",
]
RESULTS = [  # (SNOMED code, unit, low, high): a spread around the thresholds in the packs
    ("1022551000000104", "10*9/L", 0.2, 6.0),
    ("1022651000000100", "10*9/L", 20, 400),
    ("1018251000000107", "U/L", 5, 300),
    ("1006681000000100", "mmol/L", 0.1, 2.0),
    ("1011481000000105", "mL/min/{1.73_m2}", 10, 120),
    ("1000731000000107", "umol/L", 40, 300),
    ("1022791000000101", "m[IU]/L", 0.01, 20),
    ("999791000000106", "mmol/mol", 30, 80),
    ("27113001", "kg", 40, 120),
]


@st.composite
def practice(draw: st.DrawFn, pid: str = "p1") -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        patient(
            pid,
            born=draw(st.dates(date(1930, 1, 1), date(2005, 1, 1))).isoformat(),
            sex=draw(st.sampled_from(["male", "female"])),
        )
    ]
    for n in range(draw(st.integers(1, 6))):
        resources.append(
            prescription(
                draw(st.sampled_from(DRUGS)),
                AS_OF - timedelta(days=draw(st.integers(0, 1500))),
                pid=pid,
                status=draw(
                    st.sampled_from(["active", "completed", "stopped", "entered-in-error"])
                ),
                dosage=draw(st.sampled_from(DOSAGES)),
                rid=f"{pid}-mr{n}",
            )
        )
    for n in range(draw(st.integers(0, 8))):
        code, unit, low, high = draw(st.sampled_from(RESULTS))
        resources.append(
            observation(
                code,
                round(draw(st.floats(low, high)), 2),
                unit,
                AS_OF - timedelta(days=draw(st.integers(-10, 800))),
                pid=pid,
                rid=f"{pid}-o{n}",
            )
        )
    return resources


def _json(findings: list[Any]) -> list[dict[str, object]]:
    return [f.to_json() for f in findings]


@given(practice())
def test_evaluation_is_deterministic(resources: list[dict[str, Any]]) -> None:
    assert _json(evaluate(resources)) == _json(evaluate(resources))


@given(practice(), st.randoms(use_true_random=False))
def test_findings_do_not_depend_on_resource_order(
    resources: list[dict[str, Any]], rnd: Any
) -> None:
    shuffled = list(resources)
    rnd.shuffle(shuffled)
    assert _json(evaluate(shuffled)) == _json(evaluate(resources))


@given(practice(), practice(pid="other"))
def test_unrelated_patients_change_nothing(
    mine: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> None:
    alone = [f for f in _json(evaluate(mine)) if f["patient"] == "Patient/p1"]
    together = [f for f in _json(evaluate(mine + theirs)) if f["patient"] == "Patient/p1"]
    assert alone == together


@given(practice())
def test_unmonitored_resources_change_nothing(resources: list[dict[str, Any]]) -> None:
    noise = [
        prescription("Atorvastatin 20mg tablets", AS_OF - timedelta(days=30), rid="statin"),
        observation("1005671000000105", 5.2, "mmol/L", AS_OF - timedelta(days=9), rid="chol"),
        {"resourceType": "Encounter", "id": "enc", "status": "finished"},
    ]
    noise[1]["code"]["coding"][0]["code"] = "000000"
    assert _json(evaluate(resources + noise)) == _json(evaluate(resources))


@given(practice())
def test_fresh_in_range_results_clear_overdue_methotrexate_bloods(
    resources: list[dict[str, Any]],
) -> None:
    mtx = [
        prescription(
            "Methotrexate 2.5mg tablets", AS_OF - timedelta(days=700), status="completed", rid="m0"
        ),
        prescription(
            "Methotrexate 2.5mg tablets", AS_OF - timedelta(days=3), dosage="10mg weekly", rid="m1"
        ),
    ]
    fresh = [
        observation(code, value, unit, AS_OF - timedelta(days=1), rid=f"fresh{n}")
        for n, (code, value, unit) in enumerate(
            [
                ("1022441000000101", None, "1"),
                ("997531000000108", None, "1"),
                ("1011481000000105", 90, "mL/min/{1.73_m2}"),
            ]
        )
    ]
    before = [f for f in evaluate(resources + mtx) if f.drug_group == "methotrexate"]
    assume(any(f.kind.value in ("overdue", "due") for f in before))  # not stopped by the draw
    # a course restarted after a long gap is a new start: its other baseline tests may stay
    # due, so the bloods are judged by their own next due dates
    [entry] = [
        e for e in assess(resources + mtx + fresh).register if e.drug_group == "methotrexate"
    ]
    next_due = dict(entry.next_due)
    for test in ("fbc", "lft", "renal"):
        assert next_due[test] >= AS_OF - timedelta(days=1) + timedelta(weeks=2)


@given(practice())
def test_built_resources_survive_a_round_trip(resources: list[dict[str, Any]]) -> None:
    for finding in evaluate(resources):
        resource = build_resource(finding, AS_OF)
        again = type(resource).model_validate(resource.model_dump(mode="json"))
        assert again.model_dump(mode="json") == resource.model_dump(mode="json")
        assert resource.id == finding.identifier
