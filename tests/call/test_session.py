"""The CallSession state machine, driven by hand with real wire frames (no sockets)."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from bridge.call.actions import (
    Apology,
    CallerDtmf,
    CancelTimer,
    CloseAgent,
    ConnectAgent,
    EndReason,
    EndStream,
    Finished,
    Hangup,
    RunTool,
    StartTimer,
    Timer,
    Transfer,
    UpdateRecord,
)
from bridge.call.plan import CallPlan
from bridge.call.session import State
from bridge.convai import messages as convai
from bridge.errors import ConvaiProtocolError
from bridge.twilio import media as twilio
from tests.call.conftest import AGENT_ID, CALL_SID, PARAMS, STREAM_SID, Harness, make_harness

SILENCE = b"\xff" * 160  # 20 ms of mu-law silence


def _frame(i: int) -> bytes:
    """20 ms of mu-law whose bytes say which frame it was."""
    return bytes([i % 256]) * 160


def _of(kind: type, actions: list) -> list:
    return [a for a in actions if isinstance(a, kind)]


def _finished(h: Harness) -> Finished:
    h.take()
    (done,) = _of(Finished, h.actions)
    return done


def _twilio_msgs(frames: list[str]) -> list[twilio.ServerMessage]:
    return [twilio.parse_from_server(f) for f in frames]


def _agent_chunks(frames: list[str]) -> list[bytes]:
    out = []
    for f in frames:
        msg = convai.parse_client(f)
        if isinstance(msg, convai.UserAudioChunk):
            out.append(base64.b64decode(msg.user_audio_chunk))
    return out


# --------------------------------------------------------------------------- start


def test_start_connects_the_agent_named_by_the_stream(h: Harness) -> None:
    assert h.session.state is State.AWAITING_START
    assert StartTimer(Timer.START, 10.0) in h.take()
    h.start()
    actions = h.take()
    assert ConnectAgent(AGENT_ID) in actions
    assert CancelTimer(Timer.START) in actions
    (rec,) = _of(UpdateRecord, actions)
    assert rec.fields["stream_sid"] == STREAM_SID
    assert rec.fields["status"] == "in-progress"
    assert rec.fields["from_number"] == "+14155550111"
    assert h.session.state is State.CONNECTING_AGENT
    assert h.session.call_sid == CALL_SID


def test_initiation_data_carries_call_facts_params_and_overrides_but_no_system_names() -> None:
    plan = CallPlan(
        AGENT_ID,
        "table",
        first_message="Hi from the number",
        language="de",
        dynamic_variables={"tier": "gold", "caller_id": "configured", "system__x": "no"},
    )
    h = make_harness(plan)
    h.start({**PARAMS, "campaign": "spring", "system__call_sid": "spoofed"})
    h.session.agent_connected()
    (frame,) = h.agent_frames()
    msg = convai.parse_client(frame)
    assert isinstance(msg, convai.ConversationInitiationClientData)
    assert msg.dynamic_variables == {
        "tier": "gold",
        "campaign": "spring",
        "caller_id": "+14155550111",  # the call's fact beats configuration
        "called_number": "+14155550100",
        "call_sid": CALL_SID,
        "stream_sid": STREAM_SID,
    }
    assert msg.conversation_config_override is not None
    agent = msg.conversation_config_override.agent
    assert agent is not None
    assert (agent.first_message, agent.language) == ("Hi from the number", "de")


def test_no_overrides_means_no_override_object(h: Harness) -> None:
    h.start()
    h.session.agent_connected()
    msg = convai.parse_client(h.agent_frames()[0])
    assert isinstance(msg, convai.ConversationInitiationClientData)
    assert msg.conversation_config_override is None


# --------------------------------------------------------------------------- early audio, formats


def test_caller_audio_before_metadata_is_buffered_bounded_then_sent_in_order() -> None:
    h = make_harness(caller_buffer_ms=200)  # room for 10 frames of 20 ms
    h.start()
    h.session.agent_connected()
    h.agent_frames()  # the initiation message
    for i in range(14):
        h.media(_frame(i))
    assert h.agent_frames() == []  # nothing goes out before the formats are known
    h.metadata("ulaw_8000", "ulaw_8000")
    chunks = _agent_chunks(h.agent_frames())
    assert chunks == [_frame(i) for i in range(4, 14)]  # the oldest 4 were shed
    assert h.session.stats.early_dropped == 4


def test_ulaw_input_passes_through_unchanged(h: Harness) -> None:
    h.active("ulaw_8000", "ulaw_8000")
    payload = base64.b64encode(_frame(7)).decode()
    h.media(_frame(7))
    (frame,) = h.agent_frames()
    assert frame == convai.user_audio_chunk_frame(payload)
    assert h.session.stats.bytes_in == 160


@pytest.mark.parametrize(("fmt", "rate"), [("pcm_16000", 16000), ("pcm_44100", 44100)])
def test_pcm_input_is_resampled_to_the_agent_rate(h: Harness, fmt: str, rate: int) -> None:
    h.active(fmt, "ulaw_8000")
    for _ in range(50):  # one second
        h.media(SILENCE)
    pcm = b"".join(_agent_chunks(h.agent_frames()))
    samples = len(pcm) // 2
    assert abs(samples - rate) <= rate // 100  # within the resampler's delay


def test_unusable_agent_format_fails_over_to_the_apology(h: Harness) -> None:
    h.start()
    h.session.agent_connected()
    h.metadata("ulaw_8000", "opus_48000")
    actions = h.take()
    (end,) = _of(EndStream, actions)
    assert isinstance(end.disposition, Apology)
    assert CloseAgent(1000, "call ended") in actions
    assert _finished(h).reason is EndReason.AGENT_FAILED


# --------------------------------------------------------------------------- agent → caller


def test_agent_audio_is_chunked_and_followed_by_one_mark(h: Harness) -> None:
    h.active()
    h.audio(b"\x55" * 2000, event_id=3)  # 250 ms
    msgs = _twilio_msgs(h.twilio_frames())
    media = [m for m in msgs if isinstance(m, twilio.OutMedia)]
    assert [len(base64.b64decode(m.media.payload)) for m in media] == [800, 800, 400]
    assert all(m.streamSid == STREAM_SID for m in msgs)
    assert isinstance(msgs[-1], twilio.OutMark)
    assert msgs[-1].mark.name == "audio-3"
    assert h.session.pending_marks == 1
    assert h.session.stats.bytes_out == 2000
    h.mark("audio-3")
    assert h.session.pending_marks == 0


def test_short_agent_events_share_one_mark_per_100_ms(h: Harness) -> None:
    h.active()
    for event_id in range(1, 13):  # 12 events of 20 ms
        h.audio(_frame(event_id), event_id=event_id)
    msgs = _twilio_msgs(h.twilio_frames())
    marks = [m.mark.name for m in msgs if isinstance(m, twilio.OutMark)]
    assert marks == ["audio-5", "audio-10"]  # each names the newest event it covers
    assert isinstance(msgs[-1], twilio.OutMedia)  # events 11-12 are not marked yet
    assert len([m for m in msgs if isinstance(m, twilio.OutMedia)]) == 12
    assert h.session.pending_marks == 3  # two marks out, and unmarked audio
    h.mark("audio-10")  # echoes mean everything before them played
    assert h.session.pending_marks == 1


def test_ending_marks_the_unmarked_audio_and_waits_for_it(h: Harness) -> None:
    h.active()
    h.audio(_frame(1), event_id=1)  # 20 ms: below the mark threshold
    assert not any(isinstance(m, twilio.OutMark) for m in _twilio_msgs(h.twilio_frames()))
    h.session.agent_closed(1000, "")
    msgs = _twilio_msgs(h.twilio_frames())
    assert [m.mark.name for m in msgs if isinstance(m, twilio.OutMark)] == ["audio-1"]
    assert not _of(EndStream, h.take())  # the last 20 ms is not heard yet
    h.mark("audio-1")
    assert _of(EndStream, h.take())


def test_audio_while_ending_is_marked_at_once(h: Harness) -> None:
    h.active()
    h.audio(_frame(1), event_id=1)
    h.session.request_end(EndReason.AGENT_END_CALL)  # the agent may still be talking
    h.audio(_frame(2), event_id=2)
    msgs = _twilio_msgs(h.twilio_frames())
    assert [type(m) for m in msgs] == [twilio.OutMedia, twilio.OutMedia, twilio.OutMark]
    assert isinstance(msgs[-1], twilio.OutMark) and msgs[-1].mark.name == "audio-2"
    h.session.timer_fired(Timer.SETTLE)
    assert not _of(EndStream, h.take())
    h.mark("audio-2")
    assert _of(EndStream, h.take())


def test_pcm_agent_audio_is_transcoded_to_ulaw_8000(h: Harness) -> None:
    h.active("ulaw_8000", "pcm_16000")
    h.audio(b"\x00\x00" * 16000, event_id=1)  # one second of silence at 16 kHz
    ulaw = b"".join(
        base64.b64decode(m.media.payload)
        for m in _twilio_msgs(h.twilio_frames())
        if isinstance(m, twilio.OutMedia)
    )
    assert abs(len(ulaw) - 8000) <= 80
    assert set(ulaw) <= {0xFF, 0x7F}  # mu-law silence


def test_first_audio_latency_is_measured_from_stream_start(h: Harness) -> None:
    h.start()
    h.clock.now += 0.25
    h.session.agent_connected()
    h.metadata()
    h.clock.now += 0.5
    h.audio(SILENCE, event_id=1)
    assert h.session.summary().first_audio_ms == 750.0


def test_agent_audio_with_bad_base64_is_dropped_and_the_call_goes_on(h: Harness) -> None:
    h.active()
    h.agent({"type": "audio", "audio_event": {"audio_base_64": "!!not base64!!", "event_id": 1}})
    assert h.twilio_frames() == []
    assert h.session.stats.bad_agent == 1
    h.audio(SILENCE, event_id=2)
    assert [type(m) for m in _twilio_msgs(h.twilio_frames())] == [twilio.OutMedia]
    assert h.session.state is State.ACTIVE


# --------------------------------------------------------------------------- barge-in


def test_interruption_clears_twilio_and_drops_stale_audio(h: Harness) -> None:
    h.active()
    h.audio(_frame(1), event_id=1)
    h.audio(_frame(2), event_id=2)  # still queued, never sent
    h.agent({"type": "interruption", "interruption_event": {"event_id": 2}})
    msgs = _twilio_msgs(h.twilio_frames())
    assert msgs == [twilio.Clear(streamSid=STREAM_SID)]  # unsent audio was dropped too
    assert h.session.pending_marks == 0
    h.audio(_frame(2), event_id=2)  # late audio of the interrupted response
    h.audio(_frame(1), event_id=1)
    assert h.twilio_frames() == []
    assert h.session.stats.stale_dropped == 2
    h.audio(_frame(3), event_id=3)  # the next response plays
    msgs = _twilio_msgs(h.twilio_frames())
    assert isinstance(msgs[0], twilio.OutMedia)
    assert base64.b64decode(msgs[0].media.payload) == _frame(3)
    assert h.session.stats.interruptions == 1
    # Echoes of marks sent before the clear are not ours to wait for any more.
    h.mark("audio-1")
    assert h.session.pending_marks == 1


def test_interruption_resets_the_outbound_resampler(h: Harness) -> None:
    h.active("ulaw_8000", "pcm_16000")
    loud = (b"\x00\x40" * 160) * 5  # 50 ms of a large constant at 16 kHz
    h.audio(loud, event_id=1)
    h.agent({"type": "interruption", "interruption_event": {"event_id": 1}})
    h.twilio_frames()
    h.audio(b"\x00\x00" * 320, event_id=2)  # silence: must not carry the old history
    ulaw = b"".join(
        base64.b64decode(m.media.payload)
        for m in _twilio_msgs(h.twilio_frames())
        if isinstance(m, twilio.OutMedia)
    )
    assert ulaw and set(ulaw) <= {0xFF, 0x7F}


# --------------------------------------------------------------------------- ping


def test_ping_is_answered_first_with_the_same_event_id(h: Harness) -> None:
    h.active()
    for _ in range(3):
        h.media(SILENCE)  # caller audio already queued toward the agent
    h.agent({"type": "ping", "ping_event": {"event_id": 42, "ping_ms": 87}})
    frames = h.agent_frames()
    assert json.loads(frames[0]) == {"type": "pong", "event_id": 42}
    assert len(frames) == 4
    h.agent({"type": "ping", "ping_event": {"event_id": 43, "ping_ms": 40}})
    assert (h.session.stats.ping_ms, h.session.stats.ping_ms_max) == (40, 87)


# --------------------------------------------------------------------------- agent ends


def test_agent_close_waits_for_the_goodbye_to_be_heard(h: Harness) -> None:
    h.active()
    h.audio(b"\x11" * 4000, event_id=9)  # the goodbye: half a second
    h.session.agent_closed(1000, "")
    actions = h.take()
    assert h.session.state is State.ENDING
    assert StartTimer(Timer.GOODBYE, 10.0) in actions
    assert not _of(EndStream, actions)  # not before it was heard
    h.echo_all_marks()
    actions = h.take()
    (end,) = _of(EndStream, actions)
    assert end.disposition == Hangup()
    assert not _of(CloseAgent, actions)  # already closed by the agent
    assert _finished(h).reason is EndReason.AGENT_ENDED
    assert h.session.state is State.ENDED


def test_goodbye_wait_is_bounded(h: Harness) -> None:
    h.active()
    h.audio(b"\x11" * 800, event_id=1)
    h.session.agent_closed(1000, "")
    h.take()
    h.session.timer_fired(Timer.GOODBYE)  # Twilio never echoed the mark
    assert _of(EndStream, h.take())
    assert _finished(h).reason is EndReason.AGENT_ENDED


def test_end_call_tool_waits_for_quiet_and_playout_then_hangs_up(h: Harness) -> None:
    h.active()
    h.agent(
        {
            "type": "client_tool_call",
            "client_tool_call": {"tool_name": "end_call", "tool_call_id": "t1", "parameters": {}},
        }
    )
    (run,) = _of(RunTool, h.take())
    assert (run.name, run.tool_call_id) == ("end_call", "t1")
    # What the end_call tool does, then its result:
    h.session.request_end(EndReason.AGENT_END_CALL)
    h.session.tool_finished("t1", "call ending", False)
    assert json.loads(h.agent_frames()[-1]) == {
        "type": "client_tool_result",
        "tool_call_id": "t1",
        "result": "call ending",
        "is_error": False,
    }
    assert StartTimer(Timer.SETTLE, 0.5) in h.take()
    h.audio(b"\x22" * 800, event_id=5)  # goodbye audio still arriving after the tool call
    assert StartTimer(Timer.SETTLE, 0.5) in h.take()  # the quiet period starts over
    h.session.timer_fired(Timer.SETTLE)
    assert not _of(EndStream, h.take())  # quiet, but the goodbye is not heard yet
    h.echo_all_marks()
    actions = h.take()
    assert CloseAgent(1000, "call ended") in actions
    assert _of(EndStream, actions)[0].disposition == Hangup()
    assert _finished(h).reason is EndReason.AGENT_END_CALL


def test_system_end_call_then_close_ends_after_playout(h: Harness) -> None:
    h.active()
    h.audio(b"\x33" * 800, event_id=1)
    h.agent(
        {
            "type": "agent_tool_response",
            "agent_tool_response": {
                "tool_name": "end_call",
                "tool_call_id": "x",
                "tool_type": "system",
            },
        }
    )
    assert h.session.state is State.ENDING
    h.session.agent_closed(1000, "")  # nothing more can come: no quiet period needed
    assert CancelTimer(Timer.SETTLE) in h.take()
    h.echo_all_marks()
    assert _finished(h).reason is EndReason.AGENT_END_CALL


# --------------------------------------------------------------------------- caller ends


def test_caller_stop_closes_the_agent_at_once(h: Harness) -> None:
    h.active()
    h.audio(b"\x11" * 800, event_id=1)  # unheard audio does not hold anything up
    h.stop()
    actions = h.take()
    assert CloseAgent(1000, "call ended") in actions
    assert not _of(EndStream, actions)  # the stream is gone already
    done = _finished(h)
    assert done.reason is EndReason.CALLER_HANGUP
    assert done.summary.then is None


def test_caller_gone_while_connecting_cancels_the_connect(h: Harness) -> None:
    h.start()
    h.take()
    h.session.caller_closed()
    assert CloseAgent(1000, "call ended") in h.take()
    h.session.agent_connected()  # the connect completing late changes nothing
    assert h.agent_frames() == []


def test_caller_hangup_during_goodbye_ends_without_waiting(h: Harness) -> None:
    h.active()
    h.audio(b"\x11" * 800, event_id=1)
    h.session.agent_closed(1000, "")
    h.take()
    h.session.caller_closed()
    actions = h.take()
    assert not _of(EndStream, actions)
    assert _finished(h).reason is EndReason.AGENT_ENDED


# --------------------------------------------------------------------------- agent fails


@pytest.mark.parametrize(
    ("policy", "fallback", "plan_fallback", "expected"),
    [
        ("apology", None, None, Apology("Sorry.")),
        ("transfer", "+14155550199", None, Transfer("+14155550199")),
        ("transfer", "+14155550199", "+14155550177", Transfer("+14155550177")),
        ("transfer", None, None, Apology("Sorry.")),  # nowhere to transfer to
        ("hangup", "+14155550199", None, Hangup()),
    ],
)
def test_agent_connect_failure_takes_the_configured_fallback(
    policy: str, fallback: str | None, plan_fallback: str | None, expected: object
) -> None:
    h = make_harness(
        CallPlan(AGENT_ID, "table", fallback_number=plan_fallback),
        on_agent_failure=policy,
        fallback_number=fallback,
        apology_text="Sorry.",
    )
    h.start()
    h.session.agent_closed(None, "signed URL request failed (HTTP 503)")
    (end,) = _of(EndStream, h.take())
    assert end.disposition == expected
    done = _finished(h)
    assert done.reason is EndReason.AGENT_FAILED
    if isinstance(expected, Transfer):
        (rec,) = [a for a in h.actions if isinstance(a, UpdateRecord) and "end_reason" in a.fields]
        assert rec.fields["transfer_target"] == expected.number


def test_agent_abnormal_close_mid_call_is_a_failure_logged_with_the_reason(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.active()
    with caplog.at_level(logging.ERROR, logger="bridge.call"):
        h.session.agent_closed(1011, "internal error")
    (end,) = _of(EndStream, h.take())
    assert isinstance(end.disposition, Apology)
    assert _finished(h).reason is EndReason.AGENT_FAILED
    failed = [r for r in caplog.records if r.getMessage() == "call.agent_failed"]
    assert "1011" in failed[0].bridge_fields["why"]  # type: ignore[attr-defined]
    assert failed[0].bridge_fields["call_sid"] == CALL_SID  # type: ignore[attr-defined]


def test_normal_close_before_the_conversation_started_is_a_failure(h: Harness) -> None:
    h.start()
    h.session.agent_connected()
    h.session.agent_closed(1000, "")
    assert _finished(h).reason is EndReason.AGENT_FAILED


def test_no_agent_for_the_stream_gets_the_apology() -> None:
    h = make_harness()
    h.start({"caller_id": "+14155550111"})
    actions = h.take()
    assert not _of(ConnectAgent, actions)
    assert isinstance(_of(EndStream, actions)[0].disposition, Apology)


# --------------------------------------------------------------------------- tools


def test_unknown_client_tool_is_answered_with_an_error(h: Harness) -> None:
    h.active()
    h.agent(
        {
            "type": "client_tool_call",
            "client_tool_call": {"tool_name": "launch_rocket", "tool_call_id": "t9"},
        }
    )
    assert not _of(RunTool, h.take())
    result = json.loads(h.agent_frames()[0])
    assert result["tool_call_id"] == "t9"
    assert result["is_error"] is True
    assert "launch_rocket" in result["result"]


def test_tool_error_result_is_sent_as_is_error(h: Harness) -> None:
    h.active()
    h.agent(
        {
            "type": "client_tool_call",
            "client_tool_call": {"tool_name": "lookup", "tool_call_id": "t2"},
        }
    )
    h.session.tool_finished("t2", "lookup service down", True)
    assert json.loads(h.agent_frames()[0])["is_error"] is True


def test_tool_calls_while_ending_are_refused(h: Harness) -> None:
    h.active()
    h.session.request_end(EndReason.AGENT_END_CALL)
    h.agent(
        {
            "type": "client_tool_call",
            "client_tool_call": {"tool_name": "lookup", "tool_call_id": "t3"},
        }
    )
    assert not _of(RunTool, h.take())
    assert json.loads(h.agent_frames()[-1])["is_error"] is True


def test_keypad_presses_are_handed_to_the_driver(h: Harness) -> None:
    h.active()
    h.twilio(
        twilio.encode(
            twilio.Dtmf(streamSid=STREAM_SID, sequenceNumber="99", dtmf=twilio.DtmfBody(digit="7"))
        )
    )
    assert CallerDtmf("7") in h.take()


# --------------------------------------------------------------------------- bad input


def test_unknown_agent_event_is_ignored(h: Harness) -> None:
    h.active()
    h.agent({"type": "brand_new_event", "brand_new_event": {"x": 1}})
    assert h.take() == [] and h.twilio_frames() == [] and h.agent_frames() == []
    assert h.session.state is State.ACTIVE


def test_malformed_agent_event_is_logged_and_the_call_continues(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.active()
    with caplog.at_level(logging.WARNING, logger="bridge.call"):
        h.session.agent_garbage(ConvaiProtocolError("malformed 'audio' message: missing event_id"))
    assert h.session.stats.bad_agent == 1
    assert any(r.getMessage() == "call.agent_bad_frame" for r in caplog.records)
    h.audio(SILENCE, event_id=1)
    assert h.twilio_frames()


def test_twilio_garbage_is_tolerated_up_to_a_limit() -> None:
    h = make_harness(max_bad_twilio_frames=5)
    h.active()
    for _ in range(3):
        h.twilio('{"event": "media", "oops": true}')  # not a valid frame
    h.twilio("not json at all")
    assert h.session.state is State.ACTIVE
    h.twilio(
        twilio.encode(
            twilio.Mark(sequenceNumber="50", streamSid="MZother", mark=twilio.MarkBody(name="x"))
        )
    )
    assert h.session.stats.bad_twilio == 5
    done = _finished(h)
    assert done.reason is EndReason.TWILIO_PROTOCOL


def test_stream_that_never_starts_is_closed(h: Harness) -> None:
    h.twilio(twilio.encode(twilio.Connected()))
    h.session.timer_fired(Timer.START)
    actions = h.take()
    assert _of(EndStream, actions)
    assert _finished(h).reason is EndReason.NO_START


def test_non_ulaw_stream_is_refused(h: Harness) -> None:
    h.start(encoding="audio/x-l16", sampleRate=16000)
    assert not _of(ConnectAgent, h.take())
    assert _finished(h).reason is EndReason.TWILIO_PROTOCOL


# --------------------------------------------------------------------------- summary


def test_summary_line_and_final_record(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.active()
    for _ in range(5):
        h.media(SILENCE)
    h.audio(b"\x11" * 1600, event_id=1)
    h.agent({"type": "interruption", "interruption_event": {"event_id": 1}})
    h.clock.now += 12.5
    with caplog.at_level(logging.INFO, logger="bridge.call"):
        h.stop()
    (line,) = [r for r in caplog.records if r.getMessage() == "call.summary"]
    fields = line.bridge_fields  # type: ignore[attr-defined]
    assert fields["conversation_id"] == "conv_1"
    assert fields["agent_id"] == AGENT_ID
    assert (fields["bytes_in"], fields["bytes_out"], fields["interruptions"]) == (800, 1600, 1)
    assert fields["end_reason"] == "caller_hangup"
    assert fields["duration_s"] == 12.5
    h.take()
    (final,) = [a for a in h.actions if isinstance(a, UpdateRecord) and "end_reason" in a.fields]
    assert final.fields["status"] == "completed"
    assert final.fields["interruptions"] == 1
