"""Commands per second per key: one token bucket per key.

A bucket holds at most ``burst`` tokens and gains ``rate_per_s`` a second; a command takes
one. ``take`` answers 0.0 when the command may go, else the seconds until one token is
there (the ``RetryInfo`` the caller gets). A full bucket is the same as no bucket, so full
ones are forgotten when many keys have been seen: memory stays bounded by the keys active
within the last ``burst / rate_per_s`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Above this many buckets, the full ones are dropped (checked on a new key only).
PRUNE_ABOVE = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("RATE_LIMIT_PER_S must be > 0 and RATE_LIMIT_BURST >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Take one token from ``key``'s bucket: 0.0 when taken, else the seconds until
        one token is there (nothing is taken then)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= PRUNE_ABOVE:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            refill = (now - bucket.updated_at) * self.rate_per_s
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.updated_at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s

    def _forget_full(self, now: float) -> None:
        full_after_s = self.burst / self.rate_per_s
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if now - bucket.updated_at < full_after_s
        }

    def __len__(self) -> int:
        return len(self._buckets)
