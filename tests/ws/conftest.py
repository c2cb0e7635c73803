"""A WebSocket adapter fault often shows only as an error logged by the event loop
(``protocol.data_received() call failed``): such a log fails the test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest
import uvloop


@pytest.fixture(autouse=True)
def _no_event_loop_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    errors = [
        r.getMessage()
        for when in ("setup", "call", "teardown")
        for r in caplog.get_records(when)
        if r.name == "asyncio" and r.levelno >= logging.ERROR
    ]
    assert errors == []


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every test here runs on asyncio's loop and on uvloop (what ``bridge serve`` uses)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
