"""Rule packs as a clinician reads them: the documented schedule per drug group (audit evidence)."""

from __future__ import annotations

from dataclasses import dataclass

from hrm_fhir.rules.analyte_plan import result_lookback
from hrm_fhir.rules.catalogue import ArrangementCode, Catalogue
from hrm_fhir.rules.model import (
    RISE_OPERATORS,
    Baseline,
    Citation,
    Ingredient,
    Modifier,
    Phase,
    PrescribingCheck,
    RulePack,
    Schedule,
    Threshold,
)
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.targets import decimal_text

_SYMBOLS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True, slots=True)
class Statement:
    """One part of a pack as a clinician reads it, with the guidance it cites."""

    kind: str
    """``schedule``, ``modifier``, ``tolerance``, ``baseline``, ``threshold``, ``prescribing``,
    ``ome`` or ``target``."""
    text: str
    verified: bool
    citation: Citation


def describe_list(rule_set: RuleSet) -> str:
    """One line per pack version: id@version, status, in force from (and until), verified and
    sign-off state, title."""
    header = f"{'RULE':<22} {'STATUS':<8} {'IN FORCE':<23} {'VERIFIED':<9} {'SIGNED OFF':<11} TITLE"
    lines = [header]
    for pack in sorted(rule_set.packs, key=lambda p: (p.id, p.version)):
        signed = pack.approved_on or "no"
        verified = "all" if pack.verified else "partly"
        until = pack.effective_until.isoformat() if pack.effective_until else ""
        dates = (
            f"{pack.effective_from.isoformat()} to {until}"
            if until
            else (f"from {pack.effective_from.isoformat()}")
        )
        lines.append(
            f"{pack.ref:<22} {pack.status:<8} {dates:<23} {verified:<9} {signed:<11} {pack.title}"
        )
    return "\n".join(lines)


def _phases(schedule: Schedule) -> str:
    parts = []
    start = "start (or last dose change)"
    for phase in schedule.phases:
        parts.append(_phase(phase, start))
        if phase.until is not None:
            start = phase.until.describe()
    return "; then ".join(parts)


def _phase(phase: Phase, start: str) -> str:
    if phase.interval is None:
        assert phase.until is not None  # noqa: S101 - schema checks
        return f"one check at {phase.until.describe()}"
    every = f"every {phase.interval.describe()}"
    if phase.until is None:
        return f"{every} thereafter"
    return f"{every} until {phase.until.describe()}"


def _schedule_text(schedule: Schedule, catalogue: Catalogue) -> str:
    """``<title> [<id>]: <test titles>``."""
    tests = ", ".join(catalogue.tests[x].title for x in schedule.tests)
    return f"{schedule.title} [{schedule.id}]: {tests}"


def _ends_text(schedule: Schedule) -> str | None:
    parts = []
    if schedule.ends_after is not None:
        parts.append(
            f"routine monitoring stops {schedule.ends_after.describe()} into a stable dose"
        )
    if schedule.continues_after_stop is not None:
        parts.append(
            f"continues for {schedule.continues_after_stop.describe()} after the drug is "
            "stopped (from the last issue or cover plus the issue look-back)"
        )
    return "; ".join(parts) or None


def _baseline_text(baseline: Baseline, catalogue: Catalogue) -> str:
    """``<title> [<id>]: <test titles>: <when a result counts>``."""
    rules = catalogue.baseline
    tests = ", ".join(catalogue.tests[x].title for x in baseline.tests)
    since = (
        "any result on record counts (a test done once)"
        if baseline.once
        else f"a result from {rules.before_start.describe()} before the start or since counts"
    )
    return (
        f"{baseline.title} [{baseline.id}]: {tests}: due at the start of a new course (one "
        f"started less than {rules.new_start_for.describe()} ago); {since}"
    )


def _tolerance_text(schedule: Schedule) -> str:
    """When overdue monitoring of the schedule is graded severely overdue."""
    tolerance = schedule.severely_overdue
    if tolerance is None:
        return "severely overdue: no tolerance in the reference (never graded severe)"
    after = tolerance.after.describe()
    text = f"severely overdue when a test has not been done on therapy for {after}"
    return text + (f" ({tolerance.note})" if tolerance.note else "")


def _modifier_text(modifier: Modifier) -> str:
    when = " and ".join(c.describe() for c in modifier.when)
    if modifier.interval is not None:
        what = f"every {modifier.interval.describe()}"
    else:
        src = modifier.interval_months_from
        assert src is not None  # noqa: S101 - schema checks
        what = f"every ({src.measure} / {src.divisor:g}) months"
    return f"more often when {when}: {what}"


