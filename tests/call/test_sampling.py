"""The relay's timing samples, taken beside the session (bridge.call.sampling)."""

from __future__ import annotations

import base64

from bridge.audio.formats import parse_format
from bridge.audio.transcoder import agent_to_caller, caller_to_agent
from bridge.call.frames import FrameQueue
from bridge.call.sampling import AGENT_TO_CALLER, CALLER_TO_AGENT, RelaySampler
from bridge.metrics import RELAY_SAMPLE_EVERY, TRANSCODE_SAMPLE_EVERY

FRAME = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of mu-law silence


def _sampler() -> tuple[RelaySampler, list[tuple[str, float]], list[float]]:
    transcodes: list[tuple[str, float]] = []
    relays: list[float] = []
    return (
        RelaySampler(lambda d, s: transcodes.append((d, s)), relays.append),
        transcodes,
        relays,
    )


def test_one_call_in_every_n_is_timed_and_the_audio_is_what_the_transcoder_makes() -> None:
    sampler, transcodes, _ = _sampler()
    pcm16 = parse_format("pcm_16000")
    to_agent, to_caller = sampler.wrap(caller_to_agent(pcm16), agent_to_caller(pcm16))
    plain_in, plain_out = caller_to_agent(pcm16), agent_to_caller(pcm16)
    for _ in range(3 * TRANSCODE_SAMPLE_EVERY):
        assert to_agent.process_b64(FRAME) == plain_in.process_b64(FRAME)
        assert to_caller.process(b"\x00\x01" * 320) == plain_out.process(b"\x00\x01" * 320)
    assert to_caller.flush() == plain_out.flush()
    assert [d for d, _ in transcodes].count(CALLER_TO_AGENT) == 3
    assert [d for d, _ in transcodes].count(AGENT_TO_CALLER) == 3
    assert all(seconds > 0 for _, seconds in transcodes)


def test_a_passthrough_payload_is_returned_as_the_same_object() -> None:
    sampler, _, _ = _sampler()
    ulaw = parse_format("ulaw_8000")
    to_agent, _ = sampler.wrap(caller_to_agent(ulaw), agent_to_caller(ulaw))
    for _ in range(TRANSCODE_SAMPLE_EVERY):  # sampled or not
        assert to_agent.process_b64(FRAME) is FRAME


def test_the_followed_event_is_reported_once_its_first_frame_is_written() -> None:
    sampler, _, relays = _sampler()
    q = FrameQueue(100_000, '{"event":"media"')
    assert sampler.due()  # the first audio event is followed
    sampler.follow(q, lambda: q.push('{"event":"media","n":1}'))
    assert sampler.following and not sampler.due()  # one sample in flight at a time
    q.take_all()
    sampler.written(q)
    assert not sampler.following and len(relays) == 1
    for _ in range(RELAY_SAMPLE_EVERY - 2):
        assert not sampler.due()
    assert sampler.due()  # the next one in RELAY_SAMPLE_EVERY


def test_a_sample_is_dropped_when_audio_was_cleared_before_it_went_out() -> None:
    sampler, _, relays = _sampler()
    q = FrameQueue(100_000, '{"event":"media"')
    assert sampler.due()
    sampler.follow(q, lambda: q.push('{"event":"media","n":1}'))
    q.clear()  # barge-in: the followed frame never goes out
    q.push('{"event":"clear"}')
    q.take_all()
    sampler.written(q)
    assert not sampler.following and relays == []
