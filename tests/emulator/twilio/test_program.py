"""The TwiML interpreter: what a caller experiences, verb by verb, without any I/O."""

from __future__ import annotations

from bridge.emulator.twilio import twiml as t
from bridge.emulator.twilio.program import End, Experience, Fetch, OpenStream, Outcome, Program

URL = "https://bridge.example.com/twilio/voice"


def _program(text: str) -> Program:
    return Program(t.parse_twiml(text), URL)


def test_reject_first_leaves_the_call_unanswered() -> None:
    p = _program('<Response><Reject reason="busy"/><Say>never</Say></Response>')
    end = p.next_action()
    assert end == End(Outcome.REJECTED, "<Reject reason=busy>", "busy", verb=t.Reject("busy"))
    assert not p.answered
    assert p.next_action() is end  # ended stays ended
    plain = _program("<Response><Reject/></Response>").next_action()
    assert isinstance(plain, End) and plain.call_status == "no-answer"


def test_reject_after_answer_completes_the_call() -> None:
    p = _program("<Response><Say>hi</Say><Reject/></Response>")
    assert p.next_action() == Experience(t.Say("hi"))
    assert p.answered
    end = p.next_action()
    assert isinstance(end, End) and (end.outcome, end.call_status) == (
        Outcome.COMPLETED,
        "completed",
    )


def test_connect_with_action_fetches_it_and_drops_the_rest() -> None:
    p = _program(
        '<Response><Connect action="/after"><Stream url="wss://h/m"/></Connect>'
        "<Say>dropped</Say></Response>"
    )
    opened = p.next_action()
    assert isinstance(opened, OpenStream) and opened.stream.url == "wss://h/m"
    fetch = p.next_action()
    assert fetch == Fetch("https://bridge.example.com/after", "POST", "connect-action")
    p.load(t.parse_twiml("<Response><Hangup/></Response>"), fetch.url)
    assert p.next_action() == End(Outcome.COMPLETED, "<Hangup>", "completed", verb=t.Hangup())


def test_connect_without_action_runs_the_next_verb_then_ends() -> None:
    p = _program('<Response><Connect><Stream url="wss://h/m"/></Connect><Say>bye</Say></Response>')
    assert isinstance(p.next_action(), OpenStream)
    assert p.next_action() == Experience(t.Say("bye"))
    assert p.next_action() == End(Outcome.COMPLETED, "end of TwiML", "completed")


def test_dial_is_a_transfer_and_redirect_fetches() -> None:
    p = _program("<Response><Redirect>../other</Redirect></Response>")
    fetch = p.next_action()
    assert isinstance(fetch, Fetch) and fetch.url == "https://bridge.example.com/other"
    assert fetch.why == "redirect" and fetch.verb == t.Redirect("../other")
    p.load(t.parse_twiml("<Response><Dial><Number>+1555</Number></Dial></Response>"), fetch.url)
    end = p.next_action()
    assert isinstance(end, End) and end.transfer_to == "+1555"


def test_rest_update_drops_a_pending_connect_action() -> None:
    p = _program(
        '<Response><Connect action="/after"><Stream url="wss://h/m"/></Connect></Response>'
    )
    assert isinstance(p.next_action(), OpenStream)
    p.load(t.parse_twiml("<Response><Say>new</Say></Response>"), URL)
    assert p.next_action() == Experience(t.Say("new"))


def test_a_redirect_loop_fails_the_call() -> None:
    p = Program(
        t.parse_twiml("<Response><Redirect>/loop</Redirect></Response>"), URL, max_documents=3
    )
    ends = []
    for _ in range(5):
        action = p.next_action()
        if isinstance(action, End):
            ends.append(action)
            break
        assert isinstance(action, Fetch)
        p.load(t.parse_twiml("<Response><Redirect>/loop</Redirect></Response>"), action.url)
    assert ends and ends[0].outcome is Outcome.FAILED and "redirect loop" in ends[0].reason
    assert p.documents == 3


def test_connect_without_a_stream_is_reported_not_acted() -> None:
    p = _program("<Response><Connect><Conversation/></Connect></Response>")
    assert p.next_action() == Experience(t.Unsupported("Connect"))
