"""Workspace models: Convai settings (get/update) and workspace secrets (list/create/update)."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from bridge.platform.phone_numbers import LivekitStack, Provider

WebhookEventType = Literal["transcript", "audio", "call_initiation_failure"]
AccessLevel = Literal["admin", "editor", "commenter", "viewer"]

# --------------------------------------------------------------------------- settings


class SecretLocator(msgspec.Struct, kw_only=True):
    """A reference to a stored secret, in place of a literal header value."""

    secret_id: str


class InitiationWebhook(msgspec.Struct, kw_only=True):
    """Webhook the platform calls for ``conversation_initiation_client_data``."""

    url: str
    request_headers: dict[str, str | SecretLocator]


class ConvAIWebhooks(msgspec.Struct, kw_only=True, omit_defaults=True):
    post_call_webhook_id: str | UnsetType | None = UNSET
    events: list[WebhookEventType] | UnsetType = UNSET
    send_audio: bool | UnsetType | None = UNSET


class ConvAISettings(msgspec.Struct, kw_only=True):
    """``GET /v1/convai/settings`` (and the PATCH response)."""

    conversation_initiation_client_data_webhook: InitiationWebhook | None = None
    webhooks: ConvAIWebhooks = msgspec.field(default_factory=ConvAIWebhooks)
    can_use_mcp_servers: bool = False
    rag_retention_period_days: int = 10
    default_livekit_stack: LivekitStack = "standard"


class PatchConvAISettingsRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    conversation_initiation_client_data_webhook: InitiationWebhook | UnsetType | None = UNSET
    webhooks: ConvAIWebhooks | UnsetType = UNSET
    can_use_mcp_servers: bool | UnsetType = UNSET
    rag_retention_period_days: int | UnsetType = UNSET
    default_livekit_stack: LivekitStack | UnsetType = UNSET


# --------------------------------------------------------------------------- secrets


class DependentAvailableResource(msgspec.Struct, kw_only=True, tag_field="type", tag="available"):
    id: str
    name: str
    created_at_unix_secs: int
    access_level: AccessLevel


class DependentUnknownResource(msgspec.Struct, kw_only=True, tag_field="type", tag="unknown"):
    pass


DependentResource = DependentAvailableResource | DependentUnknownResource


class DependentPhoneNumber(msgspec.Struct, kw_only=True):
    phone_number_id: str
    phone_number: str
    label: str
    provider: Provider


class SecretDependencies(msgspec.Struct, kw_only=True):
    tools: list[DependentResource] = msgspec.field(default_factory=list)
    agents: list[DependentResource] = msgspec.field(default_factory=list)
    others: list[Literal["conversation_initiation_webhook"]] = msgspec.field(default_factory=list)
    phone_numbers: list[DependentPhoneNumber] = msgspec.field(default_factory=list)


class StoredSecret(msgspec.Struct, kw_only=True, tag_field="type", tag="stored"):
    secret_id: str
    name: str
    used_by: SecretDependencies


class SecretsList(msgspec.Struct, kw_only=True):
    secrets: list[StoredSecret]


class CreateSecretRequest(msgspec.Struct, kw_only=True, tag_field="type", tag="new"):
    name: str
    value: str


class UpdateSecretRequest(msgspec.Struct, kw_only=True, tag_field="type", tag="update"):
    name: str
    value: str


class SecretResponse(msgspec.Struct, kw_only=True, tag_field="type", tag="stored"):
    """Response of create and update: the secret's id and name, never its value."""

    secret_id: str
    name: str
