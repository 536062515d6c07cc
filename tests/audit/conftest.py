"""Audit fixtures: every store-backed test runs on SQLite (a file under tmp_path) and on PostgreSQL (a schema of
its own, dropped afterwards).

PostgreSQL is ``XP_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://127.0.0.1:5432/test``). When it cannot be
reached its variants are skipped with the reason; ``XP_REQUIRE_POSTGRES=1`` turns that skip into a failure.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from audit.api_keys import SecretHasher
from audit.checkpoint import LogSigningKey
from audit.ledger import Ledger
from audit.store import Store, sqlite_url
from tests.postgres import POSTGRES_URL, drop_schema, require_postgres

ORIGIN = "xp-sdk.test/log"
CHECKPOINT_EVERY = 8


@dataclass(frozen=True)
class Database:
    """Where one test's store lives: open more stores on the same data with ``Store.open(url, schema=schema)``."""

    dialect: str
    url: str
    schema: str | None

    def open(self) -> Store:
        return Store.open(self.url, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", sqlite_url(tmp_path / "audit.db"), None)
        return
    require_postgres()
    schema = f"xp_t_{secrets.token_hex(6)}"
    try:
        yield Database("postgresql", POSTGRES_URL, schema)
    finally:
        drop_schema(schema)


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    opened = database.open()
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def signing_key() -> LogSigningKey:
    return LogSigningKey.generate("xp-test")


@pytest.fixture(scope="session")
def cheap_hasher() -> SecretHasher:
    """Argon2id at its minimum cost: the same code path as production, without 20 ms a key."""
    return SecretHasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def ledger(store: Store, signing_key: LogSigningKey, cheap_hasher: SecretHasher) -> Ledger:
    return Ledger(
        store, origin=ORIGIN, signing_key=signing_key, checkpoint_every=CHECKPOINT_EVERY, hasher=cheap_hasher
    )
