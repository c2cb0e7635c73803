"""What one real call adds to the metrics, and that it leaves no task or socket behind."""

from __future__ import annotations

import asyncio

from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk, WaitForAgent
from tests.e2e.conftest import tone_ulaw
from tests.faults.conftest import fault_bridge, task_names
from tests.fixtures.bridge import eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator


async def test_a_call_is_counted_in_every_family(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    agent = p.create_agent(
        behaviour={"mode": "echo"},
        first_message="Hello, this is the metrics test speaking.",
        input_format="pcm_16000",
        output_format="pcm_22050",
    )
    script = CallScript.of(
        WaitForAgent(timeout_s=10, quiet_s=0.5),
        Talk(tone_ulaw(1.5)),
        WaitForAgent(timeout_s=10, quiet_s=0.5),
        Pause(0.5),
        CallerHangsUp(),
        max_duration_s=40,
    )
    async with fault_bridge(p) as e2e:
        m = e2e.app
        idle_tasks = metric(m, "bridge_asyncio_tasks")
        idle_sockets = metric(m, "bridge_open_sockets")
        res = await e2e.call(agent, script)
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        stream = res.stream
        assert stream is not None
        assert metric(m, "bridge_calls_total", outcome="ok", reason="caller_hangup") == 1
        assert metric(m, "bridge_webhooks_total", outcome="stream") == 1
        assert metric(m, "bridge_active_calls") == 0
        # Frames: exactly what the caller sent and what it received.
        sent_media = len(stream.frames)
        got_media = sum(1 for r in stream.received if r.event == "media")
        assert metric(m, "bridge_frames_total", direction="from_caller") == sent_media
        assert metric(m, "bridge_frames_total", direction="to_caller") == got_media
        assert metric(m, "bridge_frames_total", direction="to_agent") > 0
        assert metric(m, "bridge_frames_total", direction="from_agent") > 0
        # Timings: first audio once, relay and transcode sampled, every ping observed.
        assert metric(m, "bridge_first_audio_seconds_count") == 1
        assert metric(m, "bridge_relay_seconds_count") >= 1
        assert metric(m, "bridge_transcode_seconds_count", direction="caller_to_agent") >= 1
        assert metric(m, "bridge_transcode_seconds_count", direction="agent_to_caller") >= 1
        (conv,) = p.conversations(agent)
        assert metric(m, "bridge_agent_ping_ms_count") == conv.pings_sent
        assert metric(m, "bridge_interruptions_total") == len(conv.interruptions)
        # Nothing of the call is left: tasks and sockets back to their idle counts.
        await asyncio.sleep(0)
        await eventually(lambda: metric(m, "bridge_asyncio_tasks") <= idle_tasks, why=task_names)
        await eventually(lambda: metric(m, "bridge_open_sockets") <= idle_sockets)
