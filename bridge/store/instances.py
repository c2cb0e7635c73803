"""The instances sharing one store: registration, heartbeats, and the sweep of dead ones.

Each bridge process is an *instance* (``server.instance_id``, by default the host or pod
name).  It registers in the ``instances`` table at start, heartbeats every
``store.instance_heartbeat_s`` (``last_seen`` and its live-call count) and marks itself
``stopped`` on a clean shutdown.

Every instance also sweeps: an instance still ``running`` whose heartbeat is older than
``store.instance_grace_s`` is dead (killed, partitioned, its machine gone).  The sweep
marks it ``lost`` and closes its calls still in progress in the records, with end reason
:data:`INSTANCE_LOST`, in one transaction of conditional UPDATEs (``WHERE state =
'running'``, ``WHERE status IN`` live), so two instances sweeping at once close each call
once and a sweep that fails half way changes nothing.  A process restarting under the
same id (a pod that keeps its name) closes the calls its previous run left in progress
the same way when it registers: no call stays "in progress" forever.

All methods here are blocking (one or two small statements): the app calls them off the
event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec

from bridge.log import log_event
from bridge.store.records import LIVE_STATUSES
from bridge.store.store import Store

logger = logging.getLogger("bridge.store.instances")

# The end reason of a call whose instance died (bridge.call.actions.EndReason has it too).
INSTANCE_LOST: Final = "instance_lost"
# Rows of instances gone this long are deleted by the sweep.
FORGET_AFTER_S: Final = 7 * 24 * 3600.0

InstanceState = Literal["running", "stopped", "lost"]

_LIVE: Final = ", ".join(f"'{s}'" for s in LIVE_STATUSES)
_COLUMNS: Final = "id, started_at, last_seen, state, version, url, live_calls"
_REGISTER: Final = (
    f"INSERT INTO instances ({_COLUMNS}) VALUES (?, ?, ?, 'running', ?, ?, 0) "
    "ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, "
    "last_seen = excluded.last_seen, state = 'running', version = excluded.version, "
    "url = excluded.url, live_calls = 0"
)
_HEARTBEAT: Final = (
    "UPDATE instances SET last_seen = ?, live_calls = ?, state = 'running' WHERE id = ?"
)
_STOP: Final = "UPDATE instances SET state = 'stopped', last_seen = ?, live_calls = 0 WHERE id = ?"
_STALE: Final = "SELECT id FROM instances WHERE state = 'running' AND last_seen < ? AND id <> ?"
_MARK_LOST: Final = (
    "UPDATE instances SET state = 'lost' WHERE id = ? AND state = 'running' AND last_seen < ?"
)
# Closes the calls of one instance still live, or ended (by Twilio's status callback,
# on another instance) without the end reason only their owner could record; the
# duration counts from the answer, as a call's own end does.
_CLOSE_CALLS: Final = (
    f"UPDATE calls SET end_reason = '{INSTANCE_LOST}', "
    f"status = CASE WHEN status IN ({_LIVE}) THEN 'completed' ELSE status END, "
    "ended_at = COALESCE(ended_at, ?), "
    "duration_s = COALESCE(duration_s, CASE WHEN answered_at IS NULL THEN NULL "
    "WHEN answered_at < ? THEN ? - answered_at ELSE 0 END) "
    f"WHERE instance = ? AND (status IN ({_LIVE}) OR end_reason IS NULL)"
)
# The sweep's: only while the instance is still marked lost (it may have come back).
_CLOSE_LOST_CALLS: Final = (
    _CLOSE_CALLS + " AND EXISTS (SELECT 1 FROM instances WHERE id = ? AND state = 'lost')"
)
_FORGET: Final = "DELETE FROM instances WHERE state <> 'running' AND last_seen < ?"


class InstanceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``instances``; ``alive``: running and heard from within the grace."""

    id: str
    started_at: float
    last_seen: float
    state: InstanceState
    version: str = ""
    url: str | None = None
    live_calls: int = 0
    alive: bool = False


class Lost(msgspec.Struct, frozen=True):
    """An instance the sweep declared dead, and how many live calls it closed."""

    instance: str
    last_seen: float
    calls_closed: int


