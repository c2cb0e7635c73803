"""The agent side failing, one fault per test, with a healthy call running beside it.

Each fault is real: a closed port, a socket that never answers, the platform emulator
closing 1011 mid-call, going silent (no pings), or sending malformed frames.  The
faulty call must end the documented way (the apology, a specific metric, the record's
end reason) and the concurrent healthy call must not notice anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bridge.config import ws_url_for
from bridge.convai.client import AgentConnector
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk, WaitForAgent
from bridge.emulator.twilio.twiml import Say
from bridge.ws.client import ClientSocket
from tests.e2e.conftest import heard_between, script_time, tone_snr_db, tone_ulaw
from tests.faults.conftest import closed_port, fault_bridge, silent_server
from tests.fixtures.bridge import BridgeUnderTest, eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator

# The tone comes back in real time while this caller runs 4x faster: the pause after it
# leaves room for a loaded machine (CI) before the caller hangs up.
HEALTHY_SCRIPT = CallScript.of(
    Pause(0.3), Talk(tone_ulaw(1.2)), Pause(3.0), CallerHangsUp(), max_duration_s=30
)
FAULTY_SCRIPT = CallScript.of(
    WaitForAgent(timeout_s=8, quiet_s=0.5), CallerHangsUp(), max_duration_s=30
)


class RoutedConnector(AgentConnector):
    """Real connectors chosen per agent id: a broken upstream for one agent only."""

    def __init__(self, default: AgentConnector, special: dict[str, AgentConnector]):
        super().__init__(default.ws_base_url)
        self.default = default
        self.special = special

    async def connect(self, agent_id: str) -> ClientSocket:
        return await self.special.get(agent_id, self.default).connect(agent_id)


def emulator_connector(platform: PlatformEmulator) -> AgentConnector:
    return AgentConnector(ws_url_for(platform.http_url), open_timeout_s=2.0)


def assert_healthy(e2e: BridgeUnderTest, res: CallResult) -> None:
    """The loopback call: its tone came back clean and it ended as the caller chose."""
    assert res.outcome is Outcome.COMPLETED, res.reason
    assert not any(isinstance(v, Say) for v in res.experience)
    heard = heard_between(res, script_time(res, "talk-start"))
    assert len(heard) >= 8000 * 1.0
    assert tone_snr_db(heard) >= 30.0
    assert e2e.call_record_reason(res.call_sid) == "caller_hangup"


def apology(e2e: BridgeUnderTest, res: CallResult) -> str | None:
    says = [v.text for v in res.experience if isinstance(v, Say)]
    return says[0] if says else None


async def both(
    e2e: BridgeUnderTest, faulty_agent: str, healthy_agent: str
) -> tuple[CallResult, CallResult]:
    healthy = asyncio.create_task(e2e.call(healthy_agent, HEALTHY_SCRIPT))
    await asyncio.sleep(0.2)  # the healthy call is under way when the fault happens
    faulty = await e2e.call(faulty_agent, FAULTY_SCRIPT)
    return faulty, await healthy


def loopback_agent(platform: PlatformEmulator) -> str:
    return platform.create_agent(
        behaviour={"mode": "loopback", "greeting": False}, input_format="pcm_16000"
    )


@contextlib.asynccontextmanager
async def bridge_with(
    platform: PlatformEmulator, special: dict[str, AgentConnector], **kw: object
) -> AsyncIterator[BridgeUnderTest]:
    connector = RoutedConnector(emulator_connector(platform), special)
    async with fault_bridge(platform, connector=connector, **kw) as e2e:  # type: ignore[arg-type]
        yield e2e


async def test_agent_socket_refused(platform_emulator: PlatformEmulator) -> None:
    refused = AgentConnector(f"ws://127.0.0.1:{closed_port()}", open_timeout_s=2.0)
    healthy = loopback_agent(platform_emulator)
    async with bridge_with(platform_emulator, {"agent_refused": refused}) as e2e:
        faulty, good = await both(e2e, "agent_refused", healthy)
        assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
        assert e2e.call_record_reason(faulty.call_sid) == "agent_failed"
        assert metric(e2e.app, "bridge_upstream_errors_total", kind="ws_unreachable") == 1
        assert metric(e2e.app, "bridge_calls_total", outcome="error", reason="agent_failed") == 1
        assert_healthy(e2e, good)


async def test_agent_socket_never_answers(platform_emulator: PlatformEmulator) -> None:
    healthy = loopback_agent(platform_emulator)
    async with silent_server() as port:
        hung = AgentConnector(f"ws://127.0.0.1:{port}", open_timeout_s=0.5)
        async with bridge_with(platform_emulator, {"agent_hung": hung}) as e2e:
            faulty, good = await both(e2e, "agent_hung", healthy)
            assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
            assert metric(e2e.app, "bridge_upstream_errors_total", kind="ws_timeout") == 1
            # A failed connect is evidence against the upstream, never for it.
            assert e2e.app.state.services.upstream.last_failure_kind == "ws_timeout"
            assert_healthy(e2e, good)


async def test_agent_closes_1011_mid_call(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    crashing = p.create_agent(
        behaviour={
            "mode": "silent",
            "greeting": False,
            "steps": [{"type": "play", "ms": 600}, {"type": "close", "code": 1011}],
        }
    )
    healthy = loopback_agent(p)
    async with bridge_with(p, {}) as e2e:
        faulty, good = await both(e2e, crashing, healthy)
        assert len(heard_between(faulty, 0.0)) > 2000  # it had been talking
        assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
        assert e2e.call_record_reason(faulty.call_sid) == "agent_failed"
        assert metric(e2e.app, "bridge_upstream_errors_total", kind="closed_abnormally") == 1
        assert_healthy(e2e, good)


async def test_agent_that_stops_sending_is_given_up(platform_emulator: PlatformEmulator) -> None:
    p = platform_emulator
    hung = p.create_agent(
        behaviour={"mode": "silent", "greeting": False, "steps": [{"type": "stall"}]}
    )
    healthy = loopback_agent(p)
    # The emulator pings every 0.5 s: a healthy agent is never quiet for 1.5 s.
    async with bridge_with(p, {}, calls={"agent_idle_timeout_s": 1.5}) as e2e:
        faulty, good = await both(e2e, hung, healthy)
        assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
        assert e2e.call_record_reason(faulty.call_sid) == "agent_failed"
        assert metric(e2e.app, "bridge_upstream_errors_total", kind="idle_timeout") == 1
        # The bridge closed the hung socket rather than leaving it open.
        (record,) = p.conversations(hung)
        await p.wait_until_ended(record.conversation_id)
        assert record.closed_by == "client"
        assert_healthy(e2e, good)


GARBAGE = [
    "not json at all",
    "[1, 2, 3]",
    '{"no_type": true}',
    '{"type": "audio", "audio_event": {"event_id": "seven"}}',
    '{"type": "ping"}',
    '{"type": "audio", "audio_event": {"audio_base_64": "!!not base64!!", "event_id": 900}}',
    '{"type": "interruption", "interruption_event": {}}',
]
UNKNOWN = '{"type": "some_future_event", "some_future_event": {"x": 1}}'


async def test_agent_sending_garbage_is_counted_and_the_call_goes_on(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    noisy = p.create_agent(
        behaviour={
            "mode": "loopback",
            "greeting": False,
            "steps": [{"type": "raw", "frames": [*GARBAGE, UNKNOWN]}],
        },
        input_format="pcm_16000",
    )
    healthy = loopback_agent(p)
    async with bridge_with(p, {}) as e2e:
        noisy_call = asyncio.create_task(e2e.call(noisy, HEALTHY_SCRIPT))
        good = await e2e.call(healthy, HEALTHY_SCRIPT)
        res = await noisy_call
        # The noisy agent's call worked despite the rubbish: loopback audio came back.
        assert_healthy(e2e, res)
        assert_healthy(e2e, good)
        assert metric(e2e.app, "bridge_bad_frames_total", peer="agent") == len(GARBAGE)
        assert metric(e2e.app, "bridge_calls_total", outcome="ok", reason="caller_hangup") == 2


async def test_unknown_agent_id_gets_the_apology(platform_emulator: PlatformEmulator) -> None:
    healthy = loopback_agent(platform_emulator)
    async with bridge_with(platform_emulator, {}) as e2e:
        faulty, good = await both(e2e, "agent_that_does_not_exist", healthy)
        assert apology(e2e, faulty) == e2e.app.state.config.calls.apology_text
        assert e2e.call_record_reason(faulty.call_sid) == "agent_failed"
        # The platform accepts, then closes 1008 ("agent not found").
        assert metric(e2e.app, "bridge_upstream_errors_total", kind="closed_abnormally") == 1
        assert_healthy(e2e, good)
        await eventually(lambda: len(e2e.app.state.calls) == 0)
