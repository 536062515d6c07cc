"""The PostgreSQL the tests use: ``XP_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://127.0.0.1:5432/test``).

A test that needs it is skipped with the reason when it cannot be reached; ``XP_REQUIRE_POSTGRES=1`` (CI) turns that
skip into a failure. Each user gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from audit.store import Store

POSTGRES_URL = os.environ.get("XP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")


@functools.cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per session."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available", whatever the driver raised
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {POSTGRES_URL} is unreachable ({first}); set XP_TEST_POSTGRES_URL"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Skip the calling test (fail it under XP_REQUIRE_POSTGRES=1) when PostgreSQL cannot be reached."""
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("XP_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def drop_schema(schema: str) -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A database URL whose tables live in a fresh schema named ``<prefix>_<random>``, dropped on exit.

    Settings carry one URL, so the schema rides in it as libpq options (the schema must exist already: it is created
    here, with the project's tables).
    """
    require_postgres()
    schema = f"{prefix}_{secrets.token_hex(5)}"
    try:
        Store.open(POSTGRES_URL, schema=schema).dispose()
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        drop_schema(schema)
