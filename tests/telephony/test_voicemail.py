from __future__ import annotations

import pytest

from bridge.telephony.voicemail import (
    ANSWERED_BY,
    Disconnect,
    NotifyAgent,
    PlayMessage,
    Proceed,
    decide,
)

MACHINES = ["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"]


@pytest.mark.parametrize("answered_by", ["human", "unknown", None, "something_new"])
@pytest.mark.parametrize("action", ["hangup", "agent", "message"])
def test_people_and_unknown_results_proceed(answered_by: str | None, action: str) -> None:
    assert decide(answered_by, action, "msg") == Proceed()  # type: ignore[arg-type]


@pytest.mark.parametrize("action", ["hangup", "agent", "message"])
def test_fax_is_always_hung_up_on(action: str) -> None:
    assert decide("fax", action, "msg") == Disconnect("fax")  # type: ignore[arg-type]


@pytest.mark.parametrize("answered_by", MACHINES)
def test_each_policy_on_a_machine(answered_by: str) -> None:
    assert decide(answered_by, "hangup", "m") == Disconnect(f"voicemail ({answered_by})")
    played = decide(answered_by, "message", "Call us back.")
    assert played == PlayMessage("Call us back.")
    note = decide(answered_by, "agent", "m")
    assert isinstance(note, NotifyAgent)
    assert "answering machine" in note.text
    # Only a verdict at the start of the greeting asks the agent to wait for the beep.
    assert ("Wait for the beep" in note.text) == (answered_by == "machine_start")


def test_the_known_results_are_twilios() -> None:
    assert set(MACHINES) | {"human", "unknown", "fax"} == ANSWERED_BY
