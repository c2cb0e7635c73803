"""The stream token: minted by the webhook, verified on ``start`` (pure, property-based)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bridge.twilio import stream_token
from bridge.twilio.stream_token import TOKEN_PARAMETER, Verdict, mint, signed_parameters, verify

KEY = b"k" * 32
NOW = 1_800_000_000.0
TTL = 300.0
CALL = "CA" + "a" * 32
ACCOUNT = "AC" + "b" * 32
PARAMS = {"agent_id": "agent_1", "caller_id": "+14155550111", "called_number": "+14155550100"}

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
params_st = st.dictionaries(names.filter(lambda n: n != TOKEN_PARAMETER), values, max_size=6)
sids = st.text("0123456789abcdefABCDEF", min_size=1, max_size=34)


def signed(
    params: dict[str, str] = PARAMS, call: str | None = CALL, account: str = ACCOUNT
) -> dict[str, str]:
    return signed_parameters(KEY, params, call_sid=call, account_sid=account, now=NOW, ttl_s=TTL)


def check(
    received: dict[str, str], call: str = CALL, account: str = ACCOUNT, now: float = NOW + 1
) -> Verdict:
    return verify(KEY, call_sid=call, account_sid=account, parameters=received, now=now).verdict


@given(params_st, sids, sids)
def test_the_untouched_token_is_accepted(params: dict[str, str], call: str, account: str) -> None:
    received = signed(params, call, account)
    assert check(received, call, account) is Verdict.OK


@given(params_st, st.data())
def test_any_change_to_any_bound_parameter_is_refused(
    params: dict[str, str], data: st.DataObject
) -> None:
    received = signed({**PARAMS, **params})
    name = data.draw(st.sampled_from(sorted(k for k in received if k != TOKEN_PARAMETER)))
    new = data.draw(values.filter(lambda v: v != received[name]))
    assert check({**received, name: new}) is Verdict.BAD_MAC


@given(params_st)
def test_an_added_or_removed_parameter_is_refused(params: dict[str, str]) -> None:
    received = signed(PARAMS)
    extra = {k: v for k, v in params.items() if k not in received}
    if extra:
        assert check({**received, **extra}) is Verdict.BAD_MAC
    for name in PARAMS:
        assert check({k: v for k, v in received.items() if k != name}) is Verdict.BAD_MAC


@given(sids.filter(lambda s: s != CALL), sids.filter(lambda s: s != ACCOUNT))
def test_another_call_or_account_is_refused(call: str, account: str) -> None:
    received = signed()
    assert check(received, call=call) is Verdict.BAD_MAC
    assert check(received, account=account) is Verdict.BAD_MAC


def test_a_token_from_another_call_is_refused() -> None:
    other = signed(call="CA" + "c" * 32)
    assert check({**signed(), TOKEN_PARAMETER: other[TOKEN_PARAMETER]}) is Verdict.BAD_MAC


def test_a_token_from_another_key_is_refused() -> None:
    theirs = signed_parameters(
        b"x" * 32, PARAMS, call_sid=CALL, account_sid=ACCOUNT, now=NOW, ttl_s=TTL
    )
    assert check(theirs) is Verdict.BAD_MAC


@given(st.floats(min_value=TTL + 1, max_value=1e7))
def test_an_expired_token_is_refused(after: float) -> None:
    assert check(signed(), now=NOW + after) is Verdict.EXPIRED


def test_the_token_is_valid_until_its_expiry() -> None:
    assert check(signed(), now=NOW + TTL - 1) is Verdict.OK


@given(st.data())
def test_a_truncated_or_garbled_token_is_refused(data: st.DataObject) -> None:
    received = signed()
    token = received[TOKEN_PARAMETER]
    cut = data.draw(st.integers(0, len(token) - 1))
    assert check({**received, TOKEN_PARAMETER: token[:cut]}) in (
        Verdict.MALFORMED,
        Verdict.BAD_MAC,
    )
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.characters(codec="utf-8").filter(lambda c: c != token[i]))
    garbled = token[:i] + c + token[i + 1 :]
    assert check({**received, TOKEN_PARAMETER: garbled}) in (Verdict.MALFORMED, Verdict.BAD_MAC)


@given(st.text(max_size=300))
def test_arbitrary_text_is_never_accepted(text: str) -> None:
    assert check({**PARAMS, TOKEN_PARAMETER: text}) in (Verdict.MALFORMED, Verdict.BAD_MAC)


def test_a_missing_token_is_its_own_verdict() -> None:
    assert check(dict(PARAMS)) is Verdict.MISSING


def test_the_expiry_cannot_be_moved() -> None:
    received = signed()
    v, exp, scope, mac = received[TOKEN_PARAMETER].split(".")
    later = f"{v}.{int(exp) + 3600}.{scope}.{mac}"
    assert check({**received, TOKEN_PARAMETER: later}, now=NOW + TTL + 10) is Verdict.BAD_MAC


def test_a_call_scoped_token_cannot_become_an_any_call_token() -> None:
    received = signed()
    v, exp, _, mac = received[TOKEN_PARAMETER].split(".")
    widened = f"{v}.{exp}.{stream_token.SCOPE_ANY}.{mac}"
    assert check({**received, TOKEN_PARAMETER: widened}, call="CA" + "d" * 32) is Verdict.BAD_MAC


def test_an_any_call_token_binds_everything_but_the_call() -> None:
    received = signed(call=None)
    assert check(received, call="CA" + "e" * 32) is Verdict.OK
    assert check({**received, "agent_id": "agent_private"}) is Verdict.BAD_MAC
    assert check(received, account="AC" + "f" * 32) is Verdict.BAD_MAC


def test_the_encoding_is_unambiguous() -> None:
    # Moving characters between a name and its value, or between two fields, is a change.
    a = mint(KEY, call_sid=CALL, account_sid=ACCOUNT, parameters={"ab": "c"}, expires_at=1)
    b = mint(KEY, call_sid=CALL, account_sid=ACCOUNT, parameters={"a": "bc"}, expires_at=1)
    c = mint(KEY, call_sid=CALL + "1", account_sid=ACCOUNT[1:], parameters={}, expires_at=1)
    d = mint(KEY, call_sid=CALL, account_sid=ACCOUNT, parameters={}, expires_at=1)
    assert len({a, b, c, d}) == 4


def test_token_fits_twilios_parameter_limit_and_has_a_plain_shape() -> None:
    token = signed()[TOKEN_PARAMETER]
    assert len(TOKEN_PARAMETER) + len(token) < 500
    assert re.fullmatch(r"v1\.\d+\.c\.[A-Za-z0-9_-]{43}", token)


def test_no_key_mints_nothing() -> None:
    out = signed_parameters(None, PARAMS, call_sid=CALL, account_sid=ACCOUNT, now=NOW, ttl_s=TTL)
    assert out == PARAMS
