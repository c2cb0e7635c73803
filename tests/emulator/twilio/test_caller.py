"""The synthetic caller against a toy bridge (``toy_bridge.py``, no bridge code involved).

The toy answers the voice webhook with ``<Connect action><Stream>`` and plays a fixed
dialogue on the stream: audio+mark, then (after the echo) more audio+mark, a ``clear``
on DTMF, a last audio+mark and a close.  Everything it receives is recorded and checked
with the *pure* Media Streams core and Twilio's own ``RequestValidator``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.asgi import RunningServer, running_server
from bridge.emulator.twilio.caller import CallSpec, SyntheticCall, place_call
from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import (
    BargeIn,
    CallerHangsUp,
    CallScript,
    Pause,
    Press,
    Talk,
    WaitForAgent,
)
from bridge.emulator.twilio.twiml import Connect as ConnectVerb
from bridge.emulator.twilio.twiml import Dial, Hangup, Say
from bridge.twilio import media as m
from tests.emulator.twilio.toy_bridge import TOKEN, A, B, C, Toy, toy_app

SPEED = 5.0


@pytest.fixture
async def toy() -> AsyncIterator[tuple[Toy, RunningServer]]:
    t = Toy()
    async with running_server(toy_app(t)) as server:
        yield t, server


def _events(msgs: list[m.TwilioMessage]) -> list[str]:
    """Event names with runs of media collapsed, marks and digits spelled out."""
    out: list[str] = []
    for msg in msgs:
        if isinstance(msg, m.Mark):
            out.append(f"mark:{msg.mark.name}")
        elif isinstance(msg, m.Dtmf):
            out.append(f"dtmf:{msg.dtmf.digit}")
        else:
            name = msg.__struct_config__.tag
            assert isinstance(name, str)
            if not (name == "media" and out and out[-1] == "media"):
                out.append(name)
    return out


async def test_inbound_call_message_sequence_marks_and_clear(
    toy: tuple[Toy, RunningServer],
) -> None:
    t, server = toy
    script = CallScript.of(
        BargeIn(b"\x00" * 1600, after_s=0.3),  # talk over "A" once it has played 0.3 s
        Pause(0.5),
        Press("5"),  # the toy answers the digit with a clear while "B" plays
        WaitForAgent(timeout_s=10, quiet_s=1.0),
        max_duration_s=30,
    )
    res = await place_call(
        server.http_url,
        to="+15550001111",
        from_="+15550002222",
        script=script,
        auth_token=TOKEN,
        speed=SPEED,
    )

    # Webhook: signed, the parameters Twilio sends, TwiML followed.
    assert all(t.signatures_ok) and t.upgrade_ok
    params = t.webhook_params[0]
    assert params["CallSid"] == res.call_sid and params["CallStatus"] == "ringing"
    assert (params["From"], params["To"], params["Direction"]) == (
        "+15550002222",
        "+15550001111",
        "inbound",
    )
    assert params["ApiVersion"] == "2010-04-01"

    # What the bridge received, exactly, and in sequence.
    assert _events(t.received) == [
        "connected",
        "start",
        "media",
        "mark:a",
        "media",
        "dtmf:5",
        "media",
        "mark:b",
        "media",
        "mark:c",
    ]
    start = t.received[1]
    assert isinstance(start, m.Start)
    assert start.start.customParameters == {"agent_id": "abc"}
    assert start.start.callSid == res.call_sid and start.sequenceNumber == "1"
    assert (t.stream.gaps, t.stream.out_of_order) == (0, 0)
    medias = [x for x in t.received if isinstance(x, m.Media)]
    assert [x.media.chunk for x in medias[:3]] == ["1", "2", "3"]
    assert [x.media.timestamp for x in medias[:3]] == ["0", "20", "40"]
    assert all(len(m.decode_payload(x.media.payload)) == 160 for x in medias)
    # The barge-in audio went out in the frames after the trigger.
    payloads = [m.decode_payload(x.media.payload) for x in medias]
    assert payloads.count(b"\x00" * 160) == 10

    # What the caller received, in order.
    stream = res.stream
    assert stream is not None and stream.ended_by == "bridge" and stream.close_code == 1000
    assert [(r.event, r.name or r.size) for r in stream.received] == [
        ("media", 4000),
        ("mark", "a"),
        ("media", 32000),
        ("mark", "b"),
        ("clear", 0),
        ("media", 800),
        ("mark", "c"),
    ]
    # Marks: "a" when A finished playing; "b" by the clear, unplayed; "c" after C played.
    a, b, c = stream.marks
    heard = stream.heard
    assert (a.name, a.cleared) == ("a", False) and a.echoed == pytest.approx(heard[0].end)
    assert (b.name, b.cleared) == ("b", True) and b.echoed == stream.clears[0]
    assert (c.name, c.cleared) == ("c", False) and c.echoed == pytest.approx(heard[2].end)
    # Heard: all of A, the part of B before the clear, all of C.
    assert heard[0].data == A and heard[2].data == C
    assert 0 < len(heard[1].data) < len(B) and B.startswith(heard[1].data)
    assert heard[1].end == pytest.approx(stream.clears[0], abs=1 / 8000)  # whole bytes
    assert heard[2].start >= stream.clears[0]

    # After the stream: <Connect action> fetched, its TwiML acted out.
    assert res.outcome is Outcome.COMPLETED and res.reason == "<Hangup>"
    assert [f.why for f in res.fetches] == ["webhook", "connect-action"]
    assert [type(v) for v in res.experience] == [ConnectVerb, Say, Hangup]
    assert {e.kind for e in res.script_events} >= {"barge-in", "talk-start", "dtmf"}

    # Callbacks: stream started/stopped and the final call status with its duration.
    await asyncio.sleep(0)
    events = [(path, f.get("StreamEvent") or f.get("CallStatus")) for path, f in t.callbacks]
    assert ("/twilio/stream-status", "stream-started") in events
    assert ("/twilio/stream-status", "stream-stopped") in events
    completed = [f for path, f in t.callbacks if path == "/twilio/status"]
    assert len(completed) == 1 and completed[0]["CallStatus"] == "completed"
    assert int(completed[0]["CallDuration"]) >= 1
    assert completed[0]["CallbackSource"] == "call-progress-events"


async def test_caller_hang_up_sends_stop_and_skips_connect_action(
    toy: tuple[Toy, RunningServer],
) -> None:
    t, server = toy
    t.mode = "hold"
    script = CallScript.of(Talk(b"\x01" * 480), Press("12", gap_s=0.1), CallerHangsUp())
    res = await place_call(server.http_url, script=script, auth_token=TOKEN, speed=SPEED)
    assert _events(t.received) == [
        "connected",
        "start",
        "media",
        "dtmf:1",
        "media",
        "dtmf:2",
        "stop",
    ]
    stop = t.received[-1]
    assert isinstance(stop, m.Stop) and stop.stop.callSid == res.call_sid
    assert t.stream.state is m.StreamState.STOPPED and t.stream.gaps == 0
    assert res.outcome is Outcome.COMPLETED and res.reason == "caller hung up (script)"
    assert [f.why for f in res.fetches] == ["webhook"]  # no <Connect action> after a hang-up
    assert res.stream is not None and res.stream.ended_by == "caller"
    assert [s.event for s in res.stream.sent] == ["connected", "start", "dtmf", "dtmf", "stop"]
    payloads = [m.decode_payload(x.media.payload) for x in t.received if isinstance(x, m.Media)]
    assert payloads[:3] == [b"\x01" * 160] * 3 and payloads[3] == b"\xff" * 160


async def test_rest_style_hang_up_and_transfer_of_a_live_call(
    toy: tuple[Toy, RunningServer],
) -> None:
    t, server = toy
    t.mode = "hold"
    spec = CallSpec(
        to="+15550001111",
        from_="+15550002222",
        url=server.http_url + "/twilio/voice",
        auth_token=TOKEN,
        speed=SPEED,
    )
    call = SyntheticCall(spec)
    task = asyncio.create_task(call.run())
    await t.wait_until(lambda: any(isinstance(x, m.Media) for x in t.received))
    call.update(twiml="<Response><Dial>+15559990000</Dial></Response>")
    res = await task
    assert res.outcome is Outcome.COMPLETED and res.transfer_to == "+15559990000"
    assert [f.why for f in res.fetches] == ["webhook", "rest-update"]
    assert isinstance(res.experience[-1], Dial)
    assert _events(t.received)[-1] == "stop"
    assert res.stream is not None and res.stream.ended_by == "rest"

    t.received = []
    call2 = SyntheticCall(spec)
    task2 = asyncio.create_task(call2.run())
    await t.wait_until(lambda: any(isinstance(x, m.Media) for x in t.received))
    call2.hang_up()
    res2 = await task2
    assert res2.outcome is Outcome.COMPLETED and res2.reason == "Status=completed via REST"
    assert res2.transfer_to is None and res2.stream is not None
    assert res2.stream.sent[-1].event == "stop"


# --------------------------------------------------------------------------- misbehaving bridges


def _bridge(voice_reply: str | int, on_ws: str = "") -> Starlette:
    """A bridge whose webhook answers ``voice_reply`` (TwiML, or an HTTP status) and whose
    media socket misbehaves as ``on_ws`` says."""

    async def voice(request: Request) -> Response:
        if isinstance(voice_reply, int):
            return Response("oops", voice_reply)
        return Response(voice_reply.replace("HOST", request.url.netloc), media_type="text/xml")

    async def status(request: Request) -> Response:
        return Response(status_code=204)

    async def media(ws: WebSocket) -> None:
        if on_ws == "refuse":
            await ws.close(1008)  # before accept: the handshake gets HTTP 403
            return
        await ws.accept()
        await ws.receive_text()  # connected
        start = m.parse_from_twilio(await ws.receive_text())
        assert isinstance(start, m.Start)
        sid = start.streamSid
        if on_ws == "binary":
            await ws.send_bytes(b"\x00\x01")
        elif on_ws == "foreign-sid":
            await ws.send_text(m.media_frame("MZother", m.encode_payload(b"\xff" * 160)))
        elif on_ws == "bad-base64":
            await ws.send_text(m.media_frame(sid, "@@@@"))
        elif on_ws == "goodbye-then-close":
            await ws.send_text(m.media_frame(sid, m.encode_payload(b"\x33" * 16000)))  # 2 s
            await ws.send_text(m.encode(m.OutMark(sid, m.MarkBody("goodbye"))))
            await ws.close(1000)  # at once: the goodbye is cut off
            return
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    return Starlette(
        routes=[
            Route("/twilio/voice", voice, methods=["POST"]),
            Route("/twilio/status", status, methods=["POST"]),
            WebSocketRoute("/twilio/media", media),
        ]
    )


STREAM = (
    '<Response><Connect><Stream url="ws://HOST/twilio/media"/></Connect><Say>after</Say></Response>'
)


async def _call(app: Starlette, **kw: object) -> CallResult:
    async with running_server(app) as server:
        return await place_call(server.http_url, speed=SPEED, **kw)  # type: ignore[arg-type]


async def test_webhook_errors_fail_the_call() -> None:
    res = await _call(_bridge(500))
    assert res.outcome is Outcome.FAILED and res.reason == "webhook: HTTP 500"
    assert res.webhook is not None and res.webhook.status == 500 and res.streams == []
    res = await _call(_bridge("<Response><Say>unclosed</Response>"))
    assert res.outcome is Outcome.FAILED and res.reason.startswith("webhook: bad TwiML")
    # Nothing listening at all.
    async with running_server(_bridge(500)) as server:
        url = server.http_url
    res = await place_call(url, speed=SPEED)
    assert res.outcome is Outcome.FAILED and "request failed" in res.reason


async def test_reject_leaves_the_call_unanswered() -> None:
    res = await _call(_bridge('<Response><Reject reason="busy"/></Response>'))
    assert (res.outcome, res.status, res.answered_at) == (Outcome.REJECTED, "busy", None)
    completed = [c for c in res.callbacks if c.event == "completed"]
    assert len(completed) == 1 and completed[0].status == 204


async def test_refused_upgrade_ends_the_connect_and_the_call_goes_on() -> None:
    res = await _call(_bridge(STREAM, "refuse"), auth_token=TOKEN)
    stream = res.stream
    assert stream is not None and stream.ended_by == "handshake"
    assert stream.error == "handshake refused: HTTP 403" and stream.sent == []
    assert res.outcome is Outcome.COMPLETED and res.reason == "end of TwiML"
    assert isinstance(res.experience[-1], Say)


@pytest.mark.parametrize(
    ("misbehaviour", "expected"),
    [("binary", "binary frame"), ("foreign-sid", "expected streamSid"), ("bad-base64", "base64")],
)
async def test_bad_frames_from_the_bridge_fail_the_call(misbehaviour: str, expected: str) -> None:
    res = await _call(_bridge(STREAM, misbehaviour))
    stream = res.stream
    assert stream is not None and stream.ended_by == "error" and stream.close_code == 1002
    assert stream.error is not None and expected in stream.error
    assert res.outcome is Outcome.FAILED and expected in res.reason


async def test_closing_before_the_goodbye_played_cuts_it_off() -> None:
    res = await _call(_bridge(STREAM, "goodbye-then-close"))
    stream = res.stream
    assert stream is not None and stream.ended_by == "bridge"
    assert [(r.event, r.name or r.size) for r in stream.received] == [
        ("media", 16000),
        ("mark", "goodbye"),
    ]
    assert len(stream.heard_audio()) < 16000  # the caller heard part of it at most
    assert stream.marks == []  # never played, never echoed
    assert res.outcome is Outcome.COMPLETED and isinstance(res.experience[-1], Say)


async def test_public_url_signs_over_public_urls_and_connects_to_loopback() -> None:
    t = Toy(mode="hold", public_base="https://bridge.example.com")
    async with running_server(toy_app(t)) as server:
        res = await place_call(
            server.http_url,
            public_url="https://bridge.example.com",
            auth_token=TOKEN,
            speed=SPEED,
            script=CallScript.of(Pause(0.2), CallerHangsUp()),
        )
    assert all(t.signatures_ok) and t.upgrade_ok
    assert res.webhook is not None and res.webhook.url == "https://bridge.example.com/twilio/voice"
    assert res.stream is not None and res.stream.url == "wss://bridge.example.com/twilio/media"
    assert res.stream.connect_url == f"{server.ws_url}/twilio/media"
    assert res.outcome is Outcome.COMPLETED and res.stream.ended_by == "caller"


async def test_cancelled_call_ends_as_failed_and_closes_its_stream(
    toy: tuple[Toy, RunningServer],
) -> None:
    t, server = toy
    t.mode = "hold"
    spec = CallSpec(
        to="+15550001111",
        from_="+15550002222",
        url=server.http_url + "/twilio/voice",
        auth_token=TOKEN,
        speed=SPEED,
    )
    call = SyntheticCall(spec)
    task = asyncio.create_task(call.run())
    await t.wait_until(lambda: any(isinstance(x, m.Media) for x in t.received))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    res = call.result
    assert res.outcome is Outcome.FAILED and res.reason == "cancelled"
    assert call.finished.is_set()
    assert res.stream is not None and res.stream.ended_at is not None
    await t.wait_until(lambda: t.stream.state is not m.StreamState.STARTED or t.closed)
