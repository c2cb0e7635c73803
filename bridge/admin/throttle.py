"""Failed admin authentications per client address: past the limit, refuse before checking.

A token bucket per address: ``per_minute`` failures at once, then one more each
``60 / per_minute`` seconds.  A successful authentication costs nothing.  Pure: the
clock is passed in, nothing here does I/O.

Memory is bounded: at most ``max_addresses`` buckets, least recently failed dropped
first (a bucket that has refilled is dropped as soon as it is seen).  IPv6 clients are
counted per /64, the block one host usually owns, so one machine cannot spread its
attempts over 2**64 addresses.  An attacker with more addresses than the table holds can
still make ``per_minute`` attempts per address; the admin token's length (32+ random
characters, checked at start-up) is what makes those useless.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESSES = 10_000


@dataclass
class _Bucket:
    tokens: float
    at: float


def client_key(host: str | None) -> str:
    """The address a failure is counted against: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP (a unix socket path, a test transport): as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureThrottle:
    def __init__(
        self,
        per_minute: int,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or max_addresses < 1:
            raise ValueError("per_minute and max_addresses must be >= 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens back per second
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may try now."""
        b = self._buckets.get(key)
        if b is None:
            return None
        tokens = self._refill(b, self._clock())
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def failed(self, key: str) -> bool:
        """Count one failure against ``key``; True when this one used its last try."""
        now = self._clock()
        b = self._buckets.pop(key, None)
        tokens = self.capacity if b is None else self._refill(b, now)
        self._buckets[key] = _Bucket(tokens - 1.0, now)  # most recent at the end
        self._prune(now)
        return tokens - 1.0 < 1.0

    def _refill(self, b: _Bucket, now: float) -> float:
        return min(self.capacity, b.tokens + (now - b.at) * self.rate)

    def _prune(self, now: float) -> None:
        # Oldest first: full-again buckets carry nothing worth keeping.
        while self._buckets:
            key, b = next(iter(self._buckets.items()))
            if len(self._buckets) <= self.max_addresses and self._refill(b, now) < self.capacity:
                return
            del self._buckets[key]
