"""An independent verifier of ``Bridge-Signature``, written from docs/webhooks.md alone.

It shares no code with :mod:`bridge.webhooks.signature` (the same snippet a receiver
would paste): if the two disagree, the docs or the bridge are wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def receiver_verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = parts["t"]
    if abs(time.time() - int(t)) > tolerance_s:
        return False
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])
