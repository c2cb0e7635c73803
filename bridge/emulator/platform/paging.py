"""Cursor pagination as the platform does it: ``page_size`` 1-100 (default 30) and an
opaque ``next_cursor``; a cursor we did not issue is a 422."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bridge.errors import InputError
from bridge.platform.invocations import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_more: bool
    next_cursor: str | None
    page_size: int
    offset: int


def paginate(items: Sequence[T], page_size: int | None, cursor: str | None) -> Page[T]:
    """The page of ``items`` (already in listing order) that ``cursor`` points at."""
    size = page_size_or_default(page_size)
    start = cursor_offset(cursor)
    more = start + size < len(items)
    return Page(
        items[start : start + size], more, make_cursor(start + size) if more else None, size, start
    )


def page_size_or_default(page_size: int | None) -> int:
    if page_size is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InputError("query.page_size", f"page_size must be 1-{MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def make_cursor(offset: int) -> str:
    return f"off_{offset}"


def cursor_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not re.fullmatch(r"off_\d{1,9}", cursor):
        raise InputError("query.cursor", f"unknown cursor {cursor!r}")
    return int(cursor[4:])
