"""REST emulator conformance: the official ``twilio`` package drives it, unmodified.

``twilio.rest.Client`` is synchronous (``requests``), so every call goes through
``asyncio.to_thread`` while the emulator and the toy bridge run in this loop.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bridge.asgi import RunningServer, running_server
from bridge.emulator.twilio import CalleeMode, Outcome
from bridge.emulator.twilio.twiml import Dial
from bridge.twilio import media as m
from tests.emulator.twilio.toy_bridge import Toy, toy_app
from tests.fixtures.twilio_emulator import TwilioEmulator


@pytest.fixture
async def toy(twilio_emulator: TwilioEmulator) -> AsyncIterator[tuple[Toy, RunningServer]]:
    # The toy checks signatures with the emulator account's token.
    t = Toy(mode="hold")
    async with running_server(toy_app(t, token=twilio_emulator.auth_token)) as server:
        yield t, server


async def test_numbers_create_list_update_fetch(twilio_emulator: TwilioEmulator) -> None:
    client = twilio_emulator.client()
    created = await asyncio.to_thread(
        client.incoming_phone_numbers.create, phone_number="+15550007777"
    )
    assert created.sid.startswith("PN") and created.phone_number == "+15550007777"
    assert created.account_sid == twilio_emulator.account_sid
    assert created.date_created is not None  # RFC 2822 parsed by the package

    found = await asyncio.to_thread(client.incoming_phone_numbers.list, phone_number="+15550007777")
    assert [n.sid for n in found] == [created.sid]
    assert await asyncio.to_thread(client.incoming_phone_numbers.list, phone_number="+1999") == []

    updated = await asyncio.to_thread(
        client.incoming_phone_numbers(created.sid).update,
        voice_url="https://bridge.example.com/twilio/voice",
        voice_method="POST",
        status_callback="https://bridge.example.com/twilio/status",
    )
    assert updated.voice_url == "https://bridge.example.com/twilio/voice"
    assert updated.voice_method == "POST"
    assert updated.status_callback == "https://bridge.example.com/twilio/status"
    fetched = await asyncio.to_thread(client.incoming_phone_numbers(created.sid).fetch)
    assert fetched.voice_url == updated.voice_url
    rec = twilio_emulator.state.find_number("+15550007777")
    assert rec is not None and rec.voice_url == updated.voice_url


async def test_unknown_sids_and_bad_credentials_are_twilio_errors(
    twilio_emulator: TwilioEmulator,
) -> None:
    client = twilio_emulator.client()
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(client.calls("CA" + "f" * 32).fetch)
    assert (e.value.status, e.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(client.calls("CA" + "f" * 32).update, status="completed")
    assert (e.value.status, e.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(
            client.incoming_phone_numbers("PN" + "0" * 32).update, voice_url="https://x"
        )
    assert (e.value.status, e.value.code) == (404, 20404)

    wrong = Client(twilio_emulator.account_sid, "not-the-token")
    wrong.api.base_url = twilio_emulator.http_url
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(
            wrong.calls.create, to="+15550001", from_="+15550002", url="https://x"
        )
    assert (e.value.status, e.value.code) == (401, 20003)
    assert twilio_emulator.state.calls == {}  # nothing was placed

    # Missing parameters: Twilio's own codes.
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(client.calls.create, to="+15550001", from_="+15550002")
    assert (e.value.status, e.value.code) == (400, 21205)


async def test_error_body_shape(twilio_emulator: TwilioEmulator) -> None:
    auth = (twilio_emulator.account_sid, twilio_emulator.auth_token)
    url = f"{twilio_emulator.http_url}/2010-04-01/Accounts/{twilio_emulator.account_sid}/Calls/CAnope.json"
    async with httpx.AsyncClient(trust_env=False) as http:
        resp = await http.get(url, auth=auth)
        assert resp.status_code == 404
        assert resp.json() == {
            "code": 20404,
            "message": "The requested resource /2010-04-01/Accounts/"
            f"{twilio_emulator.account_sid}/Calls/CAnope.json was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        }
        bad = base64.b64encode(b"x").decode()
        resp = await http.get(url, headers={"Authorization": f"Basic {bad}"})
        assert resp.status_code == 401 and resp.json()["code"] == 20003


async def test_outbound_call_voicemail_async_amd_hang_up_and_fetch(
    twilio_emulator: TwilioEmulator, toy: tuple[Toy, RunningServer]
) -> None:
    t, server = toy
    client = twilio_emulator.client()
    twilio_emulator.state.set_callee("+15550003333", CalleeMode.VOICEMAIL)
    call = await asyncio.to_thread(
        client.calls.create,
        to="+15550003333",
        from_="+15550004444",
        url=f"{server.http_url}/twilio/voice",
        status_callback=f"{server.http_url}/twilio/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=f"{server.http_url}/twilio/amd",
    )
    assert call.sid.startswith("CA") and call.status == "queued"
    assert (call.to, call._from, call.direction) == ("+15550003333", "+15550004444", "outbound-api")

    # The voicemail greeting streams to the toy; AMD reports the beep asynchronously.
    await t.wait_until(lambda: any(p == "/twilio/amd" for p, _ in t.callbacks))
    amd = next(f for p, f in t.callbacks if p == "/twilio/amd")
    assert amd["AnsweredBy"] == "machine_end_beep" and amd["CallSid"] == call.sid
    assert int(amd["MachineDetectionDuration"]) > 0
    webhook = t.webhook_params[0]
    assert (webhook["Direction"], webhook["CallStatus"]) == ("outbound-api", "in-progress")
    assert "AnsweredBy" not in webhook  # asynchronous AMD: not in the TwiML request

    updated = await asyncio.to_thread(client.calls(call.sid).update, status="completed")
    assert updated.status == "completed"
    fetched = await asyncio.to_thread(client.calls(call.sid).fetch)
    assert fetched.status == "completed" and fetched.answered_by == "machine_end_beep"
    assert fetched.duration is not None and int(fetched.duration) >= 4
    assert fetched.start_time is not None and fetched.end_time is not None
    assert isinstance(t.received[-1], m.Stop)  # the stream got `stop` before the close

    await t.wait_until(lambda: any(f.get("CallStatus") == "completed" for _, f in t.callbacks))
    statuses = [f for p, f in t.callbacks if p == "/twilio/status"]
    assert [f["CallStatus"] for f in statuses] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [f["SequenceNumber"] for f in statuses] == ["0", "1", "2", "3"]
    assert int(statuses[-1]["CallDuration"]) >= 4
    assert all(t.signatures_ok)

    # Hanging up a finished call again is harmless; the inspection endpoint shows it.
    again = await asyncio.to_thread(client.calls(call.sid).update, status="completed")
    assert again.status == "completed"
    async with httpx.AsyncClient(trust_env=False) as http:
        seen = (
            await http.get(f"{twilio_emulator.http_url}/emulator/twilio/calls/{call.sid}")
        ).json()
    assert seen["outcome"] == "completed" and seen["answered_by"] == "machine_end_beep"
    assert seen["streams"][0]["ended_by"] == "rest"
    assert seen["experience"] == [f"Connect: ws://{server.http_url.split('://')[1]}/twilio/media"]


async def test_outbound_call_human_sync_amd_then_transfer(
    twilio_emulator: TwilioEmulator, toy: tuple[Toy, RunningServer]
) -> None:
    t, server = toy
    client = twilio_emulator.client()
    call = await asyncio.to_thread(
        client.calls.create,
        to="+15550005555",
        from_="+15550004444",
        url=f"{server.http_url}/twilio/voice",
        machine_detection="Enable",
    )
    await t.wait_until(lambda: any(isinstance(x, m.Media) for x in t.received))
    assert t.webhook_params[0]["AnsweredBy"] == "human"  # synchronous AMD: in the fetch

    await asyncio.to_thread(
        client.calls(call.sid).update, twiml="<Response><Dial>+15559990000</Dial></Response>"
    )
    entry = twilio_emulator.state.calls[call.sid]
    await entry.call.finished.wait()
    res = entry.result
    assert res.outcome is Outcome.COMPLETED and res.transfer_to == "+15559990000"
    assert isinstance(res.experience[-1], Dial)
    assert isinstance(t.received[-1], m.Stop)
    with pytest.raises(TwilioRestException) as e:  # no redirecting an ended call
        await asyncio.to_thread(client.calls(call.sid).update, twiml="<Response/>")
    assert e.value.code == 21220


@pytest.mark.parametrize(("mode", "status"), [("busy", "busy"), ("no-answer", "no-answer")])
async def test_outbound_call_busy_and_no_answer(
    twilio_emulator: TwilioEmulator, toy: tuple[Toy, RunningServer], mode: str, status: str
) -> None:
    t, server = toy
    twilio_emulator.state.speed = 200.0  # a 60 s ring timeout in 0.3 s
    twilio_emulator.state.set_callee("+15550006666", CalleeMode(mode))
    client = twilio_emulator.client()
    call = await asyncio.to_thread(
        client.calls.create,
        to="+15550006666",
        from_="+15550004444",
        twiml="<Response><Say>hi</Say></Response>",
        status_callback=f"{server.http_url}/twilio/status",
    )
    await twilio_emulator.state.calls[call.sid].call.finished.wait()
    fetched = await asyncio.to_thread(client.calls(call.sid).fetch)
    assert fetched.status == status and fetched.duration is None and fetched.start_time is None
    await t.wait_until(lambda: bool(t.callbacks))
    assert [f["CallStatus"] for _, f in t.callbacks] == [status]  # default event: completed only
    assert t.webhook_params == []  # never answered: no TwiML request


async def test_inbound_call_to_a_number_uses_its_voice_url(
    twilio_emulator: TwilioEmulator, toy: tuple[Toy, RunningServer]
) -> None:
    t, server = toy
    t.mode = "dialogue"
    client = twilio_emulator.client()
    pn = await asyncio.to_thread(client.incoming_phone_numbers.create, phone_number="+15550008888")
    await asyncio.to_thread(
        client.incoming_phone_numbers(pn.sid).update,
        voice_url=f"{server.http_url}/twilio/voice",
        status_callback=f"{server.http_url}/twilio/status",
    )
    entry = await twilio_emulator.state.place_inbound(to="+15550008888", from_="+15550009999")
    res = entry.result
    assert res.outcome is Outcome.COMPLETED and res.stream is not None
    assert [mk.name for mk in res.stream.marks] == ["a", "b", "c"]
    fetched = await asyncio.to_thread(client.calls(res.call_sid).fetch)
    assert fetched.direction == "inbound" and fetched.phone_number_sid == pn.sid
    await t.wait_until(lambda: any(p == "/twilio/status" for p, _ in t.callbacks))
    assert all(t.signatures_ok) and t.upgrade_ok  # checked with twilio's RequestValidator


async def test_inspection_and_callee_config_endpoints(
    twilio_emulator: TwilioEmulator, toy: tuple[Toy, RunningServer]
) -> None:
    _, server = toy
    base = f"{twilio_emulator.http_url}/emulator/twilio"
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.put(f"{base}/callees", json={"number": "+15550001212", "mode": "busy"})
        assert r.json()["numbers"] == {"+15550001212": "busy"}
        r = await http.put(f"{base}/callees", json={"number": "+1555", "mode": "robot"})
        assert r.status_code == 422 and r.json()["field"] == "mode"
        r = await http.post(
            f"{base}/numbers",
            json={"phone_number": "+15550001313", "voice_url": f"{server.http_url}/twilio/voice"},
        )
        assert r.status_code == 201 and r.json()["sid"].startswith("PN")
        r = await http.post(f"{base}/calls", json={"to": "+15550001313", "hangup_after_s": 0.5})
        assert r.status_code == 201
        sid = r.json()["sid"]
        await twilio_emulator.state.calls[sid].call.finished.wait()
        calls = (await http.get(f"{base}/calls")).json()["calls"]
        assert [c["sid"] for c in calls] == [sid]
        assert calls[0]["reason"] == "caller hung up (hangup_at)"
        r = await http.post(f"{base}/calls", json={"to": "+19999999999"})
        assert r.status_code == 422 and r.json()["field"] == "To"
        r = await http.get(f"{base}/calls/CAnope")
        assert r.status_code == 404


async def test_the_packages_async_client_too(
    twilio_emulator: TwilioEmulator, toy: tuple[Toy, RunningServer]
) -> None:
    """The bridge drives Twilio through ``AsyncTwilioHttpClient`` (aiohttp): same answers."""
    t, server = toy
    http = AsyncTwilioHttpClient()
    client = Client(
        twilio_emulator.account_sid, twilio_emulator.auth_token, http_client=http, environment={}
    )
    client.api.base_url = twilio_emulator.http_url
    try:
        pn = await client.incoming_phone_numbers.create_async(phone_number="+15550002020")
        listed = await client.incoming_phone_numbers.list_async(phone_number="+15550002020")
        assert [n.sid for n in listed] == [pn.sid]
        updated = await client.incoming_phone_numbers(pn.sid).update_async(
            voice_url=f"{server.http_url}/twilio/voice", voice_method="POST"
        )
        assert updated.voice_url == f"{server.http_url}/twilio/voice"
        call = await client.calls.create_async(
            to="+15550002121", from_="+15550002020", url=f"{server.http_url}/twilio/voice"
        )
        await t.wait_until(lambda: any(isinstance(x, m.Media) for x in t.received))
        fetched = await client.calls(call.sid).fetch_async()
        assert fetched.status == "in-progress" and fetched.direction == "outbound-api"
        done = await client.calls(call.sid).update_async(status="completed")
        assert done.status == "completed"
        with pytest.raises(TwilioRestException) as e:
            await client.calls("CA" + "e" * 32).update_async(status="completed")
        assert (e.value.status, e.value.code) == (404, 20404)
    finally:
        await http.close()
