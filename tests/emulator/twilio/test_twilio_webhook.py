"""Twilio's requests: parameters, signatures Twilio's validator accepts, URL mapping."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator

from bridge.emulator.twilio.webhook import (
    SIGNATURE_HEADER,
    UrlMap,
    call_params,
    completed_params,
    new_sid,
    signed_request,
    ws_upgrade_headers,
)


def _params() -> dict[str, str]:
    return call_params(
        account_sid="AC1",
        call_sid="CA1",
        from_="+15550001",
        to="+445550002",
        direction="inbound",
        call_status="ringing",
    )


def test_call_params_as_twilio_sends_them() -> None:
    p = _params()
    assert {k: p[k] for k in ("AccountSid", "CallSid", "From", "To", "Caller", "Called")} == {
        "AccountSid": "AC1",
        "CallSid": "CA1",
        "From": "+15550001",
        "To": "+445550002",
        "Caller": "+15550001",
        "Called": "+445550002",
    }
    assert (p["ApiVersion"], p["Direction"], p["CallStatus"]) == (
        "2010-04-01",
        "inbound",
        "ringing",
    )
    assert (p["FromCountry"], p["ToCountry"]) == ("US", "")


def test_post_signature_is_what_requestvalidator_accepts() -> None:
    req = signed_request("POST", "https://b.example.com/twilio/voice", _params(), "tok")
    assert req.form == _params()
    assert RequestValidator("tok").validate(req.url, req.form, req.headers[SIGNATURE_HEADER])
    assert not RequestValidator("other").validate(req.url, req.form, req.headers[SIGNATURE_HEADER])


def test_get_puts_params_in_the_signed_url() -> None:
    req = signed_request("get", "https://b.example.com/voice?x=1", _params(), "tok")
    assert req.method == "GET" and req.form == {}
    assert dict(parse_qsl(urlsplit(req.url).query))["CallSid"] == "CA1"
    assert RequestValidator("tok").validate(req.url, {}, req.headers[SIGNATURE_HEADER])


def test_no_token_no_signature() -> None:
    assert SIGNATURE_HEADER not in signed_request("POST", "https://x/y", {}, None).headers
    assert ws_upgrade_headers("wss://x/m", None) == {}
    sig = ws_upgrade_headers("wss://x/m", "tok")[SIGNATURE_HEADER]
    assert RequestValidator("tok").validate("wss://x/m", {}, sig)


def test_completed_params() -> None:
    assert completed_params(61.2, "completed") == {
        "SipResponseCode": "200",
        "CallDuration": "62",
        "Duration": "2",
    }
    assert completed_params(None, "busy") == {"SipResponseCode": "486"}


def test_url_map_rewrites_public_urls_and_their_websocket_twins() -> None:
    um = UrlMap.for_bridge("http://127.0.0.1:9000", "https://bridge.example.com")
    assert (
        um.reach("https://bridge.example.com/twilio/voice") == "http://127.0.0.1:9000/twilio/voice"
    )
    assert um.reach("wss://bridge.example.com/twilio/media") == "ws://127.0.0.1:9000/twilio/media"
    assert um.reach("https://bridge.example.com") == "http://127.0.0.1:9000"
    assert um.reach("https://bridge.example.com.evil/x") == "https://bridge.example.com.evil/x"
    assert um.reach("https://other/x") == "https://other/x"
    assert UrlMap.for_bridge("http://h:1", None).reach("http://h:1/x") == "http://h:1/x"


def test_sids_look_like_twilio_sids() -> None:
    sid = new_sid("CA")
    assert sid.startswith("CA") and len(sid) == 34 and sid != new_sid("CA")
    int(sid[2:], 16)
