"""Rule pack definitions as frozen dataclasses (the catalogue's are in ``catalogue``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from hrm_fhir.domain import Severity
from hrm_fhir.rules.durations import Duration

RISE_OPERATORS = ("rise_pct_from_baseline", "rise_pct_from_baseline_at_least")
"""Threshold operators relative to the patient's baseline: more than ``value`` % above it, and
``value`` % or more above it."""


@dataclass(frozen=True, slots=True)
class Citation:
    key: str
    publisher: str
    title: str
    url: str
    accessed: str
    section: str = ""


@dataclass(frozen=True, slots=True)
class Code:
    """A code with its research tag (``verified`` false for [S]/[M] codes)."""

    system: str
    code: str
    display: str = ""
    verified: bool = True


@dataclass(frozen=True, slots=True)
class OMEFactor:
    """Oral morphine equivalent: mg OME per mg/day (or per microgram/hour for patches)."""

    factor: float
    per: str
    """``mg`` (oral dose per day) or ``ug/h`` (transdermal rate)."""
    citation: str
    verified: bool


@dataclass(frozen=True, slots=True)
class Ingredient:
    name: str
    synonyms: tuple[str, ...] = ()
    codes: tuple[Code, ...] = ()
    ome: OMEFactor | None = None


RANGE_OPS = frozenset({"below_ref_low", "above_ref_high"})
"""Condition operators that compare an analyte with its reference range (no ``value``)."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on a patient's state; exactly one of the kinds is set.

    - measure: ``measure op value`` (age, weight, crcl, ome, an analyte's latest value,
      daily_dose_mg or strength_mg of the check's ingredient), or ``measure op`` with a range
      operator (an analyte below or above its reference range: in a threshold's ``also`` only);
    - co_prescribed: a current drug group or medication class;
    - on_therapy_less_than: time since the start of the course (or the last dose change);
    - falling: the analyte fell at each of its last ``count`` results;
    - ingredients_at_least: at least this many different ingredients of the group are current;
    - no_other_ingredient_before: the check's ingredient started with no other ingredient of
      the group prescribed in this time before (opioid-naive);
    - fires: a threshold of the same pack crosses on the analyte's latest result (schedule
      modifiers only: "raised calcium" is the pack's own calcium threshold).

    ``together_less_than`` qualifies ``co_prescribed``: the two have been taken together (since
    the later of their two phase anchors) for less than this long.

    ``issued_together`` (with co_prescribed or ingredients_at_least): True when each was issued
    on or after the day the other started, False when one was not (a switch whose old
    prescription was not ended), None for either.
    """

    measure: str | None = None
    op: str | None = None
    value: float | None = None
    co_prescribed: str | None = None
    on_therapy_less_than: Duration | None = None
    falling: str | None = None
    count: int = 2
    together_less_than: Duration | None = None
    fires: str | None = None
    ingredients_at_least: int | None = None
    issued_together: bool | None = None
    no_other_ingredient_before: Duration | None = None

    def describe(self) -> str:
        if self.measure is not None:
            name = self.measure.replace("_", " ")
            if self.op in RANGE_OPS:
                side = "below" if self.op == "below_ref_low" else "above"
                return f"{name} {side} its reference range"
            words = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
            return f"{name} {words.get(self.op or '', self.op)} {self.value:g}"
        if self.co_prescribed is not None:
            together = self.together_less_than
            if together is not None:
                return (
                    f"also prescribed {self.co_prescribed}, together for less than "
                    f"{together.describe()} (from starting either or a dose change)"
                    f"{self._together()}"
                )
            return f"also prescribed {self.co_prescribed}{self._together()}"
        if self.ingredients_at_least is not None:
            return (
                f"at least {self.ingredients_at_least} different ingredients of the group "
                f"current{self._together()}"
            )
        if self.no_other_ingredient_before is not None:
            return (
                "no other ingredient of the group prescribed in the "
                f"{self.no_other_ingredient_before.describe()} before it started"
            )
        if self.on_therapy_less_than is not None:
            return f"within {self.on_therapy_less_than.describe()} of starting or a dose change"
        if self.fires is not None:
            return f"the latest result crosses {self.fires}"
        return f"{self.falling} falling over {self.count} results"

    def _together(self) -> str:
        if self.issued_together is None:
            return ""
        if self.issued_together:
            return " (each issued since the other started)"
        return " (one not issued since the other started)"


@dataclass(frozen=True, slots=True)
class Phase:
    """A stretch of therapy measured from the phase anchor (start or last dose change).

    ``until`` None means open-ended. ``interval`` None means one check due at the end of the phase.
    """

    until: Duration | None
    interval: Duration | None


@dataclass(frozen=True, slots=True)
class IntervalFromMeasure:
    """Interval in months = measure / divisor (DOACs: CrCl / 10)."""

    measure: str
    divisor: float


@dataclass(frozen=True, slots=True)
class Modifier:
    """A shorter interval that applies while every ``when`` condition holds."""

    when: tuple[Condition, ...]
    citation: str
    verified: bool
    interval: Duration | None = None
    interval_months_from: IntervalFromMeasure | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How long a scheduled test may go undone on therapy before overdue monitoring is graded
    severely overdue: the kind of window CQC and PINCER searches use (reference sections 1, 9
    and 10). Measured from the test's last result, or from the course start when there is none
    on the course."""

    after: Duration
    citation: str
    verified: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    title: str
    tests: tuple[str, ...]
    phases: tuple[Phase, ...]
    citation: str
    verified: bool
    modifiers: tuple[Modifier, ...] = ()
    ends_after: Duration | None = None
    """Routine monitoring stops once the anchor is this far back (sulfasalazine after 12 months)."""
    continues_after_stop: Duration | None = None
    """The schedule still runs this long after the therapy stopped (amiodarone's thyroid
    function for 12 months after stopping); None: it ends with the therapy."""
    note: str = ""
    severely_overdue: Tolerance | None = None
    """None: the reference gives no tolerance, so an overdue finding is never graded severe."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """Tests due at the start of a course: a new start with none on record since the catalogue's
    ``[baseline].before_start`` before the course start is due for them from the start."""

    id: str
    title: str
    tests: tuple[str, ...]
    citation: str
    verified: bool
    once: bool = False
    """A test done once for good (TPMT): a result from any time before counts."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Threshold:
    id: str
    analyte: str
    op: str
    value: float
    unit: str
    severity: Severity
    advice: str
    citation: str
    verified: bool
    also: tuple[Condition, ...] = ()
    baseline_window: Duration | None = None
    count: int = 2
    """``falling``: the number of successive falls (``count`` + 1 results)."""


@dataclass(frozen=True, slots=True)
class TargetDefault:
    """How a pack reads a patient's own target range for an analyte (``above_target`` and
    ``below_target`` thresholds): the record's target when it has one, else ``low``-``high``,
    stated as the assumption in the finding."""

    analyte: str
    low: float
    high: float
    half_width: float
    """A target given as one value (INR 3.5) is the range value +/- this."""
    names: tuple[str, ...]
    """How prescribers name the analyte in dosage text (``inr``): "target INR 3.5"."""
    citation: str
    verified: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class PrescribingCheck:
    id: str
    code: str
    check: str
    """``max_frequency`` (administrations per week above value), ``ome_at_least``, ``criteria``."""
    severity: Severity
    advice: str
    citation: str
    verified: bool
    value: float | None = None
    ingredient: str | None = None
    requires: tuple[Condition, ...] = ()
    """Conditions that must all hold before ``criteria`` are counted."""
    criteria: tuple[Condition, ...] = ()
    min_match: int | None = None


@dataclass(frozen=True, slots=True)
class RulePack:
    id: str
    version: int
    status: str
    drug_group: str
    title: str
    summary: str
    effective_from: date
    authored_by: str
    citations: dict[str, Citation]
    ingredients: tuple[Ingredient, ...]
    schedules: tuple[Schedule, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    prescribing: tuple[PrescribingCheck, ...] = ()
    baselines: tuple[Baseline, ...] = ()
    restart_on_dose_change: bool = True
    escalation: str = ""
    effective_until: date | None = None
    reviewed_by: str = ""
    approved_on: str = ""
    targets: dict[str, TargetDefault] = field(default_factory=dict)
    """Per analyte: how the patient's own target range is read (``[targets.<analyte>]``)."""

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def verified(self) -> bool:
        """True only when every schedule, modifier, tolerance, baseline, threshold and check is
        verified."""
        flags = [s.verified for s in self.schedules]
        flags += [b.verified for b in self.baselines]
        flags += [t.verified for t in self.thresholds]
        flags += [c.verified for c in self.prescribing]
        flags += [m.verified for s in self.schedules for m in s.modifiers]
        flags += [i.ome.verified for i in self.ingredients if i.ome is not None]
        flags += [s.severely_overdue.verified for s in self.schedules if s.severely_overdue]
        flags += [t.verified for t in self.targets.values()]
        return all(flags)

    def is_in_force(self, day: date) -> bool:
        return (
            self.status == "active"
            and self.effective_from <= day
            and (self.effective_until is None or day < self.effective_until)
        )
