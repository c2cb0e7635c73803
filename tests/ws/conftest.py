"""A WebSocket adapter fault often shows only as an error logged by the event loop
(``protocol.data_received() call failed``): such a log fails the test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
import uvloop

from tests.ws.peers import DirectServer, direct_server


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


# One server per module (and event loop) for the modules that ask for ``server``:
# uvicorn's start and stop cost ~0.2 s each.
@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_server() -> AsyncIterator[DirectServer]:
    async with direct_server() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def server(shared_server: DirectServer) -> AsyncIterator[DirectServer]:
    yield shared_server
    await shared_server.settle()
