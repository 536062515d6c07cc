"""Alembic environment: migrations run on the connection the store hands over (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

from audit.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("audit migrations run through audit.Store.migrate(), which provides the connection")

context.configure(
    connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite"
)
with context.begin_transaction():
    context.run_migrations()
