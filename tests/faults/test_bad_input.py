"""Bad input from either peer: each kind has a specific outcome and harms no other call."""

from __future__ import annotations

import asyncio
import base64
import logging

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from bridge.call.plan import MAX_PARAMETERS
from bridge.twilio import media as twilio
from tests.faults.conftest import RawStream, fault_bridge, raw_stream
from tests.faults.test_agent_faults import (
    FAULTY_SCRIPT,
    HEALTHY_SCRIPT,
    apology,
    assert_healthy,
    loopback_agent,
)
from tests.fixtures.bridge import CALLER, BridgeUnderTest, eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator


def mirror_agent(p: PlatformEmulator) -> str:
    return p.create_agent(
        behaviour={"mode": "loopback", "greeting": False},
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )


async def started(e2e: BridgeUnderTest, caller: RawStream, agent: str, **params: str) -> None:
    """Start the stream and wait until the agent is talking to it (session ACTIVE)."""
    await caller.start({"agent_id": agent, "caller_id": CALLER, **params})
    await eventually(lambda: e2e.app.state.calls.get(caller.call_sid) is not None)
    call = e2e.app.state.calls.get(caller.call_sid)
    await eventually(lambda: call.session.state.value == "active")


def bad_frames(caller: RawStream) -> list[str | bytes]:
    sid = caller.stream_sid
    return [
        "this is not JSON",
        b"\x00\x01\x02 a binary frame",
        '{"event": "media"}',  # fields missing
        '{"event": "teleport", "sequenceNumber": "9"}',  # unknown event
        twilio.encode(twilio.Connected()),  # 'connected' again: wrong order
        caller.media_frame(seq="not-a-number"),
        caller.media_frame(seq="9" * 40),  # absurd sequence number
        caller.media_frame(seq="-3"),
        caller.media_frame("!!!! not base64 !!!!"),
        f'{{"event":"media","sequenceNumber":"99","media":{{"payload":"AAAA"}},"streamSid":"MZ{"0" * 32}"}}',
        f'{{"event":"mark","sequenceNumber":"98","mark":{{}},"streamSid":"{sid}"}}',
    ]


