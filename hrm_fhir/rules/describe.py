"""Rule packs as a clinician reads them: the documented schedule per drug group (audit evidence)."""

from __future__ import annotations

from hrm_fhir.rules.model import Catalogue, Phase, RulePack, Schedule
from hrm_fhir.rules.registry import RuleSet


def describe_list(rule_set: RuleSet) -> str:
    """One line per pack version: id@version, status, title, verified and sign-off state."""
    lines = [f"{'RULE':<22} {'STATUS':<8} {'VERIFIED':<9} {'SIGNED OFF':<11} TITLE"]
    for pack in sorted(rule_set.packs, key=lambda p: (p.id, p.version)):
        signed = pack.approved_on or "no"
        verified = "all" if pack.verified else "partly"
        lines.append(f"{pack.ref:<22} {pack.status:<8} {verified:<9} {signed:<11} {pack.title}")
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


def describe_pack(pack: RulePack, catalogue: Catalogue) -> str:
    """The whole pack in plain text, each clinical number with its source and verification."""

    def mark(verified: bool) -> str:
        return "" if verified else "  [UNVERIFIED]"

    def cite(key: str) -> str:
        c = pack.citations[key]
        return f"{c.publisher}, {c.title} <{c.url}>"

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
    if pack.schedules:
        lines += ["", "MONITORING SCHEDULE"]
        for s in pack.schedules:
            tests = ", ".join(catalogue.tests[x].title for x in s.tests)
            lines.append(f"- {s.title} [{s.id}]: {tests}{mark(s.verified)}")
            lines.append(f"    {_phases(s)}")
            if s.ends_after is not None:
                lines.append(
                    f"    routine monitoring stops {s.ends_after.describe()} into a stable dose"
                )
            for m in s.modifiers:
                when = " and ".join(c.describe() for c in m.when)
                if m.interval is not None:
                    what = f"every {m.interval.describe()}"
                else:
                    src = m.interval_months_from
                    assert src is not None  # noqa: S101 - schema checks
                    what = f"every ({src.measure} / {src.divisor:g}) months"
                lines.append(
                    f"    more often when {when}: {what}{mark(m.verified)}  ({cite(m.citation)})"
                )
            if s.note:
                lines.append(f"    note: {s.note}")
            lines.append(f"    source: {cite(s.citation)}")
    if pack.thresholds:
        lines += ["", "RESULTS THAT NEED ACTION (most severe wins)"]
        for th in pack.thresholds:
            analyte = catalogue.analytes[th.analyte].title
            if th.op in ("lt", "le", "gt", "ge"):
                sym = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[th.op]
                rule = f"{analyte} {sym} {th.value:g} {th.unit}"
            elif th.op == "rise_pct_from_baseline":
                window = th.baseline_window.describe() if th.baseline_window else ""
                rule = f"{analyte} over {th.value:g}% above the lowest in the previous {window}"
            elif th.op == "above_ref_high_times":
                rule = f"{analyte} above {th.value:g} x the laboratory upper limit"
            else:
                side = (
                    "below the laboratory lower limit"
                    if th.op == "below_ref_low"
                    else "above the laboratory upper limit"
                )
                rule = f"{analyte} {side}"
            if th.also:
                rule += " with " + " and ".join(c.describe() for c in th.also)
            lines.append(f"- {th.severity.value.upper():<7} {rule}: {th.advice}{mark(th.verified)}")
            lines.append(f"    source: {cite(th.citation)}")
    if pack.prescribing:
        lines += ["", "PRESCRIBING SAFETY CHECKS"]
        for c in pack.prescribing:
            if c.check == "max_frequency":
                rule = f"given more than {c.value:g} time(s) a week"
            elif c.check == "ome_at_least":
                rule = f"total oral morphine equivalent at least {c.value:g} mg/day"
            else:
                need = c.min_match or len(c.criteria)
                conds = "; ".join(x.describe() for x in c.criteria)
                rule = (f"{c.ingredient}: " if c.ingredient else "") + (
                    f"{need} of: {conds}" if need < len(c.criteria) else conds
                )
                if c.requires:
                    rule = " and ".join(x.describe() for x in c.requires) + f", with {rule}"
            lines.append(f"- {c.severity.value.upper():<7} {rule}: {c.advice}{mark(c.verified)}")
            lines.append(f"    source: {cite(c.citation)}")
    ome = [i for i in pack.ingredients if i.ome is not None]
    if ome:
        lines += ["", "ORAL MORPHINE EQUIVALENT FACTORS"]
        for i in ome:
            assert i.ome is not None  # noqa: S101 - filtered above
            per = "mg/day" if i.ome.per == "mg" else "microgram/hour"
            lines.append(
                f"- {i.name}: x {i.ome.factor:g} per {per}{mark(i.ome.verified)} "
                f"({cite(i.ome.citation)})"
            )
    return "\n".join(lines)
