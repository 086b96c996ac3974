"""The searches a sweep runs beyond the record types, as the rules ask for them."""

from __future__ import annotations

from hrm_fhir.adapters.fhir.fetch import OURS_TAG, arrangement_searches
from hrm_fhir.terminology import TASK_CODE
from tests.builders import PRACTICE_CODES, rules, rules_with_shared_care_entries

ARRANGEMENT_TASKS = ("Task", {"code": f"{TASK_CODE}|monitored-elsewhere", "_tag": OURS_TAG})


def test_without_shared_care_entry_codes_only_the_arrangement_tasks_are_searched() -> None:
    assert arrangement_searches(rules()) == [ARRANGEMENT_TASKS]


def test_shared_care_conditions_are_searched_by_code_and_flags_whole_r4_flag_has_no_code() -> None:
    codes = ",".join(
        f"{PRACTICE_CODES}|{code}" for code in ("lithium-by-cmht", "monitored-here", "shared-care")
    )
    assert arrangement_searches(rules_with_shared_care_entries()) == [
        ARRANGEMENT_TASKS,
        ("Condition", {"code": codes}),
        ("Flag", {"_tag:not": OURS_TAG}),
    ], "every Flag but the service's own, its code matched locally; Procedures are read whole"
