"""Streaming polyphase resampler: one object per direction of a call.

Latency first.  Output sample ``n`` (at ``n / out_rate`` seconds in the output stream)
is the kernel of :mod:`bridge.audio.filters` centred ``delay_s`` (2.2 ms) earlier; it is
computed and returned by the very ``process()`` call that delivers the newest input it
needs.  Nothing else is held back, so the algorithmic delay is the group delay alone,
whatever the chunk size (an impulse in 20 ms chunks comes out 2.2 ms late; a soxr HQ
stream, which returns audio in ~100 ms bursts, needs 73-166 ms: see docs/performance.md).

Speed.  A 20 ms frame must cost a handful of numpy calls, not one per sample:

* Outputs are grouped in **blocks** of ``K`` consecutive samples (8 at the 8 kHz side).
  A block reads one contiguous window of ``W`` inputs and is one small matrix product
  with a precomputed banded matrix ``G`` (K x W); the block's phase pattern depends only
  on the phase of its first output, so a conversion has ``P`` distinct matrices (1 for
  integer ratios; 10 for 44.1 kHz -> 8 kHz, whose period is 441 inputs : 80 outputs).
  A frame is then one BLAS product (integer ratios: over a strided view of the buffer;
  rational: a gather of the windows and a batched product over the ``P`` patterns) and
  one rounding.  Windows overlap ~1.2x, against 2-6x for per-output windows.
* A chunk computes whole cycles of ``P`` blocks, rounding up: the few outputs past the
  last complete one read not-yet-valid buffer slots and are thrown away.  That keeps
  odd chunk sizes on the same fast path instead of a per-output one.
* Everything that depends only on (chunk length, phase state) is a cached
  :class:`_Plan`, so steady 20 ms framing never recomputes it.  Chunks longer than
  ~80 ms are cut into ~80 ms pieces: each product stays small enough that OpenBLAS does
  not start threads (on a busy 2-core host that turned 0.3 ms into 30 ms).
* Inputs land in a preallocated float32 history buffer; float32 keeps the error
  ~140 dB below full scale, far under the int16 rounding the output gets anyway.
* Saturation to int16 (the kernel overshoots near full scale) costs two numpy calls,
  so it is skipped when no input within reach is louder than ``32767 / sum|c|``.

State is per stream: the last ``taps - 1`` inputs and the phase ``z`` (how far, in
``1/up`` input samples, the next output lies past the inputs consumed).  Odd byte
counts are fine: a dangling byte is carried to the next call.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from bridge.audio._audioop import audioop
from bridge.audio.filters import Polyphase, check_rates, polyphase

F32 = npt.NDArray[np.float32]
Idx = npt.NDArray[np.intp]

BLOCK_LOW_RATE_SAMPLES = 8  # a block spans ~8 samples of the lower rate (1 ms at 8 kHz)
PIECE_S = 0.08  # longer chunks are processed in pieces of about this much input
_NATIVE_LITTLE_ENDIAN = sys.byteorder == "little"  # audioop.max reads native order


@dataclass(frozen=True)
class _Geometry:
    """Per-conversion constants shared by every stream of that conversion."""

    pp: Polyphase
    block: int  # K: outputs per block
    cycle: int  # P: distinct block patterns before they repeat
    width: int  # W: inputs one block window spans (max over patterns)
    cycle_inputs: int  # inputs a whole cycle of P blocks advances
    piece: int  # most inputs handled in one step (a multiple of `down`: keeps the phase)
    rows: F32  # (up, taps): coeffs reversed to increasing input index
    safe_peak: int  # inputs up to this magnitude cannot push an output past int16


def _choose_block(up: int, down: int) -> int:
    if up == 1:
        return BLOCK_LOW_RATE_SAMPLES
    if down == 1:
        return BLOCK_LOW_RATE_SAMPLES * up
    # Rational ratio: a divisor of `up` keeps the number of block patterns at up / K.
    target = BLOCK_LOW_RATE_SAMPLES * max(1.0, up / down)
    divisors = [d for d in range(1, up + 1) if up % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), -d))


@functools.lru_cache(maxsize=32)
def _geometry(in_rate: int, out_rate: int) -> _Geometry:
    pp = polyphase(in_rate, out_rate)
    up, down, taps = pp.up, pp.down, pp.taps
    block = _choose_block(up, down)
    cycle = up // math.gcd(block * down, up)
    width = (up - 1 + (block - 1) * down) // up + taps
    piece = down * max(1, math.ceil(max(PIECE_S * in_rate, taps) / down))  # flush fits too
    rows = np.ascontiguousarray(pp.coeffs[:, ::-1], dtype=np.float32)
    rows.setflags(write=False)
    # |output| <= peak * max row L1 norm (~1.9-2.2: the sinc's lobes alternate in sign).
    safe_peak = int(32767.0 / float(np.abs(pp.coeffs).sum(axis=1).max())) - 1
    cycle_inputs = cycle * block * down // up
    return _Geometry(pp, block, cycle, width, cycle_inputs, piece, rows, safe_peak)


@functools.lru_cache(maxsize=256)
def _cycle_matrices(in_rate: int, out_rate: int, first_phase: int) -> F32:
    """Block matrices, transposed, for two turns of the cycle that ``first_phase`` is on.

    Block ``c`` of a chunk starts at phase ``(z + c*K*down) % up``, so a chunk's ``P``
    matrices are ``P`` consecutive entries of this ``(2P, W, K)`` array: a view, not a
    copy, for whichever block of the cycle the chunk starts on.  Cycles whose first
    phases differ by a multiple of ``K*down`` share one array (see :func:`_cycle_of`).
    """
    g = _geometry(in_rate, out_rate)
    up, down, taps = g.pp.up, g.pp.down, g.pp.taps
    # Output k of a block whose first output has phase p sits at u = p + k*down: its
    # coefficients (phase u % up) start at column u // up of the block's window.
    p = ((first_phase + np.arange(2 * g.cycle) * g.block * down) % up)[:, None, None]
    k = np.arange(g.block)[None, :, None]
    t = np.arange(taps)[None, None, :]
    u = p + k * down
    mats = np.zeros((2 * g.cycle, g.width, g.block), dtype=np.float32)
    mats[np.arange(2 * g.cycle)[:, None, None], u // up + t, k] = g.rows[u % up, t]
    mats.setflags(write=False)
    return mats


def _cycle_of(g: _Geometry, phase: int) -> tuple[int, int]:
    """(first phase of the cycle ``phase`` is on, position of ``phase`` in that cycle)."""
    up, step = g.pp.up, g.block * g.pp.down
    d = up // g.cycle  # phases one cycle visits: one residue class modulo d
    r = phase % d
    if g.cycle == 1:
        return r, 0
    # Solve r + j*step = phase (mod up) for j: divide through by d, invert modulo P.
    j = ((phase - r) // d) * pow((step // d) % g.cycle, -1, g.cycle) % g.cycle
    return r, j


@dataclass(frozen=True, eq=False)
class _Plan:
    """How one chunk of ``n`` inputs at phase state ``z`` turns into outputs."""

    n_out: int
    z_next: int
    cycles: int  # Q: cycles of P blocks computed (rounded up; extra outputs are dropped)
    block_starts: Idx  # (P*Q,) window starts in buffer coordinates, pattern-major
    stack: F32  # (P, W, K)


@functools.lru_cache(maxsize=512)
def _plan(in_rate: int, out_rate: int, n: int, z: int) -> _Plan:
    g = _geometry(in_rate, out_rate)
    up, down = g.pp.up, g.pp.down
    # Output i of this chunk sits at z + i*down (units of 1/up input) past the first
    # new input; it is ready once its newest input, (z + i*down) // up, has arrived.
    n_out = max(0, -(-(n * up - z) // down))
    z_next = z + n_out * down - n * up
    cycles = -(-n_out // (g.cycle * g.block))
    # With `taps - 1` history samples ahead of the new ones, the window of the block
    # whose first output is i starts at buffer position (z + i*down) // up.
    firsts = (np.arange(cycles)[None, :] * g.cycle + np.arange(g.cycle)[:, None]) * g.block
    block_starts = ((z + firsts.ravel().astype(np.int64) * down) // up).astype(np.intp)
    cycle, j = _cycle_of(g, z % up)
    stack = _cycle_matrices(in_rate, out_rate, cycle)[j : j + g.cycle]
    return _Plan(n_out, z_next, cycles, block_starts, stack)


@dataclass(frozen=True, eq=False)
class _Bound:
    """A plan bound to one stream's buffers: input views and reusable output arrays."""

    plan: _Plan
    y: F32  # (n_out,) the outputs; a view of the computed ones
    body: F32  # all computed outputs, shaped for the product's result
    uniform: tuple[F32, F32] | None  # one pattern: (strided view of the windows, (W, K))
    pcm: npt.NDArray[np.int16]  # (n_out,) y rounded to int16
    new: F32  # where this chunk's inputs go in the buffer
    keep: F32  # the last `taps - 1` inputs after this chunk: the next chunk's history


