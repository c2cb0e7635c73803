"""Twilio's outbound audio buffer for one stream, on a clock the caller drives (pure).

Twilio plays what the server sends in order at 8000 mu-law bytes per second, without
pacing by the server.  So the playout schedule is known the moment audio arrives: a
chunk starts when the previous one ends (or now, if the line was idle).  A mark is
echoed when playout reaches it, at once if nothing is queued; ``clear`` drops every
unplayed byte and echoes all pending marks at once ("played or cleared").

Times are call-time seconds (the adapter's clock, already scaled by its speed factor):
nothing here reads a clock, so tests drive it with plain numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

BYTES_PER_SECOND = 8000
SILENCE = 0xFF  # mu-law of 0


@dataclass(slots=True)
class HeardSegment:
    """Audio the caller heard: ``data`` started playing at ``start`` (call time)."""

    start: float
    data: bytes

    @property
    def end(self) -> float:
        return self.start + len(self.data) / BYTES_PER_SECOND


@dataclass(frozen=True, slots=True)
class MarkEcho:
    name: str
    received: float  # when the server's mark arrived
    echoed: float  # when playout reached it (or it was cleared)
    cleared: bool  # echoed because of a clear, not because it played


class Playout:
    def __init__(self) -> None:
        self.segments: list[HeardSegment] = []
        self.clears: list[float] = []
        self._end = 0.0  # when the queued audio finishes
        self._marks: deque[tuple[float, str, float]] = deque()  # (due, name, received)

    def push_audio(self, data: bytes, now: float) -> None:
        if not data:
            return
        start = max(now, self._end)
        self.segments.append(HeardSegment(start, data))
        self._end = start + len(data) / BYTES_PER_SECOND

    def push_mark(self, name: str, now: float) -> None:
        """Queue a mark; ``due(now)`` returns it at once if nothing was buffered."""
        self._marks.append((max(now, self._end), name, now))

    def due(self, now: float) -> list[MarkEcho]:
        """Marks whose audio has played by ``now``, in order, each echoed at its due time."""
        out: list[MarkEcho] = []
        while self._marks and self._marks[0][0] <= now:
            due, name, received = self._marks.popleft()
            out.append(MarkEcho(name, received, due, cleared=False))
        return out

    def next_due(self) -> float | None:
        return self._marks[0][0] if self._marks else None

    def clear(self, now: float) -> list[MarkEcho]:
        """Drop unplayed audio; echo what was due already, then every pending mark."""
        out = self.due(now)
        self._truncate(now)
        self.clears.append(now)
        while self._marks:
            _, name, received = self._marks.popleft()
            out.append(MarkEcho(name, received, now, cleared=True))
        return out

    def hang_up(self, now: float) -> None:
        """The call ended at ``now``: audio scheduled after it was never heard."""
        self._truncate(now)
        self._marks.clear()

    def playing(self, now: float) -> bool:
        return self._end > now

    @property
    def queued_until(self) -> float:
        """When the buffered audio will have played out."""
        return self._end

    def heard_audio(self) -> bytes:
        """Every byte heard, back to back (gaps of idle line left out)."""
        return b"".join(s.data for s in self.segments)

    def heard_timeline(self, until: float | None = None) -> bytes:
        """What the line carried from call time 0, idle gaps filled with mu-law silence."""
        out = bytearray()
        for s in self.segments:
            at = round(s.start * BYTES_PER_SECOND)
            if at > len(out):
                out.extend(bytes([SILENCE]) * (at - len(out)))
            out.extend(s.data)
        if until is not None:
            n = round(until * BYTES_PER_SECOND)
            out = out[:n] + bytes([SILENCE]) * max(0, n - len(out))
        return bytes(out)

    def _truncate(self, now: float) -> None:
        while self.segments and self.segments[-1].start >= now:
            self.segments.pop()
        if self.segments:
            last = self.segments[-1]
            keep = round((now - last.start) * BYTES_PER_SECOND)
            if keep < len(last.data):
                last.data = last.data[:keep]
        self._end = min(self._end, now)
