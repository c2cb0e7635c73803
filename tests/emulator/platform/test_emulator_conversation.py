"""The emulated conversation as a pure state machine: frames and clock in, frames out."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest

from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.signals import from_pcm16, level_dbfs, tone_pcm16
from bridge.convai.messages import (
    AgentResponse,
    AgentResponseCorrection,
    AgentToolResponse,
    Audio,
    AudioEvent,
    ClientToolCall,
    ConversationInitiationMetadata,
    Interruption,
    Ping,
    UserTranscript,
    encode_str,
    parse_server,
)
from bridge.emulator.platform.behaviour import build_profile
from bridge.emulator.platform.conversation import (
    CloseConnection,
    ConversationTiming,
    EmulatedConversation,
    Phase,
    SendText,
)
from bridge.emulator.platform.voice import text_duration_ms
from bridge.platform.agents import CreateAgentRequest

TIMING = ConversationTiming(
    ping_interval_s=1.0,
    pong_timeout_s=3.0,
    init_wait_s=0.5,
    reply_lead_s=0.3,
    chunk_ms=100,
    silence_gap_s=0.6,
)
ALLOW = {
    "overrides": {
        "conversation_config_override": {"agent": {"first_message": True, "language": True}}
    }
}


def make(
    *,
    behaviour: dict[str, Any] | None = None,
    first_message: str = "",
    fmt_in: str = "pcm_16000",
    fmt_out: str = "pcm_16000",
    settings: dict[str, Any] | None = None,
    agent_extra: dict[str, Any] | None = None,
    conversation: dict[str, Any] | None = None,
    capture: bytearray | None = None,
) -> EmulatedConversation:
    agent: dict[str, Any] = {"first_message": first_message, **(agent_extra or {})}
    if behaviour is not None:
        agent["emulator"] = behaviour
    config: dict[str, Any] = {
        "asr": {"user_input_audio_format": fmt_in},
        "tts": {"agent_output_audio_format": fmt_out},
        "agent": agent,
    }
    if conversation is not None:
        config["conversation"] = conversation
    req = msgspec.convert(
        {
            "conversation_config": config,
            "platform_settings": settings if settings is not None else ALLOW,
        },
        CreateAgentRequest,
    )
    profile = build_profile("agent_t", "T", req.conversation_config, req.platform_settings or None)
    return EmulatedConversation(
        "conv_t", profile, now=0.0, started_at_unix=1000.0, timing=TIMING, capture=capture
    )


def sent(conv: EmulatedConversation) -> list[Any]:
    """Decoded frames sent since the last call; a close as the CloseConnection itself."""
    out: list[Any] = []
    for o in conv.take_outputs():
        out.append(parse_server(o.text) if isinstance(o, SendText) else o)
    return out


def of(frames: list[Any], cls: type) -> list[Any]:
    return [f for f in frames if isinstance(f, cls)]


def init(**data: Any) -> str:
    return json.dumps({"type": "conversation_initiation_client_data", **data})


def chunk(pcm: bytes) -> str:
    return json.dumps({"user_audio_chunk": base64.b64encode(pcm).decode()})


def audio_bytes(frames: list[Any]) -> bytes:
    return b"".join(base64.b64decode(a.audio_event.audio_base_64) for a in of(frames, Audio))


def feed(
    conv: EmulatedConversation, pcm: bytes, t0: float, rate: int = 16000, frame_ms: int = 20
) -> float:
    """Send ``pcm`` in real-time frames starting at ``t0``; returns the time after the last."""
    step = rate * frame_ms // 1000 * 2
    t = t0
    for off in range(0, len(pcm), step):
        conv.receive(chunk(pcm[off : off + step]), t)
        conv.tick(t)
        t += frame_ms / 1000
    return t


SPEECH = tone_pcm16(300, 0.6, 16000, dbfs=-12)
SILENCE = bytes(2 * 16000)  # 1 s


# ------------------------------------------------------------------ start-up


def test_client_data_first_then_metadata_with_formats() -> None:
    conv = make(fmt_in="ulaw_8000", fmt_out="pcm_24000")
    conv.receive(init(dynamic_variables={"caller_id": "+14155550100", "n": 3}, user_id="u1"), 0.0)
    frames = sent(conv)
    meta = frames[0]
    assert isinstance(meta, ConversationInitiationMetadata)
    ev = meta.conversation_initiation_metadata_event
    assert (ev.conversation_id, ev.user_input_audio_format, ev.agent_output_audio_format) == (
        "conv_t",
        "ulaw_8000",
        "pcm_24000",
    )
    assert conv.record.client_data_received
    assert conv.record.dynamic_variables == {"caller_id": "+14155550100", "n": 3}
    assert conv.record.user_id == "u1"


def test_metadata_frame_always_carries_both_formats() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    raw = json.loads(conv.take_outputs()[0].text)  # type: ignore[union-attr]
    assert raw["conversation_initiation_metadata_event"]["user_input_audio_format"] == "pcm_16000"
    assert raw["conversation_initiation_metadata_event"]["agent_output_audio_format"] == "pcm_16000"


def test_without_client_data_starts_after_init_wait() -> None:
    conv = make()
    conv.tick(0.4)
    assert sent(conv) == [] and conv.phase is Phase.WAITING_FOR_CLIENT_DATA
    assert conv.next_deadline() == pytest.approx(0.5)
    conv.tick(0.5)
    assert isinstance(sent(conv)[0], ConversationInitiationMetadata)
    assert not conv.record.client_data_received


def test_other_first_frame_starts_without_client_data_and_is_handled() -> None:
    conv = make()
    conv.receive(json.dumps({"type": "contextual_update", "text": "hello"}), 0.1)
    assert isinstance(sent(conv)[0], ConversationInitiationMetadata)
    assert conv.record.contextual_updates == ["hello"]


def test_reserved_dynamic_variable_closes_1008() -> None:
    conv = make()
    conv.receive(init(dynamic_variables={"system__caller_id": "+1"}), 0.0)
    (close,) = sent(conv)
    assert close == CloseConnection(1008, close.reason)
    assert "system__caller_id" in close.reason and conv.closed


def test_override_not_allowed_closes_1008() -> None:
    conv = make(settings={})
    conv.receive(init(conversation_config_override={"agent": {"first_message": "hi"}}), 0.0)
    (close,) = sent(conv)
    assert close.code == 1008 and "agent.first_message" in close.reason


def test_allowed_first_message_override_is_spoken() -> None:
    conv = make(first_message="configured greeting")
    conv.receive(init(conversation_config_override={"agent": {"first_message": "override!"}}), 0.0)
    frames = sent(conv)
    assert [r.agent_response_event.agent_response for r in of(frames, AgentResponse)] == [
        "override!"
    ]
    assert conv.record.conversation_config_override == {"agent": {"first_message": "override!"}}


def test_late_client_data_is_noted_not_applied() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    conv.receive(init(dynamic_variables={"x": 1}), 0.1)
    assert conv.record.dynamic_variables == {}
    assert any("after the start" in n for n in conv.record.notes)


# ------------------------------------------------------------------ greeting, pacing


def test_greeting_is_paced_against_the_playout_clock() -> None:
    conv = make(first_message="Hello there, caller")  # 19 chars -> 1045 ms
    conv.receive(init(), 0.0)
    first = sent(conv)
    assert of(first, AgentResponse)[0].agent_response_event.agent_response == "Hello there, caller"
    # Chunks go out while no more than the 0.3 s lead is buffered ahead: 4 at once.
    assert len(of(first, Audio)) == 4
    assert conv.next_deadline() == pytest.approx(0.1)  # playout at 0.4 - lead 0.3
    conv.tick(0.099)
    assert of(sent(conv), Audio) == []
    t, frames = 0.0, first
    while conv.next_deadline() is not None and conv.next_deadline() < 1.0:  # type: ignore[operator]
        t = max(t, conv.next_deadline())  # type: ignore[type-var]
        t += 0.05
        conv.tick(t)
        frames += sent(conv)
    ids = [a.audio_event.event_id for a in of(frames, Audio)]
    assert ids == list(range(1, len(ids) + 1))
    assert len(audio_bytes(frames)) == 16000 * 2 * 1045 // 1000


def test_greeting_off_and_empty_first_message_send_no_audio() -> None:
    for conv in (make(first_message="hi", behaviour={"greeting": False}), make(first_message="")):
        conv.receive(init(), 0.0)
        conv.tick(5.0)
        assert of(sent(conv), Audio) == []


def test_greeting_audio_is_in_the_output_format() -> None:
    conv = make(first_message="x" * 20, fmt_out="ulaw_8000")
    conv.receive(init(), 0.0)
    frames = sent(conv)
    for t in range(1, 30):
        conv.tick(t / 10)
        frames += sent(conv)
    ulaw = audio_bytes(frames)
    assert len(ulaw) == 8000 * 1100 // 1000  # 20 chars * 55 ms at 1 byte/sample
    assert level_dbfs(from_pcm16(ulaw_decode(ulaw))) > -40


# ------------------------------------------------------------------ ping / pong


def test_pings_pongs_rtt_and_ping_ms() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    sent(conv)
    conv.tick(1.0)
    (p1,) = of(sent(conv), Ping)
    assert p1.ping_event.event_id == 1 and p1.ping_event.ping_ms == 0
    conv.receive(json.dumps({"type": "pong", "event_id": 1}), 1.05)
    assert conv.record.pongs == [1] and conv.record.last_rtt_ms == 50
    conv.tick(2.0)
    (p2,) = of(sent(conv), Ping)
    assert p2.ping_event.event_id == 2 and p2.ping_event.ping_ms == 50


def test_missing_pong_closes_1011() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    conv.tick(1.0)  # ping 1
    conv.tick(2.0)  # ping 2
    conv.receive(json.dumps({"type": "pong", "event_id": 2}), 2.1)
    assert conv.next_deadline() == pytest.approx(3.0)
    conv.tick(3.99)
    assert not conv.closed
    conv.tick(4.0)  # ping 1 unanswered for 3 s
    close = sent(conv)[-1]
    assert isinstance(close, CloseConnection) and close.code == 1011 and "ping 1" in close.reason


def test_unknown_pong_is_recorded() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    conv.receive(json.dumps({"type": "pong", "event_id": 99}), 0.1)
    assert conv.record.unexpected_pongs == [99] and conv.record.pongs == []


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        ('{"user_audio_chunk": "not base64!"}', 1007, "base64"),
        ('{"user_audio_chunk": "AAEC"}', 1007, "16-bit"),  # 3 bytes of PCM
        ("{not json", 1007, "malformed"),
        ('{"type": "pong"}', 1007, "malformed"),
        ('{"no_type": 1}', 1007, "type"),
    ],
)
def test_bad_frames_close_with_reason(frame: str, code: int, words: str) -> None:
    conv = make()
    conv.receive(init(), 0.0)
    sent(conv)
    conv.receive(frame, 0.1)
    close = sent(conv)[-1]
    assert isinstance(close, CloseConnection) and close.code == code and words in close.reason
    assert conv.record.close_code == code and conv.record.closed_by == "agent"
    conv.receive(chunk(b"\0\0"), 0.2)  # after close: ignored
    assert sent(conv) == []


def test_odd_length_is_fine_for_ulaw() -> None:
    conv = make(fmt_in="ulaw_8000")
    conv.receive(init(), 0.0)
    conv.receive('{"user_audio_chunk": "AAEC"}', 0.1)
    assert not conv.closed and conv.record.audio_bytes == {"ulaw_8000": 3}


def test_binary_frame_closes_1003() -> None:
    conv = make()
    conv.receive_binary(0.0)
    assert sent(conv) == [CloseConnection(1003, "binary frames are not supported; send JSON text")]


def test_long_close_reason_fits_a_close_frame() -> None:
    conv = make(behaviour={"steps": [{"type": "close", "code": 4000, "reason": "é" * 200}]})
    conv.receive(init(), 0.0)
    close = sent(conv)[-1]
    assert close.code == 4000 and len(close.reason.encode()) <= 123


# ------------------------------------------------------------------ echo, barge-in, loopback


def test_echo_plays_the_utterance_back_transcoded() -> None:
    conv = make(fmt_in="pcm_16000", fmt_out="ulaw_8000")
    conv.receive(init(), 0.0)
    sent(conv)
    t = feed(conv, SPEECH + SILENCE, 0.1)
    frames = sent(conv)
    for _ in range(20):
        t += 0.1
        conv.tick(t)
        frames += sent(conv)
    (transcript,) = of(frames, UserTranscript)
    text = transcript.user_transcription_event.user_transcript
    assert "no speech recognition" in text and "0.60 s" in text
    assert conv.record.utterances_ms == [600]
    (response,) = of(frames, AgentResponse)
    assert "playing back 0.60 s" in response.agent_response_event.agent_response
    echoed = audio_bytes(frames)
    # 600 ms at 8000 mu-law bytes/s, plus the resampler tail (a few ms)
    assert 4800 <= len(echoed) <= 4800 + 80
    assert level_dbfs(from_pcm16(ulaw_decode(echoed[:4800]))) > -20


def test_caller_speech_during_reply_interrupts_it() -> None:
    conv = make(
        first_message="a fairly long greeting that keeps playing for a while",
        behaviour={"mode": "silent"},  # so the caller's words are not echoed afterwards
    )
    conv.receive(init(), 0.0)
    frames = sent(conv)
    conv.tick(0.2)
    frames += sent(conv)
    last_id = max(a.audio_event.event_id for a in of(frames, Audio))
    feed(conv, SPEECH[: 16000 * 2 // 10], 0.3)  # 100 ms of speech; VAD starts after 60 ms
    after = sent(conv)
    (interruption,) = of(after, Interruption)
    ids_sent_before = [a.audio_event.event_id for a in of(after, Audio)]
    expected = max([last_id, *ids_sent_before])
    assert interruption.interruption_event.event_id == expected
    assert conv.record.interruptions == [expected]
    # The rest of the greeting is dropped: no more audio ever.
    for step in range(1, 40):
        conv.tick(0.5 + step / 10)
    assert of(sent(conv), Audio) == []


def test_an_interrupted_reply_is_corrected_to_the_words_heard() -> None:
    greeting = "a fairly long greeting that keeps playing for a while"
    conv = make(first_message=greeting, behaviour={"mode": "silent"})
    conv.receive(init(), 0.0)
    sent(conv)
    conv.tick(0.2)
    sent(conv)
    # Speech frames at 0.30, 0.32, 0.34: the VAD starts (60 ms) at 0.34, when 0.34 s of
    # the greeting has played.
    feed(conv, SPEECH[: 16000 * 2 // 10], 0.3)
    (fix,) = of(sent(conv), AgentResponseCorrection)
    ev = fix.agent_response_correction_event
    words = greeting.split()
    heard = int(len(words) * 0.34 / (text_duration_ms(greeting) / 1000))
    assert ev.original_agent_response == greeting
    assert ev.corrected_agent_response == " ".join(words[:heard])
    assert 0 < heard < len(words)


def test_greeting_not_interruptible_when_configured() -> None:
    conv = make(
        first_message="a fairly long greeting that keeps playing for a while",
        agent_extra={"disable_first_message_interruptions": True},
    )
    conv.receive(init(), 0.0)
    feed(conv, SPEECH[: 16000 * 2 // 5], 0.1)
    assert of(sent(conv), Interruption) == []


def test_barge_in_off() -> None:
    conv = make(first_message="a fairly long greeting here", behaviour={"barge_in": False})
    conv.receive(init(), 0.0)
    feed(conv, SPEECH[: 16000 * 2 // 5], 0.1)
    assert of(sent(conv), Interruption) == []


def test_no_interruption_when_agent_is_quiet() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    feed(conv, SPEECH[: 16000 * 2 // 5], 0.1)
    assert of(sent(conv), Interruption) == []


def test_loopback_returns_each_chunk_at_once_transcoded() -> None:
    conv = make(behaviour={"mode": "loopback"}, fmt_in="pcm_16000", fmt_out="pcm_8000")
    conv.receive(init(), 0.0)
    sent(conv)
    pcm = tone_pcm16(400, 0.02, 16000, dbfs=-10)
    for i in range(10):
        conv.receive(chunk(pcm), 0.1 + i * 0.02)
        frames = sent(conv)
        assert len(of(frames, Audio)) == (1 if i else len(of(frames, Audio)))
    assert conv.record.audio_events_sent == 10
    assert conv.record.audio_chunks == 10
    # 10 x 20 ms at 8 kHz = 3200 bytes, less the resampler's held-back delay
    assert 3000 < conv.record.audio_bytes_sent <= 3200


def test_loopback_ulaw_passthrough_is_byte_exact() -> None:
    conv = make(behaviour={"mode": "loopback"}, fmt_in="ulaw_8000", fmt_out="ulaw_8000")
    conv.receive(init(), 0.0)
    sent(conv)
    payload = ulaw_encode(tone_pcm16(400, 0.02, 8000))
    conv.receive(chunk(payload), 0.1)
    assert audio_bytes(sent(conv)) == payload


def test_loopback_pcm_frames_are_what_the_message_codec_writes() -> None:
    conv = make(behaviour={"mode": "loopback"})
    conv.receive(init(), 0.0)
    sent(conv)
    payloads = [bytes(range(i, i + 64)) for i in range(0, 192, 64)] + [b""]
    texts: list[str] = []
    for i, pcm in enumerate(payloads):
        conv.receive(chunk(pcm), 0.1 + i * 0.02)
        texts += [o.text for o in conv.take_outputs() if isinstance(o, SendText)]
    # Base64 with surplus padding: refused by the fast decoder, accepted as before.
    conv.receive('{"user_audio_chunk": "AQIDBAUG=="}', 0.2)
    texts += [o.text for o in conv.take_outputs() if isinstance(o, SendText)]
    expected = [
        encode_str(Audio(audio_event=AudioEvent(base64.b64encode(pcm).decode(), event_id=n)))
        for n, pcm in enumerate([*payloads[:3], bytes([1, 2, 3, 4, 5, 6])], start=1)
    ]
    assert texts == expected  # an empty chunk is counted, not answered
    assert conv.record.audio_chunks == 5 and conv.record.audio_bytes == {"pcm_16000": 198}


def test_audio_chunk_as_first_frame_starts_the_conversation() -> None:
    conv = make(behaviour={"mode": "loopback"})
    conv.receive(chunk(b"\x01\x00"), 0.0)
    frames = sent(conv)
    assert [type(f) for f in frames] == [ConversationInitiationMetadata, Audio]
    assert not conv.record.client_data_received


def test_silent_mode_never_speaks() -> None:
    conv = make(behaviour={"mode": "silent"})
    conv.receive(init(), 0.0)
    feed(conv, SPEECH + SILENCE, 0.1)
    conv.tick(3.0)
    frames = sent(conv)
    assert of(frames, Audio) == [] and len(of(frames, UserTranscript)) == 1


def test_caller_stopping_mid_utterance_ends_it_on_the_wall_clock() -> None:
    conv = make(behaviour={"mode": "silent"})
    conv.receive(init(), 0.0)
    t = feed(conv, SPEECH, 0.1)  # speech, then nothing at all on the wire
    last_chunk_at = t - 0.02
    conv.tick(last_chunk_at + 0.55)
    assert conv.record.utterances_ms == []
    assert conv.next_deadline() == pytest.approx(last_chunk_at + 0.6)
    conv.tick(last_chunk_at + 0.6)
    assert conv.record.utterances_ms == [600]


def test_user_message_in_echo_mode_gets_a_text_and_audio_reply() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    sent(conv)
    conv.receive(json.dumps({"type": "user_message", "text": "hi there"}), 0.1)
    frames = sent(conv)
    assert of(frames, AgentResponse)[0].agent_response_event.agent_response.endswith("hi there")
    assert of(frames, Audio)
    assert conv.record.user_messages == ["hi there"]


def test_other_client_messages_are_recorded() -> None:
    conv = make(behaviour={"mode": "silent"})
    conv.receive(init(), 0.0)
    conv.receive(json.dumps({"type": "contextual_update", "text": "ctx"}), 0.1)
    conv.receive(json.dumps({"type": "user_activity"}), 0.2)
    conv.receive(json.dumps({"type": "feedback", "score": "like"}), 0.3)
    conv.receive(
        json.dumps({"type": "client_tool_result", "tool_call_id": "zz", "result": "r"}), 0.4
    )
    r = conv.record
    assert r.contextual_updates == ["ctx"] and r.user_activity == 1
    assert r.unknown_types == ["feedback"]
    assert r.tool_results[0].tool_call_id == "zz" and any(
        "unknown tool_call_id" in n for n in r.notes
    )


def test_audio_bytes_per_format_and_capture() -> None:
    cap = bytearray()
    conv = make(capture=cap, behaviour={"mode": "silent"})
    conv.receive(init(), 0.0)
    feed(conv, SPEECH, 0.1)
    assert conv.record.audio_bytes == {"pcm_16000": len(SPEECH)}
    assert bytes(cap) == SPEECH


# ------------------------------------------------------------------ scripted steps


def run_until(
    conv: EmulatedConversation, t_end: float, frames: list[Any], dt: float = 0.05
) -> float:
    t = 0.0
    while t < t_end and not conv.closed:
        t += dt
        conv.tick(t)
        frames += sent(conv)
    return t


def test_script_play_tool_call_wait_result_end_call() -> None:
    conv = make(
        first_message="hello",
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "play", "ms": 500, "text": "transferring"},
                {
                    "type": "tool_call",
                    "tool_name": "transfer_call",
                    "parameters": {"number": "+14155550100"},
                },
                {"type": "end_call"},
            ],
        },
    )
    conv.receive(init(), 0.0)
    frames = sent(conv)
    run_until(conv, 1.0, frames)
    calls = of(frames, ClientToolCall)
    assert len(calls) == 1
    call = calls[0].client_tool_call
    assert (call.tool_name, call.parameters) == ("transfer_call", {"number": "+14155550100"})
    # greeting (400 ms min) and the 500 ms play went out in full before the tool call
    idx_call = frames.index(calls[0])
    assert len(audio_bytes(frames[:idx_call])) == 16000 * 2 * (400 + 500) // 1000
    assert not conv.closed  # waiting for the result
    conv.receive(
        json.dumps(
            {"type": "client_tool_result", "tool_call_id": call.tool_call_id, "result": "ok"}
        ),
        1.2,
    )
    tail = sent(conv)
    assert isinstance(tail[0], AgentToolResponse)
    assert tail[0].agent_tool_response.tool_name == "end_call"
    assert tail[-1] == CloseConnection(1000, "end_call")
    assert conv.record.tool_results[0].result == "ok"


def test_tool_call_timeout_moves_on() -> None:
    conv = make(
        behaviour={
            "mode": "silent",
            "steps": [
                {
                    "type": "tool_call",
                    "tool_name": "send_dtmf",
                    "parameters": {"digits": "12#"},
                    "timeout_ms": 300,
                },
                {"type": "close", "code": 1011},
            ],
        }
    )
    conv.receive(init(), 0.0)
    frames = sent(conv)
    assert conv.next_deadline() == pytest.approx(0.3)
    run_until(conv, 1.0, frames)
    assert frames[-1] == CloseConnection(1011, "scripted abnormal close")
    assert any("no client_tool_result" in n for n in conv.record.notes)


def test_tool_call_without_waiting() -> None:
    conv = make(
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "tool_call", "tool_name": "a", "wait_result": False},
                {"type": "tool_call", "tool_name": "b", "wait_result": False},
            ],
        }
    )
    conv.receive(init(), 0.0)
    names = [c.client_tool_call.tool_name for c in of(sent(conv), ClientToolCall)]
    assert names == ["a", "b"]
    ids = [c.tool_call_id for c in conv.record.tool_calls]
    assert len(set(ids)) == 2


def test_wait_and_wait_playout_steps() -> None:
    conv = make(
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "play", "ms": 400},
                {"type": "wait_playout"},
                {"type": "wait", "ms": 200},
                {"type": "end_call", "reason": "bye"},
            ],
        }
    )
    conv.receive(init(), 0.0)
    frames = sent(conv)
    t = 0.0
    while not conv.closed:
        deadline = conv.next_deadline()
        assert deadline is not None
        t = max(t, deadline)
        conv.tick(t)
        frames += sent(conv)
    # playout ends at 0.4 s (sent from t=0 at real time), then 200 ms of waiting
    assert t == pytest.approx(0.6)
    assert frames[-1] == CloseConnection(1000, "bye")


def test_listen_step_waits_for_an_utterance() -> None:
    conv = make(
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "listen"},
                {"type": "tool_call", "tool_name": "after", "wait_result": False},
            ],
        }
    )
    conv.receive(init(), 0.0)
    feed(conv, SILENCE, 0.0)
    assert of(sent(conv), ClientToolCall) == []
    feed(conv, SPEECH + SILENCE, 1.0)
    assert [c.client_tool_call.tool_name for c in of(sent(conv), ClientToolCall)] == ["after"]


def test_listen_timeout() -> None:
    conv = make(
        behaviour={
            "mode": "silent",
            "steps": [
                {"type": "listen", "timeout_ms": 250},
                {"type": "close", "code": 4001, "reason": "x"},
            ],
        }
    )
    conv.receive(init(), 0.0)
    frames = sent(conv)
    run_until(conv, 1.0, frames)
    assert frames[-1] == CloseConnection(4001, "x")


def test_echo_waits_for_the_script_to_finish() -> None:
    conv = make(behaviour={"mode": "echo", "steps": [{"type": "listen"}]})
    conv.receive(init(), 0.0)
    sent(conv)
    t = feed(conv, SPEECH + SILENCE, 0.1)  # consumed by the listen step: no echo
    assert of(sent(conv), Audio) == []
    feed(conv, SPEECH + SILENCE, t)  # script done: echoed
    assert of(sent(conv), Audio)


def test_stall_stops_pings_and_replies() -> None:
    conv = make(behaviour={"mode": "echo", "steps": [{"type": "stall"}]})
    conv.receive(init(), 0.0)
    sent(conv)
    assert conv.stalled and conv.next_deadline() is None
    feed(conv, SPEECH + SILENCE, 0.1)
    conv.tick(60.0)
    assert sent(conv) == [] and not conv.closed
    assert conv.record.audio_bytes["pcm_16000"] == len(SPEECH + SILENCE)


def test_max_duration_closes_normally() -> None:
    conv = make(conversation={"max_duration_seconds": 2})
    conv.receive(init(), 0.0)
    conv.tick(1.0)
    conv.receive(json.dumps({"type": "pong", "event_id": 1}), 1.0)
    conv.tick(2.0)
    assert sent(conv)[-1] == CloseConnection(1000, "max_duration_seconds reached")


def test_text_only_agent_sends_text_but_no_audio() -> None:
    conv = make(first_message="hello", conversation={"text_only": True})
    conv.receive(init(), 0.0)
    conv.tick(2.0)
    frames = sent(conv)
    assert of(frames, AgentResponse) and of(frames, Audio) == []


def test_client_close_is_recorded() -> None:
    conv = make()
    conv.receive(init(), 0.0)
    conv.client_closed(1000, "bye", 1005.0)
    r = conv.record
    assert (r.closed_by, r.close_code, r.close_reason, r.ended_at_unix) == (
        "client",
        1000,
        "bye",
        1005.0,
    )
    assert conv.next_deadline() is None


def _first_reply_at(conv: EmulatedConversation, pcm: bytes, t0: float) -> float | None:
    """Feed ``pcm`` in real-time frames, running every deadline in between on time; the
    time the first reply audio went out."""
    step = 16000 * 20 // 1000 * 2
    t = t0
    for off in range(0, len(pcm) + step * 100, step):  # then 2 s more of nothing
        while (due := conv.next_deadline()) is not None and due <= t:
            conv.tick(due)
            if of(sent(conv), Audio):
                return due
        if off < len(pcm):
            conv.receive(chunk(pcm[off : off + step]), t)
            if of(sent(conv), Audio):
                return t
        t += 0.02
    return None


@pytest.mark.parametrize(("delay_ms", "expected"), [(800, 0.68 + 0.8), (200, 1.18), (0, 1.18)])
def test_reply_delay_counts_from_the_end_of_the_callers_speech(
    delay_ms: int, expected: float
) -> None:
    # Speech frames arrive at 0.10 … 0.68; the VAD needs 500 ms of silence to decide
    # (at 1.18).  A longer delay starts the reply that long after 0.68; a shorter one
    # as soon as the VAD has decided.
    conv = make(behaviour={"mode": "echo", "reply_delay_ms": delay_ms})
    conv.receive(init(), 0.0)
    sent(conv)
    assert _first_reply_at(conv, SPEECH + SILENCE, 0.1) == pytest.approx(expected, abs=1e-6)
