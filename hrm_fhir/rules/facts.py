"""What a patient's record says on the as-of date, as conditions and thresholds read it.

Results are ordered by when the sample was taken (date, then time of day, then when the
laboratory issued it); results that could have been taken at the same moment are weighed
together. A value given as a bound (``>8.0``, ``<0.1``) meets a limit only when every value the
bound allows meets it (``meets``); otherwise whether it does is unknown, never assumed.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from itertools import pairwise
from typing import Any

from hrm_fhir.domain import (
    Finding,
    FindingKind,
    LabResult,
    PatientRecord,
    PatientRef,
    RecordedTarget,
    ResourceRef,
)
from hrm_fhir.rules.catalogue import Catalogue
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.model import Condition, RulePack
from hrm_fhir.rules.registry import DERIVED_MEASURES
from hrm_fhir.rules.therapy import ProductRequest, Therapy

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
DOSE_MEASURES = frozenset({"daily_dose_mg", "strength_mg"})
"""Measures read from the products a check looks at (``evaluate``); every other measure is read
from the record."""
_ORDER = operator.attrgetter("effective", "time", "issued", "ref")
"""``LabResult.order``, read without a Python call per result."""


def business_identifier(*parts: str) -> str:
    """A stable id usable as a FHIR logical id (letters, digits, dashes; at most 64 chars)."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]
    return f"hrm-{digest}"


def pack_finding(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    kind: FindingKind,
    product: ProductRequest | None = None,
    **fields: Any,
) -> Finding:
    """A finding of ``pack`` about the patient's ``therapy``: who, which group, which request
    (the therapy's, or ``product``'s when the finding is about one product), how it was
    recognised and which rule version, with the finding's own ``fields``."""
    return Finding(
        patient=facts.patient,
        kind=kind,
        drug_group=pack.drug_group,
        medication=therapy.latest.ref if product is None else product.request.ref,
        matched_by=therapy.method if product is None else product.method,
        rule=pack.ref,
        **fields,
    )


def meets(value: float, comparator: str | None, op: str, limit: float) -> bool | None:
    """Whether a result is ``op limit`` (``lt``, ``le``, ``gt``, ``ge``).

    A result with a comparator stands for every value it allows: ``>8.0`` meets ``ge 8`` (all
    such values are at or above 8) and fails ``lt 2``; ``<0.1`` meets ``lt 0.4``. When only some
    of those values would meet the limit (``<5`` against ``lt 2``) the answer is None: unknown.
    """
    if comparator is None:
        return COMPARE[op](value, limit)
    result_below, region_below = comparator[0] == "<", op[0] == "l"
    strict_result, strict_region = len(comparator) == 1, op[1] == "t"
    if result_below == region_below:
        inside = value < limit if region_below else value > limit
        at_edge = value == limit and (strict_result or not strict_region)
        return True if inside or at_edge else None
    outside = value < limit if result_below else value > limit
    at_edge = value == limit and (strict_result or strict_region)
    return False if outside or at_edge else None


def fell(series: Iterable[LabResult], count: int) -> bool:
    """Whether each of the last ``count`` exact, readable results of a series (oldest first)
    was lower than the one before it (``count`` + 1 results)."""
    values = [
        r.value for r in series if r.normalised and r.value is not None and r.comparator is None
    ]
    tail = values[-(count + 1) :]
    return len(tail) == count + 1 and all(b < a for a, b in pairwise(tail))


