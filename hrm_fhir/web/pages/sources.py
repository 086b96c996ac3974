"""Where a finding comes from, for the pages: the rule pack (id@version) and the citation behind
the part of it that fired."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hrm_fhir.rules.catalogue import ResultsNotSeen, UnissuedActive
from hrm_fhir.rules.model import Baseline, Citation, PrescribingCheck, RulePack, Schedule, Threshold
from hrm_fhir.rules.monitoring import RESULTS_NOT_SEEN
from hrm_fhir.rules.prescribing import UNISSUED_ACTIVE
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


_Part = Schedule | Baseline | Threshold | PrescribingCheck | UnissuedActive | ResultsNotSeen
"""A part of a rule with its own citation and verified flag."""


def _catalogue_checks(rules: RuleSet) -> dict[str, _Part]:
    """The checks whose rule lives in the catalogue rather than the pack, by check id."""
    checks: dict[str, _Part] = {UNISSUED_ACTIVE: rules.catalogue.unissued_active}
    if rules.catalogue.shared_care is not None:
        checks[RESULTS_NOT_SEEN] = rules.catalogue.shared_care.results_not_seen
    return checks


def _fired(
    rules: RuleSet, pack: RulePack, check: str, url: str | None
) -> list[tuple[Citation, bool]]:
    """The citation and verified flag of each part of ``pack`` that fired.

    ``check`` names the parts, joined by commas when one finding covers several (a monitoring
    finding lists every schedule and baseline due in its window). "Active but not issued" and
    "no result has reached the practice" are cited from the catalogue; any other check that is
    no part of the pack by the URL the resource itself names (unverified); with no check at all
    every citation of the pack is given."""
    every: list[Schedule | Baseline | Threshold | PrescribingCheck] = [
        *pack.schedules,
        *pack.baselines,
        *pack.thresholds,
        *pack.prescribing,
    ]
    parts: dict[str, _Part] = {
        **_catalogue_checks(rules),
        **{part.id: part for part in every},
    }
    known = {**rules.catalogue.citations, **pack.citations}
    if not check:
        return [(citation, pack.verified) for citation in pack.citations.values()]
    found: list[tuple[Citation, bool]] = []
    for name in check.split(","):
        part = parts.get(name)
        if part is not None and part.citation in known:
            found.append((known[part.citation], part.verified))
        elif url:
            found += [(c, False) for c in known.values() if c.url == url][:1]
    return found


def sources_for(rules: RuleSet, rule: str | None, url: str | None = None) -> list[Source]:
    """The citations behind ``rule`` (``id@version``, or ``id@version#check`` for the part of
    the pack that fired), one per page cited (unverified when any part citing it is); ``url`` is
    the source the resource itself names, shown when the rule is not in this service's rule
    set."""
    if not rule:
        return [Source("", "", "", "Source", url, "", False)] if url else []
    ref, _, check = rule.partition("#")
    pack = _pack(rules, ref)
    if pack is None:
        title = "rule not in this service's rule set" if not url else "Source"
        return [Source(ref, "", "", title, url or "", "", False)]
    by_url: dict[str, Source] = {}
    for citation, verified in _fired(rules, pack, check, url):
        seen = by_url.get(citation.url)
        if seen is not None:
            by_url[citation.url] = replace(seen, verified=seen.verified and verified)
            continue
        by_url[citation.url] = Source(
            rule=ref,
            rule_title=pack.title,
            publisher=citation.publisher,
            title=citation.title,
            url=citation.url,
            section=citation.section,
            verified=verified,
        )
    return list(by_url.values()) or [Source(ref, pack.title, "", pack.title, "", "", pack.verified)]
