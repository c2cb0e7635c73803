"""TwiML the bridge answers with, read back with an XML parser."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bridge.twilio import responses


def _root(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return root


def test_connect_stream_has_parameters_action_and_status_callback() -> None:
    root = _root(
        responses.connect_stream(
            "wss://bridge.example.com/twilio/media",
            {
                "agent_id": "agent_1",
                "caller_id": "+14155550111",
                "note": 'a "quoted" & <odd> value',
            },
            action_url="https://bridge.example.com/twilio/after-stream",
            status_callback="https://bridge.example.com/twilio/stream-status",
        )
    )
    (connect,) = list(root)
    assert connect.tag == "Connect"
    assert connect.get("action") == "https://bridge.example.com/twilio/after-stream"
    assert connect.get("method") == "POST"
    (stream,) = list(connect)
    assert stream.get("url") == "wss://bridge.example.com/twilio/media"
    assert "?" not in stream.get("url", "")
    assert stream.get("statusCallback") == "https://bridge.example.com/twilio/stream-status"
    assert stream.get("statusCallbackMethod") == "POST"
    params = {p.get("name"): p.get("value") for p in stream if p.tag == "Parameter"}
    assert params == {
        "agent_id": "agent_1",
        "caller_id": "+14155550111",
        "note": 'a "quoted" & <odd> value',
    }


def test_apology_says_then_hangs_up() -> None:
    say, hangup = list(_root(responses.say_and_hangup("Sorry & goodbye.")))
    assert (say.tag, say.text) == ("Say", "Sorry & goodbye.")
    assert hangup.tag == "Hangup"


def test_dial_number_and_sip() -> None:
    (dial,) = list(_root(responses.dial("+14155550199", caller_id="+14155550100", timeout_s=20)))
    assert dial.tag == "Dial" and dial.get("callerId") == "+14155550100"
    assert dial.get("timeout") == "20"
    (number,) = list(dial)
    assert (number.tag, number.text) == ("Number", "+14155550199")
    (dial,) = list(_root(responses.dial("sip:desk@pbx.example.com")))
    (sip,) = list(dial)
    assert (sip.tag, sip.text) == ("Sip", "sip:desk@pbx.example.com")


def test_reject_and_hangup() -> None:
    (reject,) = list(_root(responses.reject("busy")))
    assert reject.tag == "Reject" and reject.get("reason") == "busy"
    (hangup,) = list(_root(responses.hangup()))
    assert hangup.tag == "Hangup"
