"""A bounded queue of outbound text frames toward one socket.

Backpressure policy: a slow peer must not grow memory without bound, and the call must
go on.  When the queued text exceeds ``max_chars`` the *oldest audio* frames are shed
(counted in ``dropped``); control frames (marks, ``clear``, ``pong``, tool results) are
never shed, since losing one breaks the protocol rather than a few ms of sound.  Audio
frames are recognised by their fixed JSON prefix, which the hot-path frame builders
(:func:`bridge.twilio.media.media_frame`, :func:`bridge.convai.messages.user_audio_chunk_frame`)
always produce.
"""

from __future__ import annotations

from collections import deque

TWILIO_AUDIO_PREFIX = '{"event":"media"'
AGENT_AUDIO_PREFIX = '{"user_audio_chunk"'


class FrameQueue:
    def __init__(self, max_chars: int, audio_prefix: str):
        self._q: deque[str] = deque()
        self._max = max_chars
        self._prefix = audio_prefix
        self.chars = 0  # text queued, the measure of the bound (frames are never empty,
        # so ``chars`` is also the cheapest "anything queued?" on the hot path)
        self.dropped = 0  # audio frames shed under backpressure
        # Running totals, so a frame's position can be followed (relay-latency samples):
        # frame number ``added`` has left the queue once ``removed`` reaches it.
        self.added = 0
        self.removed = 0
        self.clears = 0

    def __len__(self) -> int:
        return len(self._q)

    def push(self, frame: str) -> None:
        self._q.append(frame)
        self.chars += len(frame)
        self.added += 1
        if self.chars > self._max:
            self._shed()

    def push_front(self, frame: str) -> None:
        """Queue ahead of everything (a ``pong`` must not wait behind audio)."""
        self._q.appendleft(frame)
        self.chars += len(frame)
        self.added += 1  # (jumps the line: positions behind it are off by one; pongs only)

    def pop(self) -> str:
        """The oldest frame; raises IndexError when empty."""
        frame = self._q.popleft()
        self.chars -= len(frame)
        self.removed += 1
        return frame

    def take_all(self) -> list[str]:
        """Every queued frame, oldest first, in one step (the writer's flush)."""
        out = list(self._q)
        self._q.clear()
        self.chars = 0
        self.removed += len(out)
        return out

    def clear(self) -> list[str]:
        """Empty the queue; returns what was in it, oldest first."""
        out = list(self._q)
        self._q.clear()
        self.chars = 0
        self.removed += len(out)
        self.clears += 1
        return out

    def _shed(self) -> None:
        kept: list[str] = []
        while self.chars > self._max and self._q:
            frame = self._q.popleft()
            if frame.startswith(self._prefix):
                self.chars -= len(frame)
                self.dropped += 1
                self.removed += 1
            else:
                kept.append(frame)
        self._q.extendleft(reversed(kept))
