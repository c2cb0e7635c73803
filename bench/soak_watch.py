"""Watch a bridge's /metrics during a soak: RSS, asyncio tasks, sockets, fds, live calls.

Run beside ``bridge loadtest`` (which starts the bridge itself and writes its config to
``<report>/stack/bridge.toml``)::

    uv run bridge loadtest --calls 20,20,20,20,20 --ramp 10s --duration 100s \\
        --report out/soak &
    uv run python bench/soak_watch.py out/soak --interval 5 > out/soak/watch.csv

One CSV line per sample until the bridge stops answering; then a summary on stderr:
RSS growth between the first and last idle samples after warm-up (idle = no live
calls), and the task / socket counts at every idle sample (a leak shows as idle counts
that climb from one phase to the next).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

FIELDS = (
    "process_resident_memory_bytes",
    "bridge_asyncio_tasks",
    "bridge_open_sockets",
    "process_open_fds",
    "bridge_active_calls",
)


def bridge_url(report: Path, timeout_s: float = 120.0) -> str:
    cfg = report / "stack" / "bridge.toml"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cfg.exists():
            m = re.search(r"^port = (\d+)", cfg.read_text(), re.M)
            if m:
                return f"http://127.0.0.1:{m.group(1)}"
        time.sleep(0.5)
    raise SystemExit(f"no {cfg} after {timeout_s:g} s")


def sample(client: httpx.Client, url: str) -> dict[str, float]:
    text = client.get(url + "/metrics", timeout=5).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in FIELDS:
                out[s.name] = s.value
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="the loadtest --report directory")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds ignored for RSS growth")
    args = ap.parse_args()
    url = bridge_url(args.report)
    rows: list[tuple[float, dict[str, float]]] = []
    print("t_s," + ",".join(FIELDS), flush=True)
    t0 = time.monotonic()
    misses = 0
    with httpx.Client() as client:
        while misses < 3:
            try:
                values = sample(client, url)
            except httpx.HTTPError:
                misses += 1 if rows else 0  # not up yet, or gone at the end
                time.sleep(args.interval)
                continue
            misses = 0
            t = time.monotonic() - t0
            rows.append((t, values))
            print(f"{t:.1f}," + ",".join(f"{values.get(f, -1):g}" for f in FIELDS), flush=True)
            time.sleep(args.interval)
    idle = [(t, v) for t, v in rows if v.get("bridge_active_calls") == 0 and t >= args.warmup]
    busy = [v for t, v in rows if t >= args.warmup]
    err = sys.stderr
    print(f"samples: {len(rows)} over {rows[-1][0] if rows else 0:.0f} s", file=err)
    if busy:
        rss = [v["process_resident_memory_bytes"] / 2**20 for v in busy]
        print(f"RSS after warm-up: first {rss[0]:.1f} MiB, max {max(rss):.1f}, "
              f"last {rss[-1]:.1f} ({(rss[-1] / rss[0] - 1) * 100:+.1f} %)", file=err)  # fmt: skip
    for t, v in idle:
        print(
            f"idle at {t:.0f} s: rss {v['process_resident_memory_bytes'] / 2**20:.1f} MiB, "
            f"tasks {v.get('bridge_asyncio_tasks', -1):g}, "
            f"sockets {v.get('bridge_open_sockets', -1):g}, fds {v.get('process_open_fds', -1):g}",
            file=err,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
