"""Locating the probe in the audio heard back: relay latency and audio integrity (pure).

With the ``loopback`` agent everything the caller says comes back, through the bridge
twice (caller → agent, agent → caller) and, for PCM agents, through two resamplers.
Byte offsets alone cannot pair sent and heard audio then: the resamplers delay the
signal by a few samples and are not bit-exact.  Instead each 20 ms probe frame is found
in the heard stream by normalised cross-correlation (NCC) against the decoded probe:

* *tracking*: once the content delay (``lag``, heard sample index minus sent sample
  index) is known, all new frames are checked at their expected position in one
  vectorised step; a frame correlating above ``threshold`` is matched;
* frames sent before any audio came back (held while the agent connected) are matched
  but get no relay latency: that wait is the set-up figure;
* a frame that does not match there is searched for within ±``search_samples``: found
  later than expected means audio was inserted before it (a gap: silence from late
  audio), found earlier than the previous frame means out of order, not found means lost;
* after ``reacquire_after`` consecutive losses, or before the first match, the next
  frames are searched for over ``acquire_samples`` from the end of the last match; while
  nothing is found only every ``stride``-th frame is searched for (a call whose audio
  never comes back would otherwise cost a search per frame), and the skipped frames are
  checked at the new lag once the probe is found again.

The relay latency of frame *k* is when its first sample is heard minus when frame *k*
was sent, where a heard chunk is taken to play from the moment it arrives: ``arrival of
the chunk holding heard position p + (p − chunk start) / 8000 − sent``.  That is the
mouth-to-ear delay minus Twilio's own 20 ms packetisation, the same for every sample of
a frame whatever the chunk sizes: it includes both trips through the bridge, the
resamplers' algorithmic delay, any re-chunking the bridge does (a 40 ms chunk holds its
first frame back 20 ms) and inserted gaps; it excludes the caller's playout buffer (the
phone's jitter buffer, not the bridge).

The aligner is incremental: ``sent``/``heard`` as the call goes, ``advance()`` whenever
figures are wanted (the live display does it once a second), ``advance(final=True)``
when the call is over; frames whose search window is not fully heard yet wait.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np

from bridge.audio.signals import tone_snr_db
from bridge.loadtest.probe import FRAME_SAMPLES, RATE, TONE_HZ, Probe, ulaw_to_linear

_SHIFT_TOLERANCE = 2  # samples: resampler rounding, not a gap


class EchoResult(msgspec.Struct, frozen=True):
    """Integrity figures of one call's probe (noise frames; the tone only gives the SNR)."""

    frames_sent: int  # probe noise frames the caller sent
    frames_matched: int  # found in the heard audio
    frames_lost: int  # sent but never heard back
    frames_unheard: int  # the last frames, not back yet when the call ended (overload)
    frames_pending: int  # sent, not judged yet (0 after the final advance)
    setup_frames: int  # matched but sent before any audio came back: no relay latency
    out_of_order: int  # heard before a frame sent earlier
    gap_events: int  # places where audio was inserted between consecutive frames
    gap_ms: float  # total inserted audio
    lag_ms: float | None  # content delay through the path (resamplers), last seen
    tone_snr_db: float | None  # the 1004 Hz tone heard back, signal to noise+distortion


class _Growable:
    """An append-only numpy buffer (amortised O(1) appends, views without copies)."""

    def __init__(self, dtype: str, capacity: int = 4096) -> None:
        self._buf = np.empty(capacity, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + values.size
        if need > self._buf.size:
            grown = np.empty(max(need, 2 * self._buf.size), dtype=self._buf.dtype)
            grown[: self.size] = self._buf[: self.size]
            self._buf = grown
        self._buf[self.size : need] = values
        self.size = need

    def view(self) -> np.ndarray:
        return self._buf[: self.size]


def _search(template: np.ndarray, segment: np.ndarray) -> tuple[int, float]:
    """Best NCC position of ``template`` inside ``segment`` (FFT correlation)."""
    m, n = template.size, segment.size
    if n < m:
        return -1, 0.0
    nfft = 1 << (n + m - 1).bit_length()
    num = np.fft.irfft(np.fft.rfft(segment, nfft) * np.conj(np.fft.rfft(template, nfft)), nfft)
    num = num[: n - m + 1]
    sq = np.concatenate(([0.0], np.cumsum(segment * segment)))
    energy = sq[m:] - sq[: n - m + 1]
    t_energy = float(template @ template)
    den = np.sqrt(np.maximum(energy, 0.0) * t_energy)
    ncc = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-6 * max(t_energy, 1.0))
    best = int(np.argmax(ncc))
    return best, float(ncc[best])


