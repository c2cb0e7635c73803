"""TwiML parsing: what twilio's own builder writes comes back as typed verbs."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from bridge.emulator.twilio import twiml as t
from bridge.errors import TwimlError


def test_connect_stream_from_the_twilio_builder() -> None:
    r = VoiceResponse()
    c = Connect(action="/after", method="GET")
    s = c.stream(url="wss://h/twilio/media", status_callback="https://h/s", name="main")
    s.parameter(name="agent_id", value="abc")
    s.parameter(name="caller", value="+1555")
    r.append(c)
    doc = t.parse_twiml(str(r))
    assert doc.warnings == ()
    (verb,) = doc.verbs
    assert verb == t.Connect(
        stream=t.Stream(
            url="wss://h/twilio/media",
            name="main",
            status_callback="https://h/s",
            parameters=(("agent_id", "abc"), ("caller", "+1555")),
        ),
        action="/after",
        method="GET",
    )
    assert verb.stream is not None
    assert verb.stream.custom_parameters == {"agent_id": "abc", "caller": "+1555"}


def test_every_modelled_verb() -> None:
    r = VoiceResponse()
    r.say("Hello <you>", voice="alice", loop=2)
    r.play("https://h/a.wav")
    r.pause(length=3)
    d = Dial(caller_id="+15550001", timeout=10, action="/dialed")
    d.number("+15550002")
    d.sip("sip:a@b")
    r.append(d)
    r.redirect("/next", method="GET")
    r.reject(reason="busy")
    r.hangup()
    r.gather(num_digits=1)
    verbs = t.parse_twiml(str(r)).verbs
    assert verbs == (
        t.Say("Hello <you>", voice="alice", loop=2),
        t.Play("https://h/a.wav"),
        t.Pause(3.0),
        t.Dial(
            (t.DialTarget("number", "+15550002"), t.DialTarget("sip", "sip:a@b")),
            action="/dialed",
            caller_id="+15550001",
            timeout=10,
        ),
        t.Redirect("/next", "GET"),
        t.Reject("busy"),
        t.Hangup(),
        t.Unsupported("Gather"),
    )


def test_plain_dial_number_is_the_target() -> None:
    (dial,) = t.parse_twiml("<Response><Dial> +15559990000 </Dial></Response>").verbs
    assert isinstance(dial, t.Dial) and dial.target == "+15559990000"


def test_likely_mistakes_are_warnings() -> None:
    doc = t.parse_twiml(
        '<Response><Connect><Stream url="ws://h/m?x=1">'
        f'<Parameter name="big" value="{"v" * 600}"/></Stream></Connect></Response>'
    )
    assert len(doc.warnings) == 3
    assert any("wss" in w for w in doc.warnings)
    assert any("query string" in w for w in doc.warnings)
    assert any("500" in w for w in doc.warnings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not xml", "expected an XML document"),
        ("<Response><Say>unclosed</Response>", "expected an XML document"),
        ("<Reply/>", "expected root element <Response>"),
        ("<Response><Connect><Stream/></Connect></Response>", "needs a url"),
        ('<Response><Connect><Stream url="https://h/m"/></Connect></Response>', "wss://"),
        (
            '<Response><Connect><Stream url="wss://h"><Parameter name="a"/></Stream></Connect></Response>',
            "name and value",
        ),
        ("<Response><Redirect/></Response>", "needs a URL"),
        ("<Response><Dial/></Response>", "no number"),
        ('<Response><Reject reason="maybe"/></Response>', "rejected or busy"),
        ('<Response><Pause length="long"/></Response>', "expected an integer"),
        ('<Response><Redirect method="PUT">/x</Redirect></Response>', "GET or POST"),
        ('<!DOCTYPE r [<!ENTITY a "b">]><Response/>', "DTD"),
        ("<Response>" + "<Hangup/>" * 8000 + "</Response>", "at most"),
    ],
)
def test_documents_twilio_would_fail_on(text: str, expected: str) -> None:
    with pytest.raises(TwimlError, match=expected):
        t.parse_twiml(text)
