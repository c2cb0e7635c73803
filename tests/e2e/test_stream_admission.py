"""Who may start a media stream, end to end on loopback (issue 13, items 3, 5 and 10).

The upgrade signature is the same for every call, so each test holds a *captured* one
(valid, computed over the fixed stream URL) and shows that it no longer suffices: the
``start`` must carry the stream token the webhook wrote for that very call.  A healthy
call runs beside every attack and must come through unharmed (tone SNR >= 30 dB).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableSequence

import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge.asgi import running_server
from bridge.config import ws_url_for
from bridge.convai.client import AgentConnector
from bridge.emulator.twilio import TwilioEmulatorState, create_twilio_app
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.webhook import new_sid
from bridge.twilio import media as twilio
from bridge.twilio.signature import compute_signature
from tests.e2e.conftest import CallStarted, with_token
from tests.faults.conftest import STREAM_URL, fault_bridge, raw_stream
from tests.faults.test_agent_faults import HEALTHY_SCRIPT, assert_healthy, loopback_agent
from tests.fixtures.bridge import (
    CALLER,
    PUBLIC,
    bridge_config,
    eventually,
    metric,
    running_bridge,
)
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator


def refused(app: Starlette, reason: str) -> float:
    return metric(app, "bridge_stream_refused_total", reason=reason)


async def closed_with(ws: ClientConnection) -> int | None:
    """The close code the bridge ended a raw connection with."""
    await asyncio.wait_for(ws.wait_closed(), 10)
    return ws.close_code


# --------------------------------------------------------------------------- REST victim


def _recording(app: ASGIApp, seen: MutableSequence[str]) -> ASGIApp:
    """The REST emulator, noting every request's method and path."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    return asgi


@contextlib.asynccontextmanager
async def recorded_twilio() -> AsyncIterator[tuple[TwilioEmulator, list[str]]]:
    state = TwilioEmulatorState(
        account_sid=new_sid("AC"), auth_token=secrets.token_hex(16), speed=4.0
    )
    seen: list[str] = []
    async with running_server(_recording(create_twilio_app(state), seen)) as server:
        yield TwilioEmulator(server.http_url, state.account_sid, state.auth_token, state), seen


