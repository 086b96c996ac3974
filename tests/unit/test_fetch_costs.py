"""How a sweep weighs re-reading changed patients against paging the whole scope (pure)."""

from __future__ import annotations

from hrm_fhir.fetch import batch_limit, page_requests


def test_patients_are_re_read_in_groups_only_while_that_costs_less_than_paging_the_scope() -> None:
    # 20,000 patients with pages of 500: 261 page requests; four searches per twenty patients,
    # each counted as half a page, stay cheaper up to 2,600 patients.
    assert batch_limit(261) == 2600
    assert batch_limit(4) == 20, "a tiny practice: one group of twenty"
    assert batch_limit(1) == 0
    assert [batch_limit(n) for n in range(1, 40)] == sorted(batch_limit(n) for n in range(1, 40))


def test_paging_a_type_takes_one_request_per_page_and_one_at_least() -> None:
    assert page_requests({"Patient": 0, "Observation": 501, "MedicationRequest": 500}, 500) == 4
