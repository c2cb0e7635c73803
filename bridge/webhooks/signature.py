"""The ``Bridge-Signature`` header of a webhook delivery: computing and checking it.

``Bridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``

The timestamp is signed with the body, so a captured delivery cannot be replayed
later than the receiver's tolerance, and the body cannot be altered.  ``v1`` names the
scheme: a future scheme adds its own ``v2=`` beside it, and receivers keep checking the
one they know.  Pure functions: bytes and strings in, no clock unless passed.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

HEADER: Final = "Bridge-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},{SCHEME}={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s``
    of ``now``.  Any malformed header is simply not valid; comparison is constant-time."""
    if not header or len(header) > 1024:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                return False
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body).encode()
    # Every candidate is compared (no early exit on the first match's position).
    ok = False
    for c in candidates:
        ok |= hmac.compare_digest(expected, c.encode("utf-8", "replace"))
    return ok
