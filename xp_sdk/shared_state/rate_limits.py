"""``RedisRateLimiter``: per-key limits counted in Redis by the ``limits`` library, for every process alike.

A moving window: at most ``limit`` requests in any 60 seconds, whichever process (server replica, CLI, embedded
client) takes them. The database's GCRA counters (``audit.rate_limits``) give the same bound without Redis; here
a request costs one Redis round trip instead of a serialized database write.
"""

from __future__ import annotations

import time

import redis
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from audit.errors import RateLimitedError, StoreError
from audit.store import redact_url


class RedisRateLimiter:
    """``acquire`` as ``audit.rate_limits.StoreRateLimiter`` has it; keys live under ``<prefix>:limits``."""

    def __init__(self, url: str, *, prefix: str) -> None:
        self._where = redact_url(url)
        self._limiter = MovingWindowRateLimiter(RedisStorage(url, key_prefix=f"{prefix}:limits"))

    def acquire(self, key_id: str, limit_per_minute: int) -> None:
        """Count one request of ``key_id``, or raise ``RateLimitedError`` with the seconds until one fits."""
        if limit_per_minute <= 0:
            return
        item = RateLimitItemPerMinute(limit_per_minute)
        try:
            if self._limiter.hit(item, key_id):
                return
            reset_at = self._limiter.get_window_stats(item, key_id).reset_time
        except redis.RedisError as exc:
            raise StoreError(f"the rate-limit store (Redis at {self._where}) cannot be reached: {exc}") from exc
        wait = max(0.1, reset_at - time.time())
        raise RateLimitedError(
            f"API key {key_id} is over its limit of {limit_per_minute} requests a minute; retry in {wait:.1f} s",
            retry_after=wait,
        )