class EchoAligner:
    def __init__(
        self,
        probe: Probe,
        *,
        threshold: float = 0.6,
        search_samples: int = 800,
        reacquire_after: int = 25,
        acquire_samples: int = 16000,
        stride: int = 25,
    ) -> None:
        self.probe = probe
        self.threshold = threshold
        self.search_samples = search_samples
        self.reacquire_after = reacquire_after
        self.acquire_samples = acquire_samples
        self.stride = stride
        self._skipped: list[tuple[int, int]] = []  # frame ranges lost without a search
        nf = probe.noise_frames
        self._ref = probe.linear[: nf * FRAME_SAMPLES].astype(np.float64).reshape(nf, FRAME_SAMPLES)
        self._ref_energy = np.einsum("ij,ij->i", self._ref, self._ref)
        self._sent_t = np.full(probe.frames, np.nan)
        self._n_sent = 0  # frames 0.._n_sent-1 all have a send time
        self._heard = _Growable("<i2", 1 << 16)
        self._chunk_end = _Growable("<i8")
        self._chunk_t = _Growable("<f8")
        self._queued: list[bytes] = []
        self._queued_t: list[float] = []
        self._queued_bytes = 0
        self.lag: int | None = None
        self._k = 0  # next noise frame to judge
        self._last_pos = -1  # heard position of the last matched frame
        self._misses = 0
        self.matched = 0
        self.lost = 0
        self.out_of_order = 0
        self.gap_events = 0
        self.gap_samples = 0
        self.setup_frames = 0  # matched, but sent before the first audio came back
        self.unheard = 0  # the trailing frames still on their way when the call ended
        self.latencies: list[float] = []  # seconds, in frame order
        self.latency_sent_at: list[float] = []  # send time of each latency sample
        self._snr: float | None = None
        self._final = False

    # ------------------------------------------------------------------ input

    def sent(self, frame: int, t: float) -> None:
        """Probe frame ``frame`` (0-based) left the caller at ``t``."""
        if 0 <= frame < self.probe.frames:
            self._sent_t[frame] = t
            while self._n_sent < self.probe.frames and not math.isnan(self._sent_t[self._n_sent]):
                self._n_sent += 1

    def sent_many(self, frames: Sequence[int], times: Sequence[float]) -> None:
        """``sent`` for several frames at once (what the live poll feeds, in one step)."""
        idx = np.asarray(frames, dtype=np.int64)
        t = np.asarray(times, dtype=np.float64)
        keep = (idx >= 0) & (idx < self.probe.frames)
        self._sent_t[idx[keep]] = t[keep]
        rest = self._sent_t[self._n_sent :]
        missing = np.flatnonzero(np.isnan(rest))
        self._n_sent += int(missing[0]) if missing.size else rest.size

    def heard(self, ulaw: bytes, t: float) -> None:
        """Outbound audio (mu-law) arrived at the caller at ``t``.

        Only queued here (called per media message): decoded in one batch by ``advance``.
        """
        if ulaw:
            self._queued.append(ulaw)
            self._queued_t.append(t)
            self._queued_bytes += len(ulaw)

    def _take_queued(self) -> None:
        if not self._queued:
            return
        sizes = np.fromiter((len(c) for c in self._queued), dtype="<i8", count=len(self._queued))
        self._chunk_end.extend(self._heard.size + np.cumsum(sizes))
        self._chunk_t.extend(np.asarray(self._queued_t, dtype="<f8"))
        self._heard.extend(ulaw_to_linear(b"".join(self._queued)))
        self._queued.clear()
        self._queued_t.clear()
        self._queued_bytes = 0

    @property
    def heard_samples(self) -> int:
        return self._heard.size + self._queued_bytes

    # ------------------------------------------------------------------ matching

    def advance(self, final: bool = False) -> None:
        """Judge every frame that can be judged with what has been heard so far."""
        self._take_queued()
        heard = self._heard.view()
        n = heard.size
        limit = min(self._n_sent, self.probe.noise_frames)
        while self._k < limit:
            k = self._k
            if self.lag is None:
                if not self._acquire(heard, final):
                    break
                continue
            lag = self.lag
            # Vectorised check at the expected positions, as far as heard audio reaches.
            m = min(limit, (n - lag - FRAME_SAMPLES) // FRAME_SAMPLES + 1)
            if m > k and lag + FRAME_SAMPLES * k >= 0:  # positions must be >= 0
                pos = lag + FRAME_SAMPLES * np.arange(k, m)
                # Consecutive frames sit back to back: a reshape, not a gather.
                first = lag + FRAME_SAMPLES * k
                seg = heard[first : first + FRAME_SAMPLES * (m - k)].reshape(m - k, FRAME_SAMPLES)
                seg = seg.astype(np.float64)
                ref = self._ref[k:m]
                num = np.einsum("ij,ij->i", seg, ref)
                den = np.sqrt(np.einsum("ij,ij->i", seg, seg) * self._ref_energy[k:m])
                ncc = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
                bad = np.flatnonzero(ncc < self.threshold)
                run = int(bad[0]) if bad.size else m - k
                if run:
                    self._match_run(k, pos[:run])
                self._k = k + run
                if run:
                    continue
            # Frame k is not where expected (or not heard yet): search around it.
            if not self._search_one(heard, final):
                break
        if final:
            rest = limit - self._k
            if self.lag is not None and self.lag + FRAME_SAMPLES * self._k >= n:
                # Still on its way when the call ended (the echo lagged behind the
                # caller's tail of silence): not heard, but not shown to be lost either.
                self.unheard += rest
            else:
                self.lost += rest  # sent and never found
            self._k = limit
            self._final = True
            self._snr = self._tone_snr(heard)

    def _acquire(self, heard: np.ndarray, final: bool) -> bool:
        """Find the content delay from frame k on; False = wait for more audio."""
        k = self._k
        lo = max(0, self._last_pos + FRAME_SAMPLES) if self._last_pos >= 0 else 0
        hi = min(heard.size, lo + self.acquire_samples)
        # One frame is enough: over 2 s of unrelated band noise the best NCC of a 160-sample
        # template stays near 0.4, well under the threshold.
        pos, score = _search(self._ref[k], heard[lo:hi].astype(np.float64))
        if pos >= 0 and score >= self.threshold:
            self.lag = lo + pos - FRAME_SAMPLES * k
            self._misses = 0
            self._backfill(heard)
            return True
        if not final and hi < lo + self.acquire_samples:
            return False  # the window is not fully heard yet
        if self._misses < self.reacquire_after:
            self._lose(k)
            return True
        # Lost for a while (nothing usable coming back): search only every `stride`-th
        # frame, and look again at the skipped ones once the probe is found again.
        skip = min(self.stride, min(self._n_sent, self.probe.noise_frames) - k)
        self._skipped.append((k, k + skip))
        for j in range(k, k + skip):
            self._lose(j)
        return True

    def _backfill(self, heard: np.ndarray) -> None:
        """Frames skipped while the probe was lost: match those present at the new lag."""
        assert self.lag is not None
        for a, b in self._skipped:
            for j in range(a, b):
                p = self.lag + FRAME_SAMPLES * j
                if p < 0 or p + FRAME_SAMPLES > heard.size:
                    continue
                seg = heard[p : p + FRAME_SAMPLES].astype(np.float64)
                den = math.sqrt(float(seg @ seg) * float(self._ref_energy[j]))
                if den > 0 and float(seg @ self._ref[j]) / den >= self.threshold:
                    self.lost -= 1
                    last = self._last_pos
                    self._match(j, p)
                    self._last_pos = max(last, p)
        self._skipped.clear()

    def _search_one(self, heard: np.ndarray, final: bool) -> bool:
        assert self.lag is not None
        k = self._k
        expected = self.lag + FRAME_SAMPLES * k
        lo = max(0, expected - self.search_samples)
        want_hi = expected + FRAME_SAMPLES + self.search_samples
        if heard.size < want_hi and not final:
            return False
        if final and expected >= heard.size:
            return False  # not back when the call ended: counted as unheard, not lost
        hi = min(heard.size, want_hi)
        pos, score = _search(self._ref[k], heard[lo:hi].astype(np.float64))
        if pos < 0 or score < self.threshold:
            self._lose(k)
            return True
        p = lo + pos
        if self._last_pos >= 0 and p < self._last_pos:
            self.out_of_order += 1  # heard, but before a frame sent earlier: keep the lag
        else:
            shift = p - expected
            if shift > _SHIFT_TOLERANCE:
                self.gap_events += 1
                self.gap_samples += shift
            self.lag = p - FRAME_SAMPLES * k
        self._match(k, p)
        self._k = k + 1
        return True

    def _match(self, k: int, pos: int) -> None:
        self._match_run(k, np.array([pos]))

    def _match_run(self, k: int, pos: np.ndarray) -> None:
        """Frames k, k+1, … were found at heard positions ``pos``: time them in one go."""
        end = self._chunk_end.view()
        times = self._chunk_t.view()
        chunk = np.searchsorted(end, pos, side="right")
        chunk_start = np.where(chunk > 0, end[np.maximum(chunk - 1, 0)], 0)
        heard_at = times[chunk] + (pos - chunk_start) / RATE
        sent_at = self._sent_t[k : k + pos.size]
        # Sent before any agent audio had come back: held while the agent connected.
        # That wait is the set-up figure (stream open → first audio), not relay.
        timed = sent_at >= times[0]
        self.setup_frames += int(pos.size - np.count_nonzero(timed))
        self.latencies.extend((heard_at - sent_at)[timed].tolist())
        self.latency_sent_at.extend(sent_at[timed].tolist())
        self.matched += int(pos.size)
        self._misses = 0
        self._last_pos = max(self._last_pos, int(pos[-1]))

    def _lose(self, k: int) -> None:
        self.lost += 1
        self._k = k + 1
        self._misses += 1
        if self._misses >= self.reacquire_after:
            self.lag = None

    def _tone_snr(self, heard: np.ndarray) -> float | None:
        p = self.probe
        if self.lag is None or p.tone_frames < 3:
            return None
        # Skip a frame at each end: the resamplers ring at the noise → tone edge.
        start = self.lag + FRAME_SAMPLES * (p.noise_frames + 1)
        end = self.lag + FRAME_SAMPLES * (p.frames - 1)
        if start < 0 or end > heard.size:
            return None
        return tone_snr_db(heard[start:end], RATE, TONE_HZ)

    # ------------------------------------------------------------------ output

    def result(self) -> EchoResult:
        return EchoResult(
            frames_sent=min(self._n_sent, self.probe.noise_frames),
            frames_matched=self.matched,
            frames_lost=self.lost,
            frames_unheard=self.unheard,
            frames_pending=min(self._n_sent, self.probe.noise_frames) - self._k,
            setup_frames=self.setup_frames,
            out_of_order=self.out_of_order,
            gap_events=self.gap_events,
            gap_ms=self.gap_samples * 1000 / RATE,
            lag_ms=None if self.lag is None else self.lag * 1000 / RATE,
            tone_snr_db=self._snr,
        )
