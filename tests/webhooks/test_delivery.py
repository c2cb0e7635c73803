"""Post-call webhooks end to end: the synthetic caller → the bridge → the platform
emulator, and the bridge → a real receiver on loopback (tests/webhooks/receiver.py).

Retries are made fast by configuration (backoff of tens of milliseconds); every wait
is for a state the system reaches by itself, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bridge.cli import main
from bridge.config import WebhooksConfig
from bridge.emulator.twilio.records import Outcome
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, WaitForAgent
from bridge.store import CallRecord, Store
from bridge.store.deliveries import DeliveryRecord
from bridge.webhooks.delivery import WebhookDispatcher
from bridge.webhooks.payload import CallExtras
from tests.fixtures.bridge import BridgeUnderTest, bridge_config, eventually, running_bridge
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.webhooks.receiver import Receiver, running_receiver
from tests.webhooks.verify import receiver_verify

SECRET = "whsec-test-0123456789abcdefghijklmnopq"
ADMIN_TOKEN = "admin-webhooks-0123456789abcdefghijkl"
FAST = {"backoff_base_s": 0.05, "backoff_max_s": 0.2}
HANGS_UP = CallScript.of(WaitForAgent(timeout_s=10), Pause(0.3), CallerHangsUp())


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@contextlib.asynccontextmanager
async def webhook_bridge(
    platform: PlatformEmulator, receiver: Receiver, db: str = ":memory:", **webhooks: Any
) -> AsyncIterator[BridgeUnderTest]:
    cfg = bridge_config(
        platform,
        BRIDGE_WEBHOOK_URLS=receiver.url,
        BRIDGE_WEBHOOK_SECRET=SECRET,
        BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
        BRIDGE_DB=db,
        sections={"webhooks": {**FAST, **webhooks}},
    )
    async with running_bridge(platform, cfg) as b:
        yield b


async def _call(b: BridgeUnderTest) -> str:
    agent = b.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hi.")
    res = await b.call(agent, HANGS_UP)
    assert res.outcome is Outcome.COMPLETED, res.reason
    return res.call_sid


def _deliveries(store: Store, call_sid: str) -> list[DeliveryRecord]:
    return store.list_deliveries(call_sid=call_sid).items


def _state(store: Store, call_sid: str) -> str | None:
    """The state of the call's one delivery; None until it is queued."""
    found = _deliveries(store, call_sid)
    return found[0].state if found else None


async def _until(pred: Callable[[], bool], why: Callable[[], object] = lambda: "") -> None:
    await eventually(pred, timeout_s=20.0, why=why)


async def test_call_end_delivers_a_signed_document(
    platform_emulator: PlatformEmulator, receiver: Receiver
) -> None:
    async with webhook_bridge(platform_emulator, receiver) as b:
        sid = await _call(b)
        await _until(lambda: any(r.answered == 204 for r in receiver.received))
        (got,) = receiver.received
        # signature checked by the receiver's own implementation (docs' snippet)
        assert receiver_verify(SECRET, got.body, got.headers["bridge-signature"])
        assert not receiver_verify("x" * 40, got.body, got.headers["bridge-signature"])
        assert got.headers["content-type"] == "application/json"
        doc = json.loads(got.body)
        assert doc["event"] == "call.ended" and doc["delivery_id"] == got.headers["bridge-delivery"]
        # the record as the admin API serves it, final
        api = (await b.admin("GET", f"/calls/{sid}")).json()
        assert doc["call"] == api
        assert doc["call"]["status"] == "completed" and doc["call"]["end_reason"]
        assert {"transcript", "latency", "recording_url"} <= doc.keys()

        await _until(lambda: _state(b.store, sid) == "delivered")
        (rec,) = _deliveries(b.store, sid)
        assert (rec.id, rec.url, rec.attempts, rec.last_status) == (
            doc["delivery_id"],
            receiver.url,
            1,
            204,
        )
        assert b.metric("bridge_webhook_deliveries_total", outcome="delivered") == 1
        # the body stored is the body sent, byte for byte
        assert b.store.delivery_payload(rec.id) == got.body.decode()


async def test_document_carries_the_transcript_and_the_recording_url(
    platform_emulator: PlatformEmulator, receiver: Receiver, tmp_path: Path
) -> None:
    """The extras wired in the app: the record's transcript and latency, and the admin
    URL of the call's recording, which serves the WAV file that was written."""
    cfg = bridge_config(
        platform_emulator,
        BRIDGE_WEBHOOK_URLS=receiver.url,
        BRIDGE_WEBHOOK_SECRET=SECRET,
        BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
        BRIDGE_RECORDING="true",
        BRIDGE_RECORDING_DIR=str(tmp_path / "rec"),
        sections={"webhooks": FAST},
    )
    async with running_bridge(platform_emulator, cfg) as b:
        sid = await _call(b)
        await _until(lambda: any(r.answered == 204 for r in receiver.received))
        doc = json.loads(receiver.received[0].body)
        said = [e for e in doc["transcript"] if e.get("text") == "Hi."]
        assert said, doc["transcript"]  # the agent's first message, as the record keeps it
        assert doc["transcript"] == doc["call"]["transcript"]
        assert doc["latency"] == doc["call"]["latency"]
        assert (
            doc["recording_url"] == f"{b.app.state.config.public_url}/admin/calls/{sid}/recording"
        )
        wav = await b.admin("GET", f"/calls/{sid}/recording")
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"


