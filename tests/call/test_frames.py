"""FrameQueue: bounded by text size, sheds the oldest audio, never control frames."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.call.frames import AGENT_AUDIO_PREFIX, CONTROL_SHARE, TWILIO_AUDIO_PREFIX, FrameQueue
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


# --------------------------------------------------------------------------- reference model


class ReferenceQueue:
    """The policy written plainly (O(n) per push): one list, shed by rescanning it."""

    def __init__(self, max_chars: int, prefix: str):
        self.q: list[str] = []
        self.max, self.prefix = max_chars, prefix
        self.dropped = self.added = self.removed = self.clears = 0

    @property
    def chars(self) -> int:
        return sum(map(len, self.q))

    def push(self, frame: str) -> None:
        self.q.append(frame)
        self.added += 1
        while self.chars > self.max:
            oldest_audio = next(
                (i for i, f in enumerate(self.q) if f.startswith(self.prefix)), None
            )
            if oldest_audio is None:
                return
            del self.q[oldest_audio]
            self.dropped += 1
            self.removed += 1

    def push_front(self, frame: str) -> None:
        self.q.insert(0, frame)
        self.added += 1

    def pop(self) -> str:
        self.removed += 1
        return self.q.pop(0)

    def take_all(self) -> list[str]:
        out, self.q = self.q, []
        self.removed += len(out)
        return out

    def clear(self) -> list[str]:
        self.clears += 1
        return self.take_all()


_audio = st.integers(1, 60).map(lambda n: media_frame("MZ1", "A" * (4 * n)))
_control = st.integers(0, 40).map(lambda n: '{"event":"mark","n":"' + "m" * n + '"}')
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.one_of(_audio, _control)),
        st.tuples(st.just("push_front"), _control),
        st.tuples(st.sampled_from(["pop", "take_all", "clear"]), st.none()),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, max_chars=st.integers(50, 3000))
def test_same_frames_in_the_same_order_as_the_reference(
    ops: list[tuple[str, str | None]], max_chars: int
) -> None:
    q = FrameQueue(max_chars, TWILIO_AUDIO_PREFIX)
    ref = ReferenceQueue(max_chars, TWILIO_AUDIO_PREFIX)
    for op, frame in ops:
        if op in ("push", "push_front"):
            assert frame is not None
            getattr(q, op)(frame)
            getattr(ref, op)(frame)
        elif op == "pop":
            if ref.q:
                assert q.pop() == ref.pop()
            else:
                with pytest.raises(IndexError):
                    q.pop()
        else:
            assert getattr(q, op)() == getattr(ref, op)()
        assert (q.chars, len(q)) == (ref.chars, len(ref.q))
        assert (q.added, q.removed, q.dropped, q.clears) == (
            ref.added,
            ref.removed,
            ref.dropped,
            ref.clears,
        )
    assert q.take_all() == ref.take_all()


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.one_of(_audio, _control), max_size=400), max_chars=st.integers(50, 3000))
def test_memory_is_bounded_until_the_queue_says_it_is_stalled(
    frames: list[str], max_chars: int
) -> None:
    """A peer that never reads: the text stays within the audio bound plus the control
    bound (plus one frame); past that, ``stalled`` is set and stays set."""
    q = FrameQueue(max_chars, TWILIO_AUDIO_PREFIX, max_control_frames=20)
    control_chars = max_chars // CONTROL_SHARE
    longest = max(map(len, frames), default=0)
    for f in frames:
        was = q.stalled
        q.push(f)
        assert q.stalled or not was
        if not q.stalled:
            assert q.chars <= max_chars + control_chars + longest
            assert q.control_kept <= 20
    queued = q.take_all()
    controls = [f for f in queued if not f.startswith(TWILIO_AUDIO_PREFIX)]
    if q.stalled:  # it says so only with that many control frames really queued
        assert len(controls) > 20 or sum(map(len, controls)) > control_chars


# --------------------------------------------------------------------------- cost


class CountedFrame(str):
    """A frame that counts how often the queue looks at it (the work of shedding)."""

    looks = 0

    def startswith(self, *args: Any) -> bool:  # type: ignore[override]
        CountedFrame.looks += 1
        return super().startswith(*args)


def test_pushes_cost_constant_work_however_long_the_peer_has_not_read() -> None:
    """The old queue rescanned every kept control frame on each push over the bound
    (quadratic here: ~n²/2 looks); now each frame is looked at no more than once."""
    q = FrameQueue(2_000, TWILIO_AUDIO_PREFIX, max_control_frames=10**9, max_control_chars=10**9)
    CountedFrame.looks = 0
    n = 20_000
    for i in range(n):  # a peer that never reads: audio with a mark every 5 frames
        q.push(CountedFrame(media_frame("MZ1", "A" * 200)))
        if i % 5 == 4:
            q.push(CountedFrame(MARK))
    pushes = n + n // 5
    assert q.dropped > n * 0.9  # shedding ran all along
    assert q.control_kept == n // 5  # every mark kept
    assert CountedFrame.looks <= pushes


def test_a_peer_that_never_reads_stalls_the_queue_at_the_control_bound() -> None:
    q = FrameQueue(2_000, TWILIO_AUDIO_PREFIX, max_control_frames=50, max_control_chars=10**9)
    marks = 0
    while not q.stalled:
        for _ in range(5):
            q.push(media_frame("MZ1", "A" * 200))
        q.push(MARK)
        marks += 1
        assert marks < 100
    assert q.control_kept == 51  # the 51st kept mark crossed the bound of 50
    q.clear()  # the session ends the call and drops what nobody will read
    assert not q.stalled and q.chars == 0
    q = FrameQueue(2_000, TWILIO_AUDIO_PREFIX, max_control_chars=len(MARK) * 8)  # in text
    while not q.stalled:
        q.push(media_frame("MZ1", "A" * 200))
        q.push(MARK)
    assert q.control_kept == 9


def test_the_control_bound_in_text_defaults_to_a_share_of_the_audio_bound() -> None:
    big_result = '{"type":"client_tool_result","result":"' + "r" * 400 + '"}'
    q = FrameQueue(1_000, AGENT_AUDIO_PREFIX)
    q.push(big_result)
    q.push(big_result)
    assert not q.stalled  # under the audio bound nothing is shed or counted
    q.push(big_result)  # over it: no audio to shed, all three kept
    assert len(q) == 3 and q.dropped == 0
    assert q.stalled  # 3 x 440 chars of control frames kept > 1000 // CONTROL_SHARE
    assert q.take_all() == [big_result] * 3
