"""The live-calls view: one row per live call, pushed to the page as server-sent events.

Rows come from this process's live calls (:class:`~bridge.call.registry.LiveCalls`:
the calls whose media stream this process relays, so the ones it can hang up), each
joined with its call record for the start time.  With a shared store (issue 15) the
source becomes the store's live calls of every instance.

:func:`live_rows` is pure; :class:`LiveFeed` looks at the registry every ``tick_s``
(a dictionary walk, no I/O), fetches the record of a call it has not seen yet, and
yields an SSE ``calls`` event only when the rows changed, a comment now and then to
keep proxies from closing the stream, and stops when the page goes away, while the
bridge drains (so a graceful shutdown never waits on an open page) or after
``max_age_s`` (the browser's EventSource reconnects by itself).
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
from bridge.store import CallRecord

TICK_S: Final = 0.2
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


class LiveSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    calls: list[LiveRow]
    at: float


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
    records: Mapping[str, CallRecord],
    first_seen: Mapping[str, float],
    *,
    agent_names: Mapping[str, str] | None = None,
    reveal: bool = False,
) -> list[LiveRow]:
    names = agent_names or {}
    rows = []
    for call in calls:
        rec = records.get(call.call_sid)
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
        get_record: Callable[[str], Awaitable[CallRecord | None]],
        stopping: Callable[[], bool],
        *,
        agent_names: Callable[[], Mapping[str, str]] = dict,
        gone: Callable[[], Awaitable[bool]] | None = None,
        reveal: bool = False,
        tick_s: float = TICK_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._calls = calls
        self._get_record = get_record
        self._stopping = stopping
        self._agent_names = agent_names
        self._gone = gone
        self._reveal = reveal
        self._tick_s = tick_s
        self._max_age_s = max_age_s
        self._records: dict[str, CallRecord] = {}
        self._first_seen: dict[str, float] = {}
        self._fetched: dict[str, float] = {}  # sid -> when its record was last read

    async def snapshot(self) -> LiveSnapshot:
        live = list(self._calls)
        sids = {c.call_sid for c in live}
        for sid in list(self._records):
            if sid not in sids:
                del self._records[sid]
        for seen in (self._first_seen, self._fetched):
            for sid in [s for s in seen if s not in sids]:
                del seen[sid]
        for call in live:
            sid = call.call_sid
            if sid not in self._first_seen:
                self._first_seen[sid] = time.time()
            rec = self._records.get(sid)
            # Read until the stream's start is recorded; at most once a second per call.
            due = time.monotonic() - self._fetched.get(sid, -1e9) >= 1.0
            if (rec is None or rec.answered_at is None) and due:
                self._fetched[sid] = time.monotonic()
                found = await self._get_record(sid)
                if found is not None:
                    self._records[sid] = found
        rows = live_rows(
            live,
            self._records,
            self._first_seen,
            agent_names=self._agent_names() if live else None,
            reveal=self._reveal,
        )
        return LiveSnapshot(calls=rows, at=time.time())

    async def events(self) -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        last: list[LiveRow] | None = None
        began = quiet_since = time.monotonic()
        while not self._stopping() and time.monotonic() - began < self._max_age_s:
            snap = await self.snapshot()
            if snap.calls != last:
                last = snap.calls
                quiet_since = time.monotonic()
                yield b"event: calls\ndata: " + _encoder.encode(snap) + b"\n\n"
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(self._tick_s)
            if self._gone is not None and await self._gone():
                return  # the page was closed: stop looking at once
