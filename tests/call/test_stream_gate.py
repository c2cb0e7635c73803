"""StreamGate: what a stream's start must show before anything is done in its name."""

from __future__ import annotations

import dataclasses

from bridge.call.admission import StreamStart
from bridge.call.registry import LiveCalls
from bridge.call.stream_gate import StreamGate
from bridge.config import Config, load_config, with_overrides
from bridge.telephony.capacity import CapacityAdmission
from bridge.twilio.stream_token import TOKEN_PARAMETER, signed_parameters
from tests.call.test_tools import RecordingCall
from tests.telephony.fakes import FakeClock

CALL = "CA" + "1" * 32
ACCOUNT = "AC" + "2" * 32
OURS = "+14155550100"
PARAMS = {"agent_id": "agent_public", "caller_id": "+14155550111", "called_number": OURS}
WALL = 1_800_000_000.0


def config(**env: str) -> Config:
    return load_config(
        env={"BRIDGE_PUBLIC_URL": "https://bridge.test", "TWILIO_AUTH_TOKEN": "t" * 32, **env}
    )


def start(cfg: Config, call: str = CALL, account: str = ACCOUNT, **over: str) -> StreamStart:
    params = signed_parameters(
        cfg.twilio.stream_key, PARAMS, call_sid=call, account_sid=account, now=WALL, ttl_s=300
    )
    return StreamStart(call, account, {**params, **over})


def gate(cfg: Config, calls: LiveCalls | None = None, wall: float = WALL + 1) -> StreamGate:
    return StreamGate(cfg, calls or LiveCalls(), wall=lambda: wall, clock=FakeClock())


def reason(g: StreamGate, s: StreamStart) -> str | None:
    r = g(s)
    return None if r is None else r.reason


def test_a_start_with_its_webhook_token_is_admitted() -> None:
    cfg = config()
    assert gate(cfg)(start(cfg)) is None


def test_missing_altered_expired_tokens_are_refused_untrusted() -> None:
    cfg = config()
    g = gate(cfg)
    s = start(cfg)
    no_token = {k: v for k, v in s.parameters.items() if k != TOKEN_PARAMETER}
    assert reason(g, StreamStart(CALL, ACCOUNT, no_token)) == "missing"
    assert reason(g, start(cfg, agent_id="agent_private")) == "bad_mac"
    assert reason(g, StreamStart("CA" + "9" * 32, ACCOUNT, s.parameters)) == "bad_mac"
    assert reason(g, start(cfg, bridge_token="v1.x")) == "malformed"
    late = gate(cfg, wall=WALL + 301)
    refusal = late(start(cfg))
    assert refusal is not None and refusal.reason == "expired" and not refusal.trusted


def test_a_token_opens_one_stream_only() -> None:
    cfg = config()
    g = gate(cfg)
    assert g(start(cfg)) is None
    assert reason(g, start(cfg)) == "replayed"  # the call has ended: it is not live


def test_a_live_call_sid_is_refused_and_keeps_its_entry() -> None:
    cfg = config()
    calls = LiveCalls()
    victim = RecordingCall(call_sid=CALL)
    calls.add(victim)
    assert reason(gate(cfg, calls), start(cfg)) == "duplicate_call"
    assert calls.get(CALL) is victim


def test_the_configured_account_must_match() -> None:
    cfg = config(TWILIO_ACCOUNT_SID=ACCOUNT)
    g = gate(cfg)
    other = "AC" + "3" * 32
    assert reason(g, start(cfg, account=other)) == "account_mismatch"
    assert g(start(cfg)) is None


def test_a_call_sid_must_look_like_one() -> None:
    cfg = config()
    assert reason(gate(cfg), start(cfg, call="")) == "bad_call_sid"
    assert reason(gate(cfg), start(cfg, call="CA" + "1" * 100)) == "bad_call_sid"


def test_without_enforced_signatures_tokens_are_not_required() -> None:
    cfg = config(BRIDGE_VALIDATE_TWILIO_SIGNATURES="false")
    g = gate(cfg)
    assert g(StreamStart(CALL, ACCOUNT, PARAMS)) is None
    calls = LiveCalls()
    calls.add(RecordingCall(call_sid=CALL))
    assert reason(gate(cfg, calls), StreamStart(CALL, ACCOUNT, PARAMS)) == "duplicate_call"


def test_over_the_cap_is_an_authentic_call_refused_with_the_answer() -> None:
    cfg = config()
    cfg = with_overrides(
        cfg,
        telephony=dataclasses.replace(
            cfg.telephony, max_concurrent_calls=1, over_capacity="message"
        ),
    )
    calls = LiveCalls()
    calls.add(RecordingCall(call_sid="CA" + "8" * 32))
    cap = CapacityAdmission(cfg.telephony, calls, clock=FakeClock())
    g = StreamGate(cfg, calls, cap, wall=lambda: WALL + 1, clock=FakeClock())
    refusal = g(start(cfg))
    assert refusal is not None and refusal.reason == "over_capacity" and refusal.trusted
    assert refusal.refusal is not None
    assert refusal.refusal.message == cfg.telephony.over_capacity_message
