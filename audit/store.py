"""The database behind the audit log: SQLite by default, PostgreSQL by URL, schema kept by Alembic."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from audit.errors import StoreError

_MIGRATIONS = Path(__file__).with_name("migrations")
# Appends take this transaction-scoped advisory lock on PostgreSQL, so concurrent writers queue instead of
# racing for the next sequence number. Any constant works; this one spells "xpau" in ASCII.
_PG_APPEND_LOCK = 0x78_70_61_75
# Keyed by schema too, so deployments (or test runs) sharing one database in separate schemas do not queue on
# each other's appends.
_PG_LOCK_SQL = "SELECT pg_advisory_xact_lock(:key, hashtext(coalesce(current_schema(), '')))"
_PG_CREATE_SCHEMA_LOCK_SQL = "SELECT pg_advisory_xact_lock(:key, 0)"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SQLITE_BUSY_TIMEOUT_MS = 60_000


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class Store:
    """An open database. ``write()`` transactions are serialized against every other writer (all processes);
    ``read()`` transactions never block writers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, *, schema: str | None = None, migrate: bool = True) -> Store:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql+psycopg://host/db``) and bring its schema up
        to date. ``schema`` (PostgreSQL only) puts every table in that schema, created when missing."""
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            engine = _create_engine(url, schema)
            store = cls(engine)
            if migrate:
                store.migrate()
        except (SQLAlchemyError, ValueError, ImportError, OSError) as exc:
            # ValueError: a malformed URL (a port that is not a number); ImportError: a dialect whose driver is
            # not installed; OSError: a SQLite path that cannot be created. None of them may escape with the URL.
            reason = scrub_url_secrets(_first_line(exc), url)
            raise StoreError(f"cannot open the audit database at {redact_url(url)}: {reason}") from exc
        return store

    def migrate(self) -> None:
        """Apply every pending migration (idempotent, safe to run from several processes at once)."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.write() as session:
            config.attributes["connection"] = session.connection()
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        return ScriptDirectory.from_config(config).get_current_head()

    def connect(self) -> Connection:
        """A connection, or ``StoreError`` when the database cannot be reached (down, refusing connections): a
        caller's answer is then "the store is unavailable", never a driver's exception."""
        try:
            return self.engine.connect()
        except OperationalError as exc:
            url = self.engine.url.render_as_string(hide_password=False)
            reason = scrub_url_secrets(_first_line(exc), url)
            raise StoreError(f"cannot open the audit database at {redact_url(url)}: {reason}") from exc

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction holding the database's single-writer lock until it commits or rolls back."""
        with self.connect() as connection:
            if self.dialect == "sqlite":
                connection = connection.execution_options(xp_immediate=True)
            with connection.begin(), Session(bind=connection, expire_on_commit=False) as session:
                if self.dialect == "postgresql":
                    session.execute(text(_PG_LOCK_SQL), {"key": _PG_APPEND_LOCK})
                yield session
                session.flush()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.connect() as connection, connection.begin(), Session(bind=connection) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, schema: str | None) -> Engine:
    if url.startswith("sqlite"):
        if schema is not None:
            raise StoreError("a schema name applies to PostgreSQL only")
        database = url.split("///", 1)[-1].split("?", 1)[0]
        if database and database != ":memory:":
            _create_private_file(Path(database).expanduser())
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(f"invalid schema name {schema!r}: use lowercase letters, digits and underscores")
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if schema is not None:
        with engine.begin() as connection:
            # Two processes opening a new schema at once would both pass IF NOT EXISTS and one would fail on
            # pg_namespace's unique index; the writers' lock makes the second wait and then find it.
            connection.execute(text(_PG_CREATE_SCHEMA_LOCK_SQL), {"key": _PG_APPEND_LOCK})
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def _create_private_file(path: Path) -> None:
    """Create the database file owner-only before SQLite does (it would make it 0644 under the usual umask); its
    -wal, -shm and -journal files take the database file's mode, so they are 0600 too. An existing file is left
    as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so the "begin" hook below decides how each transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so only the first opens of a new file do any work).

    A switch that races another connection's transaction fails at once with "database is locked": SQLite skips
    the busy handler there, as waiting while holding a shared lock could deadlock. So several processes opening
    a new file together retry here, holding nothing, until the busy timeout."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # a backoff between retries, as SQLite's own busy handler does
        delay = min(delay * 2, 0.05)


def _begin_sqlite(connection: Connection) -> None:
    # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting; writers take the
    # lock up front (BEGIN IMMEDIATE), so they queue on busy_timeout instead.
    immediate = connection.get_execution_options().get("xp_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# user:password@ up to the *last* @: a password with an unescaped @ must not leave its tail visible.
_USERINFO = re.compile(r"//([^:/@]*):(.*)@", re.DOTALL)
# A query parameter that carries a secret (libpq's password= and sslpassword=, a token=, an api_key=, ...).
_SECRET_PARAMETER = re.compile(r"([?&;][^=&;#]*(?:pass|pwd|secret|token|key)[^=&;#]*=)([^&;#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and the values of its secret query parameters (``password=``,
    ``sslpassword=``, ...) replaced by ``***``."""
    # Query parameters first: an unescaped @ in one must not be taken for the end of a user info.
    return _USERINFO.sub(r"//\1:***@", _SECRET_PARAMETER.sub(r"\1***", url), count=1)


def scrub_url_secrets(message: str, url: str) -> str:
    """``message`` without any secret of ``url`` (see ``redact_url``), as written or percent-decoded, nor the pieces
    a driver may echo when an unescaped ``@`` split a password (``u:pa@ss@host`` parses as password ``pa`` and
    host ``ss@host``)."""
    secrets = {m.group(2) for m in _SECRET_PARAMETER.finditer(url) if m.group(2)}
    userinfo = _USERINFO.search(_SECRET_PARAMETER.sub(r"\1", url))
    if userinfo is not None and userinfo.group(2):
        secrets.add(userinfo.group(2))
    for secret in list(secrets):
        secrets.add(unquote_plus(secret))
    for secret in secrets:
        for piece in sorted({secret, *secret.split("@")}, key=len, reverse=True):
            if len(piece) >= 3 or piece == secret:
                message = message.replace(piece, "***")
    return message


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
