"""The signed-URL endpoint failing (5xx) or hanging, while another call is live."""

from __future__ import annotations

import asyncio

from bridge.config import ws_url_for
from bridge.convai.client import AgentConnector
from bridge.emulator.platform import Fault
from bridge.platform.client import PlatformClient
from tests.faults.conftest import fault_bridge, silent_server
from tests.faults.test_agent_faults import (
    FAULTY_SCRIPT,
    HEALTHY_SCRIPT,
    RoutedConnector,
    apology,
    assert_healthy,
    loopback_agent,
)
from tests.fixtures.bridge import eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"


def signed_connector(client: PlatformClient, platform: PlatformEmulator) -> AgentConnector:
    return AgentConnector(
        ws_url_for(platform.http_url), signed_url=client.get_signed_url, open_timeout_s=5.0
    )


async def test_signed_url_5xx_fails_that_call_only(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    private = p.create_agent(behaviour={"mode": "echo"}, private=True)
    healthy = loopback_agent(p)
    async with (
        p.client() as rest,  # 2 retries: 3 requests per signed URL
        fault_bridge(
            p,
            connector=signed_connector(rest, p),
            ELEVENLABS_API_KEY=p.api_key,
        ) as e2e,
    ):
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        # The healthy call fetches its own signed URL: the fault goes in only once its
        # conversation is open, or its request could take one of the three 503s.
        await eventually(lambda: len(p.conversations(healthy)) == 1)
        p.state.inject_fault(Fault(path_prefix=SIGNED_URL_PATH, status=503, times=3))
        faulty = await e2e.call(private, FAULTY_SCRIPT)
        good = await good_task
        assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
        assert p.conversations(private) == []
        assert metric(e2e.app, "bridge_upstream_errors_total", kind="signed_url") == 1
        assert p.state.faults == []  # every retry was answered 503
        assert_healthy(e2e, good)


async def test_signed_url_that_hangs_times_out_that_call_only(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    healthy = loopback_agent(p)
    async with silent_server() as port:
        hanging = PlatformClient(f"http://127.0.0.1:{port}", p.api_key, timeout_s=30)
        slow = AgentConnector(
            ws_url_for(p.http_url), signed_url=hanging.get_signed_url, open_timeout_s=0.5
        )
        async with (
            p.client() as rest,
            fault_bridge(
                p,
                connector=RoutedConnector(signed_connector(rest, p), {"agent_slow": slow}),
                ELEVENLABS_API_KEY=p.api_key,
            ) as e2e,
        ):
            good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
            await eventually(lambda: len(e2e.app.state.calls) == 1)
            faulty = await e2e.call("agent_slow", FAULTY_SCRIPT)
            good = await good_task
            assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
            assert metric(e2e.app, "bridge_upstream_errors_total", kind="signed_url_timeout") == 1
            assert_healthy(e2e, good)
        await hanging.aclose()
