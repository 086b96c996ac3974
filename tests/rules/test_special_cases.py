"""The schedule special cases in the monitoring reference, each on both sides of its condition."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.builders import AS_OF, EGFR, bloods, evaluate, observation, of_kind, patient, repeats

LITHIUM, CRCL = "1006681000000100", "968191000000100"
CREAT, TSH, CALCIUM, WEIGHT = "1000731000000107", "1022791000000101", "1000691000000101", "27113001"
HBA1C, CHOL, SBP = "999791000000106", "1005671000000105", "72313002"
WAIST, PULSE = "276361009", "364075005"


def _monitoring(found: list[Any], group: str) -> list[Any]:
    return of_kind(found, "overdue", group) + of_kind(found, "due", group)


def test_sulfasalazine_stops_routine_bloods_after_twelve_months() -> None:
    established = [
        patient(),
        *repeats(
            "Sulfasalazine 500mg EC tablets", AS_OF - timedelta(days=800), AS_OF - timedelta(days=5)
        ),
    ]
    assert (
        _monitoring(
            evaluate(established + bloods(AS_OF - timedelta(days=200), egfr=90)), "sulfasalazine"
        )
        == []
    )
    recent = [
        patient(),
        *repeats(
            "Sulfasalazine 500mg EC tablets", AS_OF - timedelta(days=300), AS_OF - timedelta(days=5)
        ),
    ]
    [finding] = _monitoring(
        evaluate(recent + bloods(AS_OF - timedelta(days=100), egfr=90)), "sulfasalazine"
    )
    assert finding.kind.value == "overdue"


def _lithium(
    born: str, level: float, level_days_ago: int, egfr: list[dict[str, Any]] | None = None
) -> list[Any]:
    start = AS_OF - timedelta(days=3 * 365)
    on = AS_OF - timedelta(days=level_days_ago)
    others = [
        observation(c, v, u, AS_OF - timedelta(days=10))
        for c, v, u in ((TSH, 2.0, "m[IU]/L"), (CALCIUM, 2.3, "mmol/L"), (WEIGHT, 70, "kg"))
    ]
    renal = egfr or [observation(EGFR, 90, "mL/min/{1.73_m2}", AS_OF - timedelta(days=10))]
    resources = [
        patient(born=born),
        *repeats("Lithium carbonate 400mg MR tablets", start, AS_OF - timedelta(days=5)),
        observation(LITHIUM, level, "mmol/L", on),
        *others,
        *renal,
    ]
    return [f for f in _monitoring(evaluate(resources), "lithium") if "lithium" in f.tests]


@pytest.mark.parametrize(("born", "due"), [("1961-11-28", False), ("1961-11-27", True)])
def test_lithium_three_monthly_from_age_65(born: str, due: bool) -> None:
    assert bool(_lithium(born, 0.6, 100)) is due


@pytest.mark.parametrize(("level", "due"), [(0.79, False), (0.8, True)])
def test_lithium_three_monthly_when_last_level_at_least_0_8(level: float, due: bool) -> None:
    assert bool(_lithium("1970-01-01", level, 100)) is due


def test_lithium_six_monthly_otherwise() -> None:
    assert _lithium("1970-01-01", 0.6, 150) == []
    [finding] = _lithium("1970-01-01", 0.6, 190)
    assert finding.kind.value == "overdue"


def test_lithium_three_monthly_when_egfr_falls_over_two_results() -> None:
    falling = [
        observation(EGFR, v, "mL/min/{1.73_m2}", AS_OF - timedelta(days=d))
        for v, d in ((90, 300), (80, 200), (70, 10))
    ]
    assert _lithium("1970-01-01", 0.6, 100, falling)
    steady = [
        observation(EGFR, v, "mL/min/{1.73_m2}", AS_OF - timedelta(days=d))
        for v, d in ((90, 300), (70, 200), (75, 10))
    ]
    assert _lithium("1970-01-01", 0.6, 100, steady) == []


def test_lithium_three_monthly_in_the_first_year() -> None:
    start = AS_OF - timedelta(days=240)
    resources = [
        patient(born="1980-01-01"),
        *repeats("Priadel 400mg tablets", start, AS_OF - timedelta(days=5)),
        observation(LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=100)),
    ]
    found = _monitoring(evaluate(resources), "lithium")
    assert any("lithium" in f.tests and f.kind.value == "overdue" for f in found)


def _doac(born: str, renal_days_ago: int, crcl: float | None = None) -> list[Any]:
    on = AS_OF - timedelta(days=renal_days_ago)
    renal = (
        [observation(CRCL, crcl, "mL/min", on)]
        if crcl is not None
        else [observation(EGFR, 80, "mL/min/{1.73_m2}", on)]
    )
    resources = [
        patient(born=born, sex="male"),
        *repeats("Apixaban 2.5mg tablets", AS_OF - timedelta(days=900), AS_OF - timedelta(days=5)),
        *renal,
    ]
    return [f for f in _monitoring(evaluate(resources), "doac") if "renal" in f.tests]


@pytest.mark.parametrize(("born", "due"), [("1951-11-28", False), ("1951-11-27", True)])
def test_doac_renal_four_monthly_from_age_75(born: str, due: bool) -> None:
    assert bool(_doac(born, 130)) is due


@pytest.mark.parametrize(
    ("crcl", "days", "due"),
    [
        (60, 200, False),
        (59, 200, True),
        (30, 60, False),
        (30, 100, True),
        (45, 100, False),
        (45, 125, True),
    ],
)
def test_doac_renal_interval_is_crcl_over_ten_months_below_60(
    crcl: float, days: int, due: bool
) -> None:
    assert bool(_doac("1970-01-01", days, crcl)) is due


def test_antipsychotic_checks_at_12_weeks_then_one_year_then_annually() -> None:
    start = AS_OF - timedelta(weeks=12) + timedelta(days=3)
    baseline = [
        observation(c, v, u, start - timedelta(days=3))
        for c, v, u in (
            (HBA1C, 38, "mmol/mol"),
            (CHOL, 4.5, "mmol/L"),
            (SBP, 120, "mm[Hg]"),
            (WEIGHT, 70, "kg"),
            (WAIST, 90, "cm"),
            (PULSE, 70, "/min"),
        )
    ]
    weighed = observation(WEIGHT, 71, "kg", AS_OF - timedelta(days=10))
    resources = [
        patient(),
        *repeats("Olanzapine 10mg tablets", start, AS_OF - timedelta(days=5)),
        *baseline,
    ]
    [weekly] = _monitoring(evaluate(resources), "antipsychotic")
    assert weekly.kind.value == "overdue", "weight is weekly for the first 6 weeks"
    [finding] = _monitoring(evaluate([*resources, weighed]), "antipsychotic")
    assert finding.kind.value == "due"
    assert finding.due_date == start + timedelta(weeks=12)
    assert set(finding.tests) == {"hba1c", "lipids", "weight", "bp", "pulse"}
    later = AS_OF - timedelta(weeks=30)
    checked = [
        observation(c, v, u, later + timedelta(weeks=12))
        for c, v, u in (
            (HBA1C, 38, "mmol/mol"),
            (CHOL, 4.5, "mmol/L"),
            (SBP, 120, "mm[Hg]"),
            (WEIGHT, 70, "kg"),
            (PULSE, 70, "/min"),
        )
    ]
    resources = [
        patient(),
        *repeats("Olanzapine 10mg tablets", later, AS_OF - timedelta(days=5)),
        *checked,
    ]
    assert _monitoring(evaluate(resources), "antipsychotic") == []


@pytest.mark.parametrize(
    ("leflunomide_for", "overdue"), [(None, False), (200, True), (399, True), (401, False)]
)
def test_methotrexate_with_leflunomide_is_monthly_for_its_first_year(
    leflunomide_for: int | None, overdue: bool
) -> None:
    """Reference 2.1: "MTX+LEF combination: monthly [V: SPS MTX 'monthly until stable for 12
    months' ...]": monthly until the two have been taken together for 12 months (bloods five
    weeks ago are overdue), then the common 12-weekly maintenance (they are not). The year is
    judged on the date of the last bloods, as phases are: bloods taken 364 days into the
    combination (leflunomide for 399 days) were taken in the monthly year."""
    chain = repeats(
        "Methotrexate 2.5mg tablets",
        AS_OF - timedelta(days=800),
        AS_OF - timedelta(days=5),
        dosage="10mg weekly",
    )
    if leflunomide_for is not None:
        chain += repeats(
            "Leflunomide 10mg tablets",
            AS_OF - timedelta(days=leflunomide_for),
            AS_OF - timedelta(days=5),
            dosage="10mg daily",
            every_days=7,
        )
    found = evaluate([patient(), *chain, *bloods(AS_OF - timedelta(weeks=5), egfr=90)])
    assert bool(of_kind(found, "overdue", "methotrexate")) is overdue
