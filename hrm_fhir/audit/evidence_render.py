"""The evidence pack as people and tools read it: plain text, JSON or printable HTML.

Every format has the sections in the same order (see ``evidence.py``). Times are shown in
the service's time zone, named; JSON keeps the pack's field order and sorts the keys of the
ledger's free-form ``detail`` objects, so the same pack always gives the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, datetime

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined

from hrm_fhir import clock
from hrm_fhir.audit.evidence import (
    Attestation,
    EvidencePack,
    LedgerEvent,
    LedgerFinding,
    ResultConsidered,
    ScheduleApplied,
    Version,
    WrittenResource,
)
from hrm_fhir.untrusted import is_http_url
from hrm_fhir.workflow.views import HistoryItem

NOT_SIGNED_OFF = "NOT CLINICALLY SIGNED OFF"
UNVERIFIED = "[UNVERIFIED]"


def render(pack: EvidencePack, fmt: str) -> bytes:
    """The pack as ``text``, ``json`` or ``html``, in UTF-8."""
    if fmt == "json":
        return to_json(pack)
    return (to_html(pack) if fmt == "html" else to_text(pack)).encode()


def to_json(pack: EvidencePack) -> bytes:
    return orjson.dumps(pack, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def to_html(pack: EvidencePack) -> str:
    return _environment().get_template("audit/evidence.html").render(pack=pack)


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hrm_fhir.audit", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, day=day, number=number, detail=detail)
    env.globals.update(NOT_SIGNED_OFF=NOT_SIGNED_OFF, http_url=is_http_url)
    return env


def when(moment: datetime | None) -> str:
    """``2026-11-27 10:00 GMT``: an instant in the service's time zone, with the zone."""
    return moment.astimezone(clock.zone()).strftime("%Y-%m-%d %H:%M %Z") if moment else "unknown"


def day(value: date | None) -> str:
    return value.isoformat() if value else "none"


def number(value: float | None) -> str:
    return "no value" if value is None else f"{value:g}"


def detail(values: dict[str, object]) -> str:
    """A ledger event's fields as ``name: value; ...`` (empty ones left out)."""
    return "; ".join(
        f"{key.replace('_', ' ')}: {value}"
        for key, value in sorted(values.items())
        if value not in (None, "", [])
    )


def to_text(pack: EvidencePack) -> str:
    """The pack as plain text, sections in order."""
    parts = [
        _header(pack),
        _section("1. MONITORING SCHEDULE THAT APPLIED", _schedules(pack)),
        _section("2. TEST RESULTS CONSIDERED", _results(pack)),
        _section("3. TASKS AND FLAGS THE SERVICE WROTE", _written(pack)),
        _section("4. CONTACT ATTEMPTS", [_contact(c) for c in pack.contacts]),
        _section("5. DECISIONS AND SIGN-OFFS", _decisions(pack)),
    ]
    return "\n\n".join(parts) + "\n"


def _section(title: str, lines: list[str]) -> str:
    return "\n".join([title, *(lines or ["(none)"])])


def _header(pack: EvidencePack) -> str:
    who = pack.patient
    return "\n".join(
        [
            "EVIDENCE PACK: HIGH-RISK DRUG MONITORING",
            f"Patient:     {who.name or 'name not recorded'}",
            f"NHS number:  {who.nhs_number or 'not recorded'}",
            f"Born:        {day(who.birth_date)}",
            f"Reference:   {who.reference}",
            f"Practice:    {who.practice or 'not recorded'}",
            f"As of:       {pack.as_of.isoformat()} (records to the end of that day, "
            f"{clock.zone().key})",
            f"Generated:   {when(pack.generated_at)}",
            "Contains patient-identifiable information: keep and share it as the practice's "
            "information governance requires.",
        ]
    )


def _schedules(pack: EvidencePack) -> list[str]:
    lines: list[str] = []
    for applied in pack.schedules:
        lines += ["", *_schedule(applied)]
    return lines[1:]


def _schedule(s: ScheduleApplied) -> list[str]:
    signed = f"approved {s.approved_on}" if s.approved_on else NOT_SIGNED_OFF
    lines = [
        f"{s.drug_group}: {s.rule} {s.title} ({s.status}, effective from "
        f"{s.effective_from.isoformat()})",
        f"  Sign-off: {signed}; reviewed by: {s.reviewed_by or 'not yet reviewed'}; "
        f"values: {'all verified' if s.verified else 'some unverified'}",
        f"  Therapy: {'current' if s.current else 'not current'}; started "
        f"{s.therapy_start.isoformat()}; phases measured from {s.phase_anchor.isoformat()}",
        f"  Latest prescription: {s.medication} ({s.ingredient}, matched by {s.matched_by})",
    ]
    for st in s.statements:
        mark = "" if st.verified else f" {UNVERIFIED}"
        c = st.citation
        lines += [
            f"  - {st.kind}: {st.text}{mark}",
            f"      source: {c.publisher}, {c.title} <{c.url}>",
        ]
    lines.append("  Tests last done:")
    lines += [
        f"  - {t.title}: {day(t.last_done)} ({t.observation})"
        if t.observation
        else f"  - {t.title}: no result on record"
        for t in s.tests
    ]
    return lines


