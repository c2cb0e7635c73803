"""Rate limits held in the store: one token bucket per scope, shared by every instance.

The bucket is kept as a single number per scope (GCRA, the generic cell rate
algorithm): ``free_at``, the wall-clock moment at which the bucket would be full again.
With ``interval = 1 / rate``, an event at ``now`` is admitted when ``max(free_at, now)``
is at most ``(burst - 1) * interval`` ahead of ``now``, and then moves ``free_at`` on by
one interval; otherwise the answer is how long until it would be.  That is exactly a
token bucket of ``burst`` tokens refilled at ``rate``, with no window boundary to
straddle, so any number of instances together never exceed it.  Read and write run in
one transaction serialised across processes (:meth:`bridge.store.Store.atomic`).  A row
whose ``free_at`` has passed is a full bucket: :func:`prune` deletes those.  Blocking
calls, bounded by ``timeout_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge.store.backend import Tx
from bridge.store.store import Store

LOCK: Final = 0x72617465  # pg_advisory_xact_lock key ("rate")


@dataclass(frozen=True)
class Hit:
    wait_s: float  # 0.0: counted (admitted); else seconds until an event would be


def hit(store: Store, scope: str, *, rate: float, burst: int, now: float, timeout_s: float) -> Hit:
    interval = 1.0 / rate
    tolerance = (burst - 1) * interval

    def tx(t: Tx) -> Hit:
        rows = t.rows("SELECT free_at FROM rate_limits WHERE scope = ?", (scope,))
        free_at = max(float(rows[0][0]), now) if rows else now
        ahead = free_at - now
        if ahead > tolerance:
            return Hit(ahead - tolerance)
        t.run(
            "INSERT INTO rate_limits (scope, free_at) VALUES (?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET free_at = excluded.free_at",
            (scope, free_at + interval),
        )
        return Hit(0.0)

    return store.atomic(tx, lock=LOCK, timeout_s=timeout_s)


def refund(store: Store, scope: str, *, rate: float, timeout_s: float) -> None:
    """Give back an admitted event that did not happen (e.g. Twilio refused the call)."""
    store.atomic(
        lambda t: t.run(
            "UPDATE rate_limits SET free_at = free_at - ? WHERE scope = ?", (1.0 / rate, scope)
        ),
        lock=LOCK,
        timeout_s=timeout_s,
    )


def prune(store: Store, *, now: float, timeout_s: float) -> int:
    """Delete the rows of full buckets (no different from no row); how many."""
    return store.atomic(
        lambda t: t.run("DELETE FROM rate_limits WHERE free_at <= ?", (now,)),
        lock=LOCK,
        timeout_s=timeout_s,
    )
