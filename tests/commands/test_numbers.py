"""`bridge numbers …` against a live bridge and both emulators."""

from __future__ import annotations

import json

import pytest

from tests.admin.stack import NUMBER, OLD_VOICE_URL, BridgeUnderTest, free_port
from tests.commands.conftest import Cli
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator


async def _agent(cli: Cli, name: str) -> str:
    rc, out, err = await cli("agents", "create", "--name", name, "--prompt", "Hi.", "--json")
    assert rc == 0, err
    agent_id: str = json.loads(out)["agent_id"]
    return agent_id


async def test_number_lifecycle(
    cli: Cli,
    bridge: BridgeUnderTest,
    platform_emulator: PlatformEmulator,
    twilio_emulator: TwilioEmulator,
) -> None:
    a, b = await _agent(cli, "Alpha"), await _agent(cli, "Beta")

    rc, out, err = await cli(
        "numbers", "import", NUMBER, "--agent", a, "--label", "Main", "--var", "team=sales"
    )
    assert (rc, err) == (0, "")
    assert NUMBER in out and f"{bridge.url}/twilio/inbound" in out and OLD_VOICE_URL in out
    tw = twilio_emulator.state.find_number(NUMBER)
    assert tw is not None and tw.voice_url == f"{bridge.url}/twilio/inbound"

    rc, out, _ = await cli("numbers", "list", "--json")
    (item,) = json.loads(out)["items"]
    assert (item["number"], item["label"], item["agent_id"]) == (NUMBER, "Main", a)
    assert item["dynamic_variables"] == {"team": "sales"}

    rc, out, _ = await cli("numbers", "list")
    assert rc == 0 and NUMBER in out and "Alpha" in out and "dynamic_variables" in out

    rc, out, _ = await cli("numbers", "assign", item["phone_number_id"], b)
    assert rc == 0 and "Beta" in out
    assert bridge.app.state.routing.route(NUMBER).agent_id == b

    rc, out, _ = await cli(
        "numbers", "update", NUMBER, "--first-message", "Welcome!", "--clear", "dynamic_variables"
    )
    assert rc == 0
    rc, out, _ = await cli("numbers", "show", NUMBER, "--json")
    shown = json.loads(out)
    assert (shown["first_message"], shown["dynamic_variables"]) == ("Welcome!", {})

    rc, out, _ = await cli("numbers", "unassign", NUMBER, "--json")
    assert rc == 0 and json.loads(out)["agent_id"] is None

    rc, out, err = await cli("numbers", "delete", NUMBER, "--restore-voice-url", OLD_VOICE_URL)
    assert (rc, err) == (0, "")
    assert "Deleted +15550001111" in out and OLD_VOICE_URL in out
    assert twilio_emulator.state.find_number(NUMBER).voice_url == OLD_VOICE_URL  # type: ignore[union-attr]
    assert platform_emulator.state.list_phone_numbers() == []
    rc, out, _ = await cli("numbers", "list", "--json")
    assert json.loads(out) == {"items": []}


async def test_import_without_twilio(cli: Cli, twilio_emulator: TwilioEmulator) -> None:
    rc, out, _ = await cli("numbers", "import", NUMBER, "--no-twilio")
    assert rc == 0 and "Twilio number not changed" in out
    assert twilio_emulator.state.find_number(NUMBER).voice_url == OLD_VOICE_URL  # type: ignore[union-attr]


async def test_errors_are_one_line_naming_the_field(cli: Cli) -> None:
    # The field as the CLI user gives it: the flag where the API's name differs.
    for argv, field, status in (
        (("numbers", "import", "4155550100"), "number", 422),
        (("numbers", "import", NUMBER, "--agent", "agent_missing"), "--agent", 422),
        (("numbers", "import", NUMBER, "--fallback", "12"), "--fallback", 422),
        (("numbers", "show", "+15550009999"), "id", 404),
        (("numbers", "assign", "+15550009999", "agent_x"), "id", 404),
        (("numbers", "update", "+15550009999", "--language", "en"), "id", 404),
        (("numbers", "delete", "+15550009999"), "id", 404),
    ):
        rc, out, err = await cli(*argv)
        assert rc == 1 and out == "", argv
        assert err.count("\n") == 1, err
        assert err.startswith(f"bridge numbers: error: {field}: "), err
        assert f"(HTTP {status})" in err, err


async def test_errors_tell_cli_users_the_flag_not_the_api_field(cli: Cli) -> None:
    # The API says "set configure_twilio to false"; the CLI's way is --no-twilio.
    rc, _, err = await cli("numbers", "import", "+15550003333")
    assert rc == 1
    assert "pass --no-twilio to import it without configuring Twilio" in err, err
    assert "configure_twilio" not in err
    rc, _, err = await cli("numbers", "import", NUMBER, "--twilio-sid", "PN" + "0" * 32)
    assert rc == 1 and err.startswith("bridge numbers: error: --twilio-sid: "), err


async def test_error_line_is_readable(cli: Cli) -> None:
    rc, _, err = await cli("numbers", "import", "4155550100")
    assert rc == 1
    assert err == (
        "bridge numbers: error: number: Expected an E.164 number such as +14155550100 (HTTP 422)\n"
    )


async def test_duplicate_import_is_a_409(cli: Cli) -> None:
    assert (await cli("numbers", "import", NUMBER))[0] == 0
    rc, _, err = await cli("numbers", "import", NUMBER)
    assert rc == 1 and "number: " in err and "(HTTP 409)" in err


async def test_bad_var_is_refused_before_any_request(cli: Cli) -> None:
    rc, _, err = await cli("numbers", "import", NUMBER, "--var", "novalue")
    assert rc == 1 and "--var: expected NAME=VALUE" in err


async def test_missing_token_and_unreachable_bridge(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, _, err = await cli("numbers", "list", url=f"http://127.0.0.1:{free_port()}")
    assert rc == 1 and err.count("\n") == 1 and "cannot reach the bridge admin API" in err
    monkeypatch.delenv("BRIDGE_ADMIN_TOKEN")
    rc, _, err = await cli("numbers", "list")
    assert rc == 1 and "BRIDGE_ADMIN_TOKEN" in err


async def test_wrong_token_is_401(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_ADMIN_TOKEN", "not-the-token-but-long-enough-to-load")
    rc, _, err = await cli("numbers", "list")
    assert rc == 1 and "authorization: " in err and "(HTTP 401)" in err
