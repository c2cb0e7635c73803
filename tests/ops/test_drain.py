"""The drain: its admission, and the sequence over a live-call registry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bridge.call.actions import HANGUP, Apology, Disposition, EndReason
from bridge.call.admission import Refusal
from bridge.call.registry import LiveCalls
from bridge.config import OpsConfig
from bridge.metrics import Metrics
from bridge.ops.drain import Drain
from tests.telephony.fakes import FakeCall


class Cap:
    """An inner admission that refuses one number (stands for the capacity caps)."""

    def check(self, to_number: str) -> Refusal | None:
        return Refusal("over_capacity") if to_number == "+1555" else None


def test_admission_asks_the_inner_one_until_draining() -> None:
    drain = Drain(OpsConfig(), LiveCalls(), Metrics(), inner=Cap())
    assert drain.check("+1444") is None
    assert drain.check("+1555") == Refusal("over_capacity")
    drain.begin()
    assert drain.check("+1444") == Refusal("draining", dial=None)  # busy
    assert drain.metrics.draining._value.get() == 1
    dialing = Drain(OpsConfig(drain_overflow_number="+14155550199"), LiveCalls(), Metrics())
    dialing.begin()
    assert dialing.check("+1444") == Refusal("draining", dial="+14155550199")


@dataclass
class EndingCall(FakeCall):
    """A live call that leaves the registry when ended (as the driver's cleanup does)."""

    registry: LiveCalls = field(default_factory=LiveCalls)

    def end_call(
        self,
        reason: EndReason = EndReason.AGENT_END_CALL,
        disposition: Disposition = HANGUP,
        *,
        wait_for_playout: bool = True,
    ) -> None:
        super().end_call(reason, disposition, wait_for_playout=wait_for_playout)
        self.registry.remove(self.call_sid)


def live(calls: LiveCalls, n: int) -> list[EndingCall]:
    out = [EndingCall(call_sid=f"CA{i:032d}", registry=calls) for i in range(n)]
    for c in out:
        calls.add(c)
    return out


async def test_run_returns_at_once_when_idle() -> None:
    result = await Drain(OpsConfig(drain_timeout_s=60), LiveCalls(), Metrics()).run()
    assert result.ended_at_timeout == 0 and not result.forced


async def test_run_waits_for_calls_to_end_by_themselves() -> None:
    calls = LiveCalls()
    a, b = live(calls, 2)
    drain = Drain(OpsConfig(drain_timeout_s=60), calls, Metrics())
    task = asyncio.create_task(drain.run())
    await asyncio.sleep(0.2)
    assert not task.done() and drain.draining
    calls.remove(a.call_sid)
    await asyncio.sleep(0.2)
    assert not task.done()
    calls.remove(b.call_sid)
    result = await asyncio.wait_for(task, 5)
    assert result.ended_at_timeout == 0
    assert a.ended == [] and b.ended == []  # nobody was cut


async def test_run_waits_for_a_stream_that_is_about_to_start() -> None:
    calls = LiveCalls()
    calls.expect("CA" + "5" * 32)  # the webhook just answered this one
    drain = Drain(OpsConfig(drain_timeout_s=60), calls, Metrics())
    task = asyncio.create_task(drain.run())
    await asyncio.sleep(0.2)
    assert not task.done()
    assert calls.claim_expected("CA" + "5" * 32)  # its stream started ...
    (call,) = live(calls, 1)
    await asyncio.sleep(0.2)
    assert not task.done()
    calls.remove(call.call_sid)  # ... and ended
    assert (await asyncio.wait_for(task, 5)).ended_at_timeout == 0


async def test_timeout_ends_the_rest_with_the_spoken_notice() -> None:
    calls = LiveCalls()
    remaining = live(calls, 3)
    cfg = OpsConfig(drain_timeout_s=0.3, drain_notice="Closing now.")
    result = await asyncio.wait_for(Drain(cfg, calls, Metrics()).run(), 10)
    assert result.ended_at_timeout == 3
    for c in remaining:
        assert c.ended == [(EndReason.SHUTDOWN, Apology("Closing now."), False)]
    assert len(calls) == 0


async def test_force_cuts_the_wait_short() -> None:
    calls = LiveCalls()
    (call,) = live(calls, 1)
    drain = Drain(OpsConfig(drain_timeout_s=3600), calls, Metrics())
    task = asyncio.create_task(drain.run())
    await asyncio.sleep(0.1)
    drain.force()  # a second SIGTERM
    result = await asyncio.wait_for(task, 10)
    assert result.forced and result.ended_at_timeout == 1
    assert call.ended[0][0] is EndReason.SHUTDOWN