async def test_a_captured_upgrade_signature_cannot_hang_up_a_live_call(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    p = platform_emulator
    victim_agent = loopback_agent(p)
    async with recorded_twilio() as (tw, rest_seen):
        started = CallStarted()
        cfg = bridge_config(
            p,
            TWILIO_ACCOUNT_SID=tw.account_sid,
            TWILIO_AUTH_TOKEN=tw.auth_token,
            TWILIO_API_BASE_URL=tw.http_url,
        )
        async with running_bridge(p, cfg, watch=started) as e2e:
            number = e2e.number_for(victim_agent)
            victim_task = asyncio.create_task(
                tw.place_call(
                    e2e.server.http_url,
                    to=number,
                    from_=CALLER,
                    script=HEALTHY_SCRIPT,
                    speed=4.0,
                    public_url=PUBLIC,
                    voice_path="/twilio/inbound",
                )
            )
            await started.event.wait()
            (live,) = list(e2e.app.state.calls)
            victim = live.call_sid
            params = {"agent_id": victim_agent, "caller_id": CALLER, "called_number": number}
            captured = {"X-Twilio-Signature": compute_signature(tw.auth_token, STREAM_URL, {})}
            forgeries = [
                ("missing", params),  # the attack of the issue: no token at all
                ("bad_mac", {**params, "bridge_token": "v1.9999999999.c." + "A" * 43}),
                # The victim's own valid token (as if captured too): the call is live.
                (
                    "duplicate_call",
                    with_token(e2e.app, victim, params, account_sid=tw.account_sid),
                ),
            ]
            with caplog.at_level(logging.WARNING, logger="bridge.call"):
                for i, (_, custom) in enumerate(forgeries):
                    async with connect(
                        e2e.server.ws_url + "/twilio/media", additional_headers=captured
                    ) as ws:
                        sid = f"MZ{i:032d}"
                        body = twilio.StartBody(
                            streamSid=sid,
                            callSid=victim,
                            accountSid=tw.account_sid,
                            customParameters=custom,
                        )
                        await ws.send(twilio.encode(twilio.Connected()))
                        await ws.send(
                            twilio.encode(
                                twilio.Start(sequenceNumber="1", start=body, streamSid=sid)
                            )
                        )
                        with contextlib.suppress(ConnectionClosed):
                            async for _ in ws:
                                pass
                        assert ws.close_code == 1008
                    assert e2e.app.state.calls.get(victim) is live  # never overwritten
            res = await asyncio.wait_for(victim_task, 30)
            assert_healthy(e2e, res)
            for reason, _ in forgeries:
                assert refused(e2e.app, reason) == 1
            # No REST request named the victim: nothing was hung up or redirected.
            assert not [r for r in rest_seen if victim in r], rest_seen
            lines = [r for r in caplog.records if r.getMessage() == "call.stream_refused"]
            assert len(lines) == 3 and all(r.levelno == logging.WARNING for r in lines)
            # Only the victim's own conversation ever opened; its token stayed ours.
            (conversation,) = p.conversations(victim_agent)
            assert conversation.dynamic_variables["call_sid"] == victim
            assert "bridge_token" not in conversation.dynamic_variables


# --------------------------------------------------------------------------- private agent


class RecordingSignedUrls:
    """The bridge's signed-URL fetch, noting which agents it was asked for."""

    def __init__(self, fetch: Callable[[str], Awaitable[str]]) -> None:
        self.fetch = fetch
        self.agents: list[str] = []

    async def __call__(self, agent_id: str) -> str:
        self.agents.append(agent_id)
        return await self.fetch(agent_id)


async def test_a_forged_agent_id_cannot_reach_a_private_agent(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    private = p.create_agent(behaviour={"mode": "echo"}, first_message="secret", private=True)
    public = loopback_agent(p)
    async with p.client() as client:
        signed = RecordingSignedUrls(client.get_signed_url)
        connector = AgentConnector(ws_url_for(p.http_url), signed_url=signed, open_timeout_s=5)
        async with fault_bridge(p, connector=connector, ELEVENLABS_API_KEY=p.api_key) as e2e:
            good = asyncio.create_task(e2e.call(public, HEALTHY_SCRIPT))
            async with raw_stream(e2e) as a, raw_stream(e2e) as b:
                params = {"agent_id": private, "caller_id": CALLER}
                await a.start(params, token=False)  # the attack: no token
                # A valid token for the public agent, agent_id swapped afterwards.
                valid = with_token(e2e.app, b.call_sid, {"agent_id": public, "caller_id": CALLER})
                await b.start({**valid, "agent_id": private}, token=False)
                assert await closed_with(a.ws) == 1008
                assert await closed_with(b.ws) == 1008
            assert_healthy(e2e, await good)
            assert p.conversations(private) == []
            assert private not in signed.agents
            assert refused(e2e.app, "missing") == 1 and refused(e2e.app, "bad_mac") == 1
            # Nothing recorded in the forged calls' names.
            assert e2e.store.flush()
            assert e2e.store.get_call(a.call_sid) is None
            assert e2e.store.get_call(b.call_sid) is None


# --------------------------------------------------------------------------- single use


async def test_a_used_token_cannot_open_a_second_stream(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    async with fault_bridge(p) as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as first:
            params = with_token(e2e.app, first.call_sid, {"agent_id": agent, "caller_id": CALLER})
            await first.start(params, token=False)
            for _ in range(10):
                await first.media()
            await eventually(lambda: e2e.app.state.calls.get(first.call_sid) is not None)
            await eventually(lambda: len(p.conversations(agent)) == 1)  # the agent answered
            await first.stop()
            await eventually(lambda: e2e.app.state.calls.get(first.call_sid) is None)
        async with raw_stream(e2e) as replay:  # the same start again, on a new socket
            await replay.start(params, token=False, call_sid=first.call_sid)
            assert await closed_with(replay.ws) == 1008
        assert_healthy(e2e, await good)
        assert refused(e2e.app, "replayed") == 1
        assert len(p.conversations(agent)) == 1
        assert e2e.call_record_reason(first.call_sid) == "caller_hangup"


async def test_a_second_stream_for_a_live_call_is_refused_and_the_first_goes_on(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    async with fault_bridge(p) as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as first, raw_stream(e2e) as second:
            await first.start({"agent_id": agent, "caller_id": CALLER})
            await first.media()
            await eventually(lambda: e2e.app.state.calls.get(first.call_sid) is not None)
            live = e2e.app.state.calls.get(first.call_sid)
            # A fresh, valid token for the same call (a replayed webhook would give one).
            await second.start({"agent_id": agent, "caller_id": "+1"}, call_sid=first.call_sid)
            assert await closed_with(second.ws) == 1008
            assert e2e.app.state.calls.get(first.call_sid) is live
            for _ in range(5):
                await first.media()
            await first.stop()
        assert_healthy(e2e, await good)
        assert refused(e2e.app, "duplicate_call") == 1
        assert len(p.conversations(agent)) == 1


# --------------------------------------------------------------------------- account, expiry


async def test_a_start_from_another_account_is_refused(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    ours = "AC" + "1" * 32
    async with fault_bridge(p, TWILIO_ACCOUNT_SID=ours) as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))  # from our account
        async with raw_stream(e2e) as caller:
            # Its token is valid (bound to the account it names), the account is not ours.
            await caller.start({"agent_id": agent}, account_sid="AC" + "2" * 32)
            assert await closed_with(caller.ws) == 1008
        assert_healthy(e2e, await good)
        assert refused(e2e.app, "account_mismatch") == 1
        assert p.conversations(agent) == []


async def test_an_expired_token_is_refused(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    async with fault_bridge(p) as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as caller:
            stale = with_token(e2e.app, caller.call_sid, {"agent_id": agent}, ttl_s=-1)
            await caller.start(stale, token=False)
            assert await closed_with(caller.ws) == 1008
        assert_healthy(e2e, await good)
        assert refused(e2e.app, "expired") == 1
        assert p.conversations(agent) == []


# --------------------------------------------------------------------------- caps, stall


async def test_a_stream_over_the_cap_is_refused_at_start(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    started = CallStarted()
    async with fault_bridge(p, watch=started, BRIDGE_MAX_CONCURRENT_CALLS="1") as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        await started.event.wait()
        async with raw_stream(e2e) as extra:  # valid token, no webhook: counted all the same
            await extra.start({"agent_id": agent, "caller_id": CALLER})
            assert await closed_with(extra.ws) == 1000  # an authentic call, ended normally
        assert_healthy(e2e, await good)
        assert refused(e2e.app, "over_capacity") == 1
        assert e2e.call_record_reason(extra.call_sid) == "over_capacity"
        assert p.conversations(agent) == []


async def test_a_stream_that_stops_sending_media_is_ended(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    agent, healthy = loopback_agent(p), loopback_agent(p)
    async with fault_bridge(p, calls={"stream_stall_timeout_s": 0.6}) as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as caller:
            await caller.start({"agent_id": agent, "caller_id": CALLER})
            for _ in range(10):
                await caller.media()
            await eventually(lambda: len(p.conversations(agent)) == 1)
            # Then nothing: the socket stays open, the media stops.
            await eventually(lambda: e2e.app.state.calls.get(caller.call_sid) is None)
            (record,) = p.conversations(agent)
            await p.wait_until_ended(record.conversation_id)
            assert record.closed_by == "client"  # the bridge closed the billed conversation
        good_res = await good
        assert good_res.outcome is Outcome.COMPLETED
        assert_healthy(e2e, good_res)
        assert e2e.call_record_reason(caller.call_sid) == "stream_stalled"
        assert metric(e2e.app, "bridge_calls_total", outcome="error", reason="stream_stalled") == 1
