"""Concurrency slots held in the store, so the caps hold across every instance and worker.

One ``call_slots`` row per call that counts against ``telephony.max_concurrent_calls``
and ``max_concurrent_calls_per_number``, whichever instance answered its webhook or runs
its stream:

* the voice webhook **reserves** a slot (``live = 0``) that expires with the stream
  token: a webhook whose stream never opens gives its slot back by itself;
* the stream's start **claims** it (``live = 1``, owned by the instance running the
  stream, on a lease the owner renews); a stream without a reservation (opened without
  the webhook, or after the store was unreachable at the webhook) takes a slot then;
* the call's end **releases** it; an instance that dies stops renewing, so its slots
  expire after one lease.

Counting and inserting happen in one transaction serialised across processes
(:meth:`bridge.store.Store.atomic`: SQLite's write lock, PostgreSQL's
``pg_advisory_xact_lock``), so simultaneous webhooks on several instances never admit
more than the cap.  Expired rows do not count (and are replaced by a call that reuses
the SID); :meth:`CallSlots.prune` deletes them.  Each transaction is two or three short
statements.  Blocking calls: run them in a thread, or bound them with ``timeout_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from bridge.store.backend import Tx
from bridge.store.store import Store

LOCK: Final = 0x736C6F7473  # pg_advisory_xact_lock key ("slots" in ASCII)
_CHUNK: Final = 500

Scope = Literal["global", "number"]


@dataclass(frozen=True)
class Caps:
    total: int  # calls at once in the deployment (0 = no cap)
    per_number: int  # calls at once on one of our numbers (0 = no cap)


class CallSlots:
    def __init__(self, store: Store, *, instance: str | None = None, timeout_s: float = 0.25):
        self.store = store
        self.instance = instance or store.instance
        self.timeout_s = timeout_s

    def _atomic(self, fn: Callable[[Tx], Scope | None]) -> Scope | None:
        return self.store.atomic(fn, lock=LOCK, timeout_s=self.timeout_s)

    def reserve(
        self, call_sid: str, number: str, caps: Caps, *, now: float, ttl_s: float
    ) -> Scope | None:
        """The webhook's slot, until ``now + ttl_s`` unless claimed; the cap that is full
        (nothing reserved) or None.  A call that holds a slot already keeps it."""

        def tx(t: Tx) -> Scope | None:
            mine, total, on_number = _counts(t, call_sid, number, now)
            if mine is not None:  # a retried webhook: the call keeps its one slot
                if not mine:
                    t.run(
                        "UPDATE call_slots SET expires_at = ? WHERE call_sid = ?",
                        (now + ttl_s, call_sid),
                    )
                return None
            held = (total, on_number)
            return _take(t, call_sid, number, caps, held, self.instance, 0, now + ttl_s)

        return self._atomic(tx)

    def claim(
        self, call_sid: str, number: str, caps: Caps, *, now: float, lease_s: float
    ) -> Scope | None:
        """A stream started here: its reservation becomes this instance's live slot, or
        (none) it takes one if the caps allow; the cap that is full, or None."""

        def tx(t: Tx) -> Scope | None:
            n = t.run(
                "UPDATE call_slots SET instance = ?, live = 1, expires_at = ? "
                "WHERE call_sid = ? AND expires_at > ?",
                (self.instance, now + lease_s, call_sid, now),
            )
            if n:
                return None
            _mine, total, on_number = _counts(t, call_sid, number, now)
            held = (total, on_number)
            return _take(t, call_sid, number, caps, held, self.instance, 1, now + lease_s)

        return self._atomic(tx)

    def release(self, call_sids: Sequence[str]) -> int:
        """The calls ended: their slots are free (how many were held)."""

        def tx(t: Tx) -> int:
            freed = 0
            for i in range(0, len(call_sids), _CHUNK):
                chunk = call_sids[i : i + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                freed += t.run(f"DELETE FROM call_slots WHERE call_sid IN ({marks})", chunk)
            return freed

        return self.store.atomic(tx, lock=LOCK, timeout_s=self.timeout_s)

    def rename(self, old: str, new: str, *, expires_at: float) -> bool:
        """A provisional slot (an outbound call being placed) takes its call SID."""

        def tx(t: Tx) -> bool:
            return bool(
                t.run(
                    "UPDATE call_slots SET call_sid = ?, expires_at = ? WHERE call_sid = ?",
                    (new, expires_at, old),
                )
            )

        return self.store.atomic(tx, lock=LOCK, timeout_s=self.timeout_s)

    def renew(self, call_sids: Sequence[str], *, now: float, lease_s: float) -> int:
        """Extend the leases of this instance's live calls; how many it still held."""

        def tx(t: Tx) -> int:
            n = 0
            for i in range(0, len(call_sids), _CHUNK):
                chunk = call_sids[i : i + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                n += t.run(
                    f"UPDATE call_slots SET expires_at = ? "
                    f"WHERE instance = ? AND live = 1 AND call_sid IN ({marks})",
                    (now + lease_s, self.instance, *chunk),
                )
            return n

        return self.store.atomic(tx, lock=LOCK, timeout_s=self.timeout_s)

    def prune(self, *, now: float) -> int:
        """Delete expired slots (they no longer count anyway); how many."""
        return self.store.atomic(
            lambda t: t.run("DELETE FROM call_slots WHERE expires_at <= ?", (now,)),
            lock=LOCK,
            timeout_s=self.timeout_s,
        )

    def held(self, *, now: float, number: str | None = None) -> int:
        """Slots held now (all, or on ``number``): for tests and operators."""

        def tx(t: Tx) -> int:
            if number is None:
                rows = t.rows("SELECT count(*) FROM call_slots WHERE expires_at > ?", (now,))
            else:
                rows = t.rows(
                    "SELECT count(*) FROM call_slots WHERE expires_at > ? AND number = ?",
                    (now, number),
                )
            return int(rows[0][0])

        return self.store.atomic(tx, lock=LOCK, timeout_s=self.timeout_s)


def _counts(t: Tx, call_sid: str, number: str, now: float) -> tuple[int | None, int, int]:
    """(``live`` of the call's own unexpired slot or None, slots held, slots on ``number``)."""
    mine, total, on_number = t.rows(
        "SELECT (SELECT live FROM call_slots WHERE call_sid = ? AND expires_at > ?), "
        "count(*), COALESCE(SUM(CASE WHEN number = ? THEN 1 ELSE 0 END), 0) "
        "FROM call_slots WHERE expires_at > ?",
        (call_sid, now, number, now),
    )[0]
    return (None if mine is None else int(mine)), int(total), int(on_number)


def _take(
    t: Tx,
    call_sid: str,
    number: str,
    caps: Caps,
    held: tuple[int, int],
    instance: str,
    live: int,
    expires_at: float,
) -> Scope | None:
    total, on_number = held
    if caps.total and total >= caps.total:
        return "global"
    if caps.per_number and on_number >= caps.per_number:
        return "number"
    # (an expired row of the same SID, not pruned yet, is replaced)
    t.run(
        "INSERT INTO call_slots (call_sid, number, instance, live, expires_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_sid) DO UPDATE SET number = excluded.number, "
        "instance = excluded.instance, live = excluded.live, expires_at = excluded.expires_at",
        (call_sid, number, instance, live, expires_at),
    )
    return None
