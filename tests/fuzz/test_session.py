"""Fuzz one call's state machine with both peers misbehaving at once.

Whatever the frames, timers and closes, the session never raises, finishes at most
once, and everything it queues is valid protocol: each frame toward Twilio parses as a
server→Twilio message and each frame toward the agent as a client message.  One bad
peer can therefore never make the bridge speak garbage to the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from bridge.call.actions import ConnectAgent, Finished, Timer
from bridge.call.plan import CallPlan
from bridge.call.sampling import RelaySampler
from bridge.call.session import CallSession, SessionSettings
from bridge.convai import messages as convai
from bridge.errors import ConvaiProtocolError, TwilioProtocolError
from bridge.twilio import media as twilio
from tests.fuzz.strategies import CONVAI_SERVER_MESSAGES, TWILIO_MESSAGES, frames
from tests.fuzz.test_parsers import FUZZ

START = json.dumps(TWILIO_MESSAGES[1])
METADATA = json.dumps(
    {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_1",
            "agent_output_audio_format": "pcm_22050",
            "user_input_audio_format": "pcm_16000",
        },
    }
)


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


EVENTS = st.one_of(
    st.tuples(st.just("twilio"), frames(TWILIO_MESSAGES)),
    st.tuples(st.just("agent"), frames(CONVAI_SERVER_MESSAGES)),
    st.tuples(st.just("timer"), st.sampled_from(list(Timer))),
    st.tuples(st.just("agent_closed"), st.sampled_from(["1000", "1011", "none"])),
    st.tuples(st.just("caller_closed"), st.just("")),
    st.tuples(st.just("tool_done"), st.text(max_size=20)),
)


@FUZZ
@given(st.lists(EVENTS, max_size=30), st.booleans())
def test_session_survives_any_mix_of_peers(events: list[tuple[str, object]], warm: bool) -> None:
    clock = Clock()
    s = CallSession(
        SessionSettings(agent_idle_timeout_s=5.0),
        lambda params: CallPlan(agent_id=params.get("agent_id") or "agent_x", source="parameter"),
        tools=("transfer_call",),
        clock=clock,
        wall=clock,
        wrap_transcoders=RelaySampler(lambda direction, seconds: None, lambda s: None).wrap,
    )
    # Half the time the call starts properly first, so the later rubbish lands in ACTIVE.
    script: list[tuple[str, object]] = [("twilio", START), ("agent", METADATA)] if warm else []
    finished = 0
    connecting = False
    for who, arg in [*script, *events]:
        clock.now += 0.5
        if who == "twilio":
            assert isinstance(arg, str | bytes)
            try:
                s.caller_message(twilio.parse_from_twilio(arg))
            except TwilioProtocolError as e:
                s.caller_garbage(e)
        elif who == "agent":
            assert isinstance(arg, str | bytes)
            if connecting:
                s.agent_connected()
                connecting = False
            try:
                s.agent_message(convai.parse_server(arg))
            except ConvaiProtocolError as e:
                s.agent_garbage(e)
        elif who == "timer":
            assert isinstance(arg, Timer)
            s.timer_fired(arg)
        elif who == "agent_closed":
            s.agent_closed(None if arg == "none" else int(str(arg)), "fuzz")
        elif who == "caller_closed":
            s.caller_closed()
        elif who == "tool_done":
            s.tool_finished("t1", str(arg), False)
        for action in s.take_actions():
            if isinstance(action, ConnectAgent):
                connecting = True
            if isinstance(action, Finished):
                finished += 1
        assert finished <= 1
        while len(s.to_twilio):
            twilio.parse_from_server(s.to_twilio.pop())  # raises if we wrote garbage
        while len(s.to_agent):
            frame = s.to_agent.pop()
            assert not isinstance(convai.parse_client(frame), convai.UnknownMessage)
    assert (finished == 1) == s.ended
