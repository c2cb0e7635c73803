"""Issue 13's measurement: how much a flood of hostile requests stalls the bridge's loop.

Starts the platform emulator and ``bridge serve`` as child processes (loopback only, a
random Twilio auth token so signatures are enforced: ``bridge.loadtest.stack``), then,
at the same time:

* one live synthetic call (the load test's ``loopback`` call: noise, then a 1004 Hz
  tone, echoed back by the agent): its relay latency p99 (all frames, and the frames
  sent during the flood), whether it completed, gaps, lost frames and the tone's SNR;
* a ``/healthz`` poller every 20 ms: the worst response time, before and during the flood;
* a bounded flood (each kind bounded in count and by ``--duration``), from a separate
  process so the caller's and the poller's timing are not the flood's own CPU:

  ``max_accepted``       the largest body the bridge accepts (``server.max_body_bytes``)
                         in the most form fields (``server.max_form_fields``), bad
                         ``X-Twilio-Signature``, on ``/twilio/inbound``, back to back
  ``oversized_cl``       10 MB of 1 M distinct ``k=v`` fields, ``Content-Length``, bad signature
  ``oversized_chunked``  the same body, chunked (no length announced)
  ``huge_header``        one 8 MiB header
  ``many_headers``       200 000 headers
  ``idle``               held: a connection that sends nothing
  ``slow_head``          held: a request head trickled one byte every 2 s
  ``half_head``          held: half a request head, then silence
  ``half_body``          held: a head announcing 1000 bytes of body, 10 sent
  ``upgrade_silent``     held: a validly signed ``/twilio/media`` upgrade (one captured
                         header is enough today), then no ``connected``/``start``

Prints the worst loop stall (the bridge's ``bridge_event_loop_lag_max_seconds`` when it
has one; the poller's worst response time always), the call's figures, the bridge's
peak RSS, and per attack kind how the requests were answered (status counts; held
connections: closed by the bridge, and when, or still open at the end).

    uv run python bench/edge_flood.py [--duration 20] [--concurrency 2] [--held 60]
    uv run python bench/edge_flood.py --bridge-dir /tmp/before   # another checkout's bridge

``--bridge-dir`` re-runs this script in that checkout (``uv run --directory DIR``), so
the bridge, the emulator and the caller are all that tree's.  Run it from the checkout's
root otherwise (the children are ``python -m bridge.cli``, imported from the cwd).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HEALTHZ_EVERY_S = 0.02
WARMUP_S = 3.0  # call and poller running before the flood starts
TAIL_S = 3.0  # the call keeps going after the flood
BAD_SIGNATURE = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
OVERSIZED_FIELDS = 1_000_000  # "k000000=v&" x 1 M = 10 MB
HUGE_HEADER_BYTES = 8 << 20
MANY_HEADERS = 200_000
REQUEST_TIMEOUT_S = 30.0
LAG_GAUGE = "bridge_event_loop_lag_max_seconds"
REQUEST_KINDS = ("max_accepted", "oversized_cl", "oversized_chunked", "huge_header", "many_headers")
HELD_KINDS = ("idle", "slow_head", "half_head", "half_body", "upgrade_silent")


# ====================================================================== the flood (worker)


@dataclass
class FloodPlan:
    host: str
    port: int
    auth_token: str
    duration_s: float
    concurrency: int
    count: int  # per heavy request kind
    max_count: int  # max_accepted requests
    held: int  # connections per held kind
    max_body_bytes: int
    max_form_fields: int
    kinds: list[str] = field(default_factory=list)


def _head(plan: FloodPlan, method: str, path: str, extra: Iterable[str] = ()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {plan.host}:{plan.port}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def max_accepted_body(max_bytes: int, fields: int) -> bytes:
    """``fields`` distinct fields filling exactly ``max_bytes`` (``k000=vvv…&k001=…``)."""
    name_len = len(f"k{fields - 1}=")
    per = (max_bytes - (fields - 1)) // fields - name_len
    parts = [f"k{i:0{name_len - 2}d}=".encode() + b"v" * per for i in range(fields)]
    body = b"&".join(parts)
    return body + b"v" * (max_bytes - len(body))


def oversized_body() -> bytes:
    return b"&".join(b"k%06d=v" % i for i in range(OVERSIZED_FIELDS))


def _form_head(plan: FloodPlan, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return _head(
        plan,
        "POST",
        "/twilio/inbound",
        [
            "Content-Type: application/x-www-form-urlencoded",
            f"X-Twilio-Signature: {BAD_SIGNATURE}",
            framing,
            "Connection: close",
        ],
    )


def _chunked(body: bytes, size: int = 64 << 10) -> Iterable[bytes]:
    for i in range(0, len(body), size):
        chunk = body[i : i + size]
        yield b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def _pieces(data: bytes, size: int = 256 << 10) -> Iterable[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def exchange(plan: FloodPlan, parts: Iterable[bytes]) -> str:
    """Send one request (bytes in pieces) and return how it was answered."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(plan.host, plan.port), 5.0)
    except (OSError, TimeoutError) as e:
        return f"connect failed ({type(e).__name__})"
    send_failed = False
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            try:
                for p in parts:
                    writer.write(p)
                    await writer.drain()
            except ConnectionError:
                send_failed = True  # the bridge closed while we sent: see if it answered
            line = await reader.readline()
        if not line:
            return "closed, no answer" + (" (mid-send)" if send_failed else "")
        words = line.split()
        return words[1].decode() if len(words) >= 2 else "garbled answer"
    except TimeoutError:
        return f"no answer in {REQUEST_TIMEOUT_S:g}s"
    except ConnectionError:
        return "reset" + (" (mid-send)" if send_failed else "")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def request_kind(plan: FloodPlan, kind: str, deadline: float) -> list[tuple[str, float]]:
    """Run ``kind``'s requests (``concurrency`` at a time) until its count or the deadline."""
    if kind == "max_accepted":
        body = max_accepted_body(plan.max_body_bytes, plan.max_form_fields)
        count = plan.max_count

        def parts() -> Iterable[bytes]:
            return [_form_head(plan, len(body)), body]
    elif kind in ("oversized_cl", "oversized_chunked"):
        big = oversized_body()
        count = plan.count
        if kind == "oversized_cl":

            def parts() -> Iterable[bytes]:
                return [_form_head(plan, len(big)), *_pieces(big)]
        else:

            def parts() -> Iterable[bytes]:
                return [_form_head(plan, None), *_chunked(big)]
    elif kind == "huge_header":
        pad = b"X-Pad: " + b"a" * HUGE_HEADER_BYTES + b"\r\n"
        count = plan.count

        def parts() -> Iterable[bytes]:
            start = f"GET /twilio/inbound HTTP/1.1\r\nHost: {plan.host}\r\n".encode()
            return [start, *_pieces(pad), b"Connection: close\r\n\r\n"]
    elif kind == "many_headers":
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(MANY_HEADERS))
        count = plan.count

        def parts() -> Iterable[bytes]:
            start = f"GET /twilio/inbound HTTP/1.1\r\nHost: {plan.host}\r\n".encode()
            return [start, *_pieces(many), b"Connection: close\r\n\r\n"]
    else:
        raise ValueError(kind)
    results: list[tuple[str, float]] = []
    remaining = [count]

    async def worker() -> None:
        loop = asyncio.get_running_loop()
        while remaining[0] > 0 and loop.time() < deadline:
            remaining[0] -= 1
            t = loop.time()
            results.append((await exchange(plan, parts()), loop.time() - t))

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return results


