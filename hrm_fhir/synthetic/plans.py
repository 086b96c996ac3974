"""What each synthetic patient is: drug group (or none), therapy phase, edge cases and abnormal
results; the first patients of every practice are a fixed showcase, the rest are drawn at random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hrm_fhir.synthetic.groups import GROUP_NAMES, GROUP_WEIGHTS, GROUPS, Override


@dataclass(frozen=True, slots=True)
class Plan:
    """One patient: drug group (None: unmonitored drugs only), phase and edge cases."""

    group: str | None
    phase: str = "established"
    flags: frozenset[str] = frozenset()
    abnormal: Override = ()


_PHASES = ("established", "overdue", "new", "recent", "dose_change", "stopped")


_PHASE_WEIGHTS = (45, 20, 8, 10, 8, 9)


# fmt: off
_GENERIC_FLAGS = (
    ("structured", 0.35), ("req_eie", 0.02), ("req_cancelled", 0.02), ("req_draft", 0.02),
    ("proposal", 0.02), ("unit_variant", 0.1), ("unknown_unit", 0.005), ("res_eie", 0.02),
    ("res_prelim", 0.02), ("res_future", 0.02), ("period_date", 0.03), ("issued_date", 0.03),
    ("diag_report", 0.3), ("creatinine_rise", 0.03),
)


_GROUP_FLAGS: dict[str, tuple[tuple[str, float], ...]] = {
    "methotrexate": (("daily", 0.03), ("with_leflunomide", 0.03), ("with_trimethoprim", 0.03)),
    "lithium": (("age65", 0.3),),
    "doac": (("low_crcl", 0.15),),
    "opioid": (("high_ome", 0.15), ("benzo", 0.1), ("with_gabapentinoid", 0.12)),
}
# fmt: on


_REPRESENTATIONS = (("med_ref", 0.05), ("contained", 0.05), ("text_only", 0.04))


NON_COUNTING = ("req_eie", "req_cancelled", "req_draft", "proposal")


_MALFORMED = ("bad_subject", "bad_date", "bad_authored")


def _plan(
    *flags: str, group: str | None, phase: str = "established", abnormal: Override = ()
) -> Plan:
    return Plan(group, phase, frozenset(flags), abnormal)


# fmt: off
SHOWCASE: tuple[Plan, ...] = (
    _plan("structured", group="methotrexate"),
    _plan(group="azathioprine", abnormal=(("neutrophils", 1.2),)),
    _plan("text_only", group="sulfasalazine", phase="overdue"),
    _plan(group="leflunomide", phase="new"),
    _plan(group="mycophenolate", phase="recent", abnormal=(("egfr", 48),)),
    _plan("age65", group="lithium", abnormal=(("lithium", 1.3),)),
    _plan("med_ref", group="amiodarone", phase="overdue"),
    _plan(group="warfarin", abnormal=(("inr", 5.5),)),
    _plan("low_crcl", group="doac"),
    _plan(group="antipsychotic", abnormal=(("hba1c", 50),)),
    _plan("high_ome", "benzo", group="opioid"),
    _plan("structured", group="gabapentinoid"),
    _plan(group=None),
    _plan("daily", "structured", group="methotrexate"),
    _plan(group="methotrexate", phase="dose_change"),
    _plan(group="methotrexate", phase="stopped"),
    _plan("creatinine_rise", group="methotrexate"),
    _plan("age65", group="lithium", phase="overdue", abnormal=(("lithium", 1.6),)),
    _plan(group="warfarin", abnormal=(("inr", 8.4),)),
    _plan("with_gabapentinoid", group="opioid"),
    _plan("deceased", group="azathioprine"),
    _plan("contained", "unit_variant", group="azathioprine", abnormal=(("platelets", 120),)),
    _plan("diag_report", "unit_variant", group="methotrexate", abnormal=(("alt", 130),)),
    _plan("unit_variant", group="lithium"),
    _plan("unit_variant", group="antipsychotic"),
    _plan("unit_variant", "low_crcl", group="doac"),
    _plan("unknown_unit", "res_eie", "res_prelim", group="methotrexate"),
    _plan("res_future", "period_date", group="methotrexate"),
    _plan("issued_date", group="amiodarone"),
    _plan("req_eie", "req_cancelled", group="methotrexate"),
    _plan("req_draft", "proposal", group="leflunomide"),
    _plan("proposal", group=None),
    _plan("bad_subject", group="methotrexate"),
    _plan("bad_date", group="azathioprine"),
    _plan("bad_authored", group=None),
    _plan("with_leflunomide", group="methotrexate"),
    _plan("with_trimethoprim", group="methotrexate"),
    _plan("high_ome", "structured", group="opioid", phase="dose_change"),
    _plan("diag_report", group="doac", phase="overdue"),
    _plan("med_ref", "structured", group="doac", phase="dose_change"),
)
"""The first patients of every practice, so that each edge case appears at any size."""
# fmt: on


def random_plan(rng: random.Random) -> Plan:
    flags = {"deceased"} if rng.random() < 0.01 else set()
    if rng.random() < 0.012:
        flags.add(rng.choice(_MALFORMED))
    if rng.random() < 0.4:
        if rng.random() < 0.04:
            flags.add(rng.choice(NON_COUNTING))
        return Plan(None, "established", frozenset(flags))
    group = rng.choices(GROUP_NAMES, GROUP_WEIGHTS)[0]
    phase = rng.choices(_PHASES, _PHASE_WEIGHTS)[0]
    for flag, chance in (*_GENERIC_FLAGS, *_GROUP_FLAGS.get(group, ())):
        if rng.random() < chance:
            flags.add(flag)
    pick = rng.random()
    for flag, chance in _REPRESENTATIONS:
        if pick < chance:
            flags.add(flag)
            break
        pick -= chance
    options = GROUPS[group].abnormal
    abnormal = rng.choice(options) if options and rng.random() < 0.15 else ()
    return Plan(group, phase, frozenset(flags), abnormal)
