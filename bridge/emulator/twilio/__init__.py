"""Twilio emulator: a synthetic caller that acts as Twilio toward a bridge, and a REST API.

Pure cores (no I/O, tested without sockets): :mod:`.twiml` (TwiML → typed verbs),
:mod:`.program` (what a caller experiences, verb by verb), :mod:`.playout` (Twilio's
outbound buffer: marks, clear), :mod:`.script` (what the caller does each 20 ms),
:mod:`.sources` (mu-law audio), :mod:`.callee` (outbound callee modes), :mod:`.webhook`
(request parameters, signatures, URL mapping), :mod:`.clock` (call time and pacing).

Adapters: :mod:`.session` (one Media Stream over a ``websockets`` client),
:mod:`.caller` (:class:`SyntheticCall`, :func:`place_call`), :mod:`.callbacks`,
:mod:`.state` and :mod:`.api` (the ``/2010-04-01`` REST emulator and inspection).
"""

from __future__ import annotations

from bridge.emulator.twilio.api import create_twilio_app, twilio_routes
from bridge.emulator.twilio.callee import CalleeMode
from bridge.emulator.twilio.caller import CallSpec, SyntheticCall, place_call
from bridge.emulator.twilio.playout import HeardSegment, MarkEcho
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult, Received, Sent, SentFrame, StreamRecord
from bridge.emulator.twilio.script import (
    At,
    BargeIn,
    CallerHangsUp,
    CallScript,
    Pause,
    Press,
    Talk,
    WaitForAgent,
)
from bridge.emulator.twilio.state import TwilioEmulatorState
from bridge.emulator.twilio.webhook import UrlMap

__all__ = [
    "At",
    "BargeIn",
    "CallResult",
    "CallScript",
    "CallSpec",
    "CalleeMode",
    "CallerHangsUp",
    "HeardSegment",
    "MarkEcho",
    "Outcome",
    "Pause",
    "Press",
    "Received",
    "Sent",
    "SentFrame",
    "StreamRecord",
    "SyntheticCall",
    "Talk",
    "TwilioEmulatorState",
    "UrlMap",
    "WaitForAgent",
    "create_twilio_app",
    "place_call",
    "twilio_routes",
]
