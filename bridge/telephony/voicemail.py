"""Answering-machine detection result → what the bridge does (pure).

Twilio reports ``AnsweredBy`` for an outbound call placed with ``MachineDetection``:
``human``, ``unknown``, ``fax``, ``machine_start`` (``Enable``: decided as the greeting
starts) or ``machine_end_beep`` / ``machine_end_silence`` / ``machine_end_other``
(``DetectMessageEnd``: decided once the greeting is over, i.e. the moment to speak).

``telephony.voicemail_action`` picks what happens on a machine:

* ``hangup``: end the call, nothing is said;
* ``agent``: keep the conversation and tell the agent by a contextual update, so it
  leaves its own message (after the beep) and ends the call;
* ``message``: play ``telephony.voicemail_message`` (TwiML ``<Say>``), then hang up.

A human or an undecided result (``unknown``) goes on as a normal call; a fax is always
hung up on.  ``agent`` and ``message`` are meant for ``DetectMessageEnd``: with
``Enable`` the result comes at the start of the greeting, so the agent is told to wait
for the beep, and a played message may be partly lost.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Final, Literal

AnsweredBy = Literal[
    "human",
    "unknown",
    "fax",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
]
ANSWERED_BY: Final[frozenset[str]] = frozenset(typing.get_args(AnsweredBy))
MACHINE: Final = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"}
)
VoicemailAction = Literal["hangup", "agent", "message"]


@dataclass(frozen=True)
class Proceed:
    """A person (or no verdict): the call goes on as usual."""


@dataclass(frozen=True)
class Disconnect:
    reason: str


@dataclass(frozen=True)
class NotifyAgent:
    text: str


@dataclass(frozen=True)
class PlayMessage:
    """Say ``text`` (the call's next TwiML, after the stream), then hang up."""

    text: str


Decision = Proceed | Disconnect | NotifyAgent | PlayMessage


def agent_note(answered_by: str) -> str:
    if answered_by == "machine_start":
        return (
            "An answering machine picked up this call; its greeting is playing. Wait for "
            "the beep, then leave a short voicemail message and end the call."
        )
    return (
        "An answering machine picked up this call and its greeting has finished. Leave a "
        "short voicemail message now, then end the call."
    )


def decide(answered_by: str | None, action: VoicemailAction, message: str) -> Decision:
    """What to do for Twilio's ``AnsweredBy`` value (None or unrecognised = a person)."""
    if answered_by == "fax":
        return Disconnect("fax")
    if answered_by not in MACHINE:
        return Proceed()
    if action == "hangup":
        return Disconnect(f"voicemail ({answered_by})")
    if action == "agent":
        return NotifyAgent(agent_note(answered_by))
    return PlayMessage(message)
