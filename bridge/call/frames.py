"""A bounded queue of outbound text frames toward one socket.

Backpressure policy: a slow peer must not grow memory without bound, and the call must
go on.  When the queued text exceeds ``max_chars`` the *oldest audio* frames are shed
(counted in ``dropped``); control frames (marks, ``clear``, ``pong``, tool results) are
never shed, since losing one breaks the protocol rather than a few ms of sound.  Audio
frames are recognised by their fixed JSON prefix, which the hot-path frame builders
(:func:`bridge.twilio.media.media_frame`, :func:`bridge.convai.messages.user_audio_chunk_frame`)
always produce.

Control frames are bounded too, separately: the ones that outlived shedding pile up only
while the peer reads nothing (a mark every 100 ms of agent audio), so past
``max_control_frames`` / ``max_control_chars`` of them the queue is :attr:`stalled` and
the session ends the call; frames are still accepted until it does.

Cost: every push is O(1) amortised, however long the peer has not read.  The queue is
two deques, ``head`` + ``tail`` in send order: shedding pops ``tail`` from the front,
dropping audio and moving control frames to the back of ``head``, where they stay until
sent.  A frame is moved at most once, and only frames that shedding reaches are ever
classified; nothing is rescanned.  The hot path (push, then ``take_all`` of a ``head``
that is empty unless the peer is slow) is an append and a ``list()``.
"""

from __future__ import annotations

from collections import deque

TWILIO_AUDIO_PREFIX = '{"event":"media"'
AGENT_AUDIO_PREFIX = '{"user_audio_chunk"'

# Control frames kept through shedding: ~100 s of agent audio's marks, or a quarter of
# the audio bound in text, whichever is reached first.
MAX_CONTROL_FRAMES = 1000
CONTROL_SHARE = 4  # max_control_chars defaults to max_chars // CONTROL_SHARE


class FrameQueue:
    def __init__(
        self,
        max_chars: int,
        audio_prefix: str,
        *,
        max_control_frames: int = MAX_CONTROL_FRAMES,
        max_control_chars: int | None = None,
    ):
        self._head: deque[str] = deque()  # control frames only, ahead of all of _tail
        self._tail: deque[str] = deque()
        self._head_chars = 0
        self._max = max_chars
        self._prefix = audio_prefix
        self._max_control = max_control_frames
        self._max_control_chars = (
            max_chars // CONTROL_SHARE if max_control_chars is None else max_control_chars
        )
        self.chars = 0  # text queued, the measure of the bound (frames are never empty,
        # so ``chars`` is also the cheapest "anything queued?" on the hot path)
        self.dropped = 0  # audio frames shed under backpressure
        # Running totals, so a frame's position can be followed (relay-latency samples):
        # frame number ``added`` has left the queue once ``removed`` reaches it.
        self.added = 0
        self.removed = 0
        self.clears = 0
        # Control frames over their bound: the peer has not read for a long time.
        self.stalled = False

    def __len__(self) -> int:
        return len(self._head) + len(self._tail)

    @property
    def control_kept(self) -> int:
        """Control frames that outlived shedding (what the control bound measures)."""
        return len(self._head)

    def push(self, frame: str) -> None:
        self._tail.append(frame)
        self.chars += len(frame)
        self.added += 1
        if self.chars > self._max:
            self._shed()

    def push_front(self, frame: str) -> None:
        """Queue ahead of everything (a ``pong`` must not wait behind audio)."""
        self._head.appendleft(frame)
        self._head_chars += len(frame)
        self.chars += len(frame)
        self.added += 1  # (jumps the line: positions behind it are off by one; pongs only)
        self._check_control()

    def pop(self) -> str:
        """The oldest frame; raises IndexError when empty."""
        if self._head:
            frame = self._head.popleft()
            self._head_chars -= len(frame)
        else:
            frame = self._tail.popleft()
        self.chars -= len(frame)
        self.removed += 1
        return frame

    def take_all(self) -> list[str]:
        """Every queued frame, oldest first, in one step (the writer's flush)."""
        if self._head:
            out = [*self._head, *self._tail]
            self._head.clear()
            self._head_chars = 0
        else:
            out = list(self._tail)
        self._tail.clear()
        self.chars = 0
        self.removed += len(out)
        return out

    def clear(self) -> list[str]:
        """Empty the queue; returns what was in it, oldest first."""
        out = self.take_all()
        self.clears += 1
        self.stalled = False
        return out

    def _shed(self) -> None:
        tail, head, prefix = self._tail, self._head, self._prefix
        moved = 0
        while self.chars > self._max and tail:
            frame = tail.popleft()
            if frame.startswith(prefix):
                self.chars -= len(frame)
                self.dropped += 1
                self.removed += 1
            else:  # kept, in order, ahead of everything still in tail
                head.append(frame)
                moved += len(frame)
        if moved:
            self._head_chars += moved
            self._check_control()

    def _check_control(self) -> None:
        if len(self._head) > self._max_control or self._head_chars > self._max_control_chars:
            self.stalled = True
