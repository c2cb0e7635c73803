"""`bridge agents …` against a live bridge and the platform emulator."""

from __future__ import annotations

import json

from bridge.call.tools import ToolRegistry
from bridge.config import TelephonyConfig
from bridge.telephony.tools import TelephonyTools
from tests.commands.conftest import Cli
from tests.fixtures.platform_emulator import PlatformEmulator


async def test_create_makes_a_telephony_ready_agent(
    cli: Cli, platform_emulator: PlatformEmulator
) -> None:
    rc, out, err = await cli(
        "agents",
        "create",
        "--name",
        "Front desk",
        "--prompt",
        "You answer the phone.",
        "--first-message",
        "Hello!",
        "--json",
    )
    assert (rc, err) == (0, "")
    created = json.loads(out)
    assert created["name"] == "Front desk"

    agent = platform_emulator.state.get_agent(created["agent_id"])
    cc = agent.conversation_config
    assert cc.asr.user_input_audio_format == "ulaw_8000"
    assert cc.tts.agent_output_audio_format == "ulaw_8000"
    assert cc.agent.first_message == "Hello!"
    prompt = cc.agent.prompt
    assert prompt.prompt == "You answer the phone."
    assert prompt.built_in_tools["end_call"]["params"]["system_tool_type"] == "end_call"
    tools = {t.name: t for t in prompt.tools}
    assert set(tools) == {"transfer_call", "send_dtmf"}
    assert tools["send_dtmf"].parameters["required"] == ["digits"]
    # Every declared tool has a handler in the bridge's tool registry.
    registry = TelephonyTools(TelephonyConfig()).register(ToolRegistry())
    assert set(tools) <= registry.names
    allowed = agent.platform_settings.overrides.conversation_config_override.agent
    assert (allowed.first_message, allowed.language) == (True, True)
    assert "telephony-bridge" in agent.tags


async def test_list_shows_a_table_and_json(cli: Cli) -> None:
    rc, _, _ = await cli("agents", "create", "--name", "Billing", "--prompt", "Bills.")
    assert rc == 0
    rc, out, err = await cli("agents", "list")
    assert (rc, err) == (0, "")
    assert "Agents" in out and "Billing" in out and "agent_id" in out
    rc, out, _ = await cli("agents", "list", "--json")
    names = [a["name"] for a in json.loads(out)["items"]]
    assert "Billing" in names


async def test_create_error_is_one_line_naming_the_field(cli: Cli) -> None:
    rc, out, err = await cli(
        "agents", "create", "--name", "X", "--prompt", "P", "--voice-id", "a b"
    )
    assert rc == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("bridge agents: error: voice_id: ") and "(HTTP 422)" in err