def _upgrade_head(plan: FloodPlan) -> bytes:
    from bridge.config import ws_url_for
    from bridge.twilio.signature import compute_signature

    url = ws_url_for(f"http://{plan.host}:{plan.port}") + "/twilio/media"
    return _head(
        plan,
        "GET",
        "/twilio/media",
        [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
            "Sec-WebSocket-Version: 13",
            f"X-Twilio-Signature: {compute_signature(plan.auth_token, url, {})}",
        ],
    )


async def held_connection(plan: FloodPlan, kind: str, until: float) -> tuple[str, float]:
    """Open one slow connection of ``kind``; how it ended and after how long."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(plan.host, plan.port), 5.0)
    except (OSError, TimeoutError) as e:
        return f"connect failed ({type(e).__name__})", 0.0
    full = _head(plan, "POST", "/twilio/inbound", ["Content-Type: text/plain"])
    trickle = b""
    if kind == "slow_head":
        trickle = full
    elif kind == "half_head":
        writer.write(full[: len(full) // 2])
    elif kind == "half_body":
        form = "Content-Type: application/x-www-form-urlencoded"
        head = _head(plan, "POST", "/twilio/inbound", [form, "Content-Length: 1000"])
        writer.write(head + b"k=" + b"v" * 8)
    elif kind == "upgrade_silent":
        writer.write(_upgrade_head(plan))
    status = ""
    sent = 0

    async def watch() -> str:
        nonlocal status
        while True:
            data = await reader.read(65536)
            if not data:
                return f"{status} then closed" if status else "closed, no answer"
            if not status:
                words = data.split(b"\r\n", 1)[0].split()
                status = words[1].decode() if len(words) >= 2 else "garbled answer"
                if status != "101":
                    return status

    watcher = asyncio.ensure_future(watch())
    try:
        while loop.time() < until:
            if trickle and sent < len(trickle):
                writer.write(trickle[sent : sent + 1])
                sent += 1
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(watcher), 2.0), loop.time() - t0
        return (f"{status} held open" if status else "held open to the end"), loop.time() - t0
    except ConnectionError:
        return "reset", loop.time() - t0
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await watcher
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def flood(plan: FloodPlan) -> dict[str, list[tuple[str, float]]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + plan.duration_s
    jobs: dict[str, asyncio.Future[list[tuple[str, float]]]] = {}
    for kind in plan.kinds:
        if kind in REQUEST_KINDS:
            jobs[kind] = asyncio.ensure_future(request_kind(plan, kind, deadline))
        else:
            conns = [held_connection(plan, kind, deadline) for _ in range(plan.held)]
            jobs[kind] = asyncio.ensure_future(asyncio.gather(*conns))
    return {kind: list(await job) for kind, job in jobs.items()}


def run_worker(plan_json: str) -> None:
    plan = FloodPlan(**json.loads(plan_json))
    results = asyncio.run(flood(plan))
    print(json.dumps(results))


# ====================================================================== the measurement


@dataclass
class Poller:
    url: str
    samples: list[tuple[float, float, str]] = field(default_factory=list)  # (t sent, s, outcome)

    async def run(self) -> None:
        import httpx

        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT_S) as client:
            while True:
                t = loop.time()
                try:
                    resp = await client.get(self.url)
                    outcome = str(resp.status_code)
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                self.samples.append((t, loop.time() - t, outcome))
                await asyncio.sleep(max(0.0, HEALTHZ_EVERY_S - (loop.time() - t)))

    def worst(self, start: float, end: float) -> tuple[float, int, dict[str, int]]:
        win = [(rt, o) for t, rt, o in self.samples if start <= t < end]
        outcomes: dict[str, int] = {}
        for _, o in win:
            outcomes[o] = outcomes.get(o, 0) + 1
        return max((rt for rt, _ in win), default=0.0), len(win), outcomes


async def scrape_gauge(metrics_url: str, name: str) -> float | None:
    import httpx

    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT_S) as client:
        try:
            text = (await client.get(metrics_url)).text
        except httpx.HTTPError:
            return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def pct_ms(values: list[float], q: int) -> float | None:
    """The ``q``-th percentile (nearest rank), in ms."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, -(-q * len(s) // 100) - 1))] * 1000


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def summarize(results: list[tuple[str, float]]) -> str:
    by: dict[str, list[float]] = {}
    for label, dt in results:
        by.setdefault(label, []).append(dt)
    out = []
    for label, times in sorted(by.items(), key=lambda kv: -len(kv[1])):
        out.append(
            f"{label}: {len(times)} (median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s)"
        )
    return "; ".join(out)


