"""Results read the way the laboratory meant them: out-of-range findings, and what was unreadable.

For each analyte a pack has thresholds for (or whose test it schedules), the newest results are
weighed (``Facts.newest``: results that could share a moment are weighed together, the worst
counts). They are acted on only while recent enough: the pack's maintenance interval for the
test that carries the analyte (``result_lookbacks``); an older abnormal result is described with
its age instead. Each result is weighed against each threshold by ``judgement``; when no range
of any kind is there, or a value given as a bound leaves a threshold open, or the unit cannot be
read, an ``incomplete`` finding says so, graded by the worst the value could mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from hrm_fhir.domain import Finding, FindingKind, LabResult, ResourceRef, Severity
from hrm_fhir.rules.analyte_plan import AnalytePlan
from hrm_fhir.rules.catalogue import Analyte
from hrm_fhir.rules.facts import Facts, business_identifier, pack_finding
from hrm_fhir.rules.judgement import TARGET_SIDE, Judgement, also_state, judge, value_text
from hrm_fhir.rules.model import RulePack, Threshold
from hrm_fhir.rules.targets import Target, patient_target
from hrm_fhir.rules.therapy import Therapy


@dataclass
class _Reading:
    """What the newest results of one analyte gave under one pack."""

    fired: tuple[Threshold, LabResult, Judgement] | None = None
    open: dict[str, tuple[Threshold, LabResult, Judgement]] = field(default_factory=dict)
    """The worst threshold that could not be decided, per cause (``Judgement.missing``)."""


@dataclass(frozen=True, slots=True)
class StaleReading:
    """The newest results of an analyte, too old to act on, and how they are judged."""

    plan: AnalytePlan
    newest: list[LabResult]
    target: Target | None = None


Stale = list[StaleReading]
"""Newest results too old to act on, per analyte."""


def result_findings(
    pack: RulePack, therapy: Therapy, facts: Facts, plan: tuple[AnalytePlan, ...]
) -> tuple[list[Finding], Stale]:
    """Out-of-range and incomplete findings from the pack's analytes, and the newest results
    that are too old to act on (``stale_notes`` describes the abnormal ones)."""
    findings: list[Finding] = []
    stale: Stale = []
    present = facts.results
    for item in plan:
        if item.analyte not in present:
            continue
        if item.coded:
            findings.extend(_coded_findings(pack, therapy, facts, item, stale))
            continue
        newest = facts.newest(item.analyte)
        if not newest:
            continue
        target = _target(pack, therapy, facts, item)
        if newest[0].effective < item.acted_from:
            if item.thresholds:
                stale.append(StaleReading(item, newest, target))
            continue
        reading = _read(item.thresholds, newest, facts, target)
        if reading is not None:
            findings.extend(_findings(pack, therapy, facts, reading, target))
        for result in newest:
            if not result.normalised:
                findings.append(_unreadable(pack, therapy, facts, item.thresholds, result, target))
    return findings, stale


def _target(pack: RulePack, therapy: Therapy, facts: Facts, item: AnalytePlan) -> Target | None:
    """The patient's target range for the analyte, when a threshold compares with it."""
    if not item.targeted:
        return None
    return patient_target(pack.targets[item.analyte], facts.targets(item.analyte), therapy)


def _read(
    thresholds: tuple[Threshold, ...],
    newest: list[LabResult],
    facts: Facts,
    target: Target | None = None,
) -> _Reading | None:
    """What the readable ones among the newest results cross; None when nothing (the usual).
    A threshold whose ``also`` conditions cannot be decided is left open, as one whose value
    or range cannot be."""
    reading: _Reading | None = None
    for threshold in thresholds:
        for result in newest:
            if not result.normalised:
                continue
            judgement = judge(threshold, result, facts, target)
            if judgement.hit is False:
                continue
            states = [also_state(c, result, facts) for c in threshold.also]
            if any(state is False for state, _ in states):
                continue
            reading = reading or _Reading()
            unknown = [
                (c, why)
                for c, (state, why) in zip(threshold.also, states, strict=True)
                if state is None
            ]
            if judgement.hit is True and not unknown:
                if reading.fired is None or _rank(threshold) > _rank(reading.fired[0]):
                    reading.fired = (threshold, result, judgement)
                continue
            if judgement.hit is True:
                cond, why = unknown[0]
                cause = f"{(cond.measure or 'condition').replace('_', '-')}-unknown"
                judgement = replace(
                    judgement,
                    hit=None,
                    limit=f"{judgement.limit} with {cond.describe()}",
                    missing=why,
                )
            else:
                cause = _cause(judgement)
            current = reading.open.get(cause)
            if current is None or _rank(threshold) > _rank(current[0]):
                reading.open[cause] = (threshold, result, judgement)
    return reading


