"""A fresh agent from POST /admin/agents declares the telephony client tools."""

from __future__ import annotations

from bridge.platform.agents import ClientToolConfig
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator
from tests.telephony.conftest import running_phone


async def test_created_agent_declares_transfer_call_and_send_dtmf(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator
) -> None:
    async with running_phone(platform_emulator, twilio_emulator) as p:
        r = await p.admin("POST", "/agents", {"name": "Front desk", "prompt": "Be helpful."})
        assert r.status_code == 201, r.text
        agent_id = r.json()["agent_id"]
        async with p.platform.client() as client:
            agent = await client.get_agent(agent_id)
        prompt = agent.conversation_config.agent.prompt  # type: ignore[union-attr]
        tools = {t.name: t for t in prompt.tools if isinstance(t, ClientToolConfig)}  # type: ignore[union-attr]
        assert {"transfer_call", "send_dtmf"} <= set(tools)
        assert [t.name for t in prompt.tools].count("send_dtmf") == 1  # type: ignore[union-attr]
        assert tools["send_dtmf"].parameters["required"] == ["digits"]  # type: ignore[index]
        props = tools["transfer_call"].parameters["properties"]  # type: ignore[index]
        assert {"phone_number", "sip_uri", "reason"} <= set(props)
        # Every declared client tool has a handler in the running bridge.
        registry = p.app.state.services.tools
        assert set(tools) <= registry.names
