"""The requests Twilio makes to an application: parameters, signatures, URLs (pure).

Twilio signs every request with the URL it *called* (the public one) and the form
parameters; behind a tunnel or in a test the emulator must connect somewhere else.
:class:`UrlMap` keeps the two apart: signatures are computed over the URL as written,
connections go to ``reach(url)``.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlencode, urlsplit

from bridge.twilio.signature import compute_signature

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(epoch_s: float) -> str:
    return formatdate(epoch_s, usegmt=True)


def _country(number: str) -> str:
    return "US" if number.startswith("+1") else ""


def call_params(
    *,
    account_sid: str,
    call_sid: str,
    from_: str,
    to: str,
    direction: str,
    call_status: str,
) -> dict[str, str]:
    """The parameters Twilio sends with every voice request about a call."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call_sid,
        "CallStatus": call_status,
        "Called": to,
        "CalledCountry": _country(to),
        "Caller": from_,
        "CallerCountry": _country(from_),
        "Direction": direction,
        "From": from_,
        "FromCountry": _country(from_),
        "To": to,
        "ToCountry": _country(to),
    }


def completed_params(call_duration_s: float | None, call_status: str) -> dict[str, str]:
    """What the final status callback adds: durations and the SIP response code."""
    sip = {"completed": "200", "busy": "486", "no-answer": "487", "canceled": "487"}
    out = {"SipResponseCode": sip.get(call_status, "500")}
    if call_duration_s is not None:
        secs = max(0, math.ceil(call_duration_s))
        out["CallDuration"] = str(secs)
        out["Duration"] = str(math.ceil(secs / 60))  # billed minutes
    return out


@dataclass(frozen=True)
class SignedRequest:
    """One request as Twilio sends it: ``method`` to ``url`` (as signed) with ``form``."""

    method: str
    url: str  # what is signed (the public URL, with the query string for GET)
    form: dict[str, str]
    headers: dict[str, str]


def signed_request(
    method: str, url: str, params: dict[str, str], auth_token: str | None
) -> SignedRequest:
    """POST: params as a form; GET: params in the query string. Signed when a token is set."""
    method = method.upper()
    if method == "GET":
        sep = "&" if urlsplit(url).query else "?"
        full = url + (sep + urlencode(params) if params else "")
        form: dict[str, str] = {}
    else:
        full, form = url, dict(params)
    headers = {"User-Agent": "TwilioProxy/1.1"}
    if auth_token:
        headers[SIGNATURE_HEADER] = compute_signature(auth_token, full, form)
    return SignedRequest(method, full, form, headers)


def ws_upgrade_headers(stream_url: str, auth_token: str | None) -> dict[str, str]:
    """Media Stream upgrade: signed over the ``wss://`` URL as written, with no params."""
    if not auth_token:
        return {}
    return {SIGNATURE_HEADER: compute_signature(auth_token, stream_url, {})}


_WS = {"http": "ws", "https": "wss"}


class UrlMap:
    """Public URL prefixes → where to actually connect (``https://h`` → ``http://127.0.0.1:p``).

    Each mapping is applied to its WebSocket twin as well (``wss://h`` → ``ws://…``).
    With no mappings every URL is reached as written.
    """

    def __init__(self, mapping: dict[str, str] | None = None) -> None:
        pairs: list[tuple[str, str]] = []
        for public, reach in (mapping or {}).items():
            public, reach = public.rstrip("/"), reach.rstrip("/")
            pairs.append((public, reach))
            ps, rs = urlsplit(public).scheme, urlsplit(reach).scheme
            if ps in _WS and rs in _WS:
                pairs.append((_WS[ps] + public[len(ps) :], _WS[rs] + reach[len(rs) :]))
        # Longest prefix first, so a more specific mapping wins.
        self._pairs = sorted(pairs, key=lambda p: -len(p[0]))

    @classmethod
    def for_bridge(cls, bridge_url: str, public_url: str | None) -> UrlMap:
        if not public_url or public_url.rstrip("/") == bridge_url.rstrip("/"):
            return cls()
        return cls({public_url: bridge_url})

    def reach(self, url: str) -> str:
        for public, reach in self._pairs:
            if url == public or url.startswith(public + "/") or url.startswith(public + "?"):
                return reach + url[len(public) :]
        return url