def _close_calls(instance: str, now: float) -> tuple[str, Sequence[Any]]:
    return (_CLOSE_CALLS, (now, now, now, instance))


class Instances:
    """This instance's row in ``instances`` and the sweep of the others (blocking)."""

    def __init__(
        self,
        store: Store,
        *,
        instance_id: str,
        grace_s: float,
        version: str = "",
        url: str | None = None,
    ):
        self._store = store
        self.id = instance_id
        self.grace_s = grace_s
        self._version = version
        self._url = url

    def register(self, now: float | None = None) -> int:
        """Insert or revive this instance's row; returns the live calls a previous run
        under the same id left behind and this closed (logged)."""
        now = time.time() if now is None else now
        before = self._store.query("SELECT state FROM instances WHERE id = ?", (self.id,))
        statements: list[tuple[str, Sequence[Any]]] = [
            (_REGISTER, (self.id, now, now, self._version, self._url))
        ]
        if before and before[0][0] != "stopped":
            # It did not stop cleanly: whatever it had in progress is gone with it.
            statements.insert(0, _close_calls(self.id, now))
        counts = self._store.write(statements)
        closed = counts[0] if len(counts) == 2 else 0
        log_event(
            logger,
            "instance.registered",
            instance=self.id,
            previous=before[0][0] if before else None,
            calls_closed=closed,
        )
        return closed

    def heartbeat(self, live_calls: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        (updated,) = self._store.write([(_HEARTBEAT, (now, live_calls, self.id))])
        if updated == 0:  # our row was deleted (by hand): put it back
            self._store.write([(_REGISTER, (self.id, now, now, self._version, self._url))])
            self._store.write([(_HEARTBEAT, (now, live_calls, self.id))])

    def stop(self, now: float | None = None) -> None:
        """Mark this instance stopped (a clean shutdown: the sweep leaves it alone)."""
        self._store.write([(_STOP, (time.time() if now is None else now, self.id))])
        log_event(logger, "instance.stopped", instance=self.id)

    def sweep(self, now: float | None = None) -> list[Lost]:
        """Declare the instances silent past the grace dead and close their live calls."""
        now = time.time() if now is None else now
        cutoff = now - self.grace_s
        lost: list[Lost] = []
        for (iid,) in self._store.query(_STALE, (cutoff, self.id)):
            seen = self._store.query("SELECT last_seen FROM instances WHERE id = ?", (iid,))
            marked, closed = self._store.write(
                [(_MARK_LOST, (iid, cutoff)), (_CLOSE_LOST_CALLS, (now, now, now, iid, iid))]
            )
            if marked:  # we won the race for it (another sweeper may have been first)
                last_seen = float(seen[0][0]) if seen else 0.0
                lost.append(Lost(str(iid), last_seen, closed))
                log_event(
                    logger,
                    "instance.lost",
                    logging.WARNING,
                    instance=iid,
                    silent_s=round(now - last_seen, 1),
                    calls_closed=closed,
                    end_reason=INSTANCE_LOST,
                )
        self._store.write([(_FORGET, (now - FORGET_AFTER_S,))])
        return lost

    def alive(self, instance_id: str, now: float | None = None) -> bool:
        """Whether ``instance_id`` is running and heard from within the grace period."""
        now = time.time() if now is None else now
        rows = self._store.query(
            "SELECT 1 FROM instances WHERE id = ? AND state = 'running' AND last_seen >= ?",
            (instance_id, now - self.grace_s),
        )
        return bool(rows)

    def list(self, now: float | None = None) -> list[InstanceInfo]:
        """Every instance the store knows, this one first, then by id."""
        now = time.time() if now is None else now
        out = []
        for r in self._store.query(f"SELECT {_COLUMNS} FROM instances ORDER BY id"):
            state: InstanceState = r[3] if r[3] in ("running", "stopped") else "lost"
            last_seen = float(r[2])
            out.append(
                InstanceInfo(
                    id=str(r[0]),
                    started_at=float(r[1]),
                    last_seen=last_seen,
                    state=state,
                    version=str(r[4] or ""),
                    url=r[5],
                    live_calls=int(r[6]),
                    alive=state == "running" and last_seen >= now - self.grace_s,
                )
            )
        out.sort(key=lambda i: (i.id != self.id, i.id))
        return out
