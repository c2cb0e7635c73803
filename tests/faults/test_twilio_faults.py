"""The Twilio side failing: REST 5xx on hang-up, a caller socket that vanishes, a caller
socket that stops reading (backpressure).  A healthy call runs beside each."""

from __future__ import annotations

import asyncio
import base64

from bridge.call.session import SessionSettings
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.script import CallScript
from bridge.emulator.twilio.twiml import Say
from tests.faults.conftest import fault_bridge, raw_stream, status_server, task_names
from tests.faults.test_agent_faults import HEALTHY_SCRIPT, assert_healthy, loopback_agent
from tests.fixtures.bridge import CALLER, eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator

ACCOUNT = "AC" + "1" * 32


async def test_twilio_rest_5xx_on_hangup_and_redirect(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    ends = p.create_agent(
        behaviour={"mode": "silent", "greeting": False, "steps": [{"type": "play", "ms": 400},
                                                                  {"type": "end_call"}]},
    )  # fmt: skip
    crashes = p.create_agent(
        behaviour={"mode": "silent", "greeting": False, "steps": [{"type": "close"}]}
    )
    healthy = loopback_agent(p)
    async with (
        status_server(500) as (twilio_url, seen),
        fault_bridge(p, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE_URL=twilio_url) as e2e,
    ):
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        hung_up, apologised = await asyncio.gather(
            e2e.call(ends, CallScript(max_duration_s=20)),
            e2e.call(crashes, CallScript(max_duration_s=20)),
        )
        good = await good_task
        # REST failed (the bridge tried), yet each call ended as decided: the stream
        # closed, Twilio asked the <Connect action>, the bridge answered from memory.
        assert f"POST /2010-04-01/Accounts/{ACCOUNT}/Calls/{hung_up.call_sid}.json" in seen
        assert f"POST /2010-04-01/Accounts/{ACCOUNT}/Calls/{apologised.call_sid}.json" in seen
        assert hung_up.outcome is Outcome.COMPLETED
        assert not any(isinstance(v, Say) for v in hung_up.experience)
        assert e2e.call_record_reason(hung_up.call_sid) == "agent_end_call"
        says = [v.text for v in apologised.experience if isinstance(v, Say)]
        assert says == [e2e.app.state.config.calls.apology_text]
        assert_healthy(e2e, good)


async def test_caller_socket_dropped_without_stop(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    agent = p.create_agent(behaviour={"mode": "echo"}, first_message="Hello there, caller.")
    healthy = loopback_agent(p)
    async with fault_bridge(p) as e2e:
        idle_tasks = metric(e2e.app, "bridge_asyncio_tasks")
        assert idle_tasks > 0
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e) as caller:
            await caller.start({"agent_id": agent, "caller_id": CALLER})
            for _ in range(25):
                await caller.media()
            await eventually(lambda: len(p.conversations(agent)) == 1)
            await eventually(lambda: e2e.app.state.calls.get(caller.call_sid) is not None)
            caller.ws.transport.abort()  # no stop, no close frame: the TCP connection dies
            (record,) = p.conversations(agent)
            await p.wait_until_ended(record.conversation_id)
            assert record.closed_by == "client"  # the bridge closed the agent side
        good = await good_task
        assert_healthy(e2e, good)
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        assert e2e.call_record_reason(caller.call_sid) == "caller_hangup"
        assert metric(e2e.app, "bridge_active_calls") == 0
        # Every task of both calls is gone: back to the idle count.
        await eventually(
            lambda: metric(e2e.app, "bridge_asyncio_tasks") <= idle_tasks, why=task_names
        )


def audio_burst(events: int, seconds: int) -> list[str]:
    """Agent audio events sent all at once (ulaw_8000, ``seconds`` each): a platform
    delivering faster than real time, which a paced agent never does."""
    chunk = base64.b64encode(bytes([0x10, 0x90] * (4000 * seconds))).decode()
    return [
        f'{{"type":"audio","audio_event":{{"audio_base_64":"{chunk}","event_id":{i}}}}}'
        for i in range(1, events + 1)
    ]


async def test_slow_caller_socket_sheds_oldest_agent_audio(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    # 600 s of audio in one burst: more than the kernel buffers of a loopback socket
    # (4 MiB at most here) can hide, so the bridge's own bounded queue has to act.
    burst = p.create_agent(
        behaviour={
            "mode": "silent",
            "greeting": False,
            "steps": [{"type": "raw", "frames": audio_burst(60, 10)}],
        },
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )
    healthy = loopback_agent(p)
    bound = 40_000  # ~3.5 s of audio toward Twilio
    settings = SessionSettings(max_twilio_queue_chars=bound)
    async with fault_bridge(p, settings=settings) as e2e:
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        async with raw_stream(e2e, rcvbuf=4096) as caller:  # and it never reads
            await caller.start({"agent_id": burst, "caller_id": CALLER})
            await eventually(lambda: e2e.app.state.calls.get(caller.call_sid) is not None)
            queue = e2e.app.state.calls.get(caller.call_sid).session.to_twilio
            await eventually(lambda: queue.dropped > 0, timeout_s=20)
            # Bounded: the bound plus at most one agent event's frames (10 s of audio).
            assert queue.chars <= bound + 120_000
            await caller.stop()
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        assert metric(e2e.app, "bridge_dropped_audio_events_total", reason="backpressure") > 0
        good = await good_task
        assert_healthy(e2e, good)
