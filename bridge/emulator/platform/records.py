"""What the emulator stores: REST resources as given, and what each conversation received.

Resources are kept in the request's own typed form (so a GET returns what was created)
plus the few things the platform adds (ids, timestamps).  Credentials (Twilio token, SIP
passwords, secret values) are stored because the platform stores them, and never
returned by any endpoint.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bridge.platform.agents import ConversationalConfig, PlatformSettings
from bridge.platform.phone_numbers import (
    InboundSipTrunkConfigRequest,
    LivekitStack,
    OutboundSipTrunkConfigRequest,
    Provider,
    RegionConfigRequest,
)
from bridge.platform.workspace import ConvAISettings


class AgentRecord(msgspec.Struct, kw_only=True):
    agent_id: str
    name: str
    conversation_config: ConversationalConfig
    platform_settings: PlatformSettings | None = None
    workflow: dict[str, Any] | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    created_at: int
    updated_at: int
    avatar_url: str | None = None


class TwilioCredentials(msgspec.Struct, kw_only=True):
    sid: str
    token: str
    region_config: RegionConfigRequest | None = None


class PhoneNumberRecord(msgspec.Struct, kw_only=True):
    phone_number_id: str
    provider: Provider
    phone_number: str
    label: str
    supports_inbound: bool = True
    supports_outbound: bool = True
    agent_id: str | None = None
    twilio: TwilioCredentials | None = None
    inbound_trunk: InboundSipTrunkConfigRequest | None = None
    outbound_trunk: OutboundSipTrunkConfigRequest | None = None
    livekit_stack: LivekitStack = "standard"
    created_at: int


class SecretRecord(msgspec.Struct, kw_only=True):
    secret_id: str
    name: str
    value: str
    created_at: int


class InvocationRecord(msgspec.Struct, kw_only=True):
    id: str
    agent_id: str
    title: str
    created_at_unix_secs: int
    passed_count: int = 0
    failed_count: int = 0
    pending_count: int = 0
    cancelled_count: int = 0


class SettingsRecord(msgspec.Struct, kw_only=True):
    settings: ConvAISettings


# --------------------------------------------------------------------------- conversations


class ToolCallRecord(msgspec.Struct, kw_only=True):
    tool_call_id: str
    tool_name: str
    parameters: dict[str, Any]


class ToolResultRecord(msgspec.Struct, kw_only=True):
    tool_call_id: str
    result: str
    is_error: bool


class ConversationRecord(msgspec.Struct, kw_only=True):
    """What the emulator saw and did in one conversation (``GET /emulator/conversations/{id}``).

    Received: client data (dynamic variables, overrides), audio bytes per format, pongs,
    tool results, contextual updates, user messages.  Sent: audio events, interruptions,
    tool calls, pings.  ``close_*`` tells who ended it and how.
    """

    conversation_id: str
    agent_id: str
    input_format: str
    output_format: str
    started_at_unix: float
    ended_at_unix: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None  # "agent" | "client"
    # received
    client_data_received: bool = False
    dynamic_variables: dict[str, Any] = msgspec.field(default_factory=dict)
    conversation_config_override: dict[str, Any] = msgspec.field(default_factory=dict)
    custom_llm_extra_body: dict[str, Any] = msgspec.field(default_factory=dict)
    user_id: str | None = None
    source_info: dict[str, Any] = msgspec.field(default_factory=dict)
    audio_bytes: dict[str, int] = msgspec.field(default_factory=dict)
    audio_chunks: int = 0
    pongs: list[int] = msgspec.field(default_factory=list)
    unexpected_pongs: list[int] = msgspec.field(default_factory=list)
    tool_results: list[ToolResultRecord] = msgspec.field(default_factory=list)
    contextual_updates: list[str] = msgspec.field(default_factory=list)
    user_messages: list[str] = msgspec.field(default_factory=list)
    user_activity: int = 0
    unknown_types: list[str] = msgspec.field(default_factory=list)
    # derived from what was received
    utterances_ms: list[int] = msgspec.field(default_factory=list)
    last_rtt_ms: int | None = None
    # sent
    pings_sent: int = 0
    audio_events_sent: int = 0
    audio_bytes_sent: int = 0
    agent_responses: list[str] = msgspec.field(default_factory=list)
    interruptions: list[int] = msgspec.field(default_factory=list)
    tool_calls: list[ToolCallRecord] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)
