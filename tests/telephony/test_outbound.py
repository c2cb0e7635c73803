from __future__ import annotations

import msgspec
import pytest

from bridge.admin.models import OutboundCall
from bridge.errors import InputError
from bridge.store import NumberRecord
from bridge.telephony.outbound import (
    RateLimiter,
    ResolvedCall,
    check_twiml_size,
    resolve,
    stream_parameters,
)

OURS = NumberRecord(number="+14155550100", phone_number_id="pn_1", agent_id="agent_a")


def _lookup(key: str) -> NumberRecord | None:
    return OURS if key in (OURS.number, OURS.phone_number_id) else None


def _decode(body: dict[str, object]) -> OutboundCall:
    return msgspec.json.decode(msgspec.json.encode(body), type=OutboundCall)


def test_minimal_request_with_from() -> None:
    req = _decode({"to": "+14155550111", "from": "+14155550100"})
    call = resolve(req, _lookup, default_agent_id=None, ring_timeout_s=30)
    assert call == ResolvedCall(req, "+14155550100", "agent_a", 30)


def test_phone_number_id_agent_and_ring_timeout() -> None:
    req = _decode(
        {"to": "+14155550111", "phone_number_id": "pn_1", "agent_id": "agent_b", "ring_timeout": 12}
    )
    call = resolve(req, _lookup, default_agent_id=None, ring_timeout_s=30)
    assert (call.from_number, call.agent_id, call.ring_timeout_s) == ("+14155550100", "agent_b", 12)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"to": "4155550111", "from": "+14155550100"}, "$.to"),
        ({"to": "+14155550111"}, "exactly one of `from` or `phone_number_id`"),
        ({"to": "+14155550111", "from": "+14155550100", "phone_number_id": "pn_1"}, "exactly one"),
        ({"to": "+14155550111\n", "from": "+14155550100"}, "whitespace"),
        ({"to": "+14155550111", "from": "+14155550100", "ring_timeout": 2}, "ring_timeout"),
        (
            {"to": "+14155550111", "from": "+14155550100", "machine_detection": "yes"},
            "machine_detection",
        ),
        (
            {"to": "+14155550111", "from": "+14155550100", "dynamic_variables": {"system__x": "1"}},
            "reserved",
        ),
        (
            {"to": "+14155550111", "from": "+14155550100", "dynamic_variables": {"agent_id": "1"}},
            "set by the bridge",
        ),
        ({"to": "+14155550111", "from": "+14155550100", "colour": "red"}, "colour"),
    ],
)
def test_invalid_requests_name_the_problem(body: dict[str, object], needle: str) -> None:
    with pytest.raises(msgspec.ValidationError) as e:
        _decode(body)
    assert needle in str(e.value)


def test_from_number_must_be_ours() -> None:
    req = _decode({"to": "+14155550111", "from": "+14155550999"})
    with pytest.raises(InputError) as e:
        resolve(req, _lookup, default_agent_id="x", ring_timeout_s=30)
    assert e.value.field == "from"
    req = _decode({"to": "+14155550111", "phone_number_id": "pn_9"})
    with pytest.raises(InputError) as e:
        resolve(req, _lookup, default_agent_id="x", ring_timeout_s=30)
    assert e.value.field == "phone_number_id"


def test_calling_ourselves_and_no_agent_are_refused() -> None:
    with pytest.raises(InputError) as e:
        resolve(
            _decode({"to": "+14155550100", "from": "+14155550100"}),
            _lookup,
            default_agent_id=None,
            ring_timeout_s=30,
        )
    assert e.value.field == "to"
    bare = NumberRecord(number="+14155550100")
    req = _decode({"to": "+14155550111", "from": "+14155550100"})
    with pytest.raises(InputError) as e:
        resolve(req, lambda k: bare, default_agent_id=None, ring_timeout_s=30)
    assert e.value.field == "agent_id"
    assert (
        resolve(req, lambda k: bare, default_agent_id="agent_d", ring_timeout_s=30).agent_id
        == "agent_d"
    )


def test_stream_parameters_carry_the_context() -> None:
    req = _decode(
        {
            "to": "+14155550111",
            "from": "+14155550100",
            "first_message": "Hi, this is the clinic.",
            "dynamic_variables": {"patient": "Ada"},
        }
    )
    params = stream_parameters(resolve(req, _lookup, default_agent_id=None, ring_timeout_s=30))
    assert params == {
        "agent_id": "agent_a",
        "direction": "outbound",
        "caller_id": "+14155550111",
        "called_number": "+14155550100",
        "first_message": "Hi, this is the clinic.",
        "patient": "Ada",
    }


def test_over_long_parameter_is_refused_naming_the_field() -> None:
    req = _decode(
        {"to": "+14155550111", "from": "+14155550100", "dynamic_variables": {"notes": "x" * 495}}
    )
    with pytest.raises(InputError) as e:
        stream_parameters(resolve(req, _lookup, default_agent_id=None, ring_timeout_s=30))
    assert e.value.field == "dynamic_variables"
    with pytest.raises(InputError):
        check_twiml_size("x" * 4001)
    assert check_twiml_size("x" * 4000) == "x" * 4000


def test_rate_limiter_token_bucket() -> None:
    rl = RateLimiter(rate=2.0, burst=2)
    assert rl.try_acquire("+1", 0.0) == 0.0
    assert rl.try_acquire("+1", 0.0) == 0.0
    assert rl.try_acquire("+1", 0.0) == pytest.approx(0.5)
    assert rl.try_acquire("+2", 0.0) == 0.0  # per number
    assert rl.try_acquire("+1", 0.25) == pytest.approx(0.25)
    assert rl.try_acquire("+1", 0.5) == 0.0
    rl.refund("+1")
    assert rl.try_acquire("+1", 0.5) == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0)
