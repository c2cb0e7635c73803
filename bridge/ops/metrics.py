"""Prometheus metrics of the bridge, defined once.

One :class:`Metrics` object per app (its own ``CollectorRegistry``, so several apps in
one test process don't collide).  Hot-path rule: nothing here is touched per audio
frame.  Per-frame counts are kept as plain ints on the call session and added to the
counters when the call ends (or on scrape via ``Gauge.set_function``); per-frame timing
is sampled (1 frame in ``TRANSCODE_SAMPLE_EVERY``).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

TRANSCODE_SAMPLE_EVERY = 50  # one 20 ms frame per second of audio per call

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FRAME_BUCKETS_S = (5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.active_calls = Gauge(
            "bridge_active_calls", "Calls with a live media stream", registry=r
        )
        self.calls_total = Counter(
            "bridge_calls",
            "Calls ended, by outcome and end reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.webhooks_total = Counter(
            "bridge_webhooks", "Voice webhooks answered, by TwiML outcome", ["outcome"], registry=r
        )
        self.signature_failures_total = Counter(
            "bridge_signature_failures",
            "Requests rejected for a bad X-Twilio-Signature",
            ["endpoint"],
            registry=r,
        )
        self.upstream_errors_total = Counter(
            "bridge_upstream_errors",
            "Agent connection failures by kind",
            ["kind"],
            registry=r,
        )
        self.first_audio_seconds = Histogram(
            "bridge_first_audio_seconds",
            "Stream start to first agent audio sent to the caller",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.relay_seconds = Histogram(
            "bridge_relay_seconds",
            "Time an agent audio event spends inside the bridge (receive → sent to Twilio)",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.agent_ping_ms = Histogram(
            "bridge_agent_ping_ms",
            "ping_ms reported by the agent platform",
            buckets=(10, 25, 50, 100, 200, 400, 800, 1600),
            registry=r,
        )
        self.frames_total = Counter(
            "bridge_frames", "Audio frames relayed", ["direction"], registry=r
        )
        self.audio_bytes_total = Counter(
            "bridge_audio_bytes", "Audio bytes relayed", ["direction"], registry=r
        )
        self.interruptions_total = Counter(
            "bridge_interruptions", "Barge-ins (agent interruption events)", registry=r
        )
        self.dropped_audio_total = Counter(
            "bridge_dropped_audio_events",
            "Agent audio dropped: stale after barge-in, or shed under backpressure",
            ["reason"],
            registry=r,
        )
        self.transcode_seconds = Histogram(
            "bridge_transcode_seconds",
            f"Transcoding time per 20 ms frame (sampled 1 in {TRANSCODE_SAMPLE_EVERY})",
            ["direction"],
            buckets=_FRAME_BUCKETS_S,
            registry=r,
        )
        self.record_write_failures_total = Counter(
            "bridge_record_write_failures", "Failed call-record write attempts", registry=r
        )
        self.pending_record_writes = Gauge(
            "bridge_pending_record_writes", "Call-record writes queued for SQLite", registry=r
        )
        self.open_tasks = Gauge("bridge_asyncio_tasks", "asyncio tasks alive", registry=r)
        self.draining = Gauge("bridge_draining", "1 while draining for shutdown", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
