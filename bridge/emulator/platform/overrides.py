"""Checks on ``conversation_initiation_client_data`` before a conversation starts.

The platform applies an override only where the agent's
``platform_settings.overrides.conversation_config_override`` allows it, and refuses the
conversation otherwise; dynamic variable names starting with ``system__`` are reserved
for the platform.  Each check returns the reason to close with, or ``None``.
"""

from __future__ import annotations

from bridge.convai.messages import ConversationInitiationClientData
from bridge.platform.agents import (
    AgentOverridePermissions,
    ClientOverridePermissions,
    OverrideSettings,
    PromptOverridePermissions,
    TtsOverridePermissions,
)

RESERVED_PREFIX = "system__"


def _allowed(flag: object) -> bool:
    return flag is True


def override_problem(
    data: ConversationInitiationClientData, permissions: OverrideSettings
) -> str | None:
    """Why these overrides are refused by this agent, or ``None`` when all are allowed."""
    conv = permissions.conversation_config_override or ClientOverridePermissions()
    agent_p = conv.agent or AgentOverridePermissions()
    prompt_p = agent_p.prompt or PromptOverridePermissions()
    tts_p = conv.tts or TtsOverridePermissions()
    wanted: list[tuple[str, bool]] = []
    override = data.conversation_config_override
    if override is not None:
        if override.agent is not None:
            a = override.agent
            if a.first_message is not None:
                wanted.append(("agent.first_message", _allowed(agent_p.first_message)))
            if a.language is not None:
                wanted.append(("agent.language", _allowed(agent_p.language)))
            if a.prompt is not None and a.prompt.prompt is not None:
                wanted.append(("agent.prompt.prompt", _allowed(prompt_p.prompt)))
        if override.tts is not None and override.tts.voice_id is not None:
            wanted.append(("tts.voice_id", _allowed(tts_p.voice_id)))
    extra = data.custom_llm_extra_body
    if extra is not None and (extra.temperature is not None or extra.max_tokens is not None):
        wanted.append(("custom_llm_extra_body", _allowed(permissions.custom_llm_extra_body)))
    refused = [name for name, ok in wanted if not ok]
    if refused:
        return f"override of {', '.join(refused)} is not allowed by the agent's config"
    return None


def dynamic_variable_problem(data: ConversationInitiationClientData) -> str | None:
    reserved = sorted(k for k in (data.dynamic_variables or {}) if k.startswith(RESERVED_PREFIX))
    if reserved:
        return f"dynamic variable names starting with {RESERVED_PREFIX!r} are reserved: {', '.join(reserved)}"
    return None
