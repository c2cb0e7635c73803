"""The per-call stream token: which media stream may open which call (pure: no I/O).

Why: Twilio signs the media-stream upgrade over the fixed URL ``wss://PUBLIC/twilio/media``
alone, so one captured ``X-Twilio-Signature`` opens any number of streams, and the
``start`` message behind it (``callSid``, ``customParameters``) is whatever the sender
wrote.  So the voice webhook, whose request *is* signed over the call's own form, writes
one more ``<Parameter name="bridge_token">`` into its ``<Connect><Stream>``: an
HMAC-SHA256 (key ``twilio.stream_key``) over

* the call SID (or, for a call the bridge places, the scope "any call": the TwiML goes
  out with the REST create, before Twilio has named the call),
* the account SID of the webhook (``AccountSid``; the configured one when we dial),
* every other ``<Parameter>`` the TwiML carries (``agent_id``, ``caller_id``,
  ``called_number``, ``direction``, ``first_message``, variables…), and
* an expiry, ``twilio.stream_token_ttl_s`` after minting.

Twilio echoes the parameters in ``start.customParameters``; :func:`verify` recomputes
the MAC from ``start.callSid``, ``start.accountSid`` and every received parameter, so
any change to any of them, an extra or a missing one, fails.  It is stateless: the
stream may reach another instance than the webhook (they share the key).  Single use
(one stream per token and per call SID) needs memory and lives with the live calls
(:class:`bridge.call.registry.LiveCalls`); the gate that puts it together is
:mod:`bridge.call.stream_gate`.

Encoding: every bound field as a netstring (``<utf-8 length>:<bytes>,``), parameters
sorted by name, so no two different inputs give the same message.  The token is
``v1.<expiry, unix seconds>.<scope c|a>.<base64url MAC>`` (about 60 characters, well
under Twilio's 500 for a parameter's name and value).

When it is required: whenever Twilio signatures are enforced.  With signatures off
(``BRIDGE_VALIDATE_TWILIO_SIGNATURES=false``, an explicitly insecure development mode)
the webhook is unsigned, so anyone could fetch a valid token from it: the bridge still
mints tokens when it has a key, but does not require them.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_PARAMETER = "bridge_token"
VERSION = "v1"
SCOPE_CALL = "c"  # bound to one call SID
SCOPE_ANY = "a"  # a call we place: bound to everything but the (not yet known) call SID

_MAX_TOKEN_CHARS = 100
_TOKEN = re.compile(r"v1\.([0-9]{1,12})\.([ca])\.([A-Za-z0-9_-]{43})")


class Verdict(enum.Enum):
    """What checking a stream's ``start`` found (the metric and log ``reason``)."""

    OK = "ok"
    MISSING = "missing"  # no bridge_token parameter
    MALFORMED = "malformed"  # not a token of ours in shape
    BAD_MAC = "bad_mac"  # a bound field (or the token) was changed, or another key minted it
    EXPIRED = "expired"  # authentic, past its expiry
    # Found by the gate (bridge.call.stream_gate), not by verify():
    REPLAYED = "replayed"  # this token, or a token for this call SID, was used already
    ACCOUNT_MISMATCH = "account_mismatch"  # start.accountSid is not the configured account
    DUPLICATE_CALL = "duplicate_call"  # a stream for this call SID is live here
    BAD_CALL_SID = "bad_call_sid"  # empty or absurd callSid


@dataclass(frozen=True)
class Checked:
    verdict: Verdict
    expires_at: int = 0
    scope: str = ""
    mac: str = ""  # identifies the token (single use)


def _netstring(s: str) -> bytes:
    b = s.encode()
    return str(len(b)).encode() + b":" + b + b","


def _message(
    scope: str, call_sid: str, account_sid: str, parameters: Mapping[str, str], expires_at: int
) -> bytes:
    parts = [VERSION, scope, call_sid if scope == SCOPE_CALL else "", account_sid]
    parts.append(str(expires_at))
    parts.append(str(len(parameters)))
    for name in sorted(parameters):
        parts += (name, parameters[name])
    return b"".join(_netstring(p) for p in parts)


def _mac(key: bytes, message: bytes) -> str:
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(
    key: bytes,
    *,
    call_sid: str | None,
    account_sid: str,
    parameters: Mapping[str, str],
    expires_at: int,
) -> str:
    """The token for a stream carrying ``parameters`` (``call_sid`` None: any call)."""
    scope = SCOPE_ANY if call_sid is None else SCOPE_CALL
    params = {k: v for k, v in parameters.items() if k != TOKEN_PARAMETER}
    mac = _mac(key, _message(scope, call_sid or "", account_sid, params, expires_at))
    return f"{VERSION}.{expires_at}.{scope}.{mac}"


def signed_parameters(
    key: bytes | None,
    parameters: Mapping[str, str],
    *,
    call_sid: str | None,
    account_sid: str,
    now: float,
    ttl_s: float,
) -> dict[str, str]:
    """``parameters`` plus their token (unchanged when there is no key)."""
    out = {k: v for k, v in parameters.items() if k != TOKEN_PARAMETER}
    if key is not None:
        out[TOKEN_PARAMETER] = mint(
            key,
            call_sid=call_sid,
            account_sid=account_sid,
            parameters=out,
            expires_at=int(now + ttl_s),
        )
    return out


def verify(
    key: bytes,
    *,
    call_sid: str,
    account_sid: str,
    parameters: Mapping[str, str],
    now: float,
) -> Checked:
    """Check the token among ``parameters`` (a stream's ``customParameters``, as received)."""
    token = parameters.get(TOKEN_PARAMETER)
    if token is None:
        return Checked(Verdict.MISSING)
    m = _TOKEN.fullmatch(token) if len(token) <= _MAX_TOKEN_CHARS else None
    if m is None:
        return Checked(Verdict.MALFORMED)
    expires_at, scope, mac = int(m[1]), m[2], m[3]
    try:  # the canonical form only: no two spellings of one MAC
        if base64.urlsafe_b64encode(base64.urlsafe_b64decode(mac + "=")).rstrip(b"=") != (
            mac.encode()
        ):
            return Checked(Verdict.MALFORMED)
    except (binascii.Error, ValueError):
        return Checked(Verdict.MALFORMED)
    params = {k: v for k, v in parameters.items() if k != TOKEN_PARAMETER}
    expected = _mac(key, _message(scope, call_sid, account_sid, params, expires_at))
    if not hmac.compare_digest(expected, mac):
        return Checked(Verdict.BAD_MAC)
    if now > expires_at:
        return Checked(Verdict.EXPIRED, expires_at, scope, mac)
    return Checked(Verdict.OK, expires_at, scope, mac)
