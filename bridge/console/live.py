"""The live-calls view: one row per live call, pushed to the page as server-sent events.

Rows come from the admin service's live calls (``Provisioning.list_calls(live=True)``,
the same list as ``GET /admin/calls?live=1``: every instance's calls when the store is
shared), joined with this process's own live calls (:class:`~bridge.call.registry.LiveCalls`:
the streams it relays, which add the audio format and show up and leave without waiting
for the store).  A row says which instance handles its call.

:func:`live_rows` is pure; :class:`LiveFeed` looks at the registry every ``tick_s`` (a
dictionary walk, no I/O) and asks the service every ``store_every_s`` or at once when
this process's calls changed, and yields an SSE ``calls`` event only when the rows
changed, a comment now and then to keep proxies from closing the stream, and stops when
the page goes away, while the bridge drains (so a graceful shutdown never waits on an
open page) or after ``max_age_s`` (the browser's EventSource reconnects by itself).
While the store fails, the rows are this process's calls only (``complete`` false).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Final

import msgspec

from bridge.call.driver import CallDriver
from bridge.call.tools import CallControl
from bridge.console.present import mask_number
from bridge.errors import BridgeError
from bridge.store import CallRecord

TICK_S: Final = 0.2
STORE_EVERY_S: Final = 0.5
KEEPALIVE_S: Final = 15.0
MAX_AGE_S: Final = 600.0


class LiveRow(msgspec.Struct, frozen=True, kw_only=True):
    call_sid: str
    number: str  # ours (the number called, or calling out)
    caller: str  # the other party, masked unless revealed
    agent_id: str
    agent_name: str  # as the routing table knows it; the id when it does not
    direction: str
    state: str
    audio_format: str
    started_at: float  # epoch seconds: the page counts the duration up from it
    instance: str  # the bridge instance relaying the stream ("—" before it started)
    # Known to the instance relaying the call only (None elsewhere):
    relay_p99_ms: float | None = None  # of its newest sampled relays
    turns: int | None = None  # agent turns measured so far


class LiveSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    calls: list[LiveRow]
    at: float
    complete: bool = True  # False: the store did not answer; this instance's calls only


def audio_format(call: CallControl) -> str:
    """The agent's audio format(s) of a call (``pcm_16000``, or ``in a / out b``)."""
    if not isinstance(call, CallDriver):
        return "—"
    formats = call.session.stats.audio_formats
    fin, fout = formats.get("input"), formats.get("output")
    if fin is None and fout is None:
        return "connecting"
    return (fin or "?") if fin == fout else f"in {fin} / out {fout}"


def live_rows(
    calls: Iterable[CallControl],
    records: Iterable[CallRecord],
    first_seen: Mapping[str, float],
    *,
    here: str | None = None,
    agent_names: Mapping[str, str] | None = None,
    reveal: bool = False,
) -> list[LiveRow]:
    """Rows of this process's live ``calls`` and of the service's live ``records``.

    A call relayed here is shown from the registry (with its record when there is one);
    a live record is shown on its own when another instance handles it, or when its
    stream has not started yet.  A record naming ``here`` without a call in the registry
    has just ended here (its final record is on its way) and is left out.
    """
    names = agent_names or {}
    by_sid = {r.call_sid: r for r in records}
    rows = []
    local = set()
    for call in calls:
        local.add(call.call_sid)
        rec = by_sid.get(call.call_sid)
        p = call.parameters
        caller = p.get("caller_id") or (rec.from_number if rec else None)
        started = (rec.answered_at or rec.started_at) if rec else None
        rows.append(
            LiveRow(
                call_sid=call.call_sid,
                number=p.get("called_number") or (rec.to_number if rec else None) or "unknown",
                caller=(caller or "unknown") if reveal else mask_number(caller),
                agent_id=call.agent_id or "—",
                agent_name=names.get(call.agent_id) or call.agent_id or "—",
                direction=p.get("direction") or (rec.direction if rec else "inbound"),
                state=rec.status if rec is not None else "in-progress",
                audio_format=audio_format(call),
                started_at=started or first_seen.get(call.call_sid, time.time()),
                instance=here or "this instance",
                relay_p99_ms=call.relay_p99_ms if isinstance(call, CallDriver) else None,
                turns=call.turns if isinstance(call, CallDriver) else None,
            )
        )
    for rec in by_sid.values():
        if rec.call_sid in local or not rec.live or (here and rec.instance == here):
            continue
        inbound = rec.direction == "inbound"
        ours, other = (
            (rec.to_number, rec.from_number) if inbound else (rec.from_number, rec.to_number)
        )
        agent = rec.agent_id or "—"
        rows.append(
            LiveRow(
                call_sid=rec.call_sid,
                number=ours or "unknown",
                caller=(other or "unknown") if reveal else mask_number(other),
                agent_id=agent,
                agent_name=names.get(agent) or agent,
                direction=rec.direction,
                state=rec.status,
                audio_format="—",  # known to the instance relaying it
                started_at=rec.answered_at or rec.started_at,
                instance=rec.instance or "—",
            )
        )
    rows.sort(key=lambda r: (r.started_at, r.call_sid))
    return rows