def _threshold_text(th: Threshold, catalogue: Catalogue) -> str:
    """The result that fires, e.g. ``Lithium >= 1.5 mmol/L``."""
    analyte = catalogue.analytes[th.analyte].title
    window = th.baseline_window.describe() if th.baseline_window else ""
    if th.op in _SYMBOLS:
        rule = f"{analyte} {_SYMBOLS[th.op]} {th.value:g} {th.unit}"
    elif th.op in RISE_OPERATORS:
        amount = "over" if th.op == "rise_pct_from_baseline" else "at least"
        rule = f"{analyte} {amount} {th.value:g}% above the lowest in the previous {window}"
    elif th.op == "fall_from_baseline":
        rule = (
            f"{analyte} {th.value:g} {th.unit} or more below the highest in the previous {window}"
        )
    elif th.op == "falling":
        rule = f"{analyte} lower at each of its last {th.count} results"
    elif th.op == "recorded":
        rule = f"{analyte} recorded (until a later result of its test supersedes it)"
    elif th.op in ("above_target", "below_target"):
        side = "above" if th.op == "above_target" else "below"
        by = f"more than {th.value:g} {side}" if th.value else side
        rule = f"{analyte} {by} the patient's target range"
    elif th.op == "above_ref_high_times":
        rule = f"{analyte} above {th.value:g} x the laboratory upper limit"
    else:
        side = (
            "below the laboratory lower limit"
            if th.op == "below_ref_low"
            else "above the laboratory upper limit"
        )
        rule = f"{analyte} {side}"
    if th.op in ("below_ref_low", "above_ref_high", "above_ref_high_times"):
        rule += f" ({_default_range_text(th, catalogue)})"
    if th.also:
        rule += " with " + " and ".join(c.describe() for c in th.also)
    return rule


def _default_range_text(th: Threshold, catalogue: Catalogue) -> str:
    """What stands in for the laboratory's range when a result comes without one."""
    analyte = catalogue.analytes[th.analyte]
    flag = (
        "its flag (H, L...)" if th.op != "above_ref_high_times" else "its flag when normal or low"
    )
    if not analyte.reference_ranges:
        return f"without the laboratory's range: {flag}, else an incomplete finding"
    ranges = "; ".join(
        f"{r.sex + ' ' if r.sex else ''}{r.describe(analyte.unit)} "
        f"({catalogue.citations[r.citation].publisher}{'' if r.verified else ', UNVERIFIED'})"
        for r in analyte.reference_ranges
    )
    return f"without the laboratory's range: {flag}, else the default adult range {ranges}"


def _cite_catalogue(catalogue: Catalogue, key: str) -> str:
    """A catalogue citation as ``publisher, title <url>``."""
    c = catalogue.citations[key]
    return f"{c.publisher}, {c.title} <{c.url}>"


def _lookback_lines(pack: RulePack, catalogue: Catalogue) -> list[str]:
    """How long each threshold analyte's result is acted on, and why that long."""
    lines = []
    for analyte in sorted({t.analyte for t in pack.thresholds}):
        lookback, scheduled = result_lookback(pack, catalogue, analyte)
        why = (
            "the maintenance interval of its test in this pack"
            if scheduled
            else "no schedule here asks for its test: the catalogue's result_lookback"
        )
        lines.append(
            f"    {catalogue.analytes[analyte].title}: {lookback.describe()} ({why})"
            "  [UNVERIFIED: design choice]"
        )
    return lines


def _check_text(c: PrescribingCheck) -> str:
    """What a prescribing safety check looks for."""
    if c.check == "max_frequency":
        return f"given more than {c.value:g} time(s) a week"
    if c.check == "ome_at_least":
        return f"total oral morphine equivalent at least {c.value:g} mg/day"
    need = c.min_match or len(c.criteria)
    conds = "; ".join(x.describe() for x in c.criteria)
    rule = (f"{c.ingredient}: " if c.ingredient else "") + (
        f"{need} of: {conds}" if need < len(c.criteria) else conds
    )
    if c.requires:
        rule = " and ".join(x.describe() for x in c.requires) + f", with {rule}"
    return rule


def _ome_text(ingredient: Ingredient) -> str:
    assert ingredient.ome is not None  # noqa: S101 - callers filter
    per = "mg/day" if ingredient.ome.per == "mg" else "microgram/hour"
    return f"{ingredient.name}: x {ingredient.ome.factor:g} per {per}"


