"""Per-call records and the aggregated figures of a phase (pure).

A *phase* is one batch of calls against one agent format (``--agent-format a,b`` or
``--calls 50,100`` make several, run one after the other so each gets its own CPU
window).  Each call ends as exactly one :class:`CallOutcome` with a reason string;
figures are computed from the records by :func:`aggregate` and nowhere else.

Resource figures, defined so they compare across runs:

* **CPU-ms per call-second**: bridge CPU time during the phase window divided by the sum
  over calls of the seconds each call's media stream was open;
* **MiB per call**: (peak RSS during the phase − RSS just before it) / peak concurrent
  calls.  Python rarely returns freed memory, so a later phase on the same bridge
  process shows only the growth beyond what earlier phases left behind.
"""

from __future__ import annotations

import enum

import msgspec
import numpy as np

from bridge.loadtest.align import EchoResult
from bridge.loadtest.procstat import Usage
from bridge.loadtest.stats import Summary, scaled, summarize
from bridge.loadtest.turns import StageFigures

MIB = 1024 * 1024


class CallOutcome(enum.Enum):
    COMPLETED = "completed"
    FAILED_TO_CONNECT = "failed_to_connect"  # webhook, TwiML or stream upgrade failed
    DROPPED = "dropped"  # the stream ended before the caller hung up, or broke mid-call


class CallMeasurement(msgspec.Struct, frozen=True):
    """What one call measured.  Times are seconds on the run's clock (0 = run start)."""

    index: int
    phase: int
    scenario: str
    agent_format: str
    outcome: CallOutcome
    reason: str
    started_at: float
    ended_at: float
    call_sid: str | None = None
    webhook_ms: float | None = None  # webhook POST sent → TwiML received
    first_audio_ms: float | None = None  # stream open → first agent audio heard
    stream_s: float = 0.0  # seconds the media stream was open
    media_sent: int = 0  # media messages the caller sent
    media_received: int = 0  # media messages the bridge sent the caller
    bytes_sent: int = 0
    bytes_received: int = 0
    clears: int = 0
    barge_in_ms: tuple[float, ...] = ()  # caller starts speaking → clear received
    echo: EchoResult | None = None  # loopback calls only
    latency_p99_ms: float | None = None  # this call's relay latency p99
    send_lag_p99_ms: float | None = None  # how late the caller sent its frames (self-check)


class Integrity(msgspec.Struct, frozen=True):
    probe_frames_sent: int
    probe_frames_received: int
    probe_frames_lost: int
    probe_frames_unheard: int  # trailing frames still in flight at hang-up
    out_of_order: int
    gap_events: int
    gap_ms: float
    media_sent: int
    media_received: int
    bytes_sent: int
    bytes_received: int
    tone_snr_db: Summary | None


class Resources(msgspec.Struct, frozen=True):
    call_seconds: float
    peak_concurrent_calls: int
    bridge_cpu_s: float | None
    bridge_cpu_ms_per_call_second: float | None
    bridge_rss_start_mib: float | None
    bridge_rss_peak_mib: float | None
    bridge_mib_per_call: float | None
    emulator_cpu_s: float | None
    loadgen_cpu_s: float | None


class Criteria(msgspec.Struct, frozen=True):
    """The targets a phase is judged against (the issue's benchmark line by default)."""

    max_lost_frames: int = 0
    max_failed_calls: int = 0
    max_p99_ms: float = 20.0
    max_cpu_ms_per_call_second: float = 3.0


class PhaseFigures(msgspec.Struct, frozen=True):
    phase: int
    agent_format: str
    calls_requested: int
    outcomes: dict[str, int]
    reasons: dict[str, int]  # "<outcome>: <reason>" → count, for everything not completed
    webhook_ms: Summary | None
    first_audio_ms: Summary | None
    relay_latency_ms: Summary | None
    barge_in_ms: Summary | None
    # The load generator's own health: p99 of each call's frame lateness.  When it is
    # more than a few ms the generator could not keep real time and every latency
    # figure includes its delay, not only the bridge's.
    send_lag_ms: Summary | None
    integrity: Integrity
    resources: Resources
    window_s: tuple[float, float]  # phase start and end on the run clock
    passed: bool
    broken: tuple[str, ...]  # which criteria failed, in words
    # The bridge's own per-turn latency (its /metrics, bridge/loadtest/turns.py).
    turns: tuple[StageFigures, ...] = ()


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end at t closes before a start at t opens)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def judge(
    criteria: Criteria,
    *,
    lost: int,
    failed: int,
    p99_ms: float | None,
    cpu_ms: float | None,
    latency_expected: bool,
) -> tuple[str, ...]:
    """The criteria a phase broke, each as a readable line; empty = passed."""
    broken: list[str] = []
    if lost > criteria.max_lost_frames:
        broken.append(f"{lost} probe frames lost (max {criteria.max_lost_frames})")
    if failed > criteria.max_failed_calls:
        broken.append(f"{failed} calls failed or dropped (max {criteria.max_failed_calls})")
    if latency_expected:
        if p99_ms is None:
            broken.append("no relay latency measured")
        elif p99_ms > criteria.max_p99_ms:
            broken.append(f"relay p99 {p99_ms:.1f} ms > {criteria.max_p99_ms:g} ms")
    if cpu_ms is not None and cpu_ms > criteria.max_cpu_ms_per_call_second:
        broken.append(
            f"bridge CPU {cpu_ms:.2f} ms per call-second > {criteria.max_cpu_ms_per_call_second:g}"
        )
    return tuple(broken)


