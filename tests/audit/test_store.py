"""The store: migrations, the ORM agreeing with them, the database refusing to change the log, and errors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from audit.checkpoint import LogSigningKey
from audit.errors import StoreError
from audit.events import EventDraft, EventType
from audit.ledger import Ledger
from audit.models import AuditEventRow, Base, CheckpointRow, Tenant
from audit.store import Store
from tests.audit.conftest import CHECKPOINT_EVERY, Database

TABLES = {
    "tenants",
    "api_keys",
    "subjects",
    "face_references",
    "consents",
    "generations",
    "audit_events",
    "audit_checkpoints",
}


def test_migrations_reach_head_and_reopening_changes_nothing(database: Database, store: Store) -> None:
    head = Store.head_revision()
    assert head is not None
    assert store.schema_revision() == head
    assert set(inspect(store.engine).get_table_names()) >= TABLES
    with store.write() as session:
        session.add(Tenant(id="acme", name="Acme", created_at=datetime.now(UTC)))

    for _ in range(2):
        again = database.open()
        try:
            assert again.schema_revision() == head
            with again.read() as session:
                assert session.scalars(select(Tenant.name)).all() == ["Acme"]
                assert session.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        finally:
            again.dispose()


def test_first_open_from_several_threads_at_once(database: Database) -> None:
    """Opening is serialized: openers racing to switch a new SQLite file to WAL, or to create a PostgreSQL schema,
    its tables and its triggers, all end up at head (each of those races used to fail now and then)."""
    start = threading.Barrier(8)

    def open_store(_: int) -> str | None:
        start.wait(timeout=30)
        opened = database.open()
        try:
            return opened.schema_revision()
        finally:
            opened.dispose()

    with ThreadPoolExecutor(8) as pool:
        revisions = list(pool.map(open_store, range(8)))
    assert revisions == [Store.head_revision()] * 8


def test_orm_metadata_matches_the_migrations(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def _fill(ledger: Ledger) -> None:
    for i in range(CHECKPOINT_EVERY):
        ledger.log.append(EventDraft(type=EventType.VERIFICATION_PERFORMED, tenant_id="acme", data={"i": i}))


REFUSED = [
    "UPDATE audit_events SET decision = 'allow'",
    "UPDATE audit_events SET body = body || ' ' WHERE seq = 3",
    "DELETE FROM audit_events WHERE seq = 7",
    "DELETE FROM audit_events",
    "UPDATE audit_checkpoints SET root_hash = 'ff'",
    "DELETE FROM audit_checkpoints",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_database_refuses_changes_to_the_log(
    store: Store, ledger: Ledger, signing_key: LogSigningKey, statement: str
) -> None:
    _fill(ledger)
    before = _snapshot(store)
    assert len(before[0]) == CHECKPOINT_EVERY and len(before[1]) == 1

    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as connection:
        connection.execute(text(statement))

    assert _snapshot(store) == before
    # Appending is still allowed, and the log still verifies.
    ledger.log.append(EventDraft(type=EventType.VERIFICATION_PERFORMED, data={"after": statement}))
    assert ledger.log.verify(signing_key.public_key).tree_size == CHECKPOINT_EVERY + 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints"])
def test_postgresql_refuses_truncate(store: Store, ledger: Ledger, table: str) -> None:
    _fill(ledger)
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {table}"))
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEventRow)) == CHECKPOINT_EVERY
        assert session.scalar(select(func.count()).select_from(CheckpointRow)) == 1


def _snapshot(store: Store) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with store.read() as session:
        events = [tuple(r) for r in session.execute(text("SELECT * FROM audit_events ORDER BY seq"))]
        checkpoints = [tuple(r) for r in session.execute(text("SELECT * FROM audit_checkpoints ORDER BY tree_size"))]
    return events, checkpoints


@pytest.mark.parametrize(
    ("url", "secret_parts"),
    [
        # well-formed, nothing listening on port 1
        ("postgresql+psycopg://auditor:hunter2-pw@127.0.0.1:1/audit", ["hunter2-pw"]),
        ("postgresql://auditor:hunter2-pw@127.0.0.1:1/audit", ["hunter2-pw"]),
        # malformed: the port is not a number (SQLAlchemy raises ValueError, not one of its own errors)
        ("postgresql+psycopg://auditor:hunter2-pw@127.0.0.1:port/audit", ["hunter2-pw"]),
        # an unescaped @ in the password: the driver sees host "pw@127.0.0.1" and echoes it
        ("postgresql+psycopg://auditor:hunter2@secret@127.0.0.1:1/audit", ["hunter2", "secret"]),
        # a dialect whose driver is not installed, and one that does not exist
        ("mysql://auditor:hunter2-pw@127.0.0.1:1/audit", ["hunter2-pw"]),
        ("nosuchdb://auditor:hunter2-pw@127.0.0.1/audit", ["hunter2-pw"]),
    ],
)
def test_a_bad_url_is_a_store_error_with_the_password_redacted(url: str, secret_parts: list[str]) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(url)
    message = str(caught.value)
    assert message.startswith("cannot open the audit database at ")
    assert "auditor:***@" in message
    for part in secret_parts:
        assert part not in message


def test_other_bad_locations_are_store_errors() -> None:
    with pytest.raises(StoreError, match="Could not parse"):
        Store.open("this is not a URL")
    with pytest.raises(StoreError, match="PostgreSQL only"):
        Store.open("sqlite:///audit.db", schema="xp_audit")
    with pytest.raises(StoreError, match="invalid schema name"):
        Store.open("postgresql+psycopg://127.0.0.1:1/audit", schema='x"; DROP TABLE tenants; --')
    with pytest.raises(StoreError, match="No such file"):
        Store.open("sqlite:////proc/no-such-dir/audit.db")
