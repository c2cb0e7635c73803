"""X-Twilio-Signature: computing (the emulator) and checking (the bridge).

Both directions use ``twilio.request_validator.RequestValidator.compute_signature`` so
our caller and our endpoints agree with Twilio's own library byte for byte (HMAC-SHA1
over the full URL plus sorted form ``name+value`` pairs, base64).  Checking computes it
once, over the one URL we configured, and compares in constant time: the library's
``validate`` would compute it again for URL variants (with and without the port), twice
the work for a forged request and a looser check than we need.
"""

from __future__ import annotations

import hmac
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
    expected = compute_signature(auth_token, url, params)
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold any latin-1.
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def is_valid_ws_upgrade(auth_token: str, ws_url: str, signature: str | None) -> bool:
    """Check a Media Streams upgrade, signed over the ``wss://`` URL with no params.

    Twilio signs the URL as written in the TwiML; we also accept the variant with or
    without a trailing slash, since proxies and TwiML authors differ on it.
    """
    if not signature:
        return False
    variants = [ws_url, ws_url[:-1] if ws_url.endswith("/") else ws_url + "/"]
    return any(is_valid(auth_token, u, {}, signature) for u in variants)
