"""Plain words, masks, timelines and the configuration view."""

from __future__ import annotations

import dataclasses

from bridge.call.actions import EndReason
from bridge.config import load_config
from bridge.console import present
from bridge.store import CallRecord


def test_every_end_reason_has_plain_words() -> None:
    for reason in EndReason:
        words = present.end_reason_words(reason.value, "completed")
        assert words == present.END_REASONS[reason.value]
        assert "_" not in words and words.endswith(".")


def test_end_reason_words_for_live_unknown_and_missing() -> None:
    assert present.end_reason_words(None, "in-progress") == "The call is still in progress."
    assert "No answer" in present.end_reason_words(None, "no-answer")
    assert present.end_reason_words("new_reason", "completed") == "Ended: new reason."


def test_numbers_are_masked_but_for_the_last_four_digits() -> None:
    assert present.mask_number("+14155550123") == "+1 ••• ••• 0123"
    assert "555" not in present.mask_number("+14155550123")
    assert present.mask_number(None) == "unknown"
    assert present.mask_number("client:alice") == "••••••••••ce"  # not a number: 2 shown


def test_durations_and_times() -> None:
    assert present.duration(None) == "—"
    assert present.duration(65.4) == "1:05"
    assert present.duration(3723) == "1:02:03"
    assert present.when(0) == "1970-01-01 00:00:00"


def test_timeline_orders_the_record_and_its_events() -> None:
    rec = CallRecord(
        call_sid="CA1",
        started_at=100.0,
        answered_at=101.0,
        first_audio_ms=250.0,
        ended_at=130.0,
        status="completed",
        end_reason="transfer",
        interruptions=2,
        events=({"at": 5.0, "event": "transfer", "to": "+14155550199"},),
    )
    entries = present.timeline(rec)
    titles = [e.title for e in entries]
    assert titles == [
        "Call started",
        "Media stream connected",
        "First agent audio sent",
        "Transferred",
        "Call ended",
        "Caller interrupted the agent",
    ]
    assert [e.at for e in entries[:5]] == [0.0, 1.0, 1.25, 6.0, 30.0]
    assert entries[3].detail == "to: +14155550199"
    assert entries[4].tone == "ok" and entries[5].detail == "2 times"


def test_config_view_hides_secrets_and_url_passwords() -> None:
    cfg = load_config(
        env={
            "BRIDGE_ADMIN_TOKEN": "a" * 40,
            "TWILIO_AUTH_TOKEN": "twilio-secret-value",
            "ELEVENLABS_BASE_URL": "https://user:pw-in-url@platform.example",
        }
    )
    items = {i.key: i for i in present.config_items(cfg)}
    assert items["admin.token"].value == "set (hidden)" and items["admin.token"].secret
    assert items["platform.api_key"].value == "not set"
    assert items["platform.base_url"].value == "https://user:•••@platform.example"
    shown = " ".join(i.value for i in items.values())
    for secret in ("a" * 40, "twilio-secret-value", "pw-in-url"):
        assert secret not in shown
    # Every leaf key of the config is listed.
    sections = [f.name for f in dataclasses.fields(cfg) if f.name != "routes"]
    assert all(any(k.startswith(f"{s}.") for k in items) for s in sections)


def test_hide_url_password_leaves_other_strings() -> None:
    assert present.hide_url_password("postgresql://u:p@db:5432/x") == "postgresql://u:•••@db:5432/x"
    assert present.hide_url_password("https://h/x") == "https://h/x"
    assert present.hide_url_password("bridge.db") == "bridge.db"
