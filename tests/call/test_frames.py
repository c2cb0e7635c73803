"""FrameQueue: bounded by text size, sheds the oldest audio, never control frames."""

from __future__ import annotations

from bridge.call.frames import TWILIO_AUDIO_PREFIX, FrameQueue
from bridge.twilio.media import media_frame

MARK = '{"event":"mark","streamSid":"MZ1","mark":{"name":"audio-1"}}'


def test_fifo_and_size_accounting() -> None:
    q = FrameQueue(10_000, TWILIO_AUDIO_PREFIX)
    frames = [media_frame("MZ1", "AAAA"), MARK, media_frame("MZ1", "BBBB")]
    for f in frames:
        q.push(f)
    assert q.chars == sum(map(len, frames))
    assert [q.pop() for _ in range(3)] == frames
    assert q.chars == 0 and len(q) == 0


def test_over_the_bound_the_oldest_audio_is_shed_and_marks_are_kept() -> None:
    audio = [media_frame("MZ1", f"{i:04d}" * 100) for i in range(10)]
    q = FrameQueue(len(audio[0]) * 4 + len(MARK), TWILIO_AUDIO_PREFIX)
    for i, f in enumerate(audio):
        q.push(f)
        if i == 2:
            q.push(MARK)
    left = q.clear()
    assert MARK in left
    assert [f for f in left if f != MARK] == audio[-4:]
    assert q.dropped == 6


def test_control_frames_alone_are_never_dropped() -> None:
    q = FrameQueue(10, TWILIO_AUDIO_PREFIX)
    for _ in range(5):
        q.push(MARK)
    assert len(q) == 5 and q.dropped == 0


def test_push_front_jumps_the_queue() -> None:
    q = FrameQueue(10_000, '{"user_audio_chunk"')
    q.push('{"user_audio_chunk":"AAAA"}')
    q.push_front('{"type":"pong","event_id":1}')
    assert q.pop() == '{"type":"pong","event_id":1}'


def test_take_all_empties_in_order_and_keeps_the_running_totals() -> None:
    q = FrameQueue(10_000, TWILIO_AUDIO_PREFIX)
    frames = [media_frame("MZ1", "AAAA"), MARK, media_frame("MZ1", "BBBB")]
    for f in frames:
        q.push(f)
    q.pop()
    assert q.take_all() == frames[1:]
    assert q.chars == 0 and len(q) == 0 and q.take_all() == []
    assert (q.added, q.removed, q.clears) == (3, 3, 0)  # a flush is not a clear
