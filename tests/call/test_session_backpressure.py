"""The session when a peer stops reading its frame queue: past the control-frame bound
(bridge.call.frames) the call ends, each side in its own way."""

from __future__ import annotations

from bridge.call.actions import CloseAgent, EndReason, EndStream, Finished, Hangup
from bridge.call.session import State
from bridge.convai.messages import ContextualUpdate
from tests.call.conftest import make_harness


def test_twilio_not_reading_ends_the_call_with_its_own_reason() -> None:
    h = make_harness(max_twilio_queue_chars=20_000)
    h.active()
    h.take()
    q = h.session.to_twilio
    event = 0
    while h.session.state is State.ACTIVE:  # agent audio, and nobody takes the frames
        event += 1
        assert event < 2_000, (q.chars, q.control_kept)
        h.audio(b"\x55" * 800, event_id=event)  # 100 ms: a mark each
    actions = h.take()
    (done,) = [a for a in actions if isinstance(a, Finished)]
    assert done.reason is EndReason.TWILIO_NOT_READING
    assert EndStream(Hangup()) in actions and any(isinstance(a, CloseAgent) for a in actions)
    assert q.chars == 0 and q.dropped > 0  # what nobody would read is gone
    assert h.session.pending_marks == 0  # and no mark is waited for


def test_an_agent_not_reading_is_an_agent_failure() -> None:
    h = make_harness(max_agent_queue_chars=20_000, on_agent_failure="hangup")
    h.active()
    h.take()
    q = h.session.to_agent
    n = 0
    while h.session.state is State.ACTIVE:  # caller audio, and control frames to the agent
        n += 1
        assert n < 5_000, (q.chars, q.control_kept)
        h.media(b"\xff" * 160)
        if n % 10 == 0:
            h.session.send_to_agent(ContextualUpdate(text=f"update {n}"))
    (done,) = [a for a in h.take() if isinstance(a, Finished)]
    assert done.reason is EndReason.AGENT_FAILED
    assert done.summary.agent_failure == "not_reading"
