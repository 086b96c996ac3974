"""Where a finding comes from, for the pages: the rule pack (id@version) and its citation."""

from __future__ import annotations

from dataclasses import dataclass

from hrm_fhir.rules.model import PrescribingCheck, RulePack, Schedule, Threshold
from hrm_fhir.rules.registry import RuleSet


@dataclass(frozen=True, slots=True)
class Source:
    rule: str
    """``<rule-id>@<version>``."""
    rule_title: str
    publisher: str
    title: str
    url: str
    section: str
    verified: bool


def _pack(rules: RuleSet, rule: str) -> RulePack | None:
    rule_id, _, version = rule.partition("@")
    try:
        return rules.get(rule_id, int(version) if version.isdigit() else None)
    except KeyError:
        return None


def _citation_keys(pack: RulePack, check: str | None) -> tuple[list[str], bool]:
    """The citation keys of the part of the pack that fired (all of them when unknown)."""
    if check:
        parts: list[Schedule | Threshold | PrescribingCheck] = [
            *pack.schedules,
            *pack.thresholds,
            *pack.prescribing,
        ]
        for part in parts:
            if part.id == check:
                return [part.citation], part.verified
    return list(pack.citations), pack.verified


def sources_for(rules: RuleSet, rule: str | None, url: str | None = None) -> list[Source]:
    """The citations behind ``rule`` (``id@version``, or ``id@version#check`` for the part of
    the pack that fired); ``url`` is the source the resource itself names, shown when the rule
    is not in this service's rule set."""
    if not rule:
        return [Source("", "", "", "Source", url, "", False)] if url else []
    ref, _, check = rule.partition("#")
    pack = _pack(rules, ref)
    if pack is None:
        title = "rule not in this service's rule set" if not url else "Source"
        return [Source(ref, "", "", title, url or "", "", False)]
    rule = ref
    keys, verified = _citation_keys(pack, check or None)
    found = [
        Source(
            rule=rule,
            rule_title=pack.title,
            publisher=citation.publisher,
            title=citation.title,
            url=citation.url,
            section=citation.section,
            verified=verified,
        )
        for key in keys
        if (citation := pack.citations.get(key)) is not None
    ]
    return found or [Source(rule, pack.title, "", pack.title, "", "", pack.verified)]
