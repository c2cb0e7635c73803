"""Timing samples of one call's relay, taken beside the session (which never times).

The driver owns one :class:`RelaySampler` per call and reports what it measures to the
metrics; the session knows nothing of it:

* **transcoding**: every transcoder the session makes passes through :meth:`wrap`,
  which returns a :class:`SampledTranscoder` timing 1 call in ``TRANSCODE_SAMPLE_EVERY``
  (not the first ones: they pay for set-up) → ``bridge_transcode_seconds{direction}``,
  seconds per 20 ms frame;
* **relay latency**: 1 agent audio event in ``RELAY_SAMPLE_EVERY`` is followed from its
  arrival (:meth:`follow`) until its first frame is written to Twilio (:meth:`written`)
  → ``bridge_relay_seconds``.  A sample is dropped when audio was shed or cleared in
  between: the frame written would not be the one followed.

Hot-path rule: an unsampled frame costs a counter and a comparison, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from bridge.audio.transcoder import Transcoder
from bridge.call.frames import FrameQueue
from bridge.metrics import RELAY_SAMPLE_EVERY, TRANSCODE_SAMPLE_EVERY

CALLER_TO_AGENT = "caller_to_agent"
AGENT_TO_CALLER = "agent_to_caller"
ULAW_FRAME_BYTES = 160  # 20 ms of mu-law 8 kHz
_SAMPLE_AT = TRANSCODE_SAMPLE_EVERY // 2  # not the first frame: it pays for set-up

# (direction, seconds per 20 ms frame), for 1 call in TRANSCODE_SAMPLE_EVERY.
TranscodeSample = Callable[[str, float], None]


def _decoded_len(b64: str) -> int:
    return (len(b64) >> 2) * 3 - b64[-2:].count("=")


class SampledTranscoder:
    """A :class:`~bridge.audio.transcoder.Transcoder` that times some of its calls.

    ``process_b64`` (caller → agent: Twilio payloads in) and ``process`` (agent →
    caller: PCM in, mu-law out) are the two the session uses per frame.
    """

    __slots__ = ("_calls", "_observe", "direction", "inner")

    def __init__(self, inner: Transcoder, direction: str, observe: TranscodeSample) -> None:
        self.inner = inner
        self.direction = direction
        self._observe = observe
        self._calls = 0

    def process_b64(self, payload_b64: str) -> str:
        n = self._calls
        self._calls = n + 1
        if n % TRANSCODE_SAMPLE_EVERY != _SAMPLE_AT:
            return self.inner.process_b64(payload_b64)
        t0 = perf_counter()
        out = self.inner.process_b64(payload_b64)
        elapsed = perf_counter() - t0
        if payload_b64:
            frames = _decoded_len(payload_b64) / ULAW_FRAME_BYTES
            self._observe(self.direction, elapsed / max(frames, 0.05))
        return out

    def process(self, data: bytes) -> bytes:
        n = self._calls
        self._calls = n + 1
        if n % TRANSCODE_SAMPLE_EVERY != _SAMPLE_AT:
            return self.inner.process(data)
        t0 = perf_counter()
        out = self.inner.process(data)
        elapsed = perf_counter() - t0
        if out:  # mu-law out: its length is the frames it makes
            self._observe(self.direction, elapsed * ULAW_FRAME_BYTES / len(out))
        return out

    def flush(self) -> bytes:
        return self.inner.flush()

    def reset(self) -> None:
        self.inner.reset()


class RelaySampler:
    """The timing samples of one call (see the module docstring)."""

    def __init__(self, on_transcode: TranscodeSample, on_relay: Callable[[float], None]) -> None:
        self._on_transcode = on_transcode
        self._on_relay = on_relay
        self._audio_events = 0
        # In flight: (frame position in to_twilio, shed + clears then, t0).
        self._probe: tuple[int, int, float] | None = None

    def wrap(
        self, to_agent: Transcoder, to_caller: Transcoder
    ) -> tuple[SampledTranscoder, SampledTranscoder]:
        """The session's two transcoders, timed (``CallSession(wrap_transcoders=…)``)."""
        return (
            SampledTranscoder(to_agent, CALLER_TO_AGENT, self._on_transcode),
            SampledTranscoder(to_caller, AGENT_TO_CALLER, self._on_transcode),
        )

    @property
    def following(self) -> bool:
        """A relay sample is waiting for its frame to be written."""
        return self._probe is not None

    def due(self) -> bool:
        """One more agent audio event: is it the one to follow?"""
        self._audio_events += 1
        return self._audio_events % RELAY_SAMPLE_EVERY == 1 and self._probe is None

    def follow(self, to_twilio: FrameQueue, handle: Callable[[], object]) -> None:
        """Run ``handle`` (the session taking the event) and follow its first frame."""
        position = to_twilio.added + 1
        t0 = perf_counter()
        handle()
        if to_twilio.added >= position:
            self._probe = (position, to_twilio.dropped + to_twilio.clears, t0)

    def written(self, to_twilio: FrameQueue) -> None:
        """Frames were just taken from ``to_twilio`` and written to the socket."""
        assert self._probe is not None
        position, lost_then, t0 = self._probe
        if to_twilio.removed < position:
            return
        self._probe = None
        if to_twilio.dropped + to_twilio.clears == lost_then:  # nothing shed or cleared
            self._on_relay(perf_counter() - t0)
