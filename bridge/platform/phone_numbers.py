"""Phone-number models (seed 000: import, list, get, update, delete).

Requests are tagged by ``provider`` (``twilio`` or ``sip_trunk``), as the official SDK
sends them; responses likewise, so a list decodes into the right variant per item.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

TwilioRegionId = Literal["us1", "ie1", "au1"]
TwilioEdgeLocation = Literal[
    "ashburn",
    "dublin",
    "frankfurt",
    "sao-paulo",
    "singapore",
    "sydney",
    "tokyo",
    "umatilla",
    "roaming",
]
SipMediaEncryption = Literal["disabled", "allowed", "required"]
SipTransport = Literal["auto", "udp", "tcp", "tls"]
LivekitStack = Literal["standard", "static"]
Provider = Literal["twilio", "sip_trunk"]

# --------------------------------------------------------------------------- requests


class RegionConfigRequest(msgspec.Struct, kw_only=True):
    region_id: TwilioRegionId
    token: str
    edge_location: TwilioEdgeLocation


class SipTrunkCredentials(msgspec.Struct, kw_only=True, omit_defaults=True):
    username: str
    password: str | UnsetType | None = UNSET


class InboundSipTrunkConfigRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    allowed_addresses: list[str] | UnsetType | None = UNSET
    allowed_numbers: list[str] | UnsetType | None = UNSET
    media_encryption: SipMediaEncryption | UnsetType = UNSET
    credentials: SipTrunkCredentials | UnsetType | None = UNSET
    remote_domains: list[str] | UnsetType | None = UNSET


class OutboundSipTrunkConfigRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    address: str
    transport: SipTransport | UnsetType = UNSET
    media_encryption: SipMediaEncryption | UnsetType = UNSET
    headers: dict[str, str] | UnsetType = UNSET
    credentials: SipTrunkCredentials | UnsetType | None = UNSET


class CreateTwilioPhoneNumberRequest(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="provider", tag="twilio"
):
    phone_number: str
    label: str
    sid: str
    token: str
    supports_inbound: bool | UnsetType = UNSET
    supports_outbound: bool | UnsetType = UNSET
    region_config: RegionConfigRequest | UnsetType | None = UNSET


class CreateSipTrunkPhoneNumberRequest(
    msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="provider", tag="sip_trunk"
):
    phone_number: str
    label: str
    supports_inbound: bool | UnsetType = UNSET
    supports_outbound: bool | UnsetType = UNSET
    inbound_trunk_config: InboundSipTrunkConfigRequest | UnsetType | None = UNSET
    outbound_trunk_config: OutboundSipTrunkConfigRequest | UnsetType | None = UNSET


CreatePhoneNumberRequest = CreateTwilioPhoneNumberRequest | CreateSipTrunkPhoneNumberRequest


class CreatePhoneNumberResponse(msgspec.Struct, kw_only=True):
    phone_number_id: str


class UpdatePhoneNumberRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``agent_id=None`` unassigns; an unset field is left as it is.

    ``label`` is not in the seed's update schema but the official SDK sends it.
    """

    agent_id: str | UnsetType | None = UNSET
    label: str | UnsetType = UNSET
    inbound_trunk_config: InboundSipTrunkConfigRequest | UnsetType | None = UNSET
    outbound_trunk_config: OutboundSipTrunkConfigRequest | UnsetType | None = UNSET
    livekit_stack: LivekitStack | UnsetType | None = UNSET


# --------------------------------------------------------------------------- responses


class PhoneNumberAgentInfo(msgspec.Struct, kw_only=True):
    agent_id: str
    agent_name: str


class OutboundSipTrunkConfigResponse(msgspec.Struct, kw_only=True):
    address: str
    transport: SipTransport
    media_encryption: SipMediaEncryption
    has_auth_credentials: bool
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    username: str | None = None
    has_outbound_trunk: bool = False


class InboundSipTrunkConfigResponse(msgspec.Struct, kw_only=True):
    allowed_addresses: list[str]
    allowed_numbers: list[str] | None
    media_encryption: SipMediaEncryption
    has_auth_credentials: bool
    username: str | None = None
    remote_domains: list[str] | None = None


class TwilioPhoneNumber(msgspec.Struct, kw_only=True, tag_field="provider", tag="twilio"):
    phone_number: str
    label: str
    phone_number_id: str
    supports_inbound: bool = True
    supports_outbound: bool = True
    assigned_agent: PhoneNumberAgentInfo | None = None


class SipTrunkPhoneNumber(msgspec.Struct, kw_only=True, tag_field="provider", tag="sip_trunk"):
    phone_number: str
    label: str
    phone_number_id: str
    livekit_stack: LivekitStack
    supports_inbound: bool = True
    supports_outbound: bool = True
    assigned_agent: PhoneNumberAgentInfo | None = None
    provider_config: OutboundSipTrunkConfigResponse | None = None
    outbound_trunk: OutboundSipTrunkConfigResponse | None = None
    inbound_trunk: InboundSipTrunkConfigResponse | None = None


PhoneNumber = TwilioPhoneNumber | SipTrunkPhoneNumber