async def test_malformed_caller_frames_are_counted_and_the_call_goes_on(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    mirror = mirror_agent(p)
    healthy = loopback_agent(p)
    async with fault_bridge(p) as e2e:
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as caller:
            await started(e2e, caller, mirror)
            garbage = bad_frames(caller)
            for frame in garbage:
                await caller.media()
                await caller.ws.send(frame)
            # Odd sizes are still mu-law (1 byte a sample): forwarded, not errors.
            for size in (1, 3, 161, 0):
                await caller.media(base64.b64encode(b"\x7f" * size).decode())
            await caller.media()
            call = e2e.app.state.calls.get(caller.call_sid)
            stats = call.session.stats
            await eventually(lambda: stats.frames_from_caller == 17)  # 16 good, 1 bad base64
            assert call.session.state.value == "active"  # still going
            assert stats.frames_to_agent == 16  # every acceptable frame went to the agent
            await caller.stop()
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        assert metric(e2e.app, "bridge_bad_frames_total", peer="twilio") == len(garbage)
        assert e2e.call_record_reason(caller.call_sid) == "caller_hangup"
        assert_healthy(e2e, await good_task)


async def test_media_before_start_is_refused_then_the_stream_starts(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    mirror = mirror_agent(p)
    async with fault_bridge(p) as e2e, raw_stream(e2e) as caller:
        await caller.ws.send(caller.media_frame())  # before 'start'
        await started(e2e, caller, mirror)
        await caller.stop()
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        assert metric(e2e.app, "bridge_bad_frames_total", peer="twilio") == 1
        assert e2e.call_record_reason(caller.call_sid) == "caller_hangup"


async def test_a_flood_of_garbage_ends_that_call(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    mirror = mirror_agent(p)
    async with fault_bridge(p) as e2e, raw_stream(e2e) as caller:
        await started(e2e, caller, mirror)
        limit = e2e.app.state.services.settings.max_bad_twilio_frames
        with pytest.raises(ConnectionClosed):
            for _ in range(limit * 10):
                await caller.ws.send("garbage")
                await asyncio.sleep(0.001)
        assert caller.ws.close_code == 1000
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        assert e2e.call_record_reason(caller.call_sid) == "twilio_protocol"
        assert metric(e2e.app, "bridge_bad_frames_total", peer="twilio") == limit


async def test_oversized_caller_message_closes_that_stream_1009(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    mirror = mirror_agent(p)
    healthy = loopback_agent(p)
    async with fault_bridge(p, server={"max_message_bytes": 8192}) as e2e:
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as caller:
            await started(e2e, caller, mirror)
            await caller.ws.send(caller.media_frame("A" * 20_000))
            await asyncio.wait_for(caller.ws.wait_closed(), 10)
            assert caller.ws.close_code == 1009  # message too big
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        assert e2e.call_record_reason(caller.call_sid) == "caller_hangup"
        assert_healthy(e2e, await good_task)


async def test_oversized_agent_message_fails_that_call(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    chunk = base64.b64encode(b"\x10" * 30_000).decode()
    huge = p.create_agent(
        behaviour={
            "mode": "silent",
            "greeting": False,
            "steps": [
                {
                    "type": "raw",
                    "frames": [
                        f'{{"type":"audio","audio_event":{{"audio_base_64":"{chunk}","event_id":1}}}}'
                    ],
                }
            ],
        },
        output_format="ulaw_8000",
    )
    healthy = loopback_agent(p)
    async with fault_bridge(p, server={"max_message_bytes": 8192}) as e2e:
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        await asyncio.sleep(0.2)
        res = await e2e.call(huge, FAULTY_SCRIPT)
        assert apology(e2e, res) == e2e.app.state.config.calls.apology_text
        (record,) = p.conversations(huge)
        await p.wait_until_ended(record.conversation_id)
        assert record.close_code == 1009  # the bridge refused the message
        assert metric(e2e.app, "bridge_upstream_errors_total", kind="closed_abnormally") == 1
        assert_healthy(e2e, await good_task)


async def test_huge_custom_parameters_are_cut_to_twilios_limits(
    platform_emulator: PlatformEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    p = platform_emulator
    mirror = mirror_agent(p)
    params = {f"v{i}": "x" * 10 for i in range(150)} | {f"big{i}": "y" * 600 for i in range(150)}
    async with fault_bridge(p) as e2e, raw_stream(e2e) as caller:
        with caplog.at_level(logging.WARNING, logger="bridge.call"):
            await started(e2e, caller, mirror, **params)
        await caller.stop()
        await eventually(lambda: len(e2e.app.state.calls) == 0)
    (record,) = p.conversations(mirror)
    sent = set(record.dynamic_variables)
    assert not any(k.startswith("big") for k in sent)
    assert (
        len([k for k in sent if k.startswith("v")]) == MAX_PARAMETERS - 2
    )  # + agent_id, caller_id
    (line,) = [r for r in caplog.records if r.getMessage() == "call.parameters_dropped"]
    assert line.bridge_fields["dropped"] == 300 + 2 - MAX_PARAMETERS  # type: ignore[attr-defined]


async def test_webhook_flood_without_signatures(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    healthy = loopback_agent(p)
    n, at_once = 300, 20
    async with fault_bridge(p) as e2e:
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        number = e2e.number_for(healthy)
        form = {"CallSid": "CA" + "7" * 32, "From": CALLER, "To": number, "AccountSid": "AC1"}
        statuses: list[int] = []
        limits = httpx.Limits(max_connections=at_once)
        async with httpx.AsyncClient(base_url=e2e.server.http_url, limits=limits) as http:

            async def forged(i: int) -> None:
                headers = {"X-Twilio-Signature": "forged" if i % 2 else ""}
                r = await http.post("/twilio/inbound", data=form, headers=headers)
                statuses.append(r.status_code)

            await asyncio.gather(*(forged(i) for i in range(n)))
        assert statuses == [403] * n
        assert metric(e2e.app, "bridge_signature_failures_total", endpoint="/twilio/inbound") == n
        assert_healthy(e2e, await good_task)
        assert len(p.conversations()) == 1  # only the healthy call reached an agent