async def measure(args: argparse.Namespace) -> int:
    from bridge.config import ServerConfig
    from bridge.emulator.twilio.caller import CallSpec, SyntheticCall
    from bridge.http import INBOUND_PATH, STATUS_PATH
    from bridge.loadtest.measure import CallMeter
    from bridge.loadtest.model import CallOutcome
    from bridge.loadtest.scenario import build_plan
    from bridge.loadtest.stack import started_stack

    kinds = args.kinds.split(",") if args.kinds else [*REQUEST_KINDS, *HELD_KINDS]
    unknown = set(kinds) - set(REQUEST_KINDS) - set(HELD_KINDS)
    if unknown:
        print(f"unknown --kinds: {sorted(unknown)}", file=sys.stderr)
        return 2
    server = ServerConfig()
    max_body = args.max_body or getattr(server, "max_body_bytes", 64 << 10)
    max_fields = args.max_fields or getattr(server, "max_form_fields", 200)
    run_dir = Path(tempfile.mkdtemp(prefix="edge-flood-"))
    # Requests started before the deadline may take up to REQUEST_TIMEOUT_S to answer:
    # the call outlasts them.
    call_s = WARMUP_S + args.duration + REQUEST_TIMEOUT_S + TAIL_S
    run_t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    print(f"bridge code: {Path(sys.modules['bridge'].__file__ or '?').parent}")
    print(f"child logs:  {run_dir}/stack")
    async with started_stack(run_dir, [("loopback", "ulaw_8000")]) as (target, _):
        assert target.auth_token is not None
        plan = build_plan(0, "loopback", "ulaw_8000", duration_s=call_s, seed=13)
        spec = CallSpec(
            to=target.numbers[("loopback", "ulaw_8000")],
            from_="+15550009999",
            url=target.bridge_url + INBOUND_PATH,
            auth_token=target.auth_token,
            script=plan.script,
            status_callback=target.bridge_url + STATUS_PATH,
        )
        call = SyntheticCall(spec)
        meter = CallMeter(plan, 0, run_t0)
        call_task = asyncio.ensure_future(call.run())
        poller = Poller(target.bridge_url + "/healthz")
        poll_task = asyncio.ensure_future(poller.run())
        metrics_url = target.bridge_url + "/metrics"
        await asyncio.sleep(WARMUP_S)
        lag_before = await scrape_gauge(metrics_url, LAG_GAUGE)
        host, port = target.bridge_url.removeprefix("http://").split(":")
        fplan = FloodPlan(
            host=host,
            port=int(port),
            auth_token=target.auth_token,
            duration_s=args.duration,
            concurrency=args.concurrency,
            count=args.count,
            max_count=args.max_count,
            held=args.held,
            max_body_bytes=max_body,
            max_form_fields=max_fields,
            kinds=kinds,
        )
        flood_t0 = loop.time()
        flood_run_t0 = time.monotonic() - run_t0
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--flood-worker",
            json.dumps(fplan.__dict__),
            stdout=subprocess.PIPE,
        )
        out, _ = await worker.communicate()
        flood_t1 = loop.time()
        flood_run_t1 = time.monotonic() - run_t0
        lag_after = await scrape_gauge(metrics_url, LAG_GAUGE)
        rss = peak_rss_mb(target.bridge_pid)
        result = await call_task
        poll_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll_task
        record = meter.finish(result)
    attacks: dict[str, list[tuple[str, float]]] = json.loads(out) if out else {}

    idle_worst, _, _ = poller.worst(0.0, flood_t0)
    flood_worst, polls, poll_outcomes = poller.worst(flood_t0, flood_t1 + 0.5)
    al = meter.aligner
    during: list[float] = []
    before: list[float] = []
    after: list[float] = []  # from 2 s after the flood: has the call's latency recovered?
    if al is not None:
        for sent, lat in zip(al.latency_sent_at, al.latencies, strict=True):
            if flood_run_t0 <= sent <= flood_run_t1:
                during.append(lat)
            elif sent > flood_run_t1 + 2.0:
                after.append(lat)
            elif sent < flood_run_t0:
                before.append(lat)
    echo = record.echo
    clean = (
        record.outcome is CallOutcome.COMPLETED
        and echo is not None
        and echo.gap_events == 0
        and echo.frames_lost == 0
    )
    print()
    print(
        f"flood: {flood_t1 - flood_t0:.1f} s, kinds {','.join(kinds)}, concurrency "
        f"{args.concurrency}, {args.held} held per slow kind, max_accepted body {max_body} B "
        f"in {max_fields} fields"
    )
    print("worst loop stall")
    if lag_after is None:
        print("  bridge lag gauge:        n/a (this bridge has no event-loop lag monitor)")
    else:
        print(
            f"  bridge lag gauge:        {lag_after * 1000:.1f} ms "
            f"(before the flood: {_fmt_ms(None if lag_before is None else lag_before * 1000)})"
        )
    print(
        f"  /healthz worst:          {flood_worst * 1000:.1f} ms during the flood "
        f"({polls} polls, {poll_outcomes}); {idle_worst * 1000:.1f} ms before"
    )
    print("live call")
    print(f"  outcome:                 {record.outcome.value} ({record.reason})")
    print(
        f"  relay p99:               {_fmt_ms(record.latency_p99_ms)} whole call, "
        f"{_fmt_ms(pct_ms(during, 99))} during the flood ({len(during)} frames timed)"
    )
    print(
        f"  relay p50 after:         {_fmt_ms(pct_ms(after, 50))} from 2 s after the flood "
        f"({len(after)} frames timed; before it: {_fmt_ms(pct_ms(before, 50))})"
    )
    if echo is not None:
        print(
            f"  integrity:               {echo.frames_matched}/{echo.frames_sent} frames back, "
            f"{echo.frames_lost} lost, {echo.frames_unheard} unheard, {echo.out_of_order} out of "
            f"order, {echo.gap_events} gaps ({echo.gap_ms:.0f} ms), "
            f"tone SNR {echo.tone_snr_db if echo.tone_snr_db is None else round(echo.tone_snr_db, 1)} dB"
        )
    print(f"  clean (no gaps/losses):  {'yes' if clean else 'NO'}")
    print(
        f"  caller send lag p99:     {_fmt_ms(record.send_lag_p99_ms)} (the bench's own lateness)"
    )
    print(f"bridge peak RSS:           {'n/a' if rss is None else f'{rss:.0f} MB'}")
    print("attacks (answer: count, time to answer/close)")
    for kind in kinds:
        print(f"  {kind:18} {summarize(attacks.get(kind, [])) or 'no result'}")
    return 0