def _rank(threshold: Threshold) -> int:
    return threshold.severity.rank


def _cause(judgement: Judgement) -> str:
    return "value-not-exact" if judgement.missing == ("exact value",) else "reference-range-missing"


def _findings(
    pack: RulePack, therapy: Therapy, facts: Facts, reading: _Reading, target: Target | None
) -> list[Finding]:
    out: list[Finding] = []
    fired_rank = 0
    if reading.fired is not None:
        threshold, result, judgement = reading.fired
        fired_rank = _rank(threshold)
        out.append(_out_of_range(pack, therapy, facts, threshold, result, judgement, target))
    for cause, (threshold, result, judgement) in sorted(reading.open.items()):
        if _rank(threshold) <= fired_rank:
            continue
        title = facts.catalogue.analytes[threshold.analyte].title
        if cause == "value-not-exact":
            what = (
                f"{title} recorded as {value_text(result)} on {result.effective.isoformat()}: "
                f"cannot tell whether it is {judgement.limit}"
            )
        elif cause == "reference-range-missing":
            what = (
                f"{title} {value_text(result)} on {result.effective.isoformat()} has no "
                f"laboratory reference range or flag, and there is no default range for it: "
                f"cannot tell whether it is {judgement.limit}"
            )
        else:
            what = (
                f"{title} {value_text(result)} on {result.effective.isoformat()}: cannot tell "
                f"whether it is {judgement.limit} (not on record or not usable: "
                f"{', '.join(judgement.missing)})"
            )
        reason = (
            f"{what}{_preliminary(result)} ({threshold.id} not assessed on {pack.title}); "
            f"if it is: {threshold.advice}."
        )
        out.append(
            _incomplete(
                pack,
                therapy,
                facts,
                result,
                code=cause,
                check=threshold.id,
                reason=reason,
                missing=judgement.missing,
                severity=threshold.severity,
                cited=(pack.citations[threshold.citation].url, threshold.verified),
            )
        )
    return out


def _preliminary(result: LabResult) -> str:
    return " (a preliminary result: confirm with the final one)" if result.preliminary else ""


def _out_of_range(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    threshold: Threshold,
    result: LabResult,
    judgement: Judgement,
    target: Target | None = None,
) -> Finding:
    title = facts.catalogue.analytes[threshold.analyte].title
    basis = f" ({judgement.basis})" if judgement.basis else ""
    reason = (
        f"{title} {value_text(result)} on {result.effective.isoformat()}{_preliminary(result)} "
        f"is {judgement.limit}{basis} on {pack.title}: {threshold.advice}."
    )
    if threshold.op in TARGET_SIDE and target is not None:
        if target.source is not None:
            return _result_finding(pack, therapy, facts, threshold, result, reason, target.source)
        verified = threshold.verified and pack.targets[threshold.analyte].verified
        return _result_finding(pack, therapy, facts, threshold, result, reason, verified=verified)
    return _result_finding(pack, therapy, facts, threshold, result, reason)


def _result_finding(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    threshold: Threshold,
    result: LabResult,
    reason: str,
    *also: ResourceRef,
    verified: bool | None = None,
) -> Finding:
    """The out-of-range finding of ``threshold`` on ``result`` (a value or a coded finding),
    with ``also`` as further evidence (the Goal that set a target range)."""
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.OUT_OF_RANGE,
        check=threshold.id,
        reason=reason,
        source=pack.citations[threshold.citation].url,
        verified=threshold.verified if verified is None else verified,
        evidence=tuple(dict.fromkeys((result.ref, therapy.latest.ref, *also))),
        identifier=business_identifier(
            facts.patient, pack.id, "result", threshold.analyte, result.ref
        ),
        analyte=threshold.analyte,
        value=result.value,
        unit=result.unit,
        observed_on=result.effective,
        severity=threshold.severity,
    )


