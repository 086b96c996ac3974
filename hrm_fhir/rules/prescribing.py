"""Prescribing safety: a pack's prescribing checks (frequency, OME, criteria) on current therapy,
and an active request that is no longer issued.

A check whose data is missing says so in an ``incomplete`` finding, never passes in silence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hrm_fhir.domain import Finding, FindingKind, Prescription, ResourceRef
from hrm_fhir.rules.facts import (
    COMPARE,
    DOSE_MEASURES,
    Facts,
    business_identifier,
    pack_finding,
    state_for_therapy,
)
from hrm_fhir.rules.model import Condition, PrescribingCheck, RulePack
from hrm_fhir.rules.ome import ome_total, pack_measures
from hrm_fhir.rules.therapy import ProductRequest, Therapy, daily_dose_mg

UNISSUED_ACTIVE = "active-not-issued"
"""The check of the catalogue's "active but not issued" rule (``[unissued_active]``)."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one prescribing check found."""

    detail: str
    evidence: tuple[ResourceRef, ...]
    verified: bool = True
    missing: tuple[str, ...] = ()
    """Set when the check could not be assessed: the data it lacks (an incomplete finding)."""

    def reason(self, advice: str) -> str:
        if self.missing:
            return f"{self.detail}; if so: {advice}."
        return f"{self.detail}: {advice}."


@dataclass(frozen=True, slots=True)
class _Undecided:
    """A criteria check that missing record data (CrCl and its inputs, weight, age, a result)
    kept from being decided: the conditions left open, and the products its doses are read from."""

    check: PrescribingCheck
    unknown: tuple[Condition, ...]
    dosed: tuple[ProductRequest, ...]


def prescribing_findings(
    pack: RulePack,
    checks: tuple[tuple[PrescribingCheck, bool], ...],
    therapy: Therapy,
    facts: Facts,
) -> list[Finding]:
    """The prescribing checks' findings; ``checks`` are the pack's, each with whether its
    conditions read the OME (``PackRules``)."""
    if not checks:
        return []
    by_ingredient: dict[str | None, tuple[ProductRequest, ...]] = {None: therapy.products}
    for product in therapy.products:
        by_ingredient[product.ingredient] = (*by_ingredient.get(product.ingredient, ()), product)
    findings = []
    undecided: list[_Undecided] = []
    for check, reads_ome in checks:
        products = by_ingredient.get(check.ingredient, ())
        if not products:
            continue
        outcome = _run_check(pack, check, products, facts, therapy, reads_ome)
        if outcome is None:
            continue
        if isinstance(outcome, _Undecided):
            undecided.append(outcome)
            continue
        kind = FindingKind.INCOMPLETE if outcome.missing else FindingKind.PRESCRIBING
        findings.append(
            pack_finding(
                pack,
                therapy,
                facts,
                kind,
                check=check.id,
                reason=outcome.reason(check.advice),
                source=pack.citations[check.citation].url,
                verified=outcome.verified and check.verified,
                evidence=outcome.evidence,
                identifier=business_identifier(
                    facts.patient,
                    pack.id,
                    "incomplete" if outcome.missing else "prescribing",
                    check.code,
                    therapy.start.isoformat(),
                ),
                code=check.code,
                severity=check.severity,
                missing=outcome.missing,
            )
        )
    if undecided:
        findings.append(_undecided(pack, therapy, facts, undecided))
    return findings


def _run_check(
    pack: RulePack,
    check: PrescribingCheck,
    products: tuple[ProductRequest, ...],
    facts: Facts,
    therapy: Therapy,
    reads_ome: bool,
) -> _Outcome | _Undecided | None:
    if check.check == "max_frequency":
        return _max_frequency(check, products)
    if check.check == "ome_at_least":
        return _ome(pack, check, products)
    return _criteria(pack, check, products, facts, therapy, reads_ome)


def _said(request: Prescription) -> str:
    """The dosage as written, for a reason."""
    text = request.dosage.text.strip()
    return f'"{text}" on {request.ref}' if text else f"no dosage text on {request.ref}"


def _max_frequency(
    check: PrescribingCheck, products: tuple[ProductRequest, ...]
) -> _Outcome | None:
    """More administrations a week than allowed, on any current request of the ingredient; an
    unreadable frequency is reported, never read as compliant."""
    assert check.value is not None  # noqa: S101 - schema checks
    unread: list[ProductRequest] = []
    for product in products:
        request = product.request
        per_day = request.dosage.per_day
        if per_day is None:
            unread.append(product)
        elif per_day * 7 > check.value + 1e-9:
            return _Outcome(
                f"{product.ingredient.capitalize()} prescribed {per_day * 7:g} times a week "
                f'("{request.dosage.text}"), more than {check.value:g} a week',
                (request.ref,),
            )
    if not unread:
        return None
    name = unread[0].ingredient
    return _Outcome(
        f"{name.capitalize()} frequency not stated ({'; '.join(_said(p.request) for p in unread)})"
        f": cannot tell whether it is taken more than {check.value:g} a week",
        tuple(p.request.ref for p in unread),
        missing=tuple(f"dosage frequency of {p.ingredient} ({p.request.ref})" for p in unread),
    )


