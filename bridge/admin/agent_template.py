"""The telephony-ready agent the admin API creates (``POST /admin/agents``).

What makes an agent fit for a phone line behind this bridge:

* ``ulaw_8000`` for both ASR input and TTS output, so Twilio's mu-law payloads pass
  through unchanged (no resampling, no transcoding, lowest latency);
* the platform's ``end_call`` system tool enabled, so the agent can hang up (the bridge
  sees a normal close and ends the phone call after the goodbye has played);
* the bridge's client tools declared (``transfer_call``, ``send_dtmf``: the bridge runs
  them when the agent calls them);
* ``first_message`` and ``language`` overridable, since numbers carry bridge-side
  overrides of both that the bridge sends in ``conversation_initiation_client_data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bridge.admin.models import CreateAgent
from bridge.call.tools import DTMF_TOOL, TRANSFER_TOOL
from bridge.platform.agents import (
    AgentOverridePermissions,
    AgentSettings,
    AsrConfig,
    ClientOverridePermissions,
    ClientToolConfig,
    ConversationalConfig,
    CreateAgentRequest,
    OverrideSettings,
    PlatformSettings,
    PromptConfig,
    TtsConfig,
)

TELEPHONY_FORMAT: Final = "ulaw_8000"
TELEPHONY_TAG: Final = "telephony-bridge"

# Client tools the bridge executes (handlers: bridge/telephony/tools.py; end_call is the
# platform's system tool instead).  Parameter schemas in the platform's client-tool format.
BRIDGE_CLIENT_TOOLS: Final[tuple[ClientToolConfig, ...]] = (
    ClientToolConfig(
        name=TRANSFER_TOOL,
        description=(
            "Transfer the caller to a phone number or SIP address. Use only when the caller "
            "asks for a person or a department you were told to transfer to."
        ),
        parameters={
            "type": "object",
            "properties": {
                "phone_number": {
                    "type": "string",
                    "description": "E.164 number to transfer to, e.g. +14155550100",
                },
                "sip_uri": {
                    "type": "string",
                    "description": "SIP URI to transfer to, e.g. sip:desk@pbx.example.com",
                },
                "reason": {"type": "string", "description": "Why the call is transferred"},
            },
            "required": [],
        },
        expects_response=True,
        response_timeout_secs=20,
    ),
    ClientToolConfig(
        name=DTMF_TOOL,
        description=(
            "Press keys on the phone keypad (e.g. to navigate a phone menu): the caller's "
            "line hears the tones."
        ),
        parameters={
            "type": "object",
            "properties": {
                "digits": {
                    "type": "string",
                    "description": "Keys to press: 0-9, *, #, A-D; w is a half-second pause",
                }
            },
            "required": ["digits"],
        },
        expects_response=True,
        response_timeout_secs=20,
    ),
)

_END_CALL: Final = {
    "end_call": {
        "type": "system",
        "name": "end_call",
        "description": "End the call when the conversation is over or the caller says goodbye.",
        "params": {"system_tool_type": "end_call"},
    }
}


def telephony_agent(
    req: CreateAgent, client_tools: Sequence[ClientToolConfig] = BRIDGE_CLIENT_TOOLS
) -> CreateAgentRequest:
    """The platform create-agent request for ``req``."""
    agent = AgentSettings(
        language=req.language,
        prompt=PromptConfig(prompt=req.prompt, built_in_tools=_END_CALL, tools=list(client_tools)),
    )
    if req.first_message is not None:
        agent.first_message = req.first_message
    tts = TtsConfig(agent_output_audio_format=TELEPHONY_FORMAT)
    if req.voice_id is not None:
        tts.voice_id = req.voice_id
    return CreateAgentRequest(
        name=req.name,
        tags=[TELEPHONY_TAG],
        conversation_config=ConversationalConfig(
            asr=AsrConfig(user_input_audio_format=TELEPHONY_FORMAT),
            tts=tts,
            agent=agent,
        ),
        platform_settings=PlatformSettings(
            overrides=OverrideSettings(
                conversation_config_override=ClientOverridePermissions(
                    agent=AgentOverridePermissions(first_message=True, language=True)
                )
            )
        ),
    )
