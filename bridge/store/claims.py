"""Stream tokens used, held in the store: a token opens one stream in the whole deployment.

Each instance remembers the tokens that opened a stream on it
(:meth:`bridge.call.registry.LiveCalls.claim`, the fast first check); this table makes
the rule hold across instances and workers: a ``stream_claims`` row per verified token,
keyed by a digest of the token and, separately unique, by the call SID, so neither a
captured token nor a second token minted for the same call (a replayed webhook) opens a
second stream anywhere.  ``INSERT ... ON CONFLICT DO NOTHING``: one row inserted means
claimed, none means replayed.  Rows expire with the token (plus the longest call, for
the call SID); expired rows are deleted when a claim meets them and by :func:`prune`.
Blocking calls, bounded by ``timeout_s``.
"""

from __future__ import annotations

import hashlib
from typing import Final

from bridge.store.backend import Tx
from bridge.store.store import Store

LOCK: Final = 0x636C61696D73  # pg_advisory_xact_lock key ("claims"); uniqueness does the work


def token_digest(mac: str) -> str:
    """What the table keeps of a token: not the token itself (database readers)."""
    return hashlib.sha256(mac.encode()).hexdigest()


def claim(
    store: Store, mac: str, call_sid: str, *, expires_at: float, now: float, timeout_s: float
) -> bool:
    """True if this token and this call SID opened no stream before, anywhere."""
    token = token_digest(mac)

    def tx(t: Tx) -> bool:
        t.run(
            "DELETE FROM stream_claims WHERE (token = ? OR call_sid = ?) AND expires_at <= ?",
            (token, call_sid, now),
        )
        inserted = t.run(
            "INSERT INTO stream_claims (token, call_sid, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (token, call_sid, expires_at),
        )
        return inserted == 1

    return store.atomic(tx, lock=LOCK, timeout_s=timeout_s)


def prune(store: Store, *, now: float, timeout_s: float) -> int:
    """Delete expired claims; how many."""
    return store.atomic(
        lambda t: t.run("DELETE FROM stream_claims WHERE expires_at <= ?", (now,)),
        lock=LOCK,
        timeout_s=timeout_s,
    )
