"""Rate limits kept in the store: every process on one database counts the same requests (before, each process
kept its own buckets, so the CLI never enforced a key's limit: a 5-a-minute key made 7 of 7 calls)."""

from __future__ import annotations

import pytest

from audit.errors import RateLimitedError
from audit.rate_limits import StoreRateLimiter
from tests.audit.conftest import Database


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _allowed(limiter: StoreRateLimiter, key: str, limit: int) -> bool:
    try:
        limiter.acquire(key, limit)
    except RateLimitedError:
        return False
    return True


def test_two_processes_share_one_limit(database: Database) -> None:
    clock = Clock(1_800_000_000.0)
    first, second = database.open(), database.open()
    try:
        a, b = StoreRateLimiter(first, clock), StoreRateLimiter(second, clock)
        answers = [_allowed(a if i % 2 else b, "k1", 5) for i in range(7)]
        assert answers == [True] * 5 + [False] * 2
        assert _allowed(a, "k2", 5), "another key has its own count"
    finally:
        first.dispose()
        second.dispose()


def test_a_burst_then_one_every_interval_and_retry_after_says_when(database: Database) -> None:
    clock = Clock(1_800_000_000.0)
    store = database.open()
    try:
        limiter = StoreRateLimiter(store, clock)
        assert all(_allowed(limiter, "k", 5) for _ in range(5))
        with pytest.raises(RateLimitedError) as refused:
            limiter.acquire("k", 5)
        assert refused.value.retry_after == pytest.approx(12.0)  # one slot comes back every 60 / 5 seconds
        clock.now += 11.5
        assert not _allowed(limiter, "k", 5)
        clock.now += 1.0
        assert _allowed(limiter, "k", 5)
        assert not _allowed(limiter, "k", 5)
        clock.now += 60.0  # a quiet minute fills the bucket again, no further
        assert [_allowed(limiter, "k", 5) for _ in range(6)] == [True] * 5 + [False]
    finally:
        store.dispose()


def test_no_limit_counts_nothing(database: Database) -> None:
    store = database.open()
    try:
        limiter = StoreRateLimiter(store, Clock(0.0))
        assert all(_allowed(limiter, "k", 0) for _ in range(50))
    finally:
        store.dispose()
