"""Upstream reachability: the readiness rule, the probe, and the kinds of connect errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bridge.config import ws_url_for
from bridge.convai.client import AgentConnector
from bridge.emulator.platform import Fault
from bridge.errors import PlatformApiError
from bridge.ops.upstream import probe_loop, probe_once
from bridge.platform.client import PlatformClient
from bridge.platform.reachability import UpstreamHealth, connect_error_kind
from tests.faults.conftest import closed_port, silent_server
from tests.fixtures.bridge import eventually
from tests.fixtures.platform_emulator import PlatformEmulator


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reachable_means_an_answer_within_the_stale_limit() -> None:
    clock = Clock()
    h = UpstreamHealth(clock)
    assert not h.reachable(30)  # never answered
    assert h.reachable(0)  # 0: not checked at all
    h.ok()
    clock.now += 30
    assert h.reachable(30)
    clock.now += 0.1
    assert not h.reachable(30)
    h.failed("ws_timeout")  # a failure alone changes nothing ...
    assert not h.reachable(30) and h.last_failure_kind == "ws_timeout"
    h.ok()  # ... an answer does
    assert h.reachable(30) and h.since_ok() == 0


async def _kind(connector: AgentConnector, agent_id: str = "agent_x") -> str:
    with pytest.raises(PlatformApiError) as e:
        await connector.connect(agent_id)
    return connect_error_kind(e.value)


async def test_connect_error_kinds_from_real_failures(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    ws = ws_url_for(p.http_url)
    assert await _kind(AgentConnector(f"ws://127.0.0.1:{closed_port()}")) == "ws_unreachable"
    async with silent_server() as port:
        hung = AgentConnector(f"ws://127.0.0.1:{port}", open_timeout_s=0.3)
        assert await _kind(hung) == "ws_timeout"
        hanging_rest = PlatformClient(f"http://127.0.0.1:{port}", "k", timeout_s=30)
        slow = AgentConnector(ws, signed_url=hanging_rest.get_signed_url, open_timeout_s=0.3)
        assert await _kind(slow) == "signed_url_timeout"
        await hanging_rest.aclose()
    # An HTTP status instead of 101 (the emulator answers a bad path with 404).
    assert await _kind(AgentConnector(ws + "/nowhere")) == "ws_rejected"
    async with p.client() as rest:
        p.state.inject_fault(Fault(path_prefix="/v1/convai/conversation/get-signed-url",
                                   status=500, times=3))  # fmt: skip
        signed = AgentConnector(ws, signed_url=rest.get_signed_url)
        assert await _kind(signed, "agent_emulator_echo") == "signed_url"
    dead_rest = PlatformClient(f"http://127.0.0.1:{closed_port()}", "k", max_retries=0)
    unreachable = AgentConnector(ws, signed_url=dead_rest.get_signed_url)
    assert await _kind(unreachable) == "signed_url_unreachable"
    await dead_rest.aclose()


async def test_probe_counts_any_answer_below_500(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    p = platform_emulator
    h = UpstreamHealth()
    async with p.client() as good:
        assert await probe_once(h, lambda: good.list_agents(page_size=1))
    assert h.last_ok is not None
    async with PlatformClient(p.http_url, "wrong key") as wrong:
        h2 = UpstreamHealth()
        with caplog.at_level(logging.WARNING, logger="bridge.ops"):
            assert await probe_once(h2, lambda: wrong.list_agents(page_size=1))
        assert h2.reachable(30)  # the platform is there; the key is the operator's problem
        assert [r.getMessage() for r in caplog.records] == ["ops.upstream_auth"]
    async with PlatformClient(f"http://127.0.0.1:{closed_port()}", "k", max_retries=0) as dead:
        h3 = UpstreamHealth()
        assert not await probe_once(h3, lambda: dead.list_agents(page_size=1))
        assert h3.last_ok is None and h3.last_failure_kind == "probe"


async def test_probe_loop_probes_only_when_nothing_answered(
    platform_emulator: PlatformEmulator,
) -> None:
    calls = 0
    h = UpstreamHealth()

    async with platform_emulator.client() as rest:

        async def probe() -> object:
            nonlocal calls
            calls += 1
            return await rest.list_agents(page_size=1)

        task = asyncio.create_task(probe_loop(h, probe, interval_s=0.2))
        try:
            await eventually(lambda: calls >= 2)  # idle: it keeps asking
            assert h.reachable(1.0)
            before = calls
            for _ in range(10):  # calls keep opening sockets: the probe stays quiet
                h.ok()
                await asyncio.sleep(0.05)
            assert calls == before
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
