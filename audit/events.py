"""What the log records: event types, the draft a caller appends, and the typed event a reader gets back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    TENANT_CREATED = "tenant.created"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    AUTHENTICATION_FAILED = "auth.failed"
    SUBJECT_REGISTERED = "subject.registered"
    CONSENT_GRANTED = "consent.granted"
    CONSENT_REVOKED = "consent.revoked"
    CONSENT_CHALLENGED = "consent.challenged"
    GENERATION_REQUESTED = "generation.requested"
    GENERATION_DENIED = "generation.denied"
    GENERATION_COMPLETED = "generation.completed"
    GENERATION_FAILED = "generation.failed"
    VERIFICATION_PERFORMED = "verification.performed"
    ACCESS_ALLOWED = "access.allowed"
    ACCESS_DENIED = "access.denied"


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class EventDraft(BaseModel):
    """An event before the log gives it a place: everything but its sequence number, time and hashes."""

    model_config = ConfigDict(frozen=True)

    type: EventType
    tenant_id: str | None = None
    actor: str | None = Field(default=None, description="the API key id (or system component) that acted")
    subject_id: str | None = None
    generation_id: str | None = None
    decision: Decision | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class AuditEvent(BaseModel):
    """One entry of the log as stored, with the hash that places it in the Merkle tree."""

    model_config = ConfigDict(frozen=True)

    seq: int
    event_id: str
    type: str
    occurred_at: datetime
    tenant_id: str | None
    actor: str | None
    subject_id: str | None
    generation_id: str | None
    decision: str | None
    data: dict[str, Any]
    leaf_hash: str
    prev_hash: str


class EventPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    events: list[AuditEvent]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; None when this page is the last."""
