"""The pages cite the part of a rule that fired, not every citation of its pack."""

from __future__ import annotations

from hrm_fhir.web.pages.sources import sources_for
from tests.builders import rules

SPS_LITHIUM = "https://www.sps.nhs.uk/monitorings/lithium-monitoring/"


def _schedules(rule_id: str) -> str:
    return ",".join(s.id for s in rules().get(rule_id).schedules)


def test_a_monitoring_finding_over_several_schedules_cites_only_their_sources() -> None:
    found = sources_for(rules(), f"lithium@1#{_schedules('lithium')}")

    assert [(s.url, s.verified) for s in found] == [(SPS_LITHIUM, True)]
    assert found[0].rule == "lithium@1"


def test_a_threshold_cites_its_own_source_and_says_when_it_is_unverified() -> None:
    [toxic] = sources_for(rules(), "lithium@1#lithium-toxic")
    [tsh] = sources_for(rules(), "lithium@1#tsh-high")

    assert toxic.publisher == "NHS Greater Glasgow and Clyde"
    assert toxic.verified
    assert (tsh.url, tsh.verified) == (SPS_LITHIUM, False)


def test_two_parts_citing_one_page_show_it_once_unverified_when_either_part_is() -> None:
    found = sources_for(rules(), "lithium@1#lithium-above-target,tsh-high")

    assert [(s.url, s.verified) for s in found] == [(SPS_LITHIUM, False)]


def test_active_but_not_issued_cites_the_catalogue_rule_behind_it() -> None:
    catalogue = rules().catalogue
    cited = catalogue.citations[catalogue.unissued_active.citation]

    [found] = sources_for(rules(), "lithium@1#active-not-issued", cited.url)

    assert (found.title, found.url, found.verified) == (cited.title, cited.url, False)


def test_an_unknown_check_is_cited_by_the_url_the_resource_names_unverified() -> None:
    [found] = sources_for(rules(), "lithium@1#retired-check", SPS_LITHIUM)

    assert (found.url, found.verified) == (SPS_LITHIUM, False)


def test_with_no_check_every_page_the_pack_cites_is_listed_once() -> None:
    pack = rules().get("lithium")
    found = sources_for(rules(), pack.ref)

    assert [s.url for s in found] == list(dict.fromkeys(c.url for c in pack.citations.values()))
    assert len(found) < len(pack.citations)


def test_a_baseline_due_at_a_new_start_cites_the_baseline_s_own_source() -> None:
    pack = rules().get("azathioprine", 3)
    [tpmt] = [b for b in pack.baselines if b.id == "tpmt"]

    [found] = sources_for(rules(), "azathioprine@3#tpmt")

    assert (found.url, found.verified) == (pack.citations[tpmt.citation].url, tpmt.verified)


def test_results_not_seen_under_shared_care_cites_the_catalogue_rule_behind_it() -> None:
    catalogue = rules().catalogue
    assert catalogue.shared_care is not None
    check = catalogue.shared_care.results_not_seen
    cited = catalogue.citations[check.citation]

    [found] = sources_for(rules(), "lithium@1#results-not-seen")

    assert (found.title, found.url, found.verified) == (cited.title, cited.url, check.verified)
