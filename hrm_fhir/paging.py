"""Paging for the lists people and clients read (the worklist, the review queue, escalations): a
window of an ordered list, and where the rest of it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

API_LIMIT = 100
"""Items an API list returns when the client does not say (``limit``)."""
API_MAX_LIMIT = 500


@dataclass(frozen=True)
class Window(Generic[T]):
    """``items`` are ``total``'s items from ``offset`` (0-based), at most ``limit`` of them."""

    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def number(self) -> int:
        """The page shown, from 1."""
        return self.offset // self.limit + 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))

    @property
    def first(self) -> int:
        """The position of the first item shown, from 1 (0 when none is)."""
        return self.offset + 1 if self.items else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.items)

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None

    @property
    def previous_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None

    def numbers(self, around: int = 2) -> list[int | None]:
        """The page numbers to link: the first, the last and those within ``around`` of this
        one, in order; None marks the pages left out between them."""
        near = range(max(1, self.number - around), min(self.pages, self.number + around) + 1)
        out: list[int | None] = []
        previous = 0
        for number in sorted({1, self.pages, *near}):
            if number - previous > 1:
                out.append(None)
            out.append(number)
            previous = number
        return out


def window(items: Sequence[T], *, offset: int = 0, limit: int) -> Window[T]:
    """The items from ``offset``, at most ``limit`` of them."""
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    return Window(list(items[offset : offset + limit]), len(items), offset, limit)


def page(items: Sequence[T], number: str | None, size: int) -> Window[T]:
    """Page ``number`` (as the URL gives it, from 1) of ``items``, ``size`` a page; a missing or
    unusable number is the first page, one past the end the last."""
    wanted = int(number) if number and number.isdigit() and int(number) > 0 else 1
    last = max(1, -(-len(items) // size))
    return window(items, offset=(min(wanted, last) - 1) * size, limit=size)
