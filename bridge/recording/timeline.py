"""What the phone heard, on the caller's timeline: the recorder's pure core.

Two channels at 8 kHz: the caller (left) and the agent as played to the caller (right).
Sample ``n`` is ``n / 8000`` s after the stream's ``start``, on the caller's clock:
Twilio stamps every inbound media frame with its ``timestamp`` (ms since the start), so

* the **caller channel** is the inbound payloads, each at ``timestamp * 8``; a frame that
  never came leaves silence where it belonged (a timestamp gap), and a frame stamped
  behind the previous one (a repeat, a peer that stamps nothing) follows it at once;
* the **agent channel** is placed where Twilio played it.  Twilio plays what it is sent
  in order at 8000 bytes/s without pacing: audio sent at caller time ``c`` starts at
  ``max(c, end of the queued audio)``; a ``clear`` sent at ``c`` drops everything not
  yet played by ``c``; when the stream ends, whatever was still queued was never heard.

"Caller time now" comes from the local clock: ``now - origin + lead``, where ``lead``
is the largest ``timestamp - arrival`` any frame showed.  A frame's arrival is its send
time plus a delay, so the largest value is the least-delayed frame: the best estimate of
how far the caller's clock is ahead of ours, and it only ever moves forward.  (A caller
whose clock runs faster than ours, as the emulator's at a speed factor, keeps it moving
forward with every frame, so the estimate tracks it within a frame.)

Nothing here reads a clock or writes a file: times come in as seconds (the adapter's
``time.monotonic()``), finished audio goes out as interleaved 16-bit little-endian PCM
for the adapter to append to the WAV file.  Memory is bounded: samples are handed out
once both channels are final (``take``), so what is kept is the caller audio of the
last flush interval and the agent audio queued but not played yet, at most
``max_queued_s`` of it (beyond that new agent audio is counted in ``agent_dropped``
and not kept: Twilio would play it, the recording then misses it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from bridge.audio.g711 import ulaw_decode

RATE = 8000  # samples per second, both channels (Twilio's mu-law rate)
SILENCE = 0xFF  # mu-law 0
FRAME_SAMPLES = 160  # one 20 ms media frame
MAX_GAP_S = 10.0  # a timestamp jump beyond this is not believed (stream stall timeout)
MAX_QUEUED_S = 300.0


@dataclass(slots=True)
class _Segment:
    """Agent audio queued on Twilio's playout: ``data`` plays from sample ``start``."""

    start: int
    data: bytes


class Recorder:
    def __init__(self, origin: float, *, max_queued_s: float = MAX_QUEUED_S) -> None:
        self.origin = origin  # local time of the stream's start (caller time 0)
        self._lead = 0.0  # caller clock minus (local clock - origin), seconds
        self._done = 0  # samples handed out so far (both channels)
        self._caller = bytearray()  # caller mu-law from sample _done on
        self._caller_end = 0  # sample after the last caller sample placed
        self._agent: deque[_Segment] = deque()  # in playout order
        self._agent_end = 0  # sample at which the queued agent audio has all played
        self._max_queued = int(max_queued_s * RATE)
        self.agent_dropped = 0  # agent samples not kept (over max_queued_s)
        self.agent_cleared = 0  # agent samples sent but cut by a clear or the end
        self.finished = False

    # ------------------------------------------------------------------ the clock

    def caller_time(self, at: float) -> float:
        """Caller time (s since the start) at local time ``at``."""
        return at - self.origin + self._lead

    def _pos(self, at: float) -> int:
        return max(round(self.caller_time(at) * RATE), self._done)

    # ------------------------------------------------------------------ inputs

    def caller(self, ulaw: bytes, timestamp_ms: int | None, at: float) -> None:
        """An inbound media payload that arrived at local time ``at``."""
        if self.finished or not ulaw:
            return
        end = self._caller_end
        start = end
        if timestamp_ms is not None:
            stamped = timestamp_ms * RATE // 1000
            if stamped > end:
                start = min(stamped, end + int(MAX_GAP_S * RATE))
        lead = start / RATE - (at - self.origin)
        if lead > self._lead:
            self._lead = lead
        buf = self._caller
        if start > end:
            buf.extend(bytes([SILENCE]) * (start - end))
        buf.extend(ulaw)
        self._caller_end = start + len(ulaw)

    def agent(self, ulaw: bytes, at: float) -> None:
        """Agent mu-law written to Twilio at local time ``at``: queued on its playout."""
        if self.finished or not ulaw:
            return
        start = max(self._pos(at), self._agent_end)
        room = self._done + self._max_queued - start
        if room < len(ulaw):
            kept = max(room, 0)
            self.agent_dropped += len(ulaw) - kept
            ulaw = ulaw[:kept]
            if not ulaw:
                return
        self._agent.append(_Segment(start, bytes(ulaw)))
        self._agent_end = start + len(ulaw)

    def clear(self, at: float) -> None:
        """A ``clear`` written to Twilio at local time ``at``: unplayed audio is dropped."""
        if not self.finished:
            self._cut(self._pos(at))

    # ------------------------------------------------------------------ outputs

    def take(self, at: float) -> bytes:
        """Stereo PCM of every sample final by local time ``at`` (maybe empty).

        A sample is final once the caller's frame for it came and its agent audio can no
        longer change (it has played by now)."""
        if self.finished:
            return b""
        upto = min(self._caller_end, self._pos(at))
        return self._emit(upto)

    def finish(self, at: float) -> bytes:
        """The stream ended at local time ``at``: the rest of the recording."""
        if self.finished:
            return b""
        end = self._pos(at)
        self._cut(end)  # queued but never played: the socket closed first
        upto = max(self._caller_end, self._agent_end, self._done)
        out = self._emit(upto)
        self.finished = True
        self._caller.clear()
        self._agent.clear()
        return out

    @property
    def samples(self) -> int:
        """Samples handed out so far (per channel)."""
        return self._done

    @property
    def queued_agent_samples(self) -> int:
        return max(self._agent_end - self._done, 0)

    # ------------------------------------------------------------------ internals

    def _cut(self, at: int) -> None:
        q = self._agent
        while q:
            seg = q[-1]
            if seg.start >= at:
                self.agent_cleared += len(seg.data)
                q.pop()
                continue
            keep = at - seg.start
            if keep < len(seg.data):
                self.agent_cleared += len(seg.data) - keep
                seg.data = seg.data[:keep]
            break
        self._agent_end = min(self._agent_end, at)

    def _emit(self, upto: int) -> bytes:
        n = upto - self._done
        if n <= 0:
            return b""
        done = self._done
        caller = bytes(self._caller[:n])
        del self._caller[:n]
        if len(caller) < n:  # the caller's frames stopped before the end
            caller += bytes([SILENCE]) * (n - len(caller))
        agent = bytearray([SILENCE]) * n
        q = self._agent
        while q:
            seg = q[0]
            if seg.start >= upto:
                break
            # seg.start >= done: nothing is ever placed before what was handed out.
            a, take = seg.start - done, min(len(seg.data), upto - seg.start)
            agent[a : a + take] = seg.data[:take]
            if take < len(seg.data):
                seg.start, seg.data = upto, seg.data[take:]
                break
            q.popleft()
        self._done = upto
        out = np.empty(2 * n, dtype="<i2")
        out[0::2] = np.frombuffer(ulaw_decode(caller), dtype="<i2")
        out[1::2] = np.frombuffer(ulaw_decode(bytes(agent)), dtype="<i2")
        return out.tobytes()