_encoder = msgspec.json.Encoder()


class LiveFeed:
    """The SSE body of one open live page."""

    def __init__(
        self,
        calls: Iterable[CallControl],
        list_live: Callable[[], Awaitable[list[CallRecord]]],
        stopping: Callable[[], bool],
        *,
        here: str | None = None,
        agent_names: Callable[[], Mapping[str, str]] = dict,
        gone: Callable[[], Awaitable[bool]] | None = None,
        reveal: bool = False,
        tick_s: float = TICK_S,
        store_every_s: float = STORE_EVERY_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._calls = calls
        self._list_live = list_live
        self._stopping = stopping
        self._here = here
        self._agent_names = agent_names
        self._gone = gone
        self._reveal = reveal
        self._tick_s = tick_s
        self._store_every_s = store_every_s
        self._max_age_s = max_age_s
        self._records: list[CallRecord] = []
        self._complete = True
        self._asked_at = -1e9  # monotonic time of the last question to the service
        self._local: set[str] = set()
        self._first_seen: dict[str, float] = {}

    async def snapshot(self) -> LiveSnapshot:
        live = list(self._calls)
        sids = {c.call_sid for c in live}
        for sid in [s for s in self._first_seen if s not in sids]:
            del self._first_seen[sid]
        for sid in sids - self._first_seen.keys():
            self._first_seen[sid] = time.time()
        # A call came or went here: its record changed with it (the service sees
        # records not yet written), so ask now rather than show a stale row.
        due = time.monotonic() - self._asked_at >= self._store_every_s
        if due or sids != self._local:
            self._asked_at = time.monotonic()
            try:
                self._records = await self._list_live()
                self._complete = True
            except BridgeError:
                self._records, self._complete = [], False
        self._local = sids
        names = self._agent_names() if live or self._records else None
        rows = live_rows(
            live,
            self._records,
            self._first_seen,
            here=self._here,
            agent_names=names,
            reveal=self._reveal,
        )
        return LiveSnapshot(calls=rows, at=time.time(), complete=self._complete)

    async def events(self) -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        last: tuple[list[LiveRow], bool] | None = None
        began = quiet_since = time.monotonic()
        while not self._stopping() and time.monotonic() - began < self._max_age_s:
            snap = await self.snapshot()
            if (snap.calls, snap.complete) != last:
                last = (snap.calls, snap.complete)
                quiet_since = time.monotonic()
                yield b"event: calls\ndata: " + _encoder.encode(snap) + b"\n\n"
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(self._tick_s)
            if self._gone is not None and await self._gone():
                return  # the page was closed: stop looking at once
