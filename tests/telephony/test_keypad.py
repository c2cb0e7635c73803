from __future__ import annotations

import pytest

from bridge.errors import InputError
from bridge.telephony.keypad import KeypadCollector, KeypadMessage, KeypadPolicy


def test_each_mode_sends_every_key_at_once_as_user_message() -> None:
    c = KeypadCollector(KeypadPolicy(mode="each"))
    assert c.press("1", 0.0) == [KeypadMessage("user_message", "1", "1", "key")]
    assert c.press("#", 0.1) == [KeypadMessage("user_message", "#", "#", "key")]
    assert c.deadline() is None
    assert c.pressed == [(0.0, "1"), (0.1, "#")]


def test_each_mode_as_contextual_update() -> None:
    c = KeypadCollector(KeypadPolicy(mode="each", deliver="contextual_update"))
    (msg,) = c.press("7", 1.0)
    assert msg.kind == "contextual_update"
    assert msg.text == "The caller pressed 7 on the keypad."


def test_collect_until_hash_drops_the_terminator() -> None:
    c = KeypadCollector(KeypadPolicy(mode="collect"))
    assert c.press("1", 0.0) == []
    assert c.press("2", 0.5) == []
    assert c.buffered == "12"
    assert c.press("#", 1.0) == [KeypadMessage("user_message", "12", "12", "terminator")]
    assert c.buffered == ""
    assert c.deadline() is None


def test_lone_hash_is_sent_as_itself() -> None:
    c = KeypadCollector(KeypadPolicy(mode="collect"))
    assert c.press("#", 0.0)[0].digits == "#"


def test_collect_timeout_is_measured_from_the_last_key() -> None:
    c = KeypadCollector(KeypadPolicy(mode="collect", collect_timeout_s=3.0))
    c.press("4", 10.0)
    c.press("5", 12.0)
    assert c.deadline() == 15.0
    assert c.poll(14.9) == []
    (msg,) = c.poll(15.0)
    assert (msg.digits, msg.reason) == ("45", "timeout")
    assert c.poll(100.0) == []


def test_a_key_after_an_elapsed_pause_starts_a_new_entry() -> None:
    # The driver's timer may fire late; the old entry still goes first and alone.
    c = KeypadCollector(KeypadPolicy(mode="collect", collect_timeout_s=2.0))
    c.press("1", 0.0)
    out = c.press("2", 5.0)
    assert [m.digits for m in out] == ["1"]
    assert c.buffered == "2"


def test_collect_max_digits_flushes() -> None:
    c = KeypadCollector(KeypadPolicy(mode="collect", max_digits=3))
    c.press("1", 0)
    c.press("2", 0)
    (msg,) = c.press("3", 0)
    assert (msg.digits, msg.reason) == ("123", "max_digits")


def test_flush_hands_over_a_partial_entry() -> None:
    c = KeypadCollector(KeypadPolicy(mode="collect", deliver="contextual_update"))
    assert c.flush() == []
    c.press("9", 0)
    (msg,) = c.flush()
    assert msg.text == "The caller pressed 9 on the keypad."
    assert msg.reason == "flush"


@pytest.mark.parametrize("bad", ["", "12", "x", "~", None, 5])
def test_anything_but_one_key_is_refused(bad: object) -> None:
    c = KeypadCollector(KeypadPolicy())
    with pytest.raises(InputError) as e:
        c.press(bad, 0)  # type: ignore[arg-type]
    assert e.value.field == "digit"
    assert c.pressed == []