def statements(pack: RulePack, catalogue: Catalogue) -> list[Statement]:
    """Every schedule (with its modifiers), threshold, prescribing check and OME factor of the
    pack, in the pack's order, each with its citation and whether its value is verified."""
    out = _schedule_statements(pack, catalogue)
    out += [
        Statement(
            "baseline",
            _baseline_text(b, catalogue),
            b.verified and catalogue.baseline.verified,
            pack.citations[b.citation],
        )
        for b in pack.baselines
    ]
    out += [
        Statement(
            "threshold",
            f"{th.severity.value.upper()}: {_threshold_text(th, catalogue)}: {th.advice}",
            th.verified,
            pack.citations[th.citation],
        )
        for th in pack.thresholds
    ]
    out += [
        Statement(
            "prescribing",
            f"{c.severity.value.upper()}: {_check_text(c)}: {c.advice}",
            c.verified,
            pack.citations[c.citation],
        )
        for c in pack.prescribing
    ]
    out += [
        Statement("ome", _ome_text(i), i.ome.verified, pack.citations[i.ome.citation])
        for i in pack.ingredients
        if i.ome is not None
    ]
    out += [
        Statement(
            "target",
            f"{catalogue.analytes[t.analyte].title} target range: the patient's own (a Goal or "
            f"the dosage text), else {decimal_text(t.low)}-{decimal_text(t.high)} assumed",
            t.verified,
            pack.citations[t.citation],
        )
        for t in pack.targets.values()
    ]
    return out


def _schedule_statements(pack: RulePack, catalogue: Catalogue) -> list[Statement]:
    """Each schedule, then its modifiers and its severely-overdue tolerance."""
    out: list[Statement] = []
    for s in pack.schedules:
        text = "; ".join(
            part
            for part in (
                f"{_schedule_text(s, catalogue)}: {_phases(s)}",
                _ends_text(s),
                f"note: {s.note}" if s.note else None,
            )
            if part
        )
        out.append(Statement("schedule", text, s.verified, pack.citations[s.citation]))
        out += [
            Statement(
                "modifier",
                f"{s.title}: {_modifier_text(m)}",
                m.verified,
                pack.citations[m.citation],
            )
            for m in s.modifiers
        ]
        if s.severely_overdue is not None:
            tolerance = s.severely_overdue
            citation = pack.citations[tolerance.citation]
            text = f"{s.title}: {_tolerance_text(s)}"
            out.append(Statement("tolerance", text, tolerance.verified, citation))
    return out


def describe_pack(pack: RulePack, catalogue: Catalogue) -> str:
    """The whole pack in plain text, each clinical number with its source and verification."""
    lines = [
        f"{pack.title} ({pack.ref}, {pack.status}, "
        f"effective from {pack.effective_from.isoformat()})",
        "",
        pack.summary,
        "",
        "Medicines: " + ", ".join(i.name for i in pack.ingredients),
        f"Authored by: {pack.authored_by}. Reviewed by: {pack.reviewed_by or 'not yet reviewed'}. "
        f"Approved: {pack.approved_on or 'NOT CLINICALLY SIGNED OFF'}.",
    ]
    if pack.escalation:
        lines.append(f"Escalation: {pack.escalation}")
    lines += _schedule_lines(pack, catalogue)
    lines += _baseline_lines(pack, catalogue)
    lines += _threshold_lines(pack, catalogue)
    lines += _target_lines(pack, catalogue)
    lines += _prescribing_lines(pack)
    return "\n".join(lines)


def _mark(verified: bool) -> str:
    return "" if verified else "  [UNVERIFIED]"


def _cite(pack: RulePack, key: str) -> str:
    c = pack.citations[key]
    return f"{c.publisher}, {c.title} <{c.url}>"


def _schedule_lines(pack: RulePack, catalogue: Catalogue) -> list[str]:
    if not pack.schedules:
        return []
    lines = ["", "MONITORING SCHEDULE"]
    for s in pack.schedules:
        lines.append(f"- {_schedule_text(s, catalogue)}{_mark(s.verified)}")
        lines.append(f"    {_phases(s)}")
        if (ends := _ends_text(s)) is not None:
            lines.append(f"    {ends}")
        for m in s.modifiers:
            lines.append(f"    {_modifier_text(m)}{_mark(m.verified)}  ({_cite(pack, m.citation)})")
        if s.note:
            lines.append(f"    note: {s.note}")
        lines.append(f"    source: {_cite(pack, s.citation)}")
        tolerance = s.severely_overdue
        if tolerance is None:
            lines.append(f"    {_tolerance_text(s)}")
        else:
            lines.append(
                f"    {_tolerance_text(s)}{_mark(tolerance.verified)}  "
                f"({_cite(pack, tolerance.citation)})"
            )
    return lines


def _baseline_lines(pack: RulePack, catalogue: Catalogue) -> list[str]:
    if not pack.baselines:
        return []
    lines = ["", "BASELINE AT THE START OF A COURSE"]
    for b in pack.baselines:
        lines.append(f"- {_baseline_text(b, catalogue)}{_mark(b.verified)}")
        if b.note:
            lines.append(f"    note: {b.note}")
        lines.append(f"    source: {_cite(pack, b.citation)}")
    rules = catalogue.baseline
    lines.append(
        f"    windows: {_cite_catalogue(catalogue, rules.citation)}{_mark(rules.verified)}"
    )
    return lines


