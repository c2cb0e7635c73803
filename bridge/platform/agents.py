"""Agent models: create (seed 004, ``Body_Create_Agent``), get, list, signed URL.

The seed's ``conversation_config`` is large.  The parts a telephony bridge acts on are
typed all the way down (ASR input and TTS output audio formats, first message,
language, prompt, client tools, override permissions, auth); deeper subtrees the bridge
never reads (turn timing, knowledge base, workflow, widget styling ...) are carried as
JSON objects, so a config round-trips through create → get without loss at the levels
modelled here.  Every request field defaults to UNSET and is then not sent.

``conversation_config.agent.emulator`` is not a platform field: it carries the emulator's
behaviour for an agent (see ``docs/emulator.md``) and is ignored by anything else.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from bridge.platform.common import AudioFormatName, JsonObject, ResourceAccessInfo
from bridge.platform.phone_numbers import PhoneNumber


class AsrConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    quality: Literal["high"] | UnsetType = UNSET
    provider: Literal["elevenlabs"] | UnsetType = UNSET
    user_input_audio_format: AudioFormatName | UnsetType = UNSET
    keywords: list[str] | UnsetType = UNSET


class TtsConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    model_id: str | UnsetType = UNSET
    voice_id: str | UnsetType = UNSET
    supported_voices: list[JsonObject] | UnsetType = UNSET
    agent_output_audio_format: AudioFormatName | UnsetType = UNSET
    optimize_streaming_latency: str | int | UnsetType = UNSET
    stability: float | UnsetType = UNSET
    speed: float | UnsetType = UNSET
    similarity_boost: float | UnsetType = UNSET
    pronunciation_dictionary_locators: list[JsonObject] | UnsetType = UNSET


class ConversationSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    text_only: bool | UnsetType = UNSET
    max_duration_seconds: int | UnsetType = UNSET
    client_events: list[str] | UnsetType = UNSET


class _ToolBase(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    description: str | UnsetType = UNSET
    response_timeout_secs: int | UnsetType = UNSET
    disable_interruptions: bool | UnsetType = UNSET
    force_pre_tool_speech: bool | UnsetType = UNSET
    assignments: list[JsonObject] | UnsetType = UNSET
    tool_call_sound: str | UnsetType | None = UNSET
    tool_call_sound_behavior: Literal["auto", "always"] | UnsetType = UNSET


class ClientToolConfig(_ToolBase, tag_field="type", tag="client"):
    """A tool the *client* (our bridge) executes: ``client_tool_call`` on the socket."""

    description: str  # required for client tools (seed)
    parameters: JsonObject | UnsetType | None = UNSET
    expects_response: bool | UnsetType = UNSET
    dynamic_variables: JsonObject | UnsetType = UNSET
    execution_mode: Literal["immediate", "post_tool_speech", "async"] | UnsetType = UNSET


class WebhookToolConfig(_ToolBase, tag_field="type", tag="webhook"):
    description: str
    api_schema: JsonObject
    dynamic_variables: JsonObject | UnsetType = UNSET
    execution_mode: Literal["immediate", "post_tool_speech", "async"] | UnsetType = UNSET


class SystemToolConfig(_ToolBase, tag_field="type", tag="system"):
    params: JsonObject


class ApiIntegrationWebhookToolConfig(_ToolBase, tag_field="type", tag="api_integration_webhook"):
    description: str
    api_integration_id: str
    api_integration_connection_id: str
    api_schema_overrides: JsonObject | UnsetType | None = UNSET


ToolConfig = (
    ClientToolConfig | WebhookToolConfig | SystemToolConfig | ApiIntegrationWebhookToolConfig
)


class PromptConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    prompt: str | UnsetType = UNSET
    llm: str | UnsetType = UNSET
    reasoning_effort: str | UnsetType | None = UNSET
    thinking_budget: int | UnsetType | None = UNSET
    temperature: float | UnsetType = UNSET
    max_tokens: int | UnsetType = UNSET
    tool_ids: list[str] | UnsetType = UNSET
    built_in_tools: JsonObject | UnsetType = UNSET
    mcp_server_ids: list[str] | UnsetType = UNSET
    native_mcp_server_ids: list[str] | UnsetType = UNSET
    knowledge_base: list[JsonObject] | UnsetType = UNSET
    custom_llm: JsonObject | UnsetType | None = UNSET
    ignore_default_personality: bool | UnsetType | None = UNSET
    rag: JsonObject | UnsetType = UNSET
    timezone: str | UnsetType | None = UNSET
    backup_llm_config: JsonObject | UnsetType = UNSET
    tools: list[ToolConfig] | UnsetType = UNSET


class AgentSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``conversation_config.agent`` (the seed's ``AgentConfigAPIModel``)."""

    first_message: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    dynamic_variables: JsonObject | UnsetType = UNSET
    disable_first_message_interruptions: bool | UnsetType = UNSET
    prompt: PromptConfig | UnsetType = UNSET
    # Emulator extension, not a platform field (see the module docstring).
    emulator: JsonObject | UnsetType = UNSET


class ConversationalConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    asr: AsrConfig | UnsetType = UNSET
    turn: JsonObject | UnsetType = UNSET
    tts: TtsConfig | UnsetType = UNSET
    conversation: ConversationSettings | UnsetType = UNSET
    language_presets: JsonObject | UnsetType = UNSET
    vad: JsonObject | UnsetType = UNSET
    agent: AgentSettings | UnsetType = UNSET


# --- platform_settings: the parts with an effect on a conversation are typed.


class PromptOverridePermissions(msgspec.Struct, kw_only=True, omit_defaults=True):
    prompt: bool | UnsetType = UNSET
    llm: bool | UnsetType = UNSET
    native_mcp_server_ids: bool | UnsetType = UNSET


class AgentOverridePermissions(msgspec.Struct, kw_only=True, omit_defaults=True):
    first_message: bool | UnsetType = UNSET
    language: bool | UnsetType = UNSET
    prompt: PromptOverridePermissions | UnsetType = UNSET


class TtsOverridePermissions(msgspec.Struct, kw_only=True, omit_defaults=True):
    voice_id: bool | UnsetType = UNSET
    stability: bool | UnsetType = UNSET
    speed: bool | UnsetType = UNSET
    similarity_boost: bool | UnsetType = UNSET


class ConversationOverridePermissions(msgspec.Struct, kw_only=True, omit_defaults=True):
    text_only: bool | UnsetType = UNSET


class ClientOverridePermissions(msgspec.Struct, kw_only=True, omit_defaults=True):
    turn: JsonObject | UnsetType = UNSET
    tts: TtsOverridePermissions | UnsetType = UNSET
    conversation: ConversationOverridePermissions | UnsetType = UNSET
    agent: AgentOverridePermissions | UnsetType = UNSET


class OverrideSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Which fields a client may override in ``conversation_initiation_client_data``."""

    conversation_config_override: ClientOverridePermissions | UnsetType = UNSET
    custom_llm_extra_body: bool | UnsetType = UNSET
    enable_conversation_initiation_client_data_from_webhook: bool | UnsetType = UNSET


class AuthSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``enable_auth: true`` makes the agent private: a signed URL is required."""

    enable_auth: bool | UnsetType = UNSET
    allowlist: list[JsonObject] | UnsetType = UNSET
    shareable_token: str | UnsetType | None = UNSET


class PlatformSettings(msgspec.Struct, kw_only=True, omit_defaults=True):
    evaluation: JsonObject | UnsetType = UNSET
    widget: JsonObject | UnsetType = UNSET
    data_collection: JsonObject | UnsetType = UNSET
    overrides: OverrideSettings | UnsetType = UNSET
    workspace_overrides: JsonObject | UnsetType = UNSET
    testing: JsonObject | UnsetType = UNSET
    archived: bool | UnsetType = UNSET
    auth: AuthSettings | UnsetType = UNSET
    call_limits: JsonObject | UnsetType = UNSET
    privacy: JsonObject | UnsetType = UNSET


class CreateAgentRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    conversation_config: ConversationalConfig
    platform_settings: PlatformSettings | UnsetType | None = UNSET
    workflow: JsonObject | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET


class CreateAgentResponse(msgspec.Struct, kw_only=True):
    agent_id: str


class AgentMetadata(msgspec.Struct, kw_only=True):
    created_at_unix_secs: int
    updated_at_unix_secs: int


class Agent(msgspec.Struct, kw_only=True):
    """``GET /v1/convai/agents/{agent_id}``."""

    agent_id: str
    name: str
    conversation_config: ConversationalConfig
    metadata: AgentMetadata
    platform_settings: PlatformSettings | None = None
    phone_numbers: list[PhoneNumber] = msgspec.field(default_factory=list)
    workflow: JsonObject | None = None
    access_info: ResourceAccessInfo | None = None
    tags: list[str] = msgspec.field(default_factory=list)


class AgentSummary(msgspec.Struct, kw_only=True):
    agent_id: str
    name: str
    voice_id: str
    tags: list[str]
    created_at_unix_secs: int
    updated_at_unix_secs: int
    access_info: ResourceAccessInfo
    last_call_time_unix_secs: int | None = None
    archived: bool = False


class AgentsPage(msgspec.Struct, kw_only=True):
    """``GET /v1/convai/agents`` (cursor pagination)."""

    agents: list[AgentSummary]
    has_more: bool
    next_cursor: str | None = None


class SignedUrlResponse(msgspec.Struct, kw_only=True):
    signed_url: str
