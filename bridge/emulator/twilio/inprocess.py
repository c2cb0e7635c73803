"""The Twilio REST emulator inside ``bridge serve``, when no Twilio account is configured.

``bridge serve`` without an upstream runs the Agents Platform emulator in-process; with
this it also runs the Twilio REST emulator (its own loopback port), so the provisioning
walk-through works offline: ``numbers import`` finds the number on the emulated account
and points it at the bridge, and ``bridge call`` reaches the agent it was given.

The emulated account has a few numbers of its own (:data:`NUMBERS`) and fixed,
published credentials (:data:`ACCOUNT_SID`, :data:`AUTH_TOKEN`, the defaults of
``bridge emulator``): the bridge checks every webhook's signature with that token, as
it would Twilio's, and ``bridge call`` signs with it.  A published token protects
nothing, so :func:`refusal` allows the emulator only while nothing real is at stake and
nobody but this machine can reach the bridge: no Twilio credentials configured, the
platform emulated too (the caller's side decides), and neither ``server.host`` nor
``server.public_url`` exposing the bridge.
"""

from __future__ import annotations

import dataclasses

from bridge.config import Config, TwilioConfig, exposure
from bridge.emulator.twilio.caller import DEFAULT_ACCOUNT_SID
from bridge.emulator.twilio.state import TwilioEmulatorState

ACCOUNT_SID = DEFAULT_ACCOUNT_SID
AUTH_TOKEN = "emulator-auth-token"  # published on purpose (module docstring)
NUMBERS = tuple(f"+1415555010{i}" for i in range(5))
_REAL_API = TwilioConfig().api_base_url


def refusal(cfg: Config) -> str | None:
    """Why the in-process Twilio emulator must not run with ``cfg``; None when it may."""
    tw = cfg.twilio
    if tw.account_sid or tw.auth_token:
        return "Twilio credentials are configured"
    if tw.api_base_url != _REAL_API:
        return f"twilio.api_base_url is set ({tw.api_base_url})"
    exposed_by = exposure(cfg)
    if exposed_by is not None:
        # Its token is public: on a reachable bridge anyone could sign webhooks with it.
        return f"{exposed_by} makes the bridge reachable from beyond this machine"
    return None


def emulated_account() -> TwilioEmulatorState:
    """The emulated account, with :data:`NUMBERS` not yet pointed anywhere."""
    state = TwilioEmulatorState(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    for number in NUMBERS:
        state.add_number(number, friendly_name=f"emulator {number}")
    return state


def twilio_config(cfg: TwilioConfig, api_base_url: str) -> TwilioConfig:
    """``cfg`` pointed at the emulator: its account, token (signatures) and REST URL."""
    return dataclasses.replace(
        cfg, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=api_base_url
    )