def _results(pack: EvidencePack) -> list[str]:
    lines = [_result(r) for r in pack.results]
    if pack.skipped:
        lines += ["Left out or not compared:", *(f"- {s.source}: {s.reason}" for s in pack.skipped)]
    return lines


def _result(r: ResultConsidered) -> str:
    value = f"{number(r.value)} {r.unit or ''}".strip()
    if r.value is None:
        state = "test done"
    else:
        state = "normalised" if r.normalised else "NOT normalised: never compared with a threshold"
    ranged = f"; range {number(r.ref_low)}-{number(r.ref_high)}" if r.ref_low or r.ref_high else ""
    return f"- {r.on.isoformat()}  {r.title}: {value} ({state}{ranged})  {r.observation}"


def _written(pack: EvidencePack) -> list[str]:
    lines: list[str] = []
    for resource in [*pack.tasks, *pack.flags]:
        lines += ["", *_resource(resource)]
    return lines[1:]


def _resource(r: WrittenResource) -> list[str]:
    severity = f", {r.severity.value.upper()}" if r.severity else ""
    stage = f", stage {r.stage.label}" if r.stage else ""
    period = "due window" if r.reference.startswith("Task/") else "period"
    lines = [
        f"{r.reference}: {r.kind}{severity}, rule {r.rule or 'none'}",
        f"  {r.description}",
        f"  Now: {r.status}{stage}; {period} {r.period_start or '?'} to {r.period_end or 'open'}",
        f"  Source: {r.source or 'none'}",
        "  Versions:",
    ]
    return lines + [f"  - {_version(v)}" for v in r.versions]


def _version(v: Version) -> str:
    parts = [f"v{v.version or '?'}", when(v.last_updated), v.status]
    if v.stage is not None:
        parts.append(f"stage {v.stage.label} ({v.business_status or 'not set'})")
    if v.owner:
        parts.append(f"owner {v.owner}")
    text = "  ".join(parts)
    return text + "".join(f"\n      note: {note}" for note in v.notes)


def _contact(c: HistoryItem) -> str:
    line = f"- {when(c.at)}  {c.medium or 'medium not recorded'}: {c.outcome or 'no outcome'}"
    line += f" ({c.status or 'no status'}) by {c.by or 'unknown'}; Task {', '.join(c.task_ids)}"
    return line + (f"; note: {c.note}" if c.note else "") + f"  {c.reference}"


def _decisions(pack: EvidencePack) -> list[str]:
    lines = ["Provenance on the FHIR server:"]
    lines += _or_none(_attestation(a) for a in pack.provenance)
    lines.append("Workflow ledger (this service's database):")
    lines += _or_none(_event(e) for e in pack.events)
    lines.append("Findings ledger:")
    lines += _or_none(_finding(f) for f in pack.findings)
    return lines


def _or_none(items: Iterable[str]) -> list[str]:
    return list(items) or ["- none"]


def _attestation(a: Attestation) -> str:
    agents = "; ".join(
        f"{g.name}{f' ({g.username})' if g.username else ''}, {g.role or 'no role'}, "
        f"{g.type or 'no type'}"
        for g in a.agents
    )
    lines = [f"- {when(a.recorded)}  {a.activity}", f"    by: {agents or 'no agent'}"]
    if a.reason:
        lines.append(f"    reason: {a.reason}")
    lines.append(f"    targets: {', '.join(a.targets)}")
    if a.sources:
        lines.append(f"    results reviewed: {', '.join(a.sources)}")
    lines.append(f"    record: {a.reference}")
    return "\n".join(lines)


def _event(e: LedgerEvent) -> str:
    change = f"{e.stage_before or '?'} -> {e.stage_after or '?'}"
    text = f"- {when(e.at)}  {e.action} by {e.actor} ({e.role}) on {e.task_id}: {change}"
    fields = detail(e.detail)
    return text + (f"\n    {fields}" if fields else "")


def _finding(f: LedgerFinding) -> str:
    closed = (
        f"closed {when(f.closed_at)} ({f.close_reason or 'no reason'})" if f.closed_at else "open"
    )
    return (
        f"- {f.identifier}: {f.kind} {f.rule}#{f.check} on {f.resource}; "
        f"opened {when(f.opened_at)}; {closed}"
    )
