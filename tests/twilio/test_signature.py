"""Signature helpers agree with Twilio's own RequestValidator and the reference vector."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from bridge.twilio.signature import compute_signature, is_valid, is_valid_ws_upgrade

VECTOR_URL = "https://example.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}


def test_protocols_md_test_vector() -> None:
    assert compute_signature("12345", VECTOR_URL, VECTOR_PARAMS) == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    assert is_valid("12345", VECTOR_URL, VECTOR_PARAMS, "L/OH5YylLD5NRKLltdqwSvS0BnU=")


def test_any_change_invalidates() -> None:
    sig = compute_signature("12345", VECTOR_URL, VECTOR_PARAMS)
    assert not is_valid("12346", VECTOR_URL, VECTOR_PARAMS, sig)
    assert not is_valid("12345", VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, sig)
    assert not is_valid("12345", VECTOR_URL + "&x=1", VECTOR_PARAMS, sig)
    assert not is_valid("12345", VECTOR_URL, VECTOR_PARAMS, None)
    assert not is_valid("12345", VECTOR_URL, VECTOR_PARAMS, "")


def test_twilio_package_accepts_our_signature() -> None:
    url = "https://bridge.example.com/twilio/voice"
    params = {"CallSid": "CA1", "From": "+15550001", "To": "+15550002", "CallStatus": "ringing"}
    sig = compute_signature("tok", url, params)
    assert RequestValidator("tok").validate(url, params, sig)


def test_ws_upgrade_signature_with_and_without_trailing_slash() -> None:
    url = "wss://bridge.example.com/twilio/media"
    sig = compute_signature("tok", url)
    assert is_valid_ws_upgrade("tok", url, sig)
    assert is_valid_ws_upgrade("tok", url + "/", sig)
    assert not is_valid_ws_upgrade("tok", "wss://other.example.com/twilio/media", sig)
    assert not is_valid_ws_upgrade("other", url, sig)
    assert not is_valid_ws_upgrade("tok", url, None)


def test_a_non_ascii_signature_is_invalid_not_an_error() -> None:
    sig = compute_signature("tok", VECTOR_URL, VECTOR_PARAMS)
    assert not is_valid("tok", VECTOR_URL, VECTOR_PARAMS, "é" + sig[1:])
    assert not is_valid("tok", VECTOR_URL, VECTOR_PARAMS, sig + "\x00")


@given(
    st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=6),
    st.text(min_size=1, max_size=8),
)
def test_is_valid_agrees_with_twilios_validator_on_the_exact_url(
    params: dict[str, str], token: str
) -> None:
    url = "https://bridge.example.com/twilio/inbound?x=1"
    sig = compute_signature(token, url, params)
    assert is_valid(token, url, params, sig)
    assert RequestValidator(token).validate(url, params, sig)
    forged = sig[:-2] + ("A=" if not sig.endswith("A=") else "B=")
    assert not is_valid(token, url, params, forged)
    assert not RequestValidator(token).validate(url, params, forged)


def test_only_the_configured_url_is_accepted_not_port_variants() -> None:
    # twilio's validate() also accepts the URL with ":443" added; we sign one URL only.
    url = "https://bridge.example.com/twilio/inbound"
    sig = compute_signature("tok", "https://bridge.example.com:443/twilio/inbound", VECTOR_PARAMS)
    assert RequestValidator("tok").validate(url, VECTOR_PARAMS, sig)
    assert not is_valid("tok", url, VECTOR_PARAMS, sig)
