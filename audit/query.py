"""Queries over the log: filters, typed results, and opaque cursors for paging."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.events import Decision
from audit.events import EventPage as EventPage
from audit.log import event_from_row
from audit.models import AuditEventRow

MAX_LIMIT = 1000


class EventQuery(BaseModel):
    """Filters combine with AND; ``since`` is inclusive and ``until`` exclusive."""

    model_config = ConfigDict(frozen=True)

    tenant: str | None = None
    subject: str | None = None
    generation_id: str | None = None
    decision: Decision | None = None
    type: str | None = Field(default=None, description="an event type, or a prefix ending in '.' (generation.)")
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    cursor: str | None = None

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2026-11-24T10:00:00Z")
        return value


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "after" or not number.isdigit() or len(number) > 18:
            raise ValueError(prefix)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}: pass next_cursor from a previous page unchanged") from exc


def query_events(session: Session, query: EventQuery) -> EventPage:
    statement = select(AuditEventRow).order_by(AuditEventRow.seq)
    if query.tenant is not None:
        statement = statement.where(AuditEventRow.tenant_id == query.tenant)
    if query.subject is not None:
        statement = statement.where(AuditEventRow.subject_id == query.subject)
    if query.generation_id is not None:
        statement = statement.where(AuditEventRow.generation_id == query.generation_id)
    if query.decision is not None:
        statement = statement.where(AuditEventRow.decision == query.decision.value)
    if query.type is not None:
        if query.type.endswith("."):
            # Not LIKE: SQLite's LIKE ignores case (PostgreSQL's does not) and '_' or '%' would be wildcards.
            prefix = func.substr(AuditEventRow.event_type, 1, len(query.type))
            statement = statement.where(prefix == query.type)
        else:
            statement = statement.where(AuditEventRow.event_type == query.type)
    if query.since is not None:
        statement = statement.where(AuditEventRow.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEventRow.occurred_at < query.until)
    if query.cursor is not None:
        statement = statement.where(AuditEventRow.seq > decode_cursor(query.cursor))
    rows = session.scalars(statement.limit(query.limit + 1)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    events = [event_from_row(row) for row in rows]
    return EventPage(events=events, next_cursor=encode_cursor(rows[-1].seq) if more and rows else None)