def _unreadable(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    thresholds: tuple[Threshold, ...],
    result: LabResult,
    target: Target | None = None,
) -> Finding:
    """The incomplete finding for a result whose unit cannot be read, graded by the worst any
    reading of its number could mean: as the canonical unit, through each listed conversion,
    and against its own range and flag (which are in its own unit)."""
    analyte = facts.catalogue.analytes[result.analyte]
    worst = _worst_reading(analyte, thresholds, result, facts, target)
    head = (
        f"{analyte.title} {value_text(result)} on {result.effective.isoformat()}"
        f"{_preliminary(result)}: the unit cannot be read, so it is not compared with the "
        f"thresholds and does not count as the test done"
    )
    if worst is None:
        severity, check = Severity.REVIEW, result.analyte
        tail = "; check the unit with the laboratory and record the result again."
        cited = _schedule_source(pack, facts, result.analyte)
    else:
        threshold, judgement = worst
        severity, check = threshold.severity, threshold.id
        tail = (
            f"; read as {analyte.unit} or a listed unit it could be {judgement.limit} "
            f"({threshold.id}): {threshold.advice}."
        )
        cited = (pack.citations[threshold.citation].url, threshold.verified)
    return _incomplete(
        pack,
        therapy,
        facts,
        result,
        code="unit-unreadable",
        check=check,
        reason=head + tail,
        missing=("unit",),
        severity=severity,
        cited=cited,
    )


def _worst_reading(
    analyte: Analyte,
    thresholds: tuple[Threshold, ...],
    result: LabResult,
    facts: Facts,
    target: Target | None,
) -> tuple[Threshold, Judgement] | None:
    """The worst threshold a result with an unreadable unit could cross: its number read as the
    canonical unit and through each listed conversion, with its own range scaled alike."""
    worst: tuple[Threshold, Judgement] | None = None
    readings = [(1.0, 0.0)] + [(c.factor, c.offset) for c in analyte.conversions]
    for factor, offset in readings:

        def scaled(value: float | None, f: float = factor, o: float = offset) -> float | None:
            return None if value is None else (value + o) * f

        reading = result._replace(
            value=scaled(result.value),
            ref_low=scaled(result.ref_low),
            ref_high=scaled(result.ref_high),
            normalised=True,
        )
        for threshold in thresholds:
            judgement = judge(threshold, reading, facts, target)
            possible = judgement.hit is not False and all(
                also_state(c, reading, facts)[0] is not False for c in threshold.also
            )
            if possible and (worst is None or _rank(threshold) > _rank(worst[0])):
                worst = (threshold, judgement)
    return worst


def _schedule_source(pack: RulePack, facts: Facts, analyte: str) -> tuple[str, bool]:
    """The citation of a schedule that asks for a test this analyte counts for."""
    for schedule in pack.schedules:
        if any(analyte in facts.catalogue.tests[t].analytes for t in schedule.tests):
            return pack.citations[schedule.citation].url, schedule.verified
    first = next(iter(pack.citations.values()))
    return first.url, False


def _incomplete(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    result: LabResult,
    *,
    code: str,
    check: str,
    reason: str,
    missing: tuple[str, ...],
    severity: Severity,
    cited: tuple[str, bool],
) -> Finding:
    """An incomplete finding about one result; ``cited`` is (source URL, verified)."""
    return pack_finding(
        pack,
        therapy,
        facts,
        FindingKind.INCOMPLETE,
        check=check,
        reason=reason,
        source=cited[0],
        verified=cited[1],
        evidence=(result.ref, therapy.latest.ref),
        identifier=business_identifier(
            facts.patient, pack.id, "incomplete", code, result.analyte, result.ref
        ),
        analyte=result.analyte,
        value=result.value,
        unit=result.unit,
        observed_on=result.effective,
        severity=severity,
        code=code,
        missing=missing,
    )


