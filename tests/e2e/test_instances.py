"""Two bridge instances over one PostgreSQL store, with both emulators.

Instance A answers the webhook, instance B gets the media stream (the Twilio emulator's
URL map sends the TwiML's stream URL to B, as a load balancer might): A's admin API
lists B's live call and hangs it up (B closes the agent socket at once, the phone leg
ends over the Twilio emulator's REST API), and a number re-assigned on A routes B's
next call to the new agent within a second, without asking the platform.

The in-process test runs both instances in this event loop; the process test runs two
real ``bridge serve`` processes and kills one with SIGKILL mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import Config
from bridge.emulator.twilio.script import CallScript
from bridge.emulator.twilio.twiml import Dial, DialTarget
from bridge.emulator.twilio.webhook import UrlMap
from tests.fixtures.bridge import (
    PUBLIC,
    BridgeUnderTest,
    bridge_config,
    eventually,
    free_port,
    running_bridge,
)
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

ADMIN_TOKEN = "instances-test-token-0123456789-abcdef"
NUMBER = "+15550001111"  # on the emulated Twilio account
CALLER = "+15550002222"
STREAM_PATH = "/twilio/media"
ROUTING_WITHIN_S = 1.0  # the bound for a routing change to reach every instance
AGENT_CLOSED_WITHIN_S = 1.0  # ... and for the owner to close the agent socket


DESK = "+15550003333"  # the one transfer target telephony.transfer_allow admits


def instance_config(
    platform: PlatformEmulator, twilio: TwilioEmulator, dsn: str, instance: str
) -> Config:
    return bridge_config(
        platform,
        twilio=twilio,
        sections={"platform": {"sync_interval_s": 0}},
        BRIDGE_DB=dsn,
        BRIDGE_INSTANCE_ID=instance,
        BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
        BRIDGE_TRANSFER_ALLOW=DESK,
    )


def stream_to(twilio: TwilioEmulator, webhook_url: str, stream_url: str) -> None:
    """Webhooks to ``webhook_url``, the media stream to ``stream_url`` (both http)."""
    ws = "ws" + stream_url.removeprefix("http") + STREAM_PATH
    twilio.state.url_map = UrlMap({PUBLIC: webhook_url, "wss://bridge.test" + STREAM_PATH: ws})


async def admin(url: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30.0,
        trust_env=False,
    ) as c:
        return await c.request(method, "/admin" + path, json=body)


async def new_agent(url: str, name: str) -> str:
    r = await admin(url, "POST", "/agents", {"name": name, "prompt": "Answer calls."})
    assert r.status_code == 201, r.text
    agent_id: str = r.json()["agent_id"]
    return agent_id


async def routed_within(bridge: BridgeUnderTest, agent_id: str, bound_s: float) -> float:
    """Wait (bounded) until ``bridge`` routes NUMBER to ``agent_id``; how long it took."""
    t0 = time.monotonic()

    def routed() -> bool:
        route = bridge.app.state.routing.route(NUMBER)
        return route is not None and route.agent_id == agent_id

    await eventually(routed, timeout_s=10.0)
    took = time.monotonic() - t0
    assert took < bound_s, f"routing change took {took:.2f} s"
    return took


@pytest.fixture
async def pair(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator, postgres_dsn: str
) -> AsyncIterator[tuple[BridgeUnderTest, BridgeUnderTest]]:
    twilio_emulator.state.add_number(NUMBER, voice_url="https://old.example.com/voice")
    cfg_a = instance_config(platform_emulator, twilio_emulator, postgres_dsn, "bridge-a")
    cfg_b = instance_config(platform_emulator, twilio_emulator, postgres_dsn, "bridge-b")
    async with (
        running_bridge(platform_emulator, cfg_a, twilio=twilio_emulator) as a,
        running_bridge(platform_emulator, cfg_b, twilio=twilio_emulator) as b,
    ):
        yield a, b


async def test_a_call_streamed_on_b_is_listed_and_hung_up_from_a_and_routing_follows(
    pair: tuple[BridgeUnderTest, BridgeUnderTest],
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
) -> None:
    a, b = pair
    first, second = await new_agent(a.url, "First"), await new_agent(a.url, "Second")
    r = await admin(a.url, "POST", "/numbers", {"number": NUMBER, "agent_id": first})
    assert r.status_code == 201, r.text
    await routed_within(b, first, ROUTING_WITHIN_S)  # imported on A: B routes it too

    stream_to(twilio_emulator, a.url, b.url)
    entry = await twilio_emulator.state.place_inbound(
        to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=600.0), wait=False
    )
    sid = entry.call.call_sid
    await eventually(lambda: b.app.state.calls.get(sid) is not None)
    assert a.app.state.calls.get(sid) is None  # A answered the webhook only

    async def live_on_a() -> list[tuple[str, str | None]]:
        r = await admin(a.url, "GET", "/calls?live=true")
        assert r.status_code == 200, r.text
        return [(c["call_sid"], c["instance"]) for c in r.json()["items"]]

    # (B's record of the stream start reaches the store through its writer)
    for _ in range(200):
        if await live_on_a() == [(sid, "bridge-b")]:
            break
        await asyncio.sleep(0.05)
    assert await live_on_a() == [(sid, "bridge-b")]
    instances = (await admin(a.url, "GET", "/instances")).json()["items"]
    assert [(i["id"], i["state"], i["alive"]) for i in instances] == [
        ("bridge-a", "running", True),
        ("bridge-b", "running", True),
    ]

    await eventually(lambda: len(platform_emulator.conversations(first)) == 1)
    (conversation,) = platform_emulator.conversations(first)
    asked = time.time()
    r = await admin(a.url, "POST", f"/calls/{sid}/hangup")
    assert r.status_code == 200, r.text
    ended = await platform_emulator.wait_until_ended(conversation.conversation_id)
    assert ended.ended_at_unix is not None
    assert ended.ended_at_unix - asked < AGENT_CLOSED_WITHIN_S
    await asyncio.wait_for(entry.call.finished.wait(), 10)
    assert entry.result.status == "completed"
    assert "REST" in entry.result.reason  # the phone leg was ended over REST
    await eventually(lambda: b.record(sid).end_reason is not None)
    rec = b.record(sid)
    assert (rec.status, rec.end_reason, rec.instance) == ("completed", "admin_hangup", "bridge-b")
    assert await live_on_a() == []

    # Re-assigned on A: B's very next call goes to the new agent.
    r = await admin(a.url, "PATCH", f"/numbers/{NUMBER}", {"agent_id": second})
    assert r.status_code == 200, r.text
    await routed_within(b, second, ROUTING_WITHIN_S)
    stream_to(twilio_emulator, b.url, b.url)
    done = await twilio_emulator.state.place_inbound(
        to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=3.0)
    )
    assert done.result.webhook is not None and done.result.stream is not None
    await eventually(lambda: len(platform_emulator.conversations(second)) == 1)
    assert len(platform_emulator.conversations(first)) == 1  # only the first call

    # Deleted on A: B stops routing it.
    r = await admin(a.url, "DELETE", f"/numbers/{NUMBER}")
    assert r.status_code == 200, r.text
    await eventually(lambda: b.app.state.routing.get(NUMBER) is None, timeout_s=ROUTING_WITHIN_S)


async def test_a_call_streamed_on_b_is_transferred_from_a(
    pair: tuple[BridgeUnderTest, BridgeUnderTest],
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
) -> None:
    a, b = pair
    agent = await new_agent(a.url, "Front desk")
    r = await admin(a.url, "POST", "/numbers", {"number": NUMBER, "agent_id": agent})
    assert r.status_code == 201, r.text
    await routed_within(b, agent, ROUTING_WITHIN_S)
    stream_to(twilio_emulator, a.url, b.url)
    entry = await twilio_emulator.state.place_inbound(
        to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=600.0), wait=False
    )
    sid = entry.call.call_sid
    await eventually(lambda: b.app.state.calls.get(sid) is not None)
    await eventually(lambda: b.record(sid).instance == "bridge-b")  # the owner, in the store
    await eventually(lambda: len(platform_emulator.conversations(agent)) == 1)
    (conversation,) = platform_emulator.conversations(agent)

    # A target outside telephony.transfer_allow is refused on any instance (toll fraud)
    r = await admin(a.url, "POST", f"/calls/{sid}/transfer", {"to": "+15550004444"})
    assert r.status_code == 403 and r.json()["error"]["field"] == "to", r.text
    assert b.app.state.calls.get(sid) is not None  # nothing happened to the call

    asked = time.time()
    r = await admin(a.url, "POST", f"/calls/{sid}/transfer", {"to": DESK})
    assert r.status_code == 200, r.text
    assert r.json() == {"call_sid": sid, "to": DESK, "status": "transferring"}
    ended = await platform_emulator.wait_until_ended(conversation.conversation_id)
    assert ended.ended_at_unix is not None
    assert ended.ended_at_unix - asked < AGENT_CLOSED_WITHIN_S  # B closed the agent side
    await asyncio.wait_for(entry.call.finished.wait(), 10)
    fetch = entry.result.fetches[-1]  # Twilio was handed the <Dial> (REST or action)
    assert fetch.why in ("rest-update", "connect-action"), fetch
    (verb,) = fetch.verbs
    assert isinstance(verb, Dial) and verb.targets == (DialTarget("number", DESK),)
    await eventually(lambda: b.record(sid).end_reason is not None)
    rec = b.record(sid)
    assert (rec.end_reason, rec.transfer_target, rec.instance) == ("transfer", DESK, "bridge-b")


async def test_the_owner_transfers_its_own_call_at_once(
    pair: tuple[BridgeUnderTest, BridgeUnderTest],
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
) -> None:
    _, b = pair
    agent = await new_agent(b.url, "Front desk")
    r = await admin(b.url, "POST", "/numbers", {"number": NUMBER, "agent_id": agent})
    assert r.status_code == 201, r.text
    stream_to(twilio_emulator, b.url, b.url)
    entry = await twilio_emulator.state.place_inbound(
        to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=600.0), wait=False
    )
    sid = entry.call.call_sid
    await eventually(lambda: len(platform_emulator.conversations(agent)) == 1)
    r = await admin(b.url, "POST", f"/calls/{sid}/transfer", {"to": DESK})
    assert r.status_code == 200, r.text
    await asyncio.wait_for(entry.call.finished.wait(), 10)
    (verb,) = entry.result.fetches[-1].verbs
    assert isinstance(verb, Dial) and verb.targets == (DialTarget("number", DESK),)
    await eventually(lambda: b.record(sid).end_reason == "transfer")
    # a call that has ended cannot be transferred again
    r = await admin(b.url, "POST", f"/calls/{sid}/transfer", {"to": DESK})
    assert r.status_code == 409, r.text


async def test_hangup_of_an_unknown_call_is_404_on_any_instance(
    pair: tuple[BridgeUnderTest, BridgeUnderTest],
) -> None:
    a, _ = pair
    r = await admin(a.url, "POST", f"/calls/CA{0:032d}/hangup")
    assert r.status_code == 404
    assert r.json()["error"]["field"] == "call_sid"


# -- two real `bridge serve` processes ---------------------------------------------------

GRACE_S = 2.0  # store.instance_grace_s of the processes: short, so the test is too


@contextlib.contextmanager
def serve_process(
    tmp: Path,
    name: str,
    port: int,
    platform: PlatformEmulator,
    twilio: TwilioEmulator,
    dsn: str,
) -> Iterator[subprocess.Popen[bytes]]:
    toml = tmp / f"{name}.toml"
    toml.write_text(
        "[platform]\nsync_interval_s = 0\n"
        f"[store]\ninstance_heartbeat_s = 0.2\ninstance_grace_s = {GRACE_S}\n"
        "bus_poll_interval_s = 0.5\n"
        # A's SIGTERM need not wait for streams it answered and B took (the default
        # waits for webhook-answered calls' streams to arrive).
        "[ops]\ndrain_timeout_s = 0\n",
        encoding="utf-8",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ELEVENLABS_", "TWILIO_", "BRIDGE_"))
    }
    env |= {
        "BRIDGE_DB": dsn,
        "BRIDGE_INSTANCE_ID": name,
        "BRIDGE_PORT": str(port),
        "BRIDGE_PUBLIC_URL": PUBLIC,
        "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_API_BASE_URL": twilio.http_url,
        "ELEVENLABS_BASE_URL": platform.http_url,
        "ELEVENLABS_API_KEY": platform.api_key,
    }
    # Logs to a file: a pipe nobody reads would block the process once full.
    with (tmp / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "--config", str(toml), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        for _ in range(600):  # up to 30 s on a loaded machine
            assert proc.poll() is None, "bridge serve exited during start-up"
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError("bridge serve never became ready")


async def call_record(url: str, sid: str) -> dict[str, Any]:
    r = await admin(url, "GET", f"/calls/{sid}")
    if r.status_code == 404:  # not written yet
        return {}
    assert r.status_code == 200, r.text
    rec: dict[str, Any] = r.json()
    return rec


async def until_record(url: str, sid: str, **want: Any) -> dict[str, Any]:
    for _ in range(400):
        rec = await call_record(url, sid)
        if all(rec.get(k) == v for k, v in want.items()):
            return rec
        await asyncio.sleep(0.05)
    raise AssertionError(f"record of {sid} never had {want}: {rec}")


async def test_two_serve_processes_hangup_routing_and_a_killed_instance(
    tmp_path: Path,
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    postgres_dsn: str,
) -> None:
    twilio_emulator.state.add_number(NUMBER, voice_url="https://old.example.com/voice")
    pa, pb = free_port(), free_port()
    a_url, b_url = f"http://127.0.0.1:{pa}", f"http://127.0.0.1:{pb}"
    args = (platform_emulator, twilio_emulator, postgres_dsn)
    with (
        serve_process(tmp_path, "bridge-a", pa, *args) as proc_a,
        serve_process(tmp_path, "bridge-b", pb, *args) as proc_b,
    ):
        await ready(a_url, proc_a)
        await ready(b_url, proc_b)
        first, second = await new_agent(a_url, "First"), await new_agent(a_url, "Second")
        r = await admin(a_url, "POST", "/numbers", {"number": NUMBER, "agent_id": first})
        assert r.status_code == 201, r.text

        # Webhook on A, stream on B; A lists it and hangs it up.
        stream_to(twilio_emulator, a_url, b_url)
        entry = await twilio_emulator.state.place_inbound(
            to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=600.0), wait=False
        )
        sid = entry.call.call_sid
        await until_record(a_url, sid, instance="bridge-b", status="in-progress")
        live = (await admin(a_url, "GET", "/calls?live=true")).json()["items"]
        assert [(c["call_sid"], c["instance"]) for c in live] == [(sid, "bridge-b")]
        await eventually(lambda: len(platform_emulator.conversations(first)) == 1)
        (conversation,) = platform_emulator.conversations(first)
        asked = time.time()
        r = await admin(a_url, "POST", f"/calls/{sid}/hangup")
        assert r.status_code == 200, r.text
        ended = await platform_emulator.wait_until_ended(conversation.conversation_id)
        assert ended.ended_at_unix is not None
        assert ended.ended_at_unix - asked < AGENT_CLOSED_WITHIN_S
        await asyncio.wait_for(entry.call.finished.wait(), 10)
        assert "REST" in entry.result.reason  # the phone leg ended over REST
        await until_record(a_url, sid, status="completed", end_reason="admin_hangup")

        # Re-assigned on A: B's routing table (its admin API reads it) follows within 1 s,
        # and B's next call goes to the new agent.
        r = await admin(a_url, "PATCH", f"/numbers/{NUMBER}", {"agent_id": second})
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        for _ in range(200):
            on_b = (await admin(b_url, "GET", f"/numbers/{NUMBER}")).json()
            if on_b.get("agent_id") == second:
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        assert on_b["agent_id"] == second and took < ROUTING_WITHIN_S, took
        stream_to(twilio_emulator, b_url, b_url)
        done = await twilio_emulator.state.place_inbound(
            to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=3.0)
        )
        assert done.result.stream is not None
        await eventually(lambda: len(platform_emulator.conversations(second)) == 1)

        # B killed mid-call: A closes its call in the records after the grace period.
        stream_to(twilio_emulator, a_url, b_url)
        entry = await twilio_emulator.state.place_inbound(
            to=NUMBER, from_=CALLER, script=CallScript(max_duration_s=600.0), wait=False
        )
        sid = entry.call.call_sid
        await until_record(a_url, sid, instance="bridge-b", status="in-progress")
        proc_b.send_signal(signal.SIGKILL)
        proc_b.wait(10)
        rec = await until_record(a_url, sid, end_reason="instance_lost")
        assert rec["status"] == "completed"
        instances = (await admin(a_url, "GET", "/instances")).json()["items"]
        assert [(i["id"], i["state"]) for i in instances] == [
            ("bridge-a", "running"),
            ("bridge-b", "lost"),
        ]