def aggregate(
    phase: int,
    agent_format: str,
    calls_requested: int,
    records: list[CallMeasurement],
    latencies_s: np.ndarray,
    window: tuple[float, float],
    *,
    bridge: Usage | None,
    emulator: Usage | None,
    loadgen: Usage | None,
    criteria: Criteria,
) -> PhaseFigures:
    outcomes = {o.value: 0 for o in CallOutcome}
    reasons: dict[str, int] = {}
    for r in records:
        outcomes[r.outcome.value] += 1
        if r.outcome is not CallOutcome.COMPLETED:
            key = f"{r.outcome.value}: {r.reason}"
            reasons[key] = reasons.get(key, 0) + 1
    echoes = [r.echo for r in records if r.echo is not None]
    snrs = [
        e.tone_snr_db for e in echoes if e.tone_snr_db is not None and np.isfinite(e.tone_snr_db)
    ]
    integrity = Integrity(
        probe_frames_sent=sum(e.frames_sent for e in echoes),
        probe_frames_received=sum(e.frames_matched for e in echoes),
        probe_frames_lost=sum(e.frames_lost for e in echoes),
        probe_frames_unheard=sum(e.frames_unheard for e in echoes),
        out_of_order=sum(e.out_of_order for e in echoes),
        gap_events=sum(e.gap_events for e in echoes),
        gap_ms=sum(e.gap_ms for e in echoes),
        media_sent=sum(r.media_sent for r in records),
        media_received=sum(r.media_received for r in records),
        bytes_sent=sum(r.bytes_sent for r in records),
        bytes_received=sum(r.bytes_received for r in records),
        tone_snr_db=summarize(snrs),
    )
    call_seconds = sum(r.stream_s for r in records)
    intervals = [(r.ended_at - r.stream_s, r.ended_at) for r in records if r.stream_s > 0]
    peak = peak_concurrency(intervals)
    cpu_ms = None
    if bridge is not None and call_seconds > 0:
        cpu_ms = bridge.cpu_s * 1000 / call_seconds
    resources = Resources(
        call_seconds=call_seconds,
        peak_concurrent_calls=peak,
        bridge_cpu_s=None if bridge is None else bridge.cpu_s,
        bridge_cpu_ms_per_call_second=cpu_ms,
        bridge_rss_start_mib=None if bridge is None else bridge.rss_start_bytes / MIB,
        bridge_rss_peak_mib=None if bridge is None else bridge.rss_peak_bytes / MIB,
        bridge_mib_per_call=(
            None
            if bridge is None or peak == 0
            else max(0, bridge.rss_peak_bytes - bridge.rss_start_bytes) / MIB / peak
        ),
        emulator_cpu_s=None if emulator is None else emulator.cpu_s,
        loadgen_cpu_s=None if loadgen is None else loadgen.cpu_s,
    )
    relay = scaled(summarize(latencies_s), 1000)
    failed = outcomes[CallOutcome.FAILED_TO_CONNECT.value] + outcomes[CallOutcome.DROPPED.value]
    broken = judge(
        criteria,
        lost=integrity.probe_frames_lost,
        failed=failed,
        p99_ms=None if relay is None else relay.p99,
        cpu_ms=cpu_ms,
        latency_expected=bool(echoes),
    )
    return PhaseFigures(
        phase=phase,
        agent_format=agent_format,
        calls_requested=calls_requested,
        outcomes=outcomes,
        reasons=reasons,
        webhook_ms=summarize([r.webhook_ms for r in records if r.webhook_ms is not None]),
        # An echo agent first speaks after the caller's first utterance: that is a turn,
        # not set-up, so only agents that speak at once (loopback, greeting) count here.
        first_audio_ms=summarize(
            [
                r.first_audio_ms
                for r in records
                if r.first_audio_ms is not None and r.scenario != "echo"
            ]
        ),
        relay_latency_ms=relay,
        barge_in_ms=summarize([ms for r in records for ms in r.barge_in_ms]),
        send_lag_ms=summarize(
            [r.send_lag_p99_ms for r in records if r.send_lag_p99_ms is not None]
        ),
        integrity=integrity,
        resources=resources,
        window_s=window,
        passed=not broken,
        broken=broken,
    )
