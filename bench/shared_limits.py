"""What the deployment-wide limits cost per call: the store transactions of one call.

Each call makes three limit transactions (the webhook's reservation, the stream start's
claim with its token claim, the release at its end); this times each on a SQLite file
and (``--postgres DSN``) on PostgreSQL, one caller at a time, and the reservation rate
with ``--threads`` callers at once (the lock serialises them: the deployment's ceiling
of webhooks per second).

    uv run python bench/shared_limits.py --calls 2000
    uv run python bench/shared_limits.py --postgres postgresql://postgres@127.0.0.1:5432/test

Throwaway data: the SQLite file lives in a temp dir; on PostgreSQL the tables go into a
schema of their own, dropped at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bridge.store import Store, claims
from bridge.store.slots import CallSlots, Caps

CAPS = Caps(total=1_000_000, per_number=1_000_000)


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return f"p50 {statistics.median(samples) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"


def run(label: str, db: str, calls: int, threads: int) -> None:
    store = Store(db, linger_s=0)
    slots = CallSlots(store, timeout_s=5.0)
    now = time.time()
    reserve, claim, token, release = [], [], [], []
    for i in range(calls):
        sid, mac = f"CA{i:032d}", f"mac{i}"
        t = time.perf_counter
        t0 = t()
        slots.reserve(sid, "+1", CAPS, now=now, ttl_s=60)
        t1 = t()
        claims.claim(store, mac, sid, expires_at=now + 60, now=now, timeout_s=5)
        t2 = t()
        slots.claim(sid, "+1", CAPS, now=now, lease_s=60)
        t3 = t()
        slots.release([sid])
        t4 = t()
        reserve.append(t1 - t0)
        token.append(t2 - t1)
        claim.append(t3 - t2)
        release.append(t4 - t3)
    print(f"{label}: {calls} calls, one at a time")
    print(f"  reserve (webhook)        {_ms(reserve)}")
    print(f"  token claim (stream)     {_ms(token)}")
    print(f"  slot claim (stream)      {_ms(claim)}")
    print(f"  release (call end)       {_ms(release)}")

    per_thread = calls // threads
    stores = [Store(db, linger_s=0) for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        s = CallSlots(stores[k], timeout_s=30.0)
        start.wait()
        for i in range(per_thread):
            s.reserve(f"CB{k:04d}{i:028d}", "+1", CAPS, now=now, ttl_s=60)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    print(
        f"  reservations, {threads} stores at once: {per_thread * threads / elapsed:,.0f}/s "
        f"({per_thread * threads} in {elapsed:.2f} s)"
    )
    for s in stores:
        s.close()
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--postgres", metavar="DSN", help="also on this PostgreSQL server")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite file", str(Path(tmp) / "bench.db"), args.calls, args.threads)
    if args.postgres:
        schema = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in args.postgres else "?"
        try:
            dsn = f"{args.postgres}{sep}options=-csearch_path%3D{schema}"
            run("PostgreSQL", dsn, args.calls, args.threads)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