async def test_failing_receiver_is_retried_until_it_recovers(
    platform_emulator: PlatformEmulator, receiver: Receiver
) -> None:
    receiver.plan.extend(["fail", "fail", "fail"])
    async with webhook_bridge(platform_emulator, receiver) as b:
        sid = await _call(b)
        await _until(lambda: _state(b.store, sid) == "delivered")
        (rec,) = _deliveries(b.store, sid)
        sent = receiver.of(rec.id)
        assert [r.answered for r in sent] == [500, 500, 500, 204]
        assert rec.attempts == 4 and rec.last_status == 204 and rec.last_error is None
        # the same document each time, signed afresh
        assert len({r.body for r in sent}) == 1
        assert all(receiver_verify(SECRET, r.body, r.headers["bridge-signature"]) for r in sent)
        assert b.metric("bridge_webhook_deliveries_total", outcome="retry") == 3
        assert b.metric("bridge_webhook_deliveries_total", outcome="delivered") == 1


async def test_receiver_that_times_out_is_retried(
    platform_emulator: PlatformEmulator, receiver: Receiver
) -> None:
    receiver.plan.append("hang")
    async with webhook_bridge(platform_emulator, receiver, timeout_s=0.5) as b:
        sid = await _call(b)
        await _until(lambda: _state(b.store, sid) == "delivered")
        (rec,) = _deliveries(b.store, sid)
        first, second = receiver.of(rec.id)
        assert first.mode == "hang" and first.answered is None  # never answered in time
        assert second.answered == 204 and rec.attempts == 2
        assert b.metric("bridge_webhook_deliveries_total", outcome="retry") == 1


async def test_gives_up_after_the_retry_period(
    platform_emulator: PlatformEmulator, receiver: Receiver
) -> None:
    receiver.default = "fail"
    async with webhook_bridge(platform_emulator, receiver, retry_for_s=0.5) as b:
        sid = await _call(b)
        await _until(lambda: _state(b.store, sid) == "failed")
        (rec,) = _deliveries(b.store, sid)
        assert rec.attempts >= 2 and rec.last_status == 500 and rec.last_error == "HTTP 500"
        assert len(receiver.of(rec.id)) == rec.attempts
        assert b.metric("bridge_webhook_deliveries_total", outcome="failed") == 1

        # an operator re-sends it once the receiver is fixed (admin API)
        receiver.default = "ok"
        r = await b.admin("POST", f"/webhooks/deliveries/{rec.id}/retry")
        assert r.status_code == 200 and r.json()["state"] == "pending"
        await _until(lambda: _state(b.store, sid) == "delivered")
        assert receiver.of(rec.id)[-1].answered == 204


async def test_pending_retries_survive_a_restart(
    platform_emulator: PlatformEmulator, receiver: Receiver, tmp_path: Path
) -> None:
    db = str(tmp_path / "bridge.db")
    receiver.default = "fail"
    slow = {"backoff_base_s": 1.0, "backoff_max_s": 2.0}
    async with webhook_bridge(platform_emulator, receiver, db=db, **slow) as first:
        sid = await _call(first)
        await _until(
            lambda: any(d.last_status == 500 for d in _deliveries(first.store, sid)),
            lambda: _deliveries(first.store, sid),
        )
    # the first bridge is gone with its delivery pending; the receiver recovers
    receiver.default = "ok"
    with Store(db) as s:
        (left,) = _deliveries(s, sid)
    assert left.state == "pending" and left.attempts >= 1
    async with webhook_bridge(platform_emulator, receiver, db=db, **slow) as second:
        await _until(lambda: _state(second.store, sid) == "delivered")
        assert second.metric("bridge_webhook_deliveries_total", outcome="delivered") == 1
    sent = receiver.of(left.id)
    assert [r.answered for r in sent][-1] == 204 and all(r.answered == 500 for r in sent[:-1])
    assert receiver_verify(SECRET, sent[-1].body, sent[-1].headers["bridge-signature"])


async def test_a_hanging_receiver_does_not_delay_calls(
    platform_emulator: PlatformEmulator, receiver: Receiver
) -> None:
    receiver.default = "hang"
    async with webhook_bridge(platform_emulator, receiver, timeout_s=60.0, max_concurrent=1) as b:
        first = await _call(b)
        await _until(lambda: len(receiver.received) == 1)
        # the only delivery slot is held by a receiver that does not answer ...
        second = await _call(b)  # ... and the next call runs to its normal end meanwhile
        assert b.record(second).status == "completed"
        assert b.record(second).end_reason == b.record(first).end_reason
        assert [r.answered for r in receiver.received] == [None]  # still hanging
        await _until(lambda: len(_deliveries(b.store, second)) == 1)
        (queued,) = _deliveries(b.store, second)
        assert queued.state == "pending" and queued.attempts == 0  # waits for a slot


