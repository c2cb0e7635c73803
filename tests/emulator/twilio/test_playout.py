"""Twilio's outbound buffer on a hand-driven clock: playout times, marks, clear."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.emulator.twilio.playout import MarkEcho, Playout


def test_mark_on_an_idle_line_is_due_at_once() -> None:
    p = Playout()
    p.push_mark("m", 1.0)
    assert p.due(1.0) == [MarkEcho("m", 1.0, 1.0, cleared=False)]


def test_audio_plays_back_to_back_and_marks_follow_it() -> None:
    p = Playout()
    p.push_audio(b"a" * 4000, 1.0)  # 0.5 s
    p.push_mark("m1", 1.1)
    p.push_audio(b"b" * 800, 1.2)  # queued behind: plays 1.5 .. 1.6
    p.push_mark("m2", 1.2)
    assert [s.start for s in p.segments] == [1.0, 1.5]
    assert p.next_due() == 1.5
    assert p.due(1.49) == []
    assert p.due(1.5) == [MarkEcho("m1", 1.1, 1.5, cleared=False)]
    assert p.playing(1.55) and not p.playing(1.6)
    assert p.due(2.0) == [MarkEcho("m2", 1.2, 1.6, cleared=False)]
    assert p.heard_audio() == b"a" * 4000 + b"b" * 800


def test_clear_drops_unplayed_audio_and_echoes_pending_marks() -> None:
    p = Playout()
    p.push_audio(b"a" * 8000, 0.0)  # 0 .. 1
    p.push_mark("m1", 0.0)
    p.push_audio(b"b" * 8000, 0.0)  # 1 .. 2, never starts
    p.push_mark("m2", 0.0)
    echoes = p.clear(0.25)
    assert echoes == [MarkEcho("m1", 0.0, 0.25, True), MarkEcho("m2", 0.0, 0.25, True)]
    assert p.heard_audio() == b"a" * 2000 and p.clears == [0.25]
    assert not p.playing(0.25)
    p.push_audio(b"c" * 80, 0.3)  # the line is idle again: plays at once
    assert p.segments[-1].start == 0.3
    assert p.heard_timeline(0.31) == b"a" * 2000 + b"\xff" * 400 + b"c" * 80


def test_clear_echoes_already_played_marks_as_played() -> None:
    p = Playout()
    p.push_audio(b"a" * 800, 0.0)
    p.push_mark("done", 0.0)
    assert p.clear(0.5) == [MarkEcho("done", 0.0, 0.1, cleared=False)]


def test_hang_up_truncates_what_was_not_heard() -> None:
    p = Playout()
    p.push_audio(b"g" * 16000, 10.0)  # a 2 s goodbye
    p.push_mark("bye", 10.0)
    p.hang_up(10.5)  # the socket closed half a second in
    assert p.heard_audio() == b"g" * 4000
    assert p.due(99.0) == []  # its mark is never echoed


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["audio", "mark", "clear", "advance"]),
            st.integers(min_value=0, max_value=4000),
        ),
        max_size=30,
    )
)
def test_every_mark_is_echoed_once_in_order_and_never_before_it_arrived(
    ops: list[tuple[str, int]],
) -> None:
    p = Playout()
    now = 0.0
    sent: list[str] = []
    echoed: list[MarkEcho] = []
    for i, (op, n) in enumerate(ops):
        if op == "audio":
            p.push_audio(b"x" * n, now)
        elif op == "mark":
            sent.append(f"m{i}")
            p.push_mark(f"m{i}", now)
            echoed += p.due(now)
        elif op == "clear":
            echoed += p.clear(now)
        else:
            now += n / 8000
            echoed += p.due(now)
    echoed += p.clear(now + 1000)
    assert [e.name for e in echoed] == sent
    assert all(e.received <= e.echoed for e in echoed)
    assert [e.echoed for e in echoed] == sorted(e.echoed for e in echoed)
    # Heard audio never overlaps and never plays before it arrived.
    for a, b in zip(p.segments, p.segments[1:], strict=False):
        assert a.end <= b.start + 1e-9