class StreamingResampler:
    """Convert a stream of 16-bit little-endian mono PCM from ``in_rate`` to ``out_rate``.

    Feed chunks of any size (20 ms frames, odd byte counts, empty) to :meth:`process`;
    each call returns every output sample its input completes.  :meth:`flush` returns
    the held-back tail, :meth:`reset` drops all state (barge-in).  With equal rates it
    is an identity that only carries odd bytes.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        check_rates(in_rate, out_rate)
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.identity = in_rate == out_rate
        self._pending = b""
        self._dirty = False  # inputs arrived since the last flush/reset
        self._loud_left = 0  # inputs until no sample loud enough to overshoot is in history
        self._z = 0
        self._bound: dict[tuple[int, int], _Bound] = {}
        if self.identity:
            self.delay_ms = 0.0
            return
        g = self._g = _geometry(in_rate, out_rate)
        self.delay_ms = g.pp.delay_s * 1000.0
        self._hist = g.pp.taps - 1
        # History, one piece, and the slack the rounded-up last cycle may read.
        self._buf: F32 = np.zeros(
            self._hist + g.piece + g.cycle_inputs + g.width + 1, dtype=np.float32
        )
        self._history = self._buf[: self._hist]
        self._blocks_view = sliding_window_view(self._buf, g.width)

    def process(self, pcm16le: bytes) -> bytes:
        """Resample one chunk; returns whole samples (possibly none)."""
        if self._pending:
            pcm16le = self._pending + pcm16le
            self._pending = b""
        if len(pcm16le) & 1:
            self._pending = pcm16le[-1:]
            pcm16le = pcm16le[:-1]
        if not pcm16le:
            return b""
        if self.identity:
            return bytes(pcm16le)
        step = 2 * self._g.piece
        if len(pcm16le) <= step:
            return self._resample(np.frombuffer(pcm16le, dtype="<i2"), _peak(pcm16le))
        whole = memoryview(pcm16le)
        return b"".join(
            self._resample(np.frombuffer(part, dtype="<i2"), _peak(part))
            for part in (whole[i : i + step] for i in range(0, len(whole), step))
        )

    def flush(self) -> bytes:
        """Return everything the inputs so far still contribute to, as if silence followed.

        Emits ``taps - 1`` inputs' worth (~2 x delay_ms) of output; afterwards the history
        is silent and the stream may simply continue.  A dangling odd byte is dropped.
        """
        self._pending = b""
        if self.identity or not self._dirty:
            return b""
        out = self._resample(np.zeros(self._hist, dtype=np.float32), 0)
        self._dirty = False
        return out

    def reset(self) -> None:
        """Forget all history and phase, as if newly constructed (barge-in)."""
        self._pending = b""
        self._dirty = False
        self._loud_left = 0
        self._z = 0
        if not self.identity:
            self._buf[:] = 0.0

    def _bind(self, n: int, z: int) -> _Bound:
        g, hist = self._g, self._hist
        plan = _plan(self.in_rate, self.out_rate, n, z)
        computed = np.empty(plan.cycles * g.cycle * g.block, dtype=np.float32)
        uniform: tuple[F32, F32] | None = None
        body: F32
        if g.cycle == 1:
            body = computed.reshape(plan.cycles, g.block)
            # One pattern: the windows are evenly spaced, so a strided view of the buffer
            # replaces the gather (np.dot copies it to BLAS layout in one go).
            windows: F32 = np.ndarray(
                (plan.cycles, g.width),
                dtype=np.float32,
                buffer=self._buf,
                offset=int(plan.block_starts[0]) * 4 if plan.cycles else 0,
                strides=(g.cycle_inputs * 4, 4),
            )
            uniform = (windows, plan.stack[0])
        else:
            body = computed.reshape(plan.cycles, g.cycle, g.block).transpose(1, 0, 2)
        if len(self._bound) >= 16:  # irregular chunk sizes: keep the cache small
            self._bound.clear()
        bound = _Bound(
            plan,
            computed[: plan.n_out],
            body,
            uniform,
            np.empty(plan.n_out, dtype="<i2"),
            self._buf[hist : hist + n],
            self._buf[n : n + hist],
        )
        self._bound[(n, z)] = bound
        return bound

    def _resample(self, x: npt.NDArray[np.int16] | F32, peak: int) -> bytes:
        b = self._bound.get((x.size, self._z)) or self._bind(x.size, self._z)
        plan, y = b.plan, b.y
        b.new[...] = x
        if b.uniform is not None:
            np.dot(b.uniform[0], b.uniform[1], out=b.body)
        else:
            g = self._g
            windows = self._blocks_view[plan.block_starts]
            np.matmul(windows.reshape(g.cycle, plan.cycles, g.width), plan.stack, out=b.body)
        self._history[...] = b.keep  # (numpy copes with the overlap when n < taps - 1)
        self._z = plan.z_next
        self._dirty = True
        if peak > self._g.safe_peak:
            clip, self._loud_left = True, self._hist
        else:
            clip = self._loud_left > 0
            self._loud_left = max(0, self._loud_left - x.size)
        if clip:
            np.maximum(y, -32768.0, out=y)
            np.minimum(y, 32767.0, out=y)
        np.rint(y, out=b.pcm, casting="unsafe")
        return b.pcm.tobytes()


def _peak(pcm16le: bytes | memoryview) -> int:
    """Largest sample magnitude (C speed); assume the worst where audioop can't read it."""
    return int(audioop.max(pcm16le, 2)) if _NATIVE_LITTLE_ENDIAN else 32768
