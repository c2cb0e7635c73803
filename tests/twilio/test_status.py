from __future__ import annotations

import pytest

from bridge.twilio.status import progress, status_update


@pytest.mark.parametrize(
    ("current", "reported", "recorded"),
    [
        (None, "initiated", "queued"),
        ("queued", "ringing", "ringing"),
        ("ringing", "in-progress", "in-progress"),
        ("in-progress", "ringing", None),  # late callback: never go back
        ("in-progress", "completed", "completed"),
        ("ringing", "no-answer", "no-answer"),
        ("queued", "busy", "busy"),
        ("completed", "in-progress", None),
        ("busy", "completed", None),
        ("queued", "answered", None),  # not a CallStatus value
    ],
)
def test_progress_only_moves_forward(
    current: str | None, reported: str, recorded: str | None
) -> None:
    assert progress(current, reported) == recorded


def test_status_update_fields() -> None:
    done = {"CallStatus": "completed", "CallDuration": "42"}
    assert status_update("in-progress", None, done) == {
        "status": "completed",
        "duration_s": 42.0,
        "end_reason": "completed",
    }
    # The bridge's own end reason (e.g. agent_ended) is kept.
    assert status_update("in-progress", "agent_ended", done) == {
        "status": "completed",
        "duration_s": 42.0,
    }
    assert status_update("completed", "agent_ended", {"CallStatus": "ringing"}) is None
    assert status_update(None, None, {"CallStatus": "no-answer"}) == {
        "status": "no-answer",
        "end_reason": "no_answer",
    }