def _ome(
    pack: RulePack, check: PrescribingCheck, products: tuple[ProductRequest, ...]
) -> _Outcome | None:
    """The OME check: a dose that cannot be read makes it incomplete unless the readable part
    already reaches the limit; an ingredient or form with no conversion factor is named in the
    reason only (a gap in the rule, not in the record)."""
    assert check.value is not None  # noqa: S101 - schema checks
    found = ome_total(pack, products)
    total, parts, unread, no_factor = found.total, found.parts, found.unread, found.no_factor
    verified = found.verified
    if total < check.value and not unread:
        return None
    evidence = tuple(sorted({p.request.ref for p in products}))
    counted = f"({'; '.join(parts)})" if parts else "(nothing readable)"
    not_stated = ", ".join(f"{p.ingredient} ({_said(p.request)})" for p in unread)
    no_cited = f" (not counted, no cited OME factor: {', '.join(no_factor)})" if no_factor else ""
    if total >= check.value:
        detail = (
            f"Oral morphine equivalent {total:g} mg/day {counted} is at or above "
            f"{check.value:g} mg/day"
        )
        if unread:
            detail += f" (not counted, dose not stated: {not_stated})"
        return _Outcome(detail + no_cited, evidence, verified)
    detail = (
        f"Oral morphine equivalent cannot be totalled, dose not stated: {not_stated}; the "
        f"readable part is {total:g} mg/day {counted}, below {check.value:g} mg/day{no_cited}"
    )
    missing = tuple(f"daily dose of {p.ingredient} ({p.request.ref})" for p in unread)
    return _Outcome(detail, evidence, verified, missing)


def _criteria(
    pack: RulePack,
    check: PrescribingCheck,
    products: tuple[ProductRequest, ...],
    facts: Facts,
    therapy: Therapy,
    reads_ome: bool,
) -> _Outcome | _Undecided | None:
    """Conditions that must hold together. A condition whose data is missing (a dose that
    cannot be read, CrCl that cannot be had, a result given as a bound) matters only when it
    stands between the record and the finding, and only those that do are named. An unreadable
    dose alone makes this check incomplete; missing record data is left to the pack's one
    incomplete finding (``_undecided``), which names the doses too. ``reads_ome``: some
    condition reads the OME (``PackRules``)."""
    dosed = products if check.ingredient else products[-1:]
    open_required: list[Condition] = []
    as_of = facts.as_of
    measures = pack_measures(pack, therapy) if reads_ome else None

    def state(cond: Condition) -> bool | None:
        if cond.measure in DOSE_MEASURES:
            return _dose_holds(cond, dosed)
        return state_for_therapy(
            facts, cond, therapy, as_of, ingredient=check.ingredient, measures=measures
        )

    for cond in check.requires:
        held = state(cond)
        if held is False:
            return None
        if held is None:
            open_required.append(cond)
    held_criteria: list[Condition] = []
    open_criteria: list[Condition] = []
    for cond in check.criteria:
        held = state(cond)
        if held:
            held_criteria.append(cond)
        elif held is None:
            open_criteria.append(cond)
    needed = check.min_match or len(check.criteria)
    enough = len(held_criteria) >= needed
    if not enough and len(held_criteria) + len(open_criteria) < needed:
        return None
    return _criteria_outcome(
        pack,
        check,
        products,
        facts,
        dosed,
        held=held_criteria,
        open_criteria=open_criteria,
        open_required=open_required,
    )


def _criteria_outcome(
    pack: RulePack,
    check: PrescribingCheck,
    products: tuple[ProductRequest, ...],
    facts: Facts,
    dosed: tuple[ProductRequest, ...],
    *,
    held: list[Condition],
    open_criteria: list[Condition],
    open_required: list[Condition],
) -> _Outcome | _Undecided:
    """What a criteria check that may still hold found: the criteria that ``held``, and those
    (and the requirements) left open."""
    enough = len(held) >= (check.min_match or len(check.criteria))
    subject = (check.ingredient or pack.title).capitalize()
    evidence = tuple(sorted(p.request.ref for p in products))
    if enough and not open_required:
        used = (*check.requires, *held)
        described = ", ".join(c.describe() for c in used)
        if any(c.measure == "crcl" for c in used):
            described += f"; {facts.crcl_basis()}"
        return _Outcome(f"{subject}: {described}", evidence)
    # what stands between the record and the finding (criteria already met need no more)
    unknown = open_required if enough else [*open_required, *open_criteria]
    if any(c.measure not in DOSE_MEASURES for c in unknown):
        return _Undecided(check, tuple(unknown), dosed)
    known = [c.describe() for c in (*check.requires, *held) if c not in unknown]
    detail = (
        f"{subject}: cannot tell whether {', '.join(c.describe() for c in unknown)} "
        f"({'; '.join(_said(p.request) for p in dosed)})"
    )
    if known:
        detail += f"; already holds: {', '.join(known)}"
    return _Outcome(detail, evidence, missing=_dose_missing(unknown, dosed))


