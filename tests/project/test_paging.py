"""Paging the lists: a window of an ordered list and where the rest of it is."""

from __future__ import annotations

import pytest

from hrm_fhir.paging import page, window

ITEMS = list(range(1, 37))


def test_a_window_says_what_it_shows_and_where_the_next_and_previous_start() -> None:
    shown = window(ITEMS, offset=10, limit=10)
    assert shown.items == list(range(11, 21))
    assert (shown.total, shown.number, shown.pages, shown.first, shown.last) == (36, 2, 4, 11, 20)
    assert (shown.previous_offset, shown.next_offset) == (0, 20)
    last = window(ITEMS, offset=30, limit=10)
    assert (last.items, last.next_offset, last.previous_offset) == (
        [31, 32, 33, 34, 35, 36],
        None,
        20,
    )


def test_an_empty_list_is_one_empty_page() -> None:
    shown = window([], offset=0, limit=10)
    assert (shown.items, shown.pages, shown.first, shown.last, shown.next_offset) == (
        [],
        1,
        0,
        0,
        None,
    )


def test_a_window_past_the_end_is_empty_but_knows_the_total() -> None:
    shown = window(ITEMS, offset=100, limit=10)
    assert (shown.items, shown.total, shown.next_offset, shown.previous_offset) == (
        [],
        36,
        None,
        90,
    )


@pytest.mark.parametrize(
    ("asked", "number"), [(None, 1), ("", 1), ("0", 1), ("-2", 1), ("x", 1), ("3", 3), ("99", 4)]
)
def test_a_page_number_from_the_url_is_read_safely(asked: str | None, number: int) -> None:
    assert page(ITEMS, asked, 10).number == number


def test_page_links_keep_the_first_the_last_and_the_neighbours() -> None:
    many = list(range(200))
    assert page(many, "10", 10).numbers() == [1, None, 8, 9, 10, 11, 12, None, 20]
    assert page(many, "1", 10).numbers() == [1, 2, 3, None, 20]
    assert page(ITEMS, "2", 10).numbers() == [1, 2, 3, 4]
