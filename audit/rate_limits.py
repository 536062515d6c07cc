"""Per-key rate limits kept in the audit store, so every process of a deployment (the CLI, each server replica)
counts the same requests: a key allowed 5 a minute gets 5, however many processes it calls.

The algorithm is GCRA (the generic cell rate algorithm, as in ATM networks and the ``limits`` and ``redis-cell``
libraries): one number per key, the time its next request is "due". Each request moves it on by 60/limit seconds;
a request is refused while that time lies more than a minute minus one interval ahead. That is the token bucket the
server used to keep in memory (bursts up to the limit, refilled continuously), with one row instead of a process's
dictionary. The check and the update run in one serialized write transaction, so concurrent requests cannot both
take the last slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session

from audit.errors import RateLimitedError
from audit.models import RateLimitState
from audit.store import Store

PERIOD_S = 60.0


class KeyRateLimiter(Protocol):
    """What the ledger asks of a limiter: count one request of a key, or raise ``RateLimitedError``. Every process
    of a deployment must share its counts (this module's store, or a shared service such as Redis)."""

    def acquire(self, key_id: str, limit_per_minute: int) -> None: ...


class StoreRateLimiter:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def acquire(self, key_id: str, limit_per_minute: int) -> None:
        """Count one request of ``key_id``, or raise ``RateLimitedError`` with the seconds until one fits."""
        if limit_per_minute <= 0:
            return
        interval = PERIOD_S / limit_per_minute
        with self._store.write() as session:
            now = self._clock()
            state = session.get(RateLimitState, key_id)
            due = max(state.arrival, now) if state is not None else now
            wait = due - now - (PERIOD_S - interval)
            if wait > 0:
                raise RateLimitedError(
                    f"API key {key_id} is over its limit of {limit_per_minute} requests a minute; "
                    f"retry in {wait:.1f} s",
                    retry_after=wait,
                )
            if state is None:
                session.add(RateLimitState(key_id=key_id, arrival=due + interval))
            else:
                state.arrival = due + interval


class HeldBackCounts:
    """How many events a limiter held back, per bucket, so that the next event let through can say so: one row of
    the same table per bucket (named ``#<bucket>``, its count where a key keeps its arrival time), shared by every
    process on the database and bounded by the number of buckets, not by the number of events."""

    @staticmethod
    def add(session: Session, bucket: str) -> None:
        row = session.get(RateLimitState, "#" + bucket)
        if row is None:
            session.add(RateLimitState(key_id="#" + bucket, arrival=1.0))
        else:
            row.arrival += 1.0

    @staticmethod
    def take(session: Session, bucket: str) -> int:
        """The count held back so far, reset to none."""
        row = session.get(RateLimitState, "#" + bucket)
        if row is None or row.arrival <= 0:
            return 0
        held = int(row.arrival)
        row.arrival = 0.0
        return held
