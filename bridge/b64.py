"""Strict base64 decoding that means the same on every Python the bridge runs on.

``binascii.a2b_base64(strict_mode=True)`` (and ``base64.b64decode(validate=True)``)
accept padding after a complete quantum (``"AQIDBAUG=="``) on 3.11 and 3.12 and refuse
it from 3.13 on.  Peers do send such payloads now and then; the bridge has always
accepted them, so it keeps doing so everywhere.  Everything else strict mode refuses
(characters outside the alphabet, whitespace, missing or discontinuous padding) stays
refused, on every version.
"""

from __future__ import annotations

import binascii


def decode_strict(data: str | bytes) -> bytes:
    """Base64 → bytes; raises :class:`binascii.Error` (a ``ValueError``) when invalid."""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        raw = data.encode("ascii", "replace") if isinstance(data, str) else data
        body = raw.rstrip(b"=")
        if body == raw or not body or len(body) % 4 or b"=" in body:
            raise
        return binascii.a2b_base64(body, strict_mode=True)
