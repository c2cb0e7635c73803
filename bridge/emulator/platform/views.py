"""Response views of stored records: what the platform's GET endpoints show.

Pure functions from the stored (request-shaped) records to the seed's response models:
defaults filled in, credentials reduced to ``has_auth_credentials`` and a username.
"""

from __future__ import annotations

import msgspec

from bridge.emulator.platform.records import InvocationRecord
from bridge.platform.agents import AgentSettings, AsrConfig, ConversationalConfig, TtsConfig
from bridge.platform.common import DEFAULT_AUDIO_FORMAT, ResourceAccessInfo
from bridge.platform.invocations import TestInvocationSummary
from bridge.platform.phone_numbers import (
    InboundSipTrunkConfigRequest,
    InboundSipTrunkConfigResponse,
    OutboundSipTrunkConfigRequest,
    OutboundSipTrunkConfigResponse,
    SipTrunkCredentials,
)

OWNER = ResourceAccessInfo(
    is_creator=True, creator_name="Emulator", creator_email="emulator@localhost", role="admin"
)


def effective_config(config: ConversationalConfig) -> ConversationalConfig:
    """The config as the platform reports it: audio formats and agent basics filled in."""
    asr = config.asr or AsrConfig()
    tts = config.tts or TtsConfig()
    agent = config.agent or AgentSettings()
    return msgspec.structs.replace(
        config,
        asr=msgspec.structs.replace(
            asr, user_input_audio_format=asr.user_input_audio_format or DEFAULT_AUDIO_FORMAT
        ),
        tts=msgspec.structs.replace(
            tts, agent_output_audio_format=tts.agent_output_audio_format or DEFAULT_AUDIO_FORMAT
        ),
        agent=msgspec.structs.replace(
            agent,
            first_message=agent.first_message if agent.first_message is not msgspec.UNSET else "",
            language=agent.language or "en",
        ),
    )


def _has_password(creds: SipTrunkCredentials | msgspec.UnsetType | None) -> bool:
    return isinstance(creds, SipTrunkCredentials) and isinstance(creds.password, str)


def _username(creds: SipTrunkCredentials | msgspec.UnsetType | None) -> str | None:
    return creds.username if isinstance(creds, SipTrunkCredentials) else None


def outbound_view(
    cfg: OutboundSipTrunkConfigRequest | None,
) -> OutboundSipTrunkConfigResponse | None:
    if cfg is None:
        return None
    return OutboundSipTrunkConfigResponse(
        address=cfg.address,
        transport=cfg.transport or "auto",
        media_encryption=cfg.media_encryption or "allowed",
        headers=cfg.headers or {},
        has_auth_credentials=_has_password(cfg.credentials),
        username=_username(cfg.credentials),
        has_outbound_trunk=True,
    )


def inbound_view(cfg: InboundSipTrunkConfigRequest | None) -> InboundSipTrunkConfigResponse | None:
    if cfg is None:
        return None
    return InboundSipTrunkConfigResponse(
        allowed_addresses=cfg.allowed_addresses or [],
        allowed_numbers=cfg.allowed_numbers or None,
        media_encryption=cfg.media_encryption or "allowed",
        has_auth_credentials=_has_password(cfg.credentials),
        username=_username(cfg.credentials),
        remote_domains=cfg.remote_domains or None,
    )


def invocation_view(inv: InvocationRecord) -> TestInvocationSummary:
    return TestInvocationSummary(
        id=inv.id,
        created_at_unix_secs=inv.created_at_unix_secs,
        test_run_count=inv.passed_count
        + inv.failed_count
        + inv.pending_count
        + inv.cancelled_count,
        passed_count=inv.passed_count,
        failed_count=inv.failed_count,
        pending_count=inv.pending_count,
        cancelled_count=inv.cancelled_count,
        title=inv.title,
        access_info=OWNER,
    )