@dataclass(frozen=True)
class Facts:
    """What conditions and thresholds read: results by analyte, current groups, derived measures."""

    patient: PatientRef
    as_of: date
    age: int | None
    sex: str | None
    results: dict[str, list[LabResult]]
    """Results on or before as-of, oldest first (``LabResult.order``), per analyte."""
    current_groups: frozenset[str]
    therapies: dict[str, Therapy]
    catalogue: Catalogue
    recorded_targets: tuple[RecordedTarget, ...] = ()
    """The patient's own target ranges the record states (Goals)."""

    @classmethod
    def build(
        cls,
        record: PatientRecord,
        therapies: dict[str, Therapy],
        catalogue: Catalogue,
        as_of: date,
    ) -> Facts:
        by_analyte: dict[str, list[LabResult]] = {}
        for result in record.results:
            if result.effective <= as_of:
                by_analyte.setdefault(result.analyte, []).append(result)
        for series in by_analyte.values():
            series.sort(key=_ORDER)
        patient = record.patient
        ref = patient.ref if patient else _patient_of(record)
        return cls(
            patient=ref,
            as_of=as_of,
            age=patient.age_on(as_of) if patient else None,
            sex=patient.sex if patient else None,
            results=by_analyte,
            current_groups=frozenset(g for g, t in therapies.items() if t.current),
            therapies=therapies,
            catalogue=catalogue,
            recorded_targets=tuple(record.targets),
        )

    def targets(self, analyte: str) -> list[RecordedTarget]:
        """The recorded target ranges of one analyte."""
        return [t for t in self.recorded_targets if t.analyte == analyte]

    def latest(self, analyte: str) -> LabResult | None:
        """The newest comparable (normalised, valued) result for an analyte."""
        for result in reversed(self.results.get(analyte, ())):
            if result.normalised and result.value is not None:
                return result
        return None

    def newest(self, analyte: str) -> list[LabResult]:
        """The newest valued results of an analyte, readable or not, preliminary or final: the
        newest one and every other that could have been taken at the same moment (a result
        with a date but no time ties with the day's latest timed one). Empty when none."""
        series = self.results.get(analyte)
        if not series:
            return []
        last = None
        for index in range(len(series) - 1, -1, -1):
            if series[index].value is not None:
                last = series[index]
                break
        if last is None:
            return []
        group = [last]
        for result in reversed(series[:index]):
            if result.effective != last.effective:
                break
            if result.value is not None and result.same_moment(last):
                group.append(result)
        return group

    def last_done(self, analytes: Iterable[str]) -> LabResult | None:
        """The newest result that shows a test was done: a final value in a unit that could be
        read, or a panel or procedure code. A preliminary result never shows it."""
        best: LabResult | None = None
        for analyte in analytes:
            dimensionless = self.catalogue.analytes[analyte].unit == "1"
            for result in reversed(self.results.get(analyte, ())):
                if result.preliminary:
                    continue
                if dimensionless or (result.value is not None and result.normalised):
                    if best is None or result.order > best.order:
                        best = result
                    break
        return best

    def crcl(self) -> tuple[float, tuple[ResourceRef, ...]] | None:
        """Recorded CrCl when at least as recent as the latest creatinine, else Cockcroft-Gault
        from an exact creatinine, weight, age and sex; None when neither can be had."""
        return self._crcl

    @cached_property
    def _crcl(self) -> tuple[float, tuple[ResourceRef, ...]] | None:
        recorded = self.latest("crcl")
        creatinine = self.latest("creatinine")
        if recorded is not None and (
            creatinine is None or recorded.effective >= creatinine.effective
        ):
            assert recorded.value is not None  # noqa: S101 - latest() guarantees it
            return recorded.value, (recorded.ref,)
        if self.crcl_missing():
            return None
        weight = self.latest("weight")
        assert creatinine is not None  # noqa: S101 - crcl_missing checked it
        assert creatinine.value is not None  # noqa: S101 - crcl_missing checked it
        assert weight is not None  # noqa: S101 - crcl_missing checked it
        assert weight.value is not None  # noqa: S101 - crcl_missing checked it
        assert self.age is not None  # noqa: S101 - crcl_missing checked it
        cg = self.catalogue.cockcroft_gault
        factor = cg.factor_male if self.sex == "male" else cg.factor_female
        value = (cg.age_offset - self.age) * weight.value * factor / creatinine.value
        return round(value, 1), (creatinine.ref, weight.ref)

    def crcl_basis(self) -> str:
        """The CrCl a finding used, in words: recorded, or worked out (and from what); a weight
        older than the catalogue's ``weight_within`` is said to be out of date."""
        found = self.crcl()
        if found is None:
            return ""
        value, refs = found
        if len(refs) == 1:
            recorded = self.latest("crcl")
            assert recorded is not None  # noqa: S101 - crcl() used it
            return f"CrCl {value:g} mL/min (recorded {recorded.effective.isoformat()})"
        creatinine, weight = self.latest("creatinine"), self.latest("weight")
        assert creatinine is not None  # noqa: S101 - crcl() used it
        assert weight is not None  # noqa: S101 - crcl() used it
        text = (
            f"CrCl {value:g} mL/min (Cockcroft-Gault from the creatinine of "
            f"{creatinine.effective.isoformat()} and the weight of {weight.effective.isoformat()}"
        )
        limit = self.catalogue.cockcroft_gault.weight_within
        if limit is not None and limit.within.after(weight.effective) < self.as_of:
            text += (
                f"; that weight is more than {limit.within.describe()} old, so the CrCl may be "
                "out of date: record a current weight"
            )
        return text + ")"

    def crcl_missing(self) -> tuple[str, ...]:
        """What Cockcroft-Gault lacks: an exact creatinine, a weight, the age or the sex."""
        creatinine = self.latest("creatinine")
        weight = self.latest("weight")
        missing = []
        if (
            creatinine is None
            or creatinine.comparator is not None
            or creatinine.value is None
            or creatinine.value <= 0
        ):
            missing.append("creatinine")
        if weight is None or weight.comparator is not None:
            missing.append("weight")
        if self.age is None:
            missing.append("date of birth")
        if self.sex is None:
            missing.append("sex")
        return tuple(missing)

    def measure(self, name: str) -> float | None:
        """A measure a condition reads; the doses (``DOSE_MEASURES``) belong to the products a
        check looks at and are read there (``evaluate``), so here they are unknown."""
        if name == "age":
            return None if self.age is None else float(self.age)
        if name == "crcl":
            found = self.crcl()
            return None if found is None else found[0]
        if name in DOSE_MEASURES:
            return None
        latest = self.latest(name)
        return None if latest is None else latest.value

    def missing_for(self, name: str) -> tuple[str, ...]:
        """In words, the data a measure lacks (``crcl``: the Cockcroft-Gault inputs)."""
        if name == "crcl":
            return self.crcl_missing() or ("CrCl",)
        if name == "age":
            return ("date of birth",)
        analyte = self.catalogue.analytes.get(name)
        return (analyte.title.lower() if analyte else name,)

    def state(self, cond: Condition) -> bool | None:
        """Whether one condition holds; None when the data it needs is missing, or a value
        given as a bound leaves it open."""
        if cond.measure is not None:
            assert cond.op is not None  # noqa: S101 - schema checks
            assert cond.value is not None  # noqa: S101 - schema checks
            if cond.measure not in DERIVED_MEASURES:
                latest = self.latest(cond.measure)
                if latest is None or latest.value is None:
                    return None
                return meets(latest.value, latest.comparator, cond.op, cond.value)
            value = self.measure(cond.measure)
            return None if value is None else COMPARE[cond.op](value, cond.value)
        if cond.co_prescribed is not None:
            return cond.co_prescribed in self.current_groups
        if cond.on_therapy_less_than is not None or cond.fires is not None:
            return False  # resolved per therapy and pack (state_for_therapy, evaluate)
        if cond.falling is None:
            return None  # the ingredients of a course: resolved per therapy
        return fell(self.results.get(cond.falling, ()), cond.count)

    def holds(self, cond: Condition) -> bool:
        """Whether one condition holds; unknown values never satisfy a condition."""
        return self.state(cond) is True