def _threshold_lines(pack: RulePack, catalogue: Catalogue) -> list[str]:
    """The thresholds, then how results are read and for how long they are acted on."""
    if not pack.thresholds:
        return []
    lines = ["", "RESULTS THAT NEED ACTION (most severe wins)"]
    for th in pack.thresholds:
        rule = _threshold_text(th, catalogue)
        lines.append(f"- {th.severity.value.upper():<7} {rule}: {th.advice}{_mark(th.verified)}")
        lines.append(f"    source: {_cite(pack, th.citation)}")
    return [
        *lines,
        "",
        "HOW RESULTS ARE READ",
        "- The newest result of each analyte counts; results that could share a moment "
        "(same day, no time to tell them apart) are weighed together and the worst counts. "
        "A preliminary result is compared (the finding says so) but never counts as the "
        "test done. A value given as a bound (>8.0, <0.1) crosses a limit only when every "
        "value it allows does; otherwise, and when a unit cannot be read or no range is "
        "known, an incomplete finding says what is missing.",
        "- A result is acted on while it is at most this old; an older abnormal result is "
        "shown with its age in the monitoring finding:",
        *_lookback_lines(pack, catalogue),
    ]


def _target_lines(pack: RulePack, catalogue: Catalogue) -> list[str]:
    lines = []
    for target in pack.targets.values():
        title = catalogue.analytes[target.analyte].title
        lines += [
            "",
            f"TARGET RANGE ({title})",
            f"- The patient's own target: the newest a Goal (target measured as {title}) or the "
            f"dosage text of a current prescription states ('target {target.names[0].upper()} "
            f"3.5' is 3.5 +/- {target.half_width:g}); else "
            f"{decimal_text(target.low)}-{decimal_text(target.high)}, "
            f"said in the finding to be assumed.{_mark(target.verified)}",
            f"    source: {_cite(pack, target.citation)}",
        ]
    return lines


def _prescribing_lines(pack: RulePack) -> list[str]:
    """The prescribing checks, then the OME factors."""
    lines = []
    if pack.prescribing:
        lines += ["", "PRESCRIBING SAFETY CHECKS"]
        for c in pack.prescribing:
            rule = _check_text(c)
            lines.append(f"- {c.severity.value.upper():<7} {rule}: {c.advice}{_mark(c.verified)}")
            lines.append(f"    source: {_cite(pack, c.citation)}")
    ome = [i for i in pack.ingredients if i.ome is not None]
    if ome:
        lines += ["", "ORAL MORPHINE EQUIVALENT FACTORS"]
        for i in ome:
            assert i.ome is not None  # noqa: S101 - filtered above
            lines.append(f"- {_ome_text(i)}{_mark(i.ome.verified)} ({_cite(pack, i.ome.citation)})")
    return lines


def describe_shared_care(catalogue: Catalogue) -> str:
    """How the record says another organisation monitors a drug ("monitored elsewhere"), from
    the catalogue's ``[shared_care]``, each code with its verification and the sources."""
    shared = catalogue.shared_care
    if shared is None:
        return "No shared-care codes in the catalogue: only the pharmacist's decisions count."

    def mark(verified: bool) -> str:
        return "" if verified else "  [UNVERIFIED]"

    def cite(key: str) -> str:
        c = catalogue.citations[key]
        return f"{c.publisher}, {c.title} <{c.url}>"

    def codes(items: tuple[ArrangementCode, ...]) -> list[str]:
        if not items:
            return ["- none listed: a practice adds the codes its templates record (see the note)"]
        return [
            f"- {c.system}|{c.code} {c.display}: "
            f"{'monitored elsewhere' if c.elsewhere else 'monitored by the practice'}"
            f"{' (' + ', '.join(c.groups) + ')' if c.groups else ''}{mark(c.verified)}"
            for c in items
        ]

    check = shared.results_not_seen
    return "\n".join(
        [
            "Monitored elsewhere (shared care): how the record says who monitors a drug",
            "",
            "A statement that names no drug applies to: " + ", ".join(shared.generic_groups),
            "",
            "PRESCRIBING ORGANISATION (MedicationRequest, MedicationStatement): extensions read",
            *(f"- {url}" for url in shared.extensions),
            "Codes in those extensions or in the prescription's category:",
            *codes(shared.prescribed),
            "",
            "CODED ENTRIES (Observation, Condition, Procedure, Flag)",
            *codes(shared.entries),
            "",
            "NO RESULT REACHING THE PRACTICE (past a schedule's severely-overdue tolerance)",
            f"- {check.severity.value.upper():<7} {check.advice}{mark(check.verified)}",
            f"    source: {cite(check.citation)}",
            "",
            f"Note: {shared.note}",
            f"Source: {cite(shared.citation)}",
        ]
    )
