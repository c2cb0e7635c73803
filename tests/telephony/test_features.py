from __future__ import annotations

import base64
import dataclasses

import numpy as np

from bridge.audio.g711 import ulaw_encode
from bridge.call.actions import HANGUP, Apology, EndReason
from bridge.call.registry import LiveCalls
from bridge.config import TelephonyConfig
from bridge.convai.messages import ContextualUpdate, UserMessage
from bridge.store import CallRecord, Store
from bridge.telephony.features import Telephony
from tests.telephony.fakes import FakeCall, FakeClock

OURS = "+14155550100"


def _payload(dbfs: float) -> str:
    t = np.arange(160) / 8000
    pcm = (32767 * 10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * 400 * t)).astype("<i2")
    return base64.b64encode(ulaw_encode(pcm.tobytes())).decode()


def _telephony(clock: FakeClock, store: Store | None = None, **cfg: object) -> Telephony:
    return Telephony(dataclasses.replace(TelephonyConfig(), **cfg), LiveCalls(), store, clock=clock)


async def test_silence_watch_hears_caller_level_and_ignores_garbage() -> None:
    clock = FakeClock()
    t = _telephony(clock, silence_timeout_s=5.0, max_call_duration_s=0.0)
    call = FakeCall()
    f = t.watch(call)
    clock.now += 4
    f.caller_audio(_payload(-20.0))  # speech-level: resets the timer
    clock.now += 4
    f.caller_audio(_payload(-70.0))  # line noise: does not
    f.caller_audio("not base64!!")  # never raises on the hot path
    f.poll()
    assert call.ended == []
    clock.now += 1.0
    f.poll()
    assert call.ended == [(EndReason.SILENCE, HANGUP, False)]
    assert [e["event"] for e in f.events] == ["limit"]
    f.ended()


async def test_duration_warning_then_end() -> None:
    clock = FakeClock()
    t = _telephony(clock, max_call_duration_s=60.0, duration_warning_s=10.0)
    call = FakeCall()
    f = t.watch(call)
    clock.now += 50
    f.poll()
    ((kind, text),) = call.texts()
    assert kind == "ContextualUpdate" and "10 seconds" in text
    clock.now += 10
    f.poll()
    assert call.ended == [(EndReason.MAX_DURATION, HANGUP, False)]
    f.ended()


async def test_keypad_each_and_collect() -> None:
    clock = FakeClock()
    call = FakeCall()
    f = _telephony(clock).watch(call)
    f.keypad_digit("3")
    f.keypad_digit("x")  # not a key: logged and dropped
    assert call.to_agent == [UserMessage(text="3")]
    f.ended()

    call = FakeCall()
    t = _telephony(clock, dtmf_mode="collect", dtmf_deliver="contextual_update")
    f = t.watch(call)
    f.keypad_digit("1")
    f.keypad_digit("2")
    assert call.to_agent == []
    clock.now += 3.0
    f.poll()
    assert call.to_agent == [ContextualUpdate(text="The caller pressed 12 on the keypad.")]
    f.keypad_digit("9")
    f.ended()  # a partial entry is kept in the record, not sent
    assert call.to_agent[-1] == ContextualUpdate(text="The caller pressed 12 on the keypad.")
    assert f.events[-1]["event"] == "dtmf_unsent"


async def test_events_are_appended_to_the_call_record_at_the_end() -> None:
    clock = FakeClock()
    with Store(":memory:") as store:
        call = FakeCall()
        store.record_call(CallRecord(call_sid=call.call_sid, events=({"event": "earlier"},)))
        t = _telephony(clock, store)
        f = t.watch(call)
        f.keypad_digit("5")
        f.ended()
        assert store.flush()
        rec = store.get_call(call.call_sid)
        assert rec is not None
        assert [e["event"] for e in rec.events] == ["earlier", "dtmf_delivered"]
        assert call.call_sid not in t.live


def _keypad_events(store_digits: bool) -> list[dict[str, object]]:
    """A collected entry "12", then "9" left unsent at the end: the record's events."""
    clock = FakeClock()
    t = _telephony(clock, dtmf_mode="collect", store_digits=store_digits)
    f = t.watch(FakeCall())
    for key in "12#9":
        f.keypad_digit(key)
    f.ended()
    return [{k: v for k, v in e.items() if k != "at"} for e in f.events]


async def test_by_default_the_record_counts_keypad_digits_and_keeps_none() -> None:
    assert _keypad_events(store_digits=False) == [
        {"event": "dtmf_delivered", "count": 2, "why": "terminator"},
        {"event": "dtmf_unsent", "count": 1},
    ]


async def test_store_digits_keeps_every_key_as_before() -> None:
    assert _keypad_events(store_digits=True) == [
        {"event": "dtmf", "digit": "1"},
        {"event": "dtmf", "digit": "2"},
        {"event": "dtmf", "digit": "#"},
        {"event": "dtmf", "digit": "9"},
        {"event": "dtmf_unsent", "digits": "9"},
    ]


async def test_answering_machine_verdict_before_the_stream_waits_for_it() -> None:
    clock = FakeClock()
    t = _telephony(clock, voicemail_action="message", voicemail_message="Call us back.")
    call = FakeCall()
    t.answered_by(call.call_sid, "machine_end_beep")
    assert call.ended == []
    t.watch(call)
    assert call.ended == [(EndReason.VOICEMAIL, Apology("Call us back."), False)]


async def test_answering_machine_policies_on_a_live_call() -> None:
    clock = FakeClock()
    for action, check in [
        ("hangup", lambda c: c.ended == [(EndReason.VOICEMAIL, HANGUP, False)]),
        ("agent", lambda c: c.ended == [] and "answering machine" in c.to_agent[0].text),
    ]:
        t = _telephony(clock, voicemail_action=action)
        call = FakeCall()
        t.watch(call)
        t.answered_by(call.call_sid, "machine_end_silence")
        assert check(call), action
    t = _telephony(clock, voicemail_action="hangup")
    call = FakeCall()
    t.watch(call)
    t.answered_by(call.call_sid, "human")
    assert call.ended == [] and call.to_agent == []