def _reexec_in(tree: str, argv: list[str]) -> None:
    """Run this script again under ``tree``'s environment, without ``--bridge-dir``."""
    rest: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--bridge-dir":
            skip = True
        elif not a.startswith("--bridge-dir="):
            rest.append(a)
    rev = subprocess.run(
        ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"checkout: {tree} @ {rev or '?'}", flush=True)
    # --directory: the children run ``python -m bridge.cli`` and -m imports from the cwd.
    cmd = ["uv", "run", "--directory", tree, "python", os.path.abspath(__file__), *rest]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # this tree's venv
    os.execvpe(cmd[0], cmd, env)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--flood-worker":
        run_worker(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bridge-dir", help="a checkout whose bridge to run (default: this one)")
    ap.add_argument("--duration", type=float, default=20.0, help="flood seconds (default 20)")
    ap.add_argument("--concurrency", type=int, default=2, help="senders per request kind")
    ap.add_argument("--count", type=int, default=8, help="requests per heavy kind (default 8)")
    ap.add_argument(
        "--max-count", type=int, default=2000, help="max_accepted requests (default 2000)"
    )
    ap.add_argument("--held", type=int, default=60, help="connections per slow kind (default 60)")
    ap.add_argument("--max-body", type=int, help="max_accepted body bytes (default: config's)")
    ap.add_argument("--max-fields", type=int, help="max_accepted fields (default: config's)")
    ap.add_argument("--kinds", help=f"comma list of {', '.join(REQUEST_KINDS + HELD_KINDS)}")
    args = ap.parse_args()
    if args.bridge_dir:
        _reexec_in(args.bridge_dir, sys.argv[1:])
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
