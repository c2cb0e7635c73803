"""Provisioning against both emulators: what each operation changes, and the rollbacks."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from bridge.admin.service import Saga, platform_numbers
from bridge.emulator.platform.state import Fault
from bridge.errors import BridgeError, InputError, PartialFailure, StoreError
from tests.admin.stack import NUMBER, OLD_VOICE_URL, BridgeUnderTest
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

# ---------------------------------------------------------------------------- Saga


async def test_saga_undoes_done_steps_in_reverse_order() -> None:
    log: list[str] = []

    async def do(name: str) -> str:
        log.append(f"do {name}")
        return name

    async def undo(name: str) -> None:
        log.append(f"undo {name}")

    async def boom() -> None:
        raise InputError("x", "step c failed")

    saga = Saga("test")
    await saga.step("a", lambda: do("a"), undo)
    await saga.step("b", lambda: do("b"), undo)
    with pytest.raises(PartialFailure) as info:
        await saga.step("c", boom)
    assert log == ["do a", "do b", "undo b", "undo a"]
    err = info.value
    assert (err.step, err.undone, err.left_done) == ("c", ["b", "a"], [])
    assert isinstance(err.cause, InputError)


async def test_saga_reports_steps_it_could_not_undo(caplog: pytest.LogCaptureFixture) -> None:
    async def ok() -> int:
        return 1

    async def bad_undo(_: int) -> None:
        raise StoreError("disk gone")

    async def boom() -> None:
        raise StoreError("fails")

    saga = Saga("test")
    await saga.step("kept", ok, bad_undo)
    await saga.step("final", ok)  # no undo: it stays done
    with pytest.raises(PartialFailure) as info:
        await saga.step("c", boom)
    assert info.value.undone == []
    assert info.value.left_done == ["final", "kept"]
    assert any(r.getMessage() == "provisioning.undo_failed" for r in caplog.records)


async def test_saga_first_step_failure_is_the_plain_error() -> None:
    async def boom() -> None:
        raise InputError("number", "bad")

    with pytest.raises(InputError):
        await Saga("test").step("first", boom)


async def test_saga_undoes_on_unexpected_exceptions_too() -> None:
    undone: list[int] = []

    async def ok() -> int:
        return 7

    async def undo(v: int) -> None:
        undone.append(v)

    async def bug() -> None:
        raise ZeroDivisionError

    saga = Saga("test")
    await saga.step("a", ok, undo)
    with pytest.raises(ZeroDivisionError):
        await saga.step("b", bug)
    assert undone == [7]


# ---------------------------------------------------------------------------- helpers


async def _agent(c: httpx.AsyncClient, name: str) -> str:
    r = await c.post("/admin/agents", json={"name": name, "prompt": "Answer the phone."})
    assert r.status_code == 201, r.text
    agent_id: str = r.json()["agent_id"]
    return agent_id


def _platform_number(platform: PlatformEmulator) -> Any:
    found = [n for n in platform.state.list_phone_numbers() if n.phone_number == NUMBER]
    assert len(found) <= 1
    return found[0] if found else None


def _twilio_urls(twilio: TwilioEmulator) -> tuple[str | None, str | None]:
    n = twilio.state.find_number(NUMBER)
    assert n is not None
    return n.voice_url, n.status_callback


# ---------------------------------------------------------------------------- import


async def test_import_does_every_step(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        agent = await _agent(c, "Support")
        r = await c.post(
            "/admin/numbers",
            json={
                "number": NUMBER,
                "label": "Support line",
                "agent_id": agent,
                "first_message": "Hello from support",
                "language": "en",
                "dynamic_variables": {"team": "support"},
                "fallback_number": "+15550007777",
            },
        )
    assert r.status_code == 201, r.text
    body = r.json()
    # The platform has it, with the agent.
    p = _platform_number(platform_emulator)
    assert p is not None and p.label == "Support line"
    assert p.assigned_agent is not None and p.assigned_agent.agent_id == agent
    # The Twilio number points at this bridge; the old URL is reported.
    assert _twilio_urls(twilio_emulator) == (
        f"{bridge.url}/twilio/inbound",
        f"{bridge.url}/twilio/status",
    )
    assert body["twilio"]["previous_voice_url"] == OLD_VOICE_URL
    assert body["twilio"]["number_sid"] == twilio_emulator.state.find_number(NUMBER).sid  # type: ignore[union-attr]
    # The routing table routes it, with the overrides, and the store has it.
    route = bridge.app.state.routing.route(NUMBER)
    assert route is not None and (route.agent_id, route.source) == (agent, "table")
    assert route.first_message == "Hello from support"
    assert route.dynamic_variables == {"team": "support"}
    stored = bridge.app.state.store.get_number(NUMBER)
    assert stored.phone_number_id == p.phone_number_id == body["number"]["phone_number_id"]
    assert stored.agent_name == "Support"


async def test_import_without_twilio_leaves_twilio_alone(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        r = await c.post("/admin/numbers", json={"number": NUMBER, "configure_twilio": False})
    assert r.status_code == 201, r.text
    assert r.json()["twilio"] is None
    assert r.json()["number"]["agent_id"] is None
    assert _twilio_urls(twilio_emulator) == (OLD_VOICE_URL, None)
    assert _platform_number(platform_emulator) is not None


async def test_import_checks_the_given_twilio_sid(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    other = twilio_emulator.state.add_number("+15550004444")
    async with bridge.client() as c:
        r = await c.post("/admin/numbers", json={"number": NUMBER, "twilio_number_sid": other.sid})
        assert r.status_code == 422
        assert r.json()["error"]["field"] == "twilio_number_sid"
        r = await c.post(
            "/admin/numbers", json={"number": NUMBER, "twilio_number_sid": "PN" + "0" * 32}
        )
        assert r.status_code == 422
        assert r.json()["error"]["field"] == "twilio_number_sid"
    assert _platform_number(platform_emulator) is None


async def test_failed_agent_assignment_deletes_the_platform_import(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        agent = await _agent(c, "A")
        platform_emulator.state.inject_fault(
            Fault(path_prefix="/v1/convai/phone-numbers/", status=500, method="PATCH")
        )
        r = await c.post("/admin/numbers", json={"number": NUMBER, "agent_id": agent})
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["rollback"] == {"undone": ["platform.import"], "left_done": []}
    assert err["upstream"]["status"] == 500
    assert "platform.assign_agent failed" in err["message"]
    assert _platform_number(platform_emulator) is None
    assert _twilio_urls(twilio_emulator) == (OLD_VOICE_URL, None)
    assert bridge.app.state.routing.get(NUMBER) is None


async def test_store_failure_at_the_last_step_undoes_everything(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        agent = await _agent(c, "A")
        bridge.app.state.store.close()  # the real store, really closed: writes fail
        r = await c.post("/admin/numbers", json={"number": NUMBER, "agent_id": agent})
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["rollback"] == {
        "undone": ["twilio.configure", "platform.assign_agent", "platform.import"],
        "left_done": [],
    }
    assert _platform_number(platform_emulator) is None
    assert _twilio_urls(twilio_emulator) == (OLD_VOICE_URL, None)
    assert bridge.app.state.routing.get(NUMBER) is None


async def test_an_undo_that_fails_is_reported_as_left_done(
    bridge: BridgeUnderTest,
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="bridge.admin.service")
    async with bridge.client() as c:
        bridge.app.state.store.close()
        platform_emulator.state.inject_fault(
            Fault(path_prefix="/v1/convai/phone-numbers/", status=403, method="DELETE")
        )
        r = await c.post("/admin/numbers", json={"number": NUMBER})
    assert r.status_code == 503, r.text
    rollback = r.json()["error"]["rollback"]
    assert rollback == {"undone": ["twilio.configure"], "left_done": ["platform.import"]}
    assert "still done: platform.import" in r.json()["error"]["message"]
    assert _platform_number(platform_emulator) is not None  # exactly as reported
    assert _twilio_urls(twilio_emulator) == (OLD_VOICE_URL, None)
    assert any(r.getMessage() == "provisioning.undo_failed" for r in caplog.records)


# ---------------------------------------------------------------------------- update


async def test_reassign_and_overrides(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator
) -> None:
    async with bridge.client() as c:
        a, b = await _agent(c, "A"), await _agent(c, "B")
        assert (
            await c.post("/admin/numbers", json={"number": NUMBER, "agent_id": a})
        ).status_code == 201
        pnid = _platform_number(platform_emulator).phone_number_id

        r = await c.patch(f"/admin/numbers/{pnid}", json={"agent_id": b, "language": "de"})
        assert r.status_code == 200, r.text
        assert (r.json()["agent_id"], r.json()["agent_name"], r.json()["language"]) == (
            b,
            "B",
            "de",
        )
        assert _platform_number(platform_emulator).assigned_agent.agent_id == b
        assert bridge.app.state.routing.route(NUMBER).agent_id == b

        r = await c.patch(f"/admin/numbers/{NUMBER}", json={"agent_id": None, "language": None})
        assert r.status_code == 200, r.text
        assert r.json()["agent_id"] is None and r.json()["language"] is None
        assert _platform_number(platform_emulator).assigned_agent is None
        assert bridge.app.state.routing.route(NUMBER) is None  # no static route, no default

        # A platform failure leaves the bridge's table as it was.
        platform_emulator.state.inject_fault(
            Fault(path_prefix="/v1/convai/phone-numbers/", status=500, method="PATCH")
        )
        r = await c.patch(f"/admin/numbers/{NUMBER}", json={"agent_id": a})
        assert r.status_code == 502
        assert bridge.app.state.routing.get(NUMBER).agent_id is None


async def test_update_rolls_back_the_platform_when_the_store_fails(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator
) -> None:
    async with bridge.client() as c:
        a, b = await _agent(c, "A"), await _agent(c, "B")
        assert (
            await c.post("/admin/numbers", json={"number": NUMBER, "agent_id": a})
        ).status_code == 201
        bridge.app.state.store.close()
        r = await c.patch(f"/admin/numbers/{NUMBER}", json={"agent_id": b})
    assert r.status_code == 503
    assert r.json()["error"]["rollback"] == {"undone": ["platform.assign_agent"], "left_done": []}
    assert _platform_number(platform_emulator).assigned_agent.agent_id == a
    assert bridge.app.state.routing.route(NUMBER).agent_id == a


# ---------------------------------------------------------------------------- delete


async def test_delete_restores_twilio_when_asked(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        assert (await c.post("/admin/numbers", json={"number": NUMBER})).status_code == 201
        r = await c.delete(f"/admin/numbers/{NUMBER}", params={"restore_voice_url": OLD_VOICE_URL})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["platform_deleted"] is True
        assert body["twilio"]["voice_url"] == OLD_VOICE_URL
        assert body["twilio"]["previous_voice_url"] == f"{bridge.url}/twilio/inbound"
        assert (await c.get(f"/admin/numbers/{NUMBER}")).status_code == 404
    assert _platform_number(platform_emulator) is None
    assert _twilio_urls(twilio_emulator) == (OLD_VOICE_URL, None)
    assert bridge.app.state.store.get_number(NUMBER) is None


async def test_delete_without_restore_and_already_gone_on_the_platform(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        assert (await c.post("/admin/numbers", json={"number": NUMBER})).status_code == 201
        platform_emulator.state.delete_phone_number(
            _platform_number(platform_emulator).phone_number_id
        )
        r = await c.delete(f"/admin/numbers/{NUMBER}")
    assert r.status_code == 200, r.text
    assert r.json()["platform_deleted"] is False and r.json()["twilio"] is None
    assert bridge.app.state.routing.get(NUMBER) is None
    # Twilio was not asked to change: still pointing at the bridge.
    assert _twilio_urls(twilio_emulator)[0] == f"{bridge.url}/twilio/inbound"


async def test_failed_platform_delete_puts_everything_back(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with bridge.client() as c:
        assert (await c.post("/admin/numbers", json={"number": NUMBER})).status_code == 201
        platform_emulator.state.inject_fault(
            Fault(path_prefix="/v1/convai/phone-numbers/", status=403, method="DELETE")
        )
        r = await c.delete(f"/admin/numbers/{NUMBER}", params={"restore_voice_url": OLD_VOICE_URL})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["rollback"] == {
        "undone": ["twilio.restore", "routing.remove"],
        "left_done": [],
    }
    assert bridge.app.state.routing.get(NUMBER) is not None
    assert bridge.app.state.store.get_number(NUMBER) is not None
    assert _twilio_urls(twilio_emulator)[0] == f"{bridge.url}/twilio/inbound"
    assert _platform_number(platform_emulator) is not None


# ---------------------------------------------------------------------------- sync source


async def test_platform_numbers_feed_the_routing_sync(
    bridge: BridgeUnderTest, platform_emulator: PlatformEmulator
) -> None:
    async with bridge.client() as c:
        agent = await _agent(c, "A")
        assert (
            await c.post("/admin/numbers", json={"number": NUMBER, "agent_id": agent})
        ).status_code == 201
    # Reassigned on the platform directly: the next sync brings it in.
    other = platform_emulator.create_agent(name="Other")
    pnid = _platform_number(platform_emulator).phone_number_id
    async with platform_emulator.client() as p:
        await p.assign_agent(pnid, other)
        fetched = await platform_numbers(p)()
    assert [(n.number, n.phone_number_id, n.agent_id, n.provider) for n in fetched] == [
        (NUMBER, pnid, other, "twilio")
    ]
    routing = bridge.app.state.routing
    result = await routing.sync(platform_numbers(bridge.app.state.platform))
    assert result.ok and result.updated == 1
    assert routing.route(NUMBER).agent_id == other


def test_partial_failure_is_a_bridge_error() -> None:
    err = PartialFailure("x", StoreError("s"), ["a"], ["b"])
    assert isinstance(err, BridgeError)
    assert str(err) == "x failed: s; undone: a; still done: b"
