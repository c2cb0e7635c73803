"""The Twilio-facing routes of the app, over a real loopback socket.

The bridge's public URL is ``https://bridge.example.com`` (as behind a TLS proxy) while
requests go to the loopback port: signatures must be checked over the public URL.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.app import create_app
from bridge.asgi import RunningServer, running_server
from bridge.call.actions import Transfer
from bridge.call.admission import Admission, Refusal
from bridge.config import Config, Route, load_config, with_overrides
from bridge.errors import ConfigError
from bridge.store import Store
from bridge.twilio.signature import compute_signature
from bridge.twilio.stream_token import Verdict, verify

PUBLIC = "https://bridge.example.com"
TOKEN = "test-auth-token"
OUR_NUMBER = "+14155550100"


def _config(**env: str) -> Config:
    base = {
        "BRIDGE_PUBLIC_URL": PUBLIC,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "ELEVENLABS_BASE_URL": "http://127.0.0.1:9",  # never reached by these tests
        "BRIDGE_DB": ":memory:",
    }
    cfg = load_config(env={**base, **env})
    return with_overrides(cfg, routes=(Route(OUR_NUMBER, "agent_static"),))


@dataclass
class Bridge:
    app: Starlette
    server: RunningServer
    http: httpx.AsyncClient
    store: Store

    async def post(
        self, path: str, params: dict[str, str], *, signature: str | None = "sign"
    ) -> httpx.Response:
        headers = {}
        if signature == "sign":
            headers["X-Twilio-Signature"] = compute_signature(TOKEN, PUBLIC + path, params)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        return await self.http.post(path, data=params, headers=headers)

    def metric(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else float(value)


async def _bridge(cfg: Config, admission: Admission | None = None) -> AsyncIterator[Bridge]:
    store = Store(":memory:")
    app = create_app(cfg, store=store, admission=admission)
    try:
        async with (
            running_server(app) as server,
            httpx.AsyncClient(base_url=server.http_url) as http,
        ):
            yield Bridge(app, server, http, store)
    finally:
        store.close()


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    async for b in _bridge(_config()):
        yield b


def _call(to: str = OUR_NUMBER, **extra: str) -> dict[str, str]:
    return {
        "CallSid": "CA" + "1" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+14155550111",
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "CallerName": "",  # blank values are signed too
        **extra,
    }


def _twiml(resp: httpx.Response) -> ET.Element:
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(resp.text)
    assert root.tag == "Response"
    return root


# --------------------------------------------------------------------------- voice webhook


async def test_inbound_call_gets_a_stream_to_the_routed_agent(bridge: Bridge) -> None:
    root = _twiml(await bridge.post("/twilio/inbound", _call()))
    (connect_el,) = list(root)
    assert connect_el.tag == "Connect"
    assert connect_el.get("action") == PUBLIC + "/twilio/after-stream"
    (stream,) = list(connect_el)
    assert stream.get("url") == "wss://bridge.example.com/twilio/media"
    assert stream.get("statusCallback") == PUBLIC + "/twilio/stream-status"
    params = {p.get("name"): p.get("value") for p in stream}
    token = params.pop("bridge_token")
    assert params == {
        "agent_id": "agent_static",
        "caller_id": "+14155550111",
        "called_number": OUR_NUMBER,
    }
    # The stream token binds this call, its account and every other parameter.
    key = bridge.app.state.config.twilio.stream_key
    received = {**params, "bridge_token": token or ""}
    ok = verify(
        key,
        call_sid="CA" + "1" * 32,
        account_sid="AC" + "0" * 32,
        parameters=received,
        now=time.time(),
    )
    assert ok.verdict is Verdict.OK
    other = verify(
        key,
        call_sid="CA" + "2" * 32,
        account_sid="AC" + "0" * 32,
        parameters=received,
        now=time.time(),
    )
    assert other.verdict is Verdict.BAD_MAC
    assert bridge.store.flush()
    rec = bridge.store.get_call("CA" + "1" * 32)
    assert rec is not None
    assert (rec.status, rec.agent_id, rec.from_number, rec.to_number) == (
        "ringing",
        "agent_static",
        "+14155550111",
        OUR_NUMBER,
    )
    assert bridge.metric("bridge_webhooks_total", outcome="stream") == 1


@pytest.mark.parametrize("signature", [None, "d3Jvbmc=", "sign-other-url"])
async def test_bad_webhook_signature_is_refused_and_logged(
    bridge: Bridge, signature: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    if signature == "sign-other-url":  # right token, but over the loopback URL
        signature = compute_signature(TOKEN, bridge.server.http_url + "/twilio/inbound", _call())
    with caplog.at_level(logging.WARNING, logger="bridge.twilio"):
        resp = await bridge.post("/twilio/inbound", _call(), signature=signature)
    assert resp.status_code == 403
    assert "Connect" not in resp.text
    (line,) = [r for r in caplog.records if r.getMessage() == "twilio.signature_invalid"]
    assert line.bridge_fields["path"] == "/twilio/inbound"  # type: ignore[attr-defined]
    assert bridge.metric("bridge_signature_failures_total", endpoint="/twilio/inbound") == 1


async def test_tampered_parameter_breaks_the_signature(bridge: Bridge) -> None:
    signature = compute_signature(TOKEN, PUBLIC + "/twilio/inbound", _call())
    resp = await bridge.post("/twilio/inbound", _call(To="+14155550999"), signature=signature)
    assert resp.status_code == 403


async def test_unrouted_number_gets_an_apology_and_a_hangup(bridge: Bridge) -> None:
    root = _twiml(await bridge.post("/twilio/inbound", _call(to="+14155550999")))
    say, hangup = list(root)
    assert say.tag == "Say" and "Sorry" in (say.text or "")
    assert hangup.tag == "Hangup"
    assert bridge.metric("bridge_webhooks_total", outcome="unrouted") == 1


async def test_default_agent_takes_unrouted_numbers() -> None:
    async for b in _bridge(_config(BRIDGE_DEFAULT_AGENT_ID="agent_default")):
        root = _twiml(await b.post("/twilio/inbound", _call(to="+14155550999")))
        stream = root.find("Connect/Stream")
        assert stream is not None
        params = {p.get("name"): p.get("value") for p in stream}
        assert params["agent_id"] == "agent_default"


async def test_outbound_calls_route_on_our_number(bridge: Bridge) -> None:
    params = _call(Direction="outbound-api", From=OUR_NUMBER, To="+14155550123")
    root = _twiml(await bridge.post("/twilio/inbound", params))
    stream = root.find("Connect/Stream")
    assert stream is not None
    got = {p.get("name"): p.get("value") for p in stream}
    assert (got["called_number"], got["caller_id"]) == (OUR_NUMBER, "+14155550123")


@pytest.mark.parametrize(
    ("refusal", "tag"),
    [
        (Refusal("draining"), "Reject"),
        (Refusal("over_capacity", dial="+14155550199"), "Dial"),
        (Refusal("over_capacity", message="All lines are busy."), "Say"),
    ],
)
async def test_admission_refusal_turns_the_call_away(refusal: Refusal, tag: str) -> None:
    class Full:
        def check(self, to_number: str) -> Refusal | None:
            assert to_number == OUR_NUMBER
            return refusal

    async for bridge in _bridge(_config(), admission=Full()):
        root = _twiml(await bridge.post("/twilio/inbound", _call()))
        assert root[0].tag == tag
        if tag == "Reject":
            assert root[0].get("reason") == "busy"
        assert root.find("Connect") is None
        assert bridge.metric("bridge_webhooks_total", outcome="refused") == 1
        assert bridge.metric("bridge_refused_calls_total", reason=refusal.reason) == 1


async def test_signature_checks_can_be_turned_off_for_local_use() -> None:
    async for b in _bridge(_config(BRIDGE_VALIDATE_TWILIO_SIGNATURES="false")):
        resp = await b.post("/twilio/inbound", _call(), signature=None)
        assert _twiml(resp).find("Connect/Stream") is not None


async def test_webhook_that_is_not_a_form_is_refused(bridge: Bridge) -> None:
    resp = await bridge.http.post("/twilio/inbound", json=_call())
    assert resp.status_code == 415


async def test_webhook_without_call_sid_is_a_bad_request(bridge: Bridge) -> None:
    params = _call()
    del params["CallSid"]
    assert (await bridge.post("/twilio/inbound", params)).status_code == 400


# --------------------------------------------------------------------------- media stream


async def test_media_upgrade_needs_a_valid_signature(bridge: Bridge) -> None:
    url = bridge.server.ws_url + "/twilio/media"
    for headers in ({}, {"X-Twilio-Signature": compute_signature(TOKEN, url, {})}):
        with pytest.raises(InvalidStatus) as err:
            async with connect(url, additional_headers=headers):
                pass
        assert err.value.response.status_code == 403
    assert bridge.metric("bridge_signature_failures_total", endpoint="/twilio/media") == 2


async def test_media_upgrade_signed_over_the_public_wss_url_is_accepted(bridge: Bridge) -> None:
    signature = compute_signature(TOKEN, "wss://bridge.example.com/twilio/media", {})
    url = bridge.server.ws_url + "/twilio/media"
    async with connect(url, additional_headers={"X-Twilio-Signature": signature}) as ws:
        assert ws.response is not None and ws.response.status_code == 101


# --------------------------------------------------------------------------- after the stream, callbacks


async def test_after_stream_answers_what_the_session_decided(bridge: Bridge) -> None:
    sid = "CA" + "2" * 32
    bridge.app.state.calls.set_next(sid, Transfer("+14155550199"))
    root = _twiml(await bridge.post("/twilio/after-stream", {"CallSid": sid}))
    dial = root.find("Dial/Number")
    assert dial is not None and dial.text == "+14155550199"
    # Asked again (or for a call with no decision): hang up.
    root = _twiml(await bridge.post("/twilio/after-stream", {"CallSid": sid}))
    assert [e.tag for e in root] == ["Hangup"]


async def test_call_status_callback_updates_the_record(bridge: Bridge) -> None:
    await bridge.post("/twilio/inbound", _call())
    status = {**_call(), "CallStatus": "completed", "CallDuration": "42"}
    resp = await bridge.post("/twilio/status", status)
    assert resp.status_code == 204
    assert bridge.store.flush()
    rec = bridge.store.get_call("CA" + "1" * 32)
    assert rec is not None and (rec.status, rec.duration_s) == ("completed", 42.0)


async def test_status_callbacks_are_signature_checked(bridge: Bridge) -> None:
    for path in ("/twilio/status", "/twilio/stream-status", "/twilio/after-stream"):
        resp = await bridge.post(path, {"CallSid": "CA1"}, signature="bm9wZQ==")
        assert resp.status_code == 403


async def test_stream_status_is_logged(bridge: Bridge, caplog: pytest.LogCaptureFixture) -> None:
    params: dict[str, Any] = {
        "CallSid": "CA1",
        "StreamSid": "MZ1",
        "StreamEvent": "stream-error",
        "StreamError": "connection refused",
    }
    with caplog.at_level(logging.INFO, logger="bridge.twilio"):
        assert (await bridge.post("/twilio/stream-status", params)).status_code == 204
    (line,) = [r for r in caplog.records if r.getMessage() == "twilio.stream_status"]
    assert line.levelno == logging.WARNING
    assert line.bridge_fields["stream_error"] == "connection refused"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- factory


def test_an_upstream_is_required() -> None:
    cfg = load_config(env={"BRIDGE_DB": ":memory:"})
    store = Store(":memory:")
    try:
        with pytest.raises(ConfigError, match=r"platform\.base_url"):
            create_app(cfg, store=store)
    finally:
        store.close()
