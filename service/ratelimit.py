"""Per-user rate limiting of live scoring (a token bucket per user, in this process).

Live scoring (any list other than the stored default one) costs tens of milliseconds of CPU, so a caller
varying ``k``, ``term`` or ``occupation`` could starve everyone else. Each user may make ``burst``
live scorings at once and then ``per_minute`` a minute; beyond that the request is refused with the
number of seconds until the next one is allowed. With several worker processes each keeps its own
buckets, so the effective limit is that many times the setting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class RateLimiter:
    """A token bucket per key: ``burst`` tokens, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a rate limiter needs per_minute > 0 and burst >= 1")
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def acquire(self, key: Hashable) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s
