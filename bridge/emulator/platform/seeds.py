"""Agents every emulator starts with, so ``bridge serve`` without an upstream has working
agents out of the box.  Ids are fixed (documented in ``docs/emulator.md``); an agent
already present (from a persisted state file) is left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from bridge.platform.agents import CreateAgentRequest

if TYPE_CHECKING:
    from bridge.emulator.platform.state import PlatformState

_ALLOW_OVERRIDES: dict[str, Any] = {
    "overrides": {
        "conversation_config_override": {
            "agent": {"first_message": True, "language": True, "prompt": {"prompt": True}},
            "tts": {"voice_id": True},
        },
        "custom_llm_extra_body": True,
    }
}

_GREETING = "Hello, this is the emulator. Say something and I will play it back."


def _agent(
    name: str,
    fmt: str,
    emulator: dict[str, Any],
    first_message: str = "",
    private: bool = False,
) -> CreateAgentRequest:
    settings = dict(_ALLOW_OVERRIDES)
    if private:
        settings["auth"] = {"enable_auth": True}
    return msgspec.convert(
        {
            "name": name,
            "tags": ["emulator"],
            "conversation_config": {
                "asr": {"user_input_audio_format": fmt},
                "tts": {"agent_output_audio_format": fmt},
                "agent": {
                    "first_message": first_message,
                    "language": "en",
                    "prompt": {"prompt": "Emulated agent: no language model behind it."},
                    "emulator": emulator,
                },
            },
            "platform_settings": settings,
        },
        CreateAgentRequest,
    )


SEEDED_AGENTS: dict[str, CreateAgentRequest] = {
    "agent_emulator_echo": _agent("Emulator echo", "pcm_16000", {"mode": "echo"}, _GREETING),
    "agent_emulator_echo_ulaw": _agent(
        "Emulator echo (ulaw_8000)", "ulaw_8000", {"mode": "echo"}, _GREETING
    ),
    "agent_emulator_loopback": _agent(
        "Emulator loopback", "pcm_16000", {"mode": "loopback", "greeting": False}
    ),
    "agent_emulator_loopback_ulaw": _agent(
        "Emulator loopback (ulaw_8000)", "ulaw_8000", {"mode": "loopback", "greeting": False}
    ),
    "agent_emulator_silent": _agent(
        "Emulator silent", "pcm_16000", {"mode": "silent", "greeting": False}
    ),
    "agent_emulator_goodbye": _agent(
        "Emulator goodbye",
        "pcm_16000",
        {"mode": "silent", "steps": [{"type": "end_call"}]},
        "Thanks for calling. Goodbye!",
    ),
    "agent_emulator_private": _agent(
        "Emulator echo (private: signed URL required)",
        "pcm_16000",
        {"mode": "echo"},
        _GREETING,
        private=True,
    ),
}


def seed_agents(state: PlatformState) -> None:
    for agent_id, request in SEEDED_AGENTS.items():
        if agent_id not in state.agents:
            state.create_agent(request, agent_id=agent_id)
