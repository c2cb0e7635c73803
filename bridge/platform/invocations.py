"""Test-invocation models: ``GET /v1/convai/test-invocations`` (cursor pagination)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from bridge.platform.common import ListResponseMeta, ResourceAccessInfo

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 30


class TestInvocationSummary(msgspec.Struct, kw_only=True):
    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    id: str
    created_at_unix_secs: int
    test_run_count: int
    passed_count: int
    failed_count: int
    pending_count: int
    title: str
    access_info: ResourceAccessInfo | None = None
    # Not in the seed, required by the official SDK's model; the platform sends it.
    cancelled_count: int = 0


class TestInvocationsPage(msgspec.Struct, kw_only=True):
    __test__: ClassVar[bool] = False

    results: list[TestInvocationSummary]
    has_more: bool
    next_cursor: str | None = None
    meta: ListResponseMeta | None = None
