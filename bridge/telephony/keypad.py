"""Keypad digits from the caller → messages for the agent (pure: a collector with a clock).

Twilio reports each key the caller presses as a ``dtmf`` event on the stream.  The agent
cannot hear them (Twilio filters tones out of the media), so the bridge tells it in
text, one of two ways (``telephony.dtmf_mode``):

* ``each``: every key at once;
* ``collect``: keys gathered into one entry, sent when ``#`` is pressed (the ``#`` is
  not part of the entry), after a pause of ``dtmf_collect_timeout_s``, or at
  ``dtmf_collect_max_digits``.  A lone ``#`` is sent as itself.

and as one of two message kinds (``telephony.dtmf_deliver``):

* ``user_message``: the digits as if the caller had said them (the agent replies);
* ``contextual_update``: a note "The caller pressed … on the keypad." (the agent knows
  but is not prompted to answer).

The driver calls :meth:`KeypadCollector.press` for each ``dtmf`` event and
:meth:`KeypadCollector.poll` when :meth:`KeypadCollector.deadline` passes; both return
the :class:`KeypadMessage` s to send.  Times are seconds on any monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from bridge.errors import InputError

Mode = Literal["each", "collect"]
Deliver = Literal["user_message", "contextual_update"]
Reason = Literal["key", "terminator", "timeout", "max_digits", "flush"]
KEYS: Final = frozenset("0123456789*#ABCD")
TERMINATOR: Final = "#"


@dataclass(frozen=True)
class KeypadPolicy:
    mode: Mode = "each"
    deliver: Deliver = "user_message"
    collect_timeout_s: float = 3.0
    max_digits: int = 32


@dataclass(frozen=True)
class KeypadMessage:
    """One message for the agent: ``kind`` is the conversation message type to send."""

    kind: Deliver
    text: str
    digits: str  # what the caller pressed for this message (terminator excluded)
    reason: Reason


def check_key(digit: object) -> str:
    """A single keypad key as Twilio reports it; InputError("digit") otherwise."""
    if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in KEYS:
        raise InputError("digit", f"expected one of 0-9 * # A-D, got {str(digit)[:8]!r}")
    return digit.upper()


def render(kind: Deliver, digits: str) -> str:
    if kind == "user_message":
        return digits
    return f"The caller pressed {digits} on the keypad."


class KeypadCollector:
    def __init__(self, policy: KeypadPolicy):
        self.policy = policy
        self._buffer = ""
        self._last_press: float | None = None
        self.pressed: list[tuple[float, str]] = []  # every key, for the call record

    def _emit(self, digits: str, reason: Reason) -> KeypadMessage:
        kind = self.policy.deliver
        return KeypadMessage(kind, render(kind, digits), digits, reason)

    def press(self, digit: str, now: float) -> list[KeypadMessage]:
        """One key pressed; raises InputError for something that is not a key."""
        key = check_key(digit)
        self.pressed.append((now, key))
        if self.policy.mode == "each":
            return [self._emit(key, "key")]
        out = self.poll(now)  # an entry whose pause already elapsed goes first
        if key == TERMINATOR:
            entry, self._buffer, self._last_press = self._buffer, "", None
            out.append(self._emit(entry or TERMINATOR, "terminator"))
            return out
        self._buffer += key
        self._last_press = now
        if len(self._buffer) >= self.policy.max_digits:
            entry, self._buffer, self._last_press = self._buffer, "", None
            out.append(self._emit(entry, "max_digits"))
        return out

    def deadline(self) -> float | None:
        """When :meth:`poll` next has something to do (None: nothing pending)."""
        if self._last_press is None:
            return None
        return self._last_press + self.policy.collect_timeout_s

    def poll(self, now: float) -> list[KeypadMessage]:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        entry, self._buffer, self._last_press = self._buffer, "", None
        return [self._emit(entry, "timeout")]

    def flush(self) -> list[KeypadMessage]:
        """The call is ending: hand over a partial entry (for the record) if any."""
        if not self._buffer:
            return []
        entry, self._buffer, self._last_press = self._buffer, "", None
        return [self._emit(entry, "flush")]

    @property
    def buffered(self) -> str:
        return self._buffer
