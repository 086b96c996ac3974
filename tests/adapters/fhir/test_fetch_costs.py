"""How a sweep weighs re-reading changed patients against paging the whole scope (pure)."""

from __future__ import annotations

from hrm_fhir.adapters.fhir.fetch import (
    RECORD_TYPES,
    batch_limit,
    page_requests,
    searches_per_group,
)


def test_patients_are_re_read_in_groups_only_while_that_costs_less_than_paging_the_scope() -> None:
    # 20,000 patients with pages of 500: 261 page requests; four searches per twenty patients,
    # each counted as half a page, stay cheaper up to 2,600 patients.
    assert batch_limit(261, 4) == 2600
    assert batch_limit(4, 4) == 20, "a tiny practice: one group of twenty"
    assert batch_limit(1, 4) == 0
    assert [batch_limit(n, 4) for n in range(1, 40)] == sorted(
        batch_limit(n, 4) for n in range(1, 40)
    )


def test_every_extra_search_makes_a_group_of_twenty_cost_more() -> None:
    extra = [("Task", {"code": "arrangement"}), ("Goal", {})]
    assert searches_per_group(()) == len(RECORD_TYPES) == 6
    assert searches_per_group(extra) == 8
    # 521 searches of half a page fit in 261 pages: 86 groups of six, 65 groups of eight.
    assert batch_limit(261, searches_per_group(())) == 1720
    assert batch_limit(261, searches_per_group(extra)) == 1300


def test_paging_a_search_takes_one_request_per_page_and_one_at_least() -> None:
    assert page_requests([0, 501, 500], 500) == 4
