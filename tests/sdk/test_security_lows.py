"""The low findings SECURITY.md used to list as known limits, each tried as the attack it describes: failed
authentications flooding a tenant's log, probing tenant names through consent grants, anonymous verification
leaving no trace of a bad upload or an address anyone can reverse, and server paths in errors' messages."""

from __future__ import annotations

import pytest

from audit.api_keys import SecretHasher
from audit.checkpoint import LogSigningKey
from audit.errors import AuthenticationError
from audit.ledger import AUTH_FAILURES_LOGGED_PER_MINUTE, Ledger
from audit.query import EventQuery
from audit.rate_limits import StoreRateLimiter
from audit.store import Store
from tests.audit.conftest import ORIGIN, Database, cheap_hasher, database, store  # noqa: F401 (fixtures)


class Clock:
    """A clock the test moves: the limiter's window is stepped by the test, never waited for."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


signing_key = LogSigningKey.generate("xp-test")


def _ledger(store: Store, hasher: SecretHasher, clock: Clock) -> Ledger:  # noqa: F811
    return Ledger(
        store,
        origin=ORIGIN,
        signing_key=signing_key,
        hasher=hasher,
        rate_limiter=StoreRateLimiter(store, clock),
    )


def _auth_failures(ledger: Ledger, tenant: str) -> list[dict[str, object]]:
    page = ledger.query(EventQuery(tenant=tenant, type="auth.failed", limit=1000))
    return [event.data for event in page.events]


def _wrong_secret(ledger: Ledger, key_id: str) -> None:
    with pytest.raises(AuthenticationError):
        ledger.authenticate(f"xp_{key_id}_{'A' * 43}")


# -- 1. failed authentications cannot fill a tenant's log ------------------------------------------------------


def test_wrong_secrets_for_a_known_key_id_are_logged_up_to_a_bound_then_counted(
    store: Store,  # noqa: F811
    cheap_hasher: SecretHasher,  # noqa: F811
) -> None:
    clock = Clock(1_800_000_000.0)
    ledger = _ledger(store, cheap_hasher, clock)
    ledger.create_tenant("victim")
    key = ledger.create_key("victim", scopes="animate")
    attempts = 60
    for _ in range(attempts):
        _wrong_secret(ledger, key.info.id)
    logged = _auth_failures(ledger, "victim")
    assert len(logged) == AUTH_FAILURES_LOGGED_PER_MINUTE, "every wrong secret was one event in the victim's log"
    # A minute later the next failure is logged, after one event that counts what was held back.
    clock.now += 60.0
    _wrong_secret(ledger, key.info.id)
    logged = _auth_failures(ledger, "victim")
    summary = [data for data in logged if "not_logged" in data]
    assert len(logged) == AUTH_FAILURES_LOGGED_PER_MINUTE + 2
    assert summary == [summary[0]] and summary[0]["not_logged"] == attempts - AUTH_FAILURES_LOGGED_PER_MINUTE
    # The key itself still works: the bound is on the log, not on its owner.
    assert ledger.authenticate(key.secret).id == key.info.id
    ledger.log.verify(signing_key.public_key)  # raises at the first inconsistency


def test_made_up_key_ids_share_one_bound(store: Store, cheap_hasher: SecretHasher) -> None:  # noqa: F811
    clock = Clock(1_800_000_000.0)
    ledger = _ledger(store, cheap_hasher, clock)
    for n in range(40):
        _wrong_secret(ledger, f"{n:012x}")
    page = ledger.query(EventQuery(type="auth.failed", limit=1000))
    assert len(page.events) == AUTH_FAILURES_LOGGED_PER_MINUTE
