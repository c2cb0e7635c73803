"""The session's start check (injected) and the stream-stall watchdog, without sockets."""

from __future__ import annotations

from bridge.call.actions import (
    Apology,
    CancelTimer,
    CloseAgent,
    ConnectAgent,
    EndReason,
    EndStream,
    Finished,
    StartTimer,
    Timer,
    UpdateRecord,
)
from bridge.call.admission import Refusal, StreamRefusal, StreamStart
from bridge.call.session import State
from tests.call.conftest import CALL_SID, PARAMS, make_harness

SILENCE = b"\xff" * 160


class Checks:
    """A StreamCheck that answers ``verdict`` and remembers what it was shown."""

    def __init__(self, verdict: StreamRefusal | None = None) -> None:
        self.verdict = verdict
        self.seen: list[StreamStart] = []

    def __call__(self, start: StreamStart) -> StreamRefusal | None:
        self.seen.append(start)
        return self.verdict


def test_the_check_sees_the_start_as_received_before_anything_happens() -> None:
    checks = Checks()
    h = make_harness(check=checks)
    h.start({**PARAMS, "bridge_token": "v1.tok"})
    (seen,) = checks.seen
    assert seen.call_sid == CALL_SID and seen.account_sid == "AC" + "0" * 32
    assert seen.parameters["bridge_token"] == "v1.tok"
    assert ConnectAgent("agent_test") in h.take()
    # The token is spent: it is no call parameter (nor an agent variable).
    assert "bridge_token" not in h.session.parameters


def test_a_refused_start_closes_1008_and_does_nothing_in_the_claimed_name() -> None:
    h = make_harness(check=Checks(StreamRefusal("bad_mac")))
    h.take()
    h.start()
    actions = h.take()
    assert not [a for a in actions if isinstance(a, ConnectAgent | UpdateRecord | CloseAgent)]
    ends = [a for a in actions if isinstance(a, EndStream)]
    assert ends == [EndStream(ends[0].disposition, close_code=1008)]
    (done,) = [a for a in actions if isinstance(a, Finished)]
    assert done.reason is EndReason.STREAM_REFUSED and done.summary.refused == "bad_mac"
    assert CancelTimer(Timer.START) in actions
    # No SID adopted: the driver registers, records and calls REST for none.
    assert h.session.call_sid == "" and h.session.stream_sid == ""
    assert h.session.state is State.ENDED
    assert h.twilio_frames() == []


def test_an_authentic_call_over_the_cap_is_recorded_and_ended_with_the_answer() -> None:
    refusal = Refusal("over_capacity", message="All lines are busy.")
    h = make_harness(check=Checks(StreamRefusal("over_capacity", trusted=True, refusal=refusal)))
    h.start()
    actions = h.take()
    assert not [a for a in actions if isinstance(a, ConnectAgent)]
    assert EndStream(Apology("All lines are busy.")) in actions
    records = [a.fields for a in actions if isinstance(a, UpdateRecord)]
    assert records[-1]["end_reason"] == "over_capacity"
    (done,) = [a for a in actions if isinstance(a, Finished)]
    assert done.reason is EndReason.OVER_CAPACITY and done.summary.refused == "over_capacity"
    assert h.session.call_sid == CALL_SID


def test_a_stream_that_stops_sending_media_is_ended_as_stalled() -> None:
    h = make_harness(stream_stall_timeout_s=10.0)
    h.active()
    h.media(SILENCE)
    h.session.timer_fired(Timer.STALL)  # frames came since the last tick
    assert StartTimer(Timer.STALL, 5.0) in h.take()
    h.session.timer_fired(Timer.STALL)  # one quiet half-timeout: not yet
    assert h.session.state is State.ACTIVE
    h.session.timer_fired(Timer.STALL)  # two in a row: no frame for the whole timeout
    actions = h.take()
    assert h.session.state is State.ENDED
    assert CloseAgent(1000, "call ended") in actions
    (done,) = [a for a in actions if isinstance(a, Finished)]
    assert done.reason is EndReason.STREAM_STALLED
    (rec,) = [a.fields for a in actions if isinstance(a, UpdateRecord)]
    assert rec["end_reason"] == "stream_stalled"


def test_media_keeps_the_stall_watchdog_quiet() -> None:
    h = make_harness(stream_stall_timeout_s=10.0)
    h.start()
    assert StartTimer(Timer.STALL, 5.0) in h.take()
    for _ in range(20):
        h.media(SILENCE)
        h.session.timer_fired(Timer.STALL)
    assert h.session.state is State.CONNECTING_AGENT


def test_no_stall_watchdog_when_disabled() -> None:
    h = make_harness(stream_stall_timeout_s=0.0)
    h.start()
    assert not [a for a in h.take() if isinstance(a, StartTimer) and a.name == "stall"]
