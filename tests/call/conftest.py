"""Builders for driving a CallSession by hand: real wire frames in, actions out."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from bridge.call.actions import Action
from bridge.call.admission import StreamCheck
from bridge.call.plan import CallPlan
from bridge.call.session import CallSession, SessionSettings
from bridge.convai import messages as convai
from bridge.errors import TwilioProtocolError
from bridge.twilio import media as twilio

CALL_SID = "CA0123456789abcdef0123456789abcdef"
STREAM_SID = "MZ0123456789abcdef0123456789abcdef"
AGENT_ID = "agent_test"
PARAMS = {"agent_id": AGENT_ID, "caller_id": "+14155550111", "called_number": "+14155550100"}


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A session plus the seq counter and helpers to feed it real frames."""

    session: CallSession
    clock: FakeClock
    seq: int = 0
    actions: list[Action] = field(default_factory=list)

    # -- Twilio side ------------------------------------------------------------------

    def _next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    def twilio(self, frame: str) -> None:
        """A frame as the driver hands it over: parsed, or reported as garbage."""
        try:
            msg = twilio.parse_from_twilio(frame)
        except TwilioProtocolError as e:
            self.session.caller_garbage(e)
            return
        self.session.caller_message(msg)

    def start(self, params: Mapping[str, str] = PARAMS, **fmt: Any) -> None:
        self.twilio(twilio.encode(twilio.Connected()))
        media_format = twilio.MediaFormat(**fmt) if fmt else twilio.MediaFormat()
        body = twilio.StartBody(
            streamSid=STREAM_SID,
            callSid=CALL_SID,
            accountSid="AC" + "0" * 32,
            mediaFormat=media_format,
            customParameters=dict(params),
        )
        self.twilio(
            twilio.encode(
                twilio.Start(sequenceNumber=self._next_seq(), start=body, streamSid=STREAM_SID)
            )
        )

    def media(self, ulaw: bytes) -> None:
        payload = base64.b64encode(ulaw).decode()
        self.twilio(
            twilio.encode(
                twilio.Media(
                    sequenceNumber=self._next_seq(),
                    media=twilio.MediaBody(payload=payload),
                    streamSid=STREAM_SID,
                )
            )
        )

    def mark(self, name: str) -> None:
        self.twilio(
            twilio.encode(
                twilio.Mark(
                    sequenceNumber=self._next_seq(),
                    streamSid=STREAM_SID,
                    mark=twilio.MarkBody(name=name),
                )
            )
        )

    def stop(self) -> None:
        self.twilio(
            twilio.encode(
                twilio.Stop(
                    sequenceNumber=self._next_seq(),
                    stop=twilio.StopBody(callSid=CALL_SID),
                    streamSid=STREAM_SID,
                )
            )
        )

    def echo_all_marks(self) -> None:
        for frame in self.twilio_frames():
            msg = twilio.parse_from_server(frame)
            if isinstance(msg, twilio.OutMark):
                self.mark(msg.mark.name)

    # -- agent side -------------------------------------------------------------------

    def agent(self, frame: dict[str, Any] | str) -> None:
        raw = frame if isinstance(frame, str) else msgspec.json.encode(frame).decode()
        self.session.agent_message(convai.parse_server(raw))

    def metadata(self, fmt_in: str = "ulaw_8000", fmt_out: str = "ulaw_8000") -> None:
        self.agent(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": "conv_1",
                    "user_input_audio_format": fmt_in,
                    "agent_output_audio_format": fmt_out,
                },
            }
        )

    def audio(self, data: bytes, event_id: int) -> None:
        self.agent(
            {
                "type": "audio",
                "audio_event": {
                    "audio_base_64": base64.b64encode(data).decode(),
                    "event_id": event_id,
                },
            }
        )

    def active(self, fmt_in: str = "ulaw_8000", fmt_out: str = "ulaw_8000") -> None:
        """start → agent connected → metadata; all actions and frames so far discarded."""
        self.start()
        self.session.agent_connected()
        self.metadata(fmt_in, fmt_out)
        self.drain()

    # -- outputs ----------------------------------------------------------------------

    def take(self) -> list[Action]:
        got = self.session.take_actions()
        self.actions.extend(got)
        return got

    def twilio_frames(self) -> list[str]:
        return self.session.to_twilio.clear()

    def agent_frames(self) -> list[str]:
        return self.session.to_agent.clear()

    def drain(self) -> None:
        self.take()
        self.twilio_frames()
        self.agent_frames()


def make_harness(
    plan: CallPlan | None = None, *, check: StreamCheck | None = None, **settings: Any
) -> Harness:
    clock = FakeClock()
    chosen = plan if plan is not None else CallPlan(AGENT_ID, "parameter")
    session = CallSession(
        SessionSettings(**settings),
        lambda params: chosen if params.get("agent_id") or plan is not None else None,
        tools={"end_call", "lookup"},
        clock=clock,
        wall=clock,
        check=check,
    )
    return Harness(session, clock)


@pytest.fixture
def h() -> Harness:
    return make_harness()