def _dose_missing(
    conditions: Iterable[Condition], dosed: tuple[ProductRequest, ...]
) -> tuple[str, ...]:
    """In words, the doses or strengths the dose conditions could not read, per product."""
    missing = (
        f"{'strength' if c.measure == 'strength_mg' else 'daily dose'} of "
        f"{p.ingredient} ({p.request.ref})"
        for c in conditions
        if c.measure in DOSE_MEASURES
        for p in dosed
        if _dose_measure(c.measure, (p,))[0] is None
    )
    return tuple(dict.fromkeys(missing))


def _undecided(
    pack: RulePack, therapy: Therapy, facts: Facts, undecided: list[_Undecided]
) -> Finding:
    """One incomplete finding for the checks that missing record data (CrCl and its inputs,
    weight, age, a result) kept from being decided, graded by the worst of them; a dose those
    checks could not read either is named with it."""
    measures = list(dict.fromkeys(c.measure or "" for u in undecided for c in u.unknown))
    recorded = [m for m in measures if m not in DOSE_MEASURES]
    missing = tuple(
        dict.fromkeys(
            [
                *(m for name in recorded for m in facts.missing_for(name)),
                *(m for u in undecided for m in _dose_missing(u.unknown, u.dosed)),
            ]
        )
    )
    worst = max((u.check for u in undecided), key=lambda c: c.severity.rank)
    intervals = [
        m
        for s in pack.schedules
        for m in s.modifiers
        if any(c.measure in recorded for c in m.when)
        or (m.interval_months_from is not None and m.interval_months_from.measure in recorded)
    ]
    reason = (
        f"{pack.title}: not recorded or not usable: {', '.join(missing)}; so "
        f"{', '.join(u.check.id for u in undecided)} could not be assessed"
        + (" and the monitoring interval that depends on it was not applied" if intervals else "")
        + f". At worst ({worst.severity.value}): {worst.advice}."
    )
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.INCOMPLETE,
        check=",".join(u.check.id for u in undecided),
        reason=reason,
        source=pack.citations[worst.citation].url,
        verified=worst.verified,
        evidence=tuple(sorted({p.request.ref for p in therapy.products})),
        identifier=business_identifier(
            facts.patient, pack.id, "incomplete", recorded[0], therapy.start.isoformat()
        ),
        code=f"{recorded[0].replace('_', '-')}-unknown",
        severity=worst.severity,
        missing=missing,
    )


def _dose_holds(cond: Condition, products: tuple[ProductRequest, ...]) -> bool | None:
    """A dose condition over the products: None when the answer rests on an unreadable dose."""
    assert cond.measure is not None  # noqa: S101 - only dose measures come here
    assert cond.op is not None  # noqa: S101 - schema checks
    assert cond.value is not None  # noqa: S101 - schema checks
    value, unread = _dose_measure(cond.measure, products)
    confirmed = value is not None and COMPARE[cond.op](value, cond.value)
    if confirmed and (not unread or cond.op in ("gt", "ge")):
        return True
    return None if unread else False


def _dose_measure(measure: str, products: tuple[ProductRequest, ...]) -> tuple[float | None, bool]:
    """The ingredient's total daily dose in mg (or its highest strength in mg) over the readable
    products, and whether some product's could not be read."""
    readable: list[float] = []
    for product in products:
        request = product.request
        if measure == "daily_dose_mg":
            value = daily_dose_mg(request)
        else:
            value = request.strength if request.strength_unit == "mg" else None
        if value is not None:
            readable.append(value)
    unread = len(readable) < len(products)
    if not readable:
        return None, unread
    return (sum(readable) if measure == "daily_dose_mg" else max(readable)), unread


def unissued_findings(pack: RulePack, therapy: Therapy, facts: Facts) -> list[Finding]:
    """An active request current only because it was never stopped, with nothing of its
    product issued or authored for longer than the catalogue's limit: counted, and said."""
    stale = [p for p in therapy.products if p.unissued_since is not None]
    if not stale:
        return []
    rule = facts.catalogue.unissued_active
    since = min(p.unissued_since for p in stale if p.unissued_since is not None)
    listed = "; ".join(
        f"{p.request.ref} ({p.ingredient}, last issued or authored {p.unissued_since})"
        for p in stale
    )
    reason = (
        f"{pack.title}: active but not issued since {since.isoformat()} ({listed}); monitoring "
        f"still follows it: confirm the patient still takes it, or end the prescription."
    )
    return [
        pack_finding(
            pack,
            therapy,
            facts,
            FindingKind.PRESCRIBING,
            stale[-1],
            check=UNISSUED_ACTIVE,
            reason=reason,
            source=facts.catalogue.citations[rule.citation].url,
            verified=rule.verified,
            evidence=tuple(p.request.ref for p in stale),
            identifier=business_identifier(
                facts.patient, pack.id, "prescribing", "active-not-issued", since.isoformat()
            ),
            code="active-not-issued",
            severity=rule.severity,
        )
    ]