@dataclass(frozen=True, slots=True)
class PackMeasure:
    """A measure only a pack can work out (the total OME over the therapy's products, with the
    pack's factors): its value, and whether that is only a lower bound (a dose not read)."""

    value: float
    lower_bound: bool = False


def holds_for_therapy(
    facts: Facts,
    cond: Condition,
    therapy: Therapy,
    on: date,
    measures: dict[str, PackMeasure | None] | None = None,
) -> bool:
    """``Facts.holds`` for one therapy (``state_for_therapy``)."""
    return state_for_therapy(facts, cond, therapy, on, measures=measures) is True


def state_for_therapy(
    facts: Facts,
    cond: Condition,
    therapy: Therapy,
    on: date,
    *,
    ingredient: str | None = None,
    measures: dict[str, PackMeasure | None] | None = None,
) -> bool | None:
    """``Facts.state`` for one therapy: time on therapy is measured from its phase anchor and
    judged on the day ``on`` (the as-of date for a check, the base date for a due date); time
    taken together with a co-prescribed group from the later of the two anchors; the
    ingredients of the course, and ``ingredient`` (a check's), answer the conditions about
    them; ``measures`` are those the pack worked out (OME)."""
    if cond.on_therapy_less_than is not None:
        return on < cond.on_therapy_less_than.after(therapy.anchor)
    if cond.ingredients_at_least is not None:
        return _ingredients_current(cond.ingredients_at_least, cond.issued_together, therapy)
    if cond.no_other_ingredient_before is not None:
        if ingredient is None:
            return None
        return _started_without_other(therapy, ingredient, cond.no_other_ingredient_before)
    if cond.co_prescribed is not None and (
        cond.together_less_than is not None or cond.issued_together is not None
    ):
        return _taken_together(facts, cond, therapy, on)
    if measures is not None and cond.measure in measures:
        found = measures[cond.measure]
        if found is None:
            return None
        assert cond.op is not None  # noqa: S101 - schema checks
        assert cond.value is not None  # noqa: S101 - schema checks
        return meets(found.value, ">=" if found.lower_bound else None, cond.op, cond.value)
    return facts.state(cond)