async def test_admin_list_and_cli(
    platform_emulator: PlatformEmulator,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with webhook_bridge(platform_emulator, receiver) as b:
        sid = await _call(b)
        await _until(lambda: any(r.answered == 204 for r in receiver.received))
        await _until(lambda: _state(b.store, sid) == "delivered")

        r = await b.admin("GET", f"/webhooks/deliveries?call_sid={sid}&state=delivered")
        assert r.status_code == 200
        (item,) = r.json()["items"]
        assert item["call_sid"] == sid and item["url"] == receiver.url
        page = msgspec.convert(r.json()["items"][0], DeliveryRecord)
        assert page.state == "delivered"
        r = await b.admin("GET", "/webhooks/deliveries?state=bogus")
        assert r.status_code == 400 and r.json()["error"]["field"] == "state"
        r = await b.admin("POST", "/webhooks/deliveries/whd_nope/retry")
        assert r.status_code == 404

        monkeypatch.setenv("BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
        monkeypatch.delenv("BRIDGE_CONFIG", raising=False)

        async def cli(*argv: str) -> tuple[int, str, str]:
            capsys.readouterr()
            rc = await asyncio.to_thread(main, [*argv, "--url", b.url])
            out, err = capsys.readouterr()
            return rc, out, err

        rc, out, err = await cli("webhooks", "list", "--call", sid, "--json")
        assert (rc, err) == (0, "")
        assert [d["id"] for d in json.loads(out)["items"]] == [item["id"]]
        rc, out, _ = await cli("webhooks", "list")
        assert rc == 0 and item["id"] in out and "delivered" in out

        rc, out, _ = await cli("webhooks", "retry", item["id"])
        assert rc == 0 and item["id"] in out
        await _until(lambda: len(receiver.of(item["id"])) == 2)
        again = receiver.of(item["id"])[1]
        assert receiver_verify(SECRET, again.body, again.headers["bridge-signature"])
        rc, _, err = await cli("webhooks", "retry", "whd_nope")
        assert rc == 1 and "(HTTP 404)" in err


async def test_extras_provider_fills_the_document_and_its_failure_costs_nothing(
    receiver: Receiver, tmp_path: Path
) -> None:

    def extras(sid: str) -> CallExtras:
        if sid == "CA_broken":
            raise RuntimeError("transcript feature bug")
        if sid == "CA_unencodable":
            return CallExtras(transcript=object())  # a feature handing over a bad value
        return CallExtras(
            transcript=[{"role": "agent", "text": f"hello {sid}"}],
            latency={"median_ms": 400.0},
            recording_url=f"https://bridge.example.com/admin/calls/{sid}/recording",
        )

    cfg = WebhooksConfig(urls=(receiver.url,), secret=SECRET, **FAST)
    with Store(str(tmp_path / "b.db"), linger_s=0) as store:
        for sid in ("CA_ok", "CA_broken", "CA_unencodable"):
            store.record_call(CallRecord(call_sid=sid, status="completed"))
        dispatcher = WebhookDispatcher(cfg, store, extras=extras)
        async with dispatcher.running():
            dispatcher.call_ended("CA_ok")
            dispatcher.call_ended("CA_broken")
            dispatcher.call_ended("CA_unencodable")
            await _until(lambda: sum(r.answered == 204 for r in receiver.received) == 3)
        docs = {
            json.loads(r.body)["call"]["call_sid"]: json.loads(r.body) for r in receiver.received
        }
        assert docs["CA_ok"]["transcript"] == [{"role": "agent", "text": "hello CA_ok"}]
        assert docs["CA_ok"]["latency"] == {"median_ms": 400.0}
        assert docs["CA_ok"]["recording_url"].endswith("/admin/calls/CA_ok/recording")
        for sid in ("CA_broken", "CA_unencodable"):
            doc = docs[sid]
            assert (doc["transcript"], doc["latency"], doc["recording_url"]) == (None,) * 3


async def test_calls_ended_before_shutdown_are_queued_at_shutdown(
    receiver: Receiver, tmp_path: Path
) -> None:

    cfg = WebhooksConfig(urls=(receiver.url,), secret=SECRET, **FAST)
    with Store(str(tmp_path / "b.db"), linger_s=0) as store:
        store.record_call(CallRecord(call_sid="CA_late", status="completed"))
        # the worker never ran a round: the SID is only in memory when the app stops
        dispatcher = WebhookDispatcher(cfg, store, poll_interval_s=3600.0)
        dispatcher.call_ended("CA_late")
        async with dispatcher.running():
            pass
        (rec,) = _deliveries(store, "CA_late")
        assert rec.state == "pending" and rec.attempts == 0
