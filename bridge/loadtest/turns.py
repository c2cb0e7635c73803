"""Per-turn voice-to-voice latency of a phase, as the bridge measured it (``/metrics``).

The bridge times every agent turn itself (``bridge_turn_latency_seconds{stage}``, see
docs/insight.md): from the caller stopping speaking to the agent's audio received
(``agent_audio``), sent to Twilio (``sent``) and heard by the caller (``heard``), and a
barge-in's ``interruption`` delay.  The load test reads the histogram before and after a
phase, from every bridge it drives, and reports the difference: the phase's turns only,
whatever ran before.  Quantiles are interpolated within buckets (as Prometheus'
``histogram_quantile``), so they are exact to the bucket width (50 ms below 1 s); the
maximum is the upper edge of the highest bucket that received a turn.

Pure parsing and arithmetic; :func:`fetch_buckets` is the one I/O function.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from bridge.errors import InputError

METRIC = "bridge_turn_latency_seconds"
STAGES = ("agent_audio", "sent", "heard", "interruption")

# stage → bucket upper edge (seconds, +inf last) → cumulative count
Buckets = dict[str, dict[float, float]]


class StageFigures(msgspec.Struct, frozen=True):
    stage: str
    n: int
    p50_ms: float
    p95_ms: float
    max_ms: float | None  # upper edge of the highest bucket used; None: beyond the last


def parse_buckets(text: str) -> Buckets:
    """The turn-latency histogram's cumulative buckets from a Prometheus text page."""
    out: Buckets = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name != METRIC:
                continue
            for s in family.samples:
                if s.name == METRIC + "_bucket":
                    le = float(s.labels["le"])
                    stage = out.setdefault(s.labels["stage"], {})
                    stage[le] = stage.get(le, 0.0) + s.value
    except (ValueError, KeyError) as e:
        raise InputError("/metrics", f"not a Prometheus text page: {e}") from None
    return out


def merged(pages: Iterable[Buckets]) -> Buckets:
    """Buckets of several bridges added up."""
    out: Buckets = {}
    for page in pages:
        for stage, buckets in page.items():
            into = out.setdefault(stage, {})
            for le, n in buckets.items():
                into[le] = into.get(le, 0.0) + n
    return out


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The ``q`` quantile (seconds) of cumulative ``(le, count)`` buckets, interpolated."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank and n > prev_n:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return prev_le


def figures(before: Buckets, after: Buckets) -> tuple[StageFigures, ...]:
    """Each stage's turns between the two snapshots; stages without any are left out."""
    out: list[StageFigures] = []
    for stage in STAGES:
        a, b = after.get(stage, {}), before.get(stage, {})
        cum = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
        if not cum or cum[-1][1] <= 0:
            continue
        top = next(le for le, n in cum if n >= cum[-1][1])
        out.append(
            StageFigures(
                stage=stage,
                n=int(cum[-1][1]),
                p50_ms=round(quantile(cum, 0.5) * 1000, 1),
                p95_ms=round(quantile(cum, 0.95) * 1000, 1),
                max_ms=None if math.isinf(top) else round(top * 1000, 1),
            )
        )
    return tuple(out)


async def fetch_buckets(client: httpx.AsyncClient, urls: Iterable[str]) -> Buckets:
    pages = []
    for url in urls:
        resp = await client.get(url)
        resp.raise_for_status()
        pages.append(parse_buckets(resp.text))
    return merged(pages)


def describe(stages: tuple[StageFigures, ...]) -> str:
    def one(s: StageFigures) -> str:
        top = f"≤{s.max_ms:.0f}" if s.max_ms is not None else ">10000"
        return f"{s.stage} p50 {s.p50_ms:.0f} / p95 {s.p95_ms:.0f} / max {top} ms (n={s.n})"

    return "; ".join(one(s) for s in stages)
