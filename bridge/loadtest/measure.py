"""From what the synthetic caller recorded to one :class:`CallMeasurement` (pure).

The caller (``bridge.emulator.twilio``) records everything in call-time seconds since
its own ``t0``; this module converts to the run's clock, feeds the echo aligner as the
call goes (``poll``, once a second from the runner) and classifies the end (``finish``).

Outcome rules:

* no stream ever opened (webhook failed, TwiML without ``<Connect><Stream>``, upgrade
  refused) → ``failed_to_connect`` with the caller's reason;
* the bridge ended the stream first (close or protocol error) → ``dropped``, except on
  a loopback call where nothing was ever heard back: the agent never answered, which
  is ``failed_to_connect: no agent audio``;
* the caller hung up as its script says → ``completed``.
"""

from __future__ import annotations

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult, StreamRecord
from bridge.loadtest.align import EchoAligner
from bridge.loadtest.model import CallMeasurement, CallOutcome
from bridge.loadtest.scenario import PlannedCall


class CallMeter:
    """Live measurement of one call; ``poll`` as often as wanted, ``finish`` once."""

    def __init__(self, plan: PlannedCall, phase: int, run_t0: float) -> None:
        self.plan = plan
        self.phase = phase
        self.run_t0 = run_t0
        self.aligner = EchoAligner(plan.probe) if plan.probe is not None else None
        self._frames_fed = 0
        self._media_fed = 0
        self._segments_fed = 0

    def _run_time(self, result: CallResult, call_t: float) -> float:
        return result.t0 + call_t / result.speed - self.run_t0

    def poll(self, result: CallResult) -> None:
        """Feed the aligner what the caller recorded since the last poll."""
        stream = result.stream
        aligner = self.aligner
        if aligner is None or stream is None:
            return
        t0, speed, run_t0 = result.t0, result.speed, self.run_t0  # _run_time, inlined
        frames = stream.frames
        end = min(len(frames), aligner.probe.frames)
        if end > self._frames_fed:
            new = frames[self._frames_fed : end]
            # The probe is the script's first step: frame k carries probe bytes 160k…
            aligner.sent_many(
                [f.offset // 160 for f in new], [t0 + f.t / speed - run_t0 for f in new]
            )
            self._frames_fed = end
        # Heard audio: playout segments, in arrival order, one per non-empty media
        # message; the arrival time is the media message's, not the playout start.
        segments = stream.heard
        received = stream.received
        n_received = len(received)
        seg, med = self._segments_fed, self._media_fed
        while seg < len(segments):
            while med < n_received and (received[med].event != "media" or received[med].size == 0):
                med += 1
            if med >= n_received:
                break
            aligner.heard(segments[seg].data, t0 + received[med].t / speed - run_t0)
            seg += 1
            med += 1
        self._segments_fed, self._media_fed = seg, med
        aligner.advance()

    def latency_p99_ms(self) -> float | None:
        if self.aligner is None or not self.aligner.latencies:
            return None
        lat = sorted(self.aligner.latencies)
        return lat[min(len(lat) - 1, max(0, -(-99 * len(lat) // 100) - 1))] * 1000

    def finish(self, result: CallResult, reason_if_cut: str | None = None) -> CallMeasurement:
        """The call's record; ``reason_if_cut`` when the runner had to cancel it."""
        self.poll(result)
        echo = None
        if self.aligner is not None:
            self.aligner.advance(final=True)
            echo = self.aligner.result()
        stream = result.stream
        outcome, reason = classify(
            result, stream, self.plan.scenario, echo is not None and echo.frames_matched > 0
        )
        if reason_if_cut is not None:
            outcome, reason = CallOutcome.DROPPED, reason_if_cut
        webhook = result.webhook
        webhook_ms = None
        if webhook is not None and webhook.error is None and result.answered_at is not None:
            # The caller stamps the request when it sends it and answers the call as soon
            # as the TwiML is parsed: the difference is POST → TwiML.
            webhook_ms = (result.answered_at - webhook.t) / result.speed * 1000
        first_audio_ms = None
        media = [r for r in stream.received if r.event == "media" and r.size] if stream else []
        if stream is not None and stream.started_at is not None and media:
            first_audio_ms = (media[0].t - stream.started_at) / result.speed * 1000
        stream_s = 0.0
        if stream is not None and stream.started_at is not None and stream.ended_at is not None:
            stream_s = (stream.ended_at - stream.started_at) / result.speed
        started = self._run_time(result, 0.0)
        ended_call_t = (
            result.ended_at
            if result.ended_at is not None
            else (stream.ended_at if stream is not None and stream.ended_at is not None else 0.0)
        )
        return CallMeasurement(
            index=self.plan.index,
            phase=self.phase,
            scenario=self.plan.scenario,
            agent_format=self.plan.agent_format,
            outcome=outcome,
            reason=reason,
            started_at=started,
            ended_at=self._run_time(result, ended_call_t),
            call_sid=result.call_sid,
            webhook_ms=webhook_ms,
            first_audio_ms=first_audio_ms,
            stream_s=stream_s,
            media_sent=len(stream.frames) if stream else 0,
            media_received=len(media),
            bytes_sent=stream.inbound_audio_sent() if stream else 0,
            bytes_received=sum(r.size for r in media),
            clears=len(stream.clears) if stream else 0,
            barge_in_ms=barge_in_delays(result, stream),
            echo=echo,
            latency_p99_ms=self.latency_p99_ms(),
            send_lag_p99_ms=send_lag_p99_ms(result, stream),
        )


def classify(
    result: CallResult, stream: StreamRecord | None, scenario: str, heard_back: bool
) -> tuple[CallOutcome, str]:
    if stream is None:
        why = result.reason or (result.outcome.value if result.outcome else "no stream")
        return CallOutcome.FAILED_TO_CONNECT, why
    if stream.ended_by == "handshake":
        return CallOutcome.FAILED_TO_CONNECT, stream.error or "stream upgrade failed"
    if stream.ended_by == "caller":
        if result.outcome is Outcome.FAILED:
            return CallOutcome.DROPPED, result.reason or "call failed"
        return CallOutcome.COMPLETED, "caller hung up"
    detail = stream.error or f"close code {stream.close_code}"
    if scenario == "loopback" and not heard_back:
        return (
            CallOutcome.FAILED_TO_CONNECT,
            f"no agent audio ({stream.ended_by} ended the stream: {detail})",
        )
    return CallOutcome.DROPPED, f"{stream.ended_by or 'bridge'} ended the stream: {detail}"


def send_lag_p99_ms(result: CallResult, stream: StreamRecord | None) -> float | None:
    """p99 of how late the caller sent its frames: frame k is due ``k × 20 ms`` after
    ``start``; a loaded load generator sends late and then catches up in a burst."""
    if stream is None or stream.started_at is None or not stream.frames:
        return None
    start = stream.started_at
    lag = sorted(max(0.0, f.t - (start + f.offset / 8000)) for f in stream.frames)
    return lag[min(len(lag) - 1, -(-99 * len(lag) // 100) - 1)] / result.speed * 1000


def barge_in_delays(result: CallResult, stream: StreamRecord | None) -> tuple[float, ...]:
    """Each barge-in (caller starts talking over the agent) → the next ``clear``, in ms."""
    if stream is None:
        return ()
    clears = sorted(r.t for r in stream.received if r.event == "clear")
    out: list[float] = []
    j = 0
    for ev in result.script_events:
        if ev.kind != "barge-in":
            continue
        while j < len(clears) and clears[j] < ev.t:
            j += 1
        if j < len(clears):
            out.append((clears[j] - ev.t) / result.speed * 1000)
            j += 1
    return tuple(out)