def stale_notes(stale: Stale, facts: Facts) -> list[str]:
    """One sentence per older abnormal result: what it was, and how old."""
    notes = []
    for entry in stale:
        item = entry.plan
        for result in entry.newest:
            if result.value is None:
                notes.extend(_coded_note(item, result, facts))
                continue
            if not result.normalised:
                continue
            crossed = [
                (t, j)
                for t in item.thresholds
                if (j := judge(t, result, facts, entry.target)).hit is True
                and all(also_state(c, result, facts)[0] is True for c in t.also)
            ]
            if not crossed:
                continue
            threshold, judgement = max(crossed, key=lambda pair: _rank(pair[0]))
            title = facts.catalogue.analytes[result.analyte].title
            notes.append(
                f"{title} {value_text(result)} on {result.effective.isoformat()} "
                f"({_age(result.effective, facts.as_of)} old) was {judgement.limit} "
                f"({threshold.id}, {threshold.severity.value}): too old to act on, as results "
                f"are acted on for {item.lookback.describe()}."
            )
    return notes


def crossing(
    pack: RulePack,
    therapy: Therapy,
    facts: Facts,
    plan: tuple[AnalytePlan, ...],
    wanted: frozenset[str],
) -> frozenset[str]:
    """Which of the ``wanted`` thresholds the newest results still acted on cross, with their
    ``also`` conditions holding (read as a result finding reads them): what a schedule
    modifier's ``fires`` condition reads. A coded finding crosses its ``recorded`` threshold
    while it is acted on and not superseded."""
    out: set[str] = set()
    for item in plan:
        ids = {t.id for t in item.thresholds} & wanted
        if not ids or item.analyte not in facts.results:
            continue
        if item.coded:
            record = facts.results[item.analyte][-1]
            if record.effective >= item.acted_from and not _superseded(record, facts):
                out |= ids
            continue
        newest = facts.newest(item.analyte)
        if not newest or newest[0].effective < item.acted_from:
            continue
        target = _target(pack, therapy, facts, item)
        for threshold in item.thresholds:
            if threshold.id in ids:
                reading = _read((threshold,), newest, facts, target)
                if reading is not None and reading.fired is not None:
                    out.add(threshold.id)
    return frozenset(out)


def _coded_findings(
    pack: RulePack, therapy: Therapy, facts: Facts, item: AnalytePlan, stale: Stale
) -> list[Finding]:
    """A coded finding ("lithium level high - toxic") fires its ``recorded`` threshold while it
    is recent enough to act on and no later result has shown its test done again (the analyte
    it is ``monitored_with`` in the catalogue); an older one is described with its age."""
    record = facts.results[item.analyte][-1]
    if _superseded(record, facts):
        return []
    if record.effective < item.acted_from:
        stale.append(StaleReading(item, [record]))
        return []
    threshold = max(item.thresholds, key=_rank)
    title = facts.catalogue.analytes[item.analyte].title
    reason = (
        f"{title} recorded on {record.effective.isoformat()}{_preliminary(record)} on "
        f"{pack.title}: {threshold.advice}."
    )
    return [_result_finding(pack, therapy, facts, threshold, record, reason)]


def _superseded(record: LabResult, facts: Facts) -> bool:
    """Whether a later result shows the coded finding's test done again (a new lithium level
    after "lithium level high - toxic"); one that could share its moment does not."""
    test = facts.catalogue.analytes[record.analyte].monitored_with
    if test is None:
        return False
    done = facts.last_done(facts.catalogue.tests[test].analytes)
    return done is not None and done.order > record.order and not done.same_moment(record)


def _coded_note(item: AnalytePlan, record: LabResult, facts: Facts) -> list[str]:
    """The sentence for a coded finding too old to act on."""
    if not item.thresholds:
        return []
    threshold = max(item.thresholds, key=_rank)
    title = facts.catalogue.analytes[record.analyte].title
    return [
        f"{title} recorded on {record.effective.isoformat()} "
        f"({_age(record.effective, facts.as_of)} old; {threshold.id}, "
        f"{threshold.severity.value}): too old to act on, as results are acted on for "
        f"{item.lookback.describe()}."
    ]


def _age(since: date, until: date) -> str:
    months = (until.year - since.year) * 12 + until.month - since.month - (until.day < since.day)
    if months >= 24:
        return f"{months // 12} years"
    if months >= 1:
        return f"{months} month{'s' if months > 1 else ''}"
    days = (until - since).days
    return f"{days} day{'s' if days != 1 else ''}"
