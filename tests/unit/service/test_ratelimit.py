"""The token bucket behind the live-scoring limit, on a clock the test moves."""

from __future__ import annotations

import pytest

from service.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=2, clock=clock)  # one token every 10 s
    assert limiter.acquire("u") == 0.0 and limiter.acquire("u") == 0.0
    assert limiter.acquire("u") == pytest.approx(10.0)
    clock.now += 4.0
    assert limiter.acquire("u") == pytest.approx(6.0)  # a refused request does not cost a token
    clock.now += 6.0
    assert limiter.acquire("u") == 0.0
    assert limiter.acquire("other") == 0.0  # buckets are per key
    clock.now += 3600.0
    assert [limiter.acquire("u") for _ in range(3)][:2] == [0.0, 0.0]  # refills up to the burst only


def test_a_limiter_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="per_minute > 0"):
        RateLimiter(per_minute=0, burst=1)