def _taken_together(facts: Facts, cond: Condition, therapy: Therapy, on: date) -> bool:
    """A co-prescription qualified by how long the two have been taken together (from the later
    of their two phase anchors, judged on ``on``) and whether each was issued since the other
    started."""
    other = facts.therapies.get(cond.co_prescribed or "")
    if other is None or not other.current or cond.co_prescribed not in facts.current_groups:
        return False
    together = cond.together_less_than
    if together is not None and on >= together.after(max(therapy.anchor, other.anchor)):
        return False
    if cond.issued_together is None:
        return True
    spans = [(therapy.start, therapy.newest[0].authored_on)]
    spans.append((other.start, other.newest[0].authored_on))
    return _issued_together(spans) == cond.issued_together


def _issued_together(spans: list[tuple[date, date]]) -> bool:
    """Whether every (first, last) prescribing span reaches the day the latest of them started:
    each was issued on or after the other started (False: a switch whose old prescription was
    left current)."""
    latest_start = max(first for first, _ in spans)
    return all(last >= latest_start for _, last in spans)


def _ingredients_current(at_least: int, together: bool | None, therapy: Therapy) -> bool:
    """At least ``at_least`` different ingredients of the group current (and issued together,
    or not, when ``together`` says)."""
    current = sorted({p.ingredient for p in therapy.products})
    if len(current) < at_least:
        return False
    if together is None:
        return True
    spans = [span for name in current if (span := therapy.ingredient_span(name)) is not None]
    latest_start = max(first for first, _ in spans)
    issued = sum(1 for _, last in spans if last >= latest_start)
    return (issued >= at_least) == together


def _started_without_other(therapy: Therapy, ingredient: str, before: Duration) -> bool:
    """Whether ``ingredient`` started in this course with no other ingredient of the group
    covering any day in the ``before`` time up to its first request."""
    span = therapy.ingredient_span(ingredient)
    if span is None:
        return False
    started = span[0]
    since = before.before(started)
    return not any(
        r.ingredient != ingredient and r.authored_on < started and r.covers_until >= since
        for r in therapy.course
    )


def _patient_of(record: PatientRecord) -> PatientRef:
    if record.prescriptions:
        return record.prescriptions[0].patient
    if record.results:
        return record.results[0].patient
    raise ValueError("a record with no patient, prescriptions or results")
