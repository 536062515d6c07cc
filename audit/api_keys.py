"""API keys: an id anyone may see plus a secret stored only as an Argon2id hash.

A key reads ``xp_<id>_<secret>``. The id finds the row; the secret is checked with argon2-cffi's constant-time
verification. Revocation and expiry are read from the database on every request, so they take effect at once.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from audit.errors import AuthenticationError, RateLimitedError
from audit.models import ApiKey
from audit.records import ApiKeyInfo as ApiKeyInfo
from audit.records import NewApiKey as NewApiKey

KEY_PREFIX = "xp"
_KEY_PATTERN = re.compile(r"^xp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
DEFAULT_RATE_LIMIT_PER_MINUTE = 60
# OWASP's Argon2id floor (19 MiB, 2 passes): ~20 ms a check here, slow enough to make a stolen table costly.
DEFAULT_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def generate_key() -> tuple[str, str, str]:
    """(key id, full key string, secret part)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}", secret


def parse_key(api_key: str) -> tuple[str, str]:
    """(key id, secret) of a well-formed key, else AuthenticationError without echoing the secret."""
    match = _KEY_PATTERN.match(api_key.strip())
    if match is None:
        raise AuthenticationError("malformed API key: expected xp_<12 hex>_<43 characters> as printed when created")
    return match.group(1), match.group(2)


def parse_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    return tuple(sorted(set(items)))


def info_from_row(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        rate_limit_per_minute=row.rate_limit_per_minute,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class SecretHasher:
    """Hashes and checks key secrets; a wrong or unknown key costs the same time as a right one."""

    def __init__(self, hasher: PasswordHasher = DEFAULT_HASHER) -> None:
        self._hasher = hasher
        self._decoy = hasher.hash(secrets.token_urlsafe(32))

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def check(self, stored_hash: str | None, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash if stored_hash is not None else self._decoy, secret) and (
                stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False


def check_usable(info: ApiKeyInfo, now: datetime) -> None:
    status = info.status(now)
    if status == "revoked":
        raise AuthenticationError(f"API key {info.id} was revoked at {info.revoked_at:%Y-%m-%d %H:%M UTC}")
    if status == "expired":
        raise AuthenticationError(f"API key {info.id} expired at {info.expires_at:%Y-%m-%d %H:%M UTC}")


class RateLimiter:
    """A token bucket per key: ``limit`` requests a minute, refilled continuously, bursts up to ``limit``.

    Held in process memory: each server process enforces its own buckets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str, limit_per_minute: int) -> None:
        if limit_per_minute <= 0:
            return
        now = self._clock()
        rate = limit_per_minute / 60.0
        with self._lock:
            tokens, stamp = self._buckets.get(key_id, (float(limit_per_minute), now))
            tokens = min(float(limit_per_minute), tokens + (now - stamp) * rate)
            if tokens < 1.0:
                retry_after = (1.0 - tokens) / rate
                self._buckets[key_id] = (tokens, now)
                raise RateLimitedError(
                    f"API key {key_id} is over its limit of {limit_per_minute} requests a minute; "
                    f"retry in {retry_after:.1f} s",
                    retry_after=retry_after,
                )
            self._buckets[key_id] = (tokens - 1.0, now)


def utcnow() -> datetime:
    return datetime.now(UTC)
