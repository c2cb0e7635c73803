"""X-Twilio-Signature: computing (the emulator) and checking (the bridge).

Both directions use ``twilio.request_validator.RequestValidator`` so our caller and our
endpoints agree with Twilio's own library byte for byte (HMAC-SHA1 over the full URL
plus sorted form ``name+value`` pairs, base64; constant-time comparison).
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator


def compute_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """The signature Twilio would send for a request to ``url`` with form ``params``."""
    sig: str = RequestValidator(auth_token).compute_signature(url, dict(params or {}))
    return sig


def is_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """Check a webhook: ``url`` is the public URL Twilio called (not proxied headers)."""
    if not signature:
        return False
    ok: bool = RequestValidator(auth_token).validate(url, dict(params), signature)
    return ok


def is_valid_ws_upgrade(auth_token: str, ws_url: str, signature: str | None) -> bool:
    """Check a Media Streams upgrade, signed over the ``wss://`` URL with no params.

    Twilio signs the URL as written in the TwiML; we also accept the variant with or
    without a trailing slash, since proxies and TwiML authors differ on it.
    """
    if not signature:
        return False
    variants = [ws_url, ws_url[:-1] if ws_url.endswith("/") else ws_url + "/"]
    return any(is_valid(auth_token, u, {}, signature) for u in variants)
