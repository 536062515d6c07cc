"""Builders for policy tests: a request that passes every default check, and ways to spoil it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from policy import (
    AccessRequest,
    Action,
    ConsentEvaluation,
    ConsentRecord,
    ConsentStatus,
    FaceMatch,
    Principal,
    Scope,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TENANT = "t_1"
SUBJECT = "s_9"

ACTIVE = ConsentEvaluation(ConsentStatus.ACTIVE, "c_1", "consent c_1 for subject s_9 is active with no end date")
MATCHED = FaceMatch(similarity=0.71, threshold=0.363, matched=True)


def principal(*scopes: str) -> Principal:
    return Principal(tenant_id=TENANT, key_id="k_1", scopes=frozenset(scopes))


def animate_request(**changes: Any) -> AccessRequest:
    """An animate request every default policy allows, with ``changes`` applied."""
    allowed = AccessRequest(
        principal=principal(Scope.ANIMATE),
        action=Action.ANIMATE,
        subject_id=SUBJECT,
        consent=ACTIVE,
        face=MATCHED,
        purpose="marketing",
    )
    return replace(allowed, **changes)


def consent(
    *,
    id: str = "c_1",
    subject_id: str = SUBJECT,
    grantee: str = TENANT,
    scopes: frozenset[str] = frozenset({"animate"}),
    purposes: frozenset[str] = frozenset(),
    valid_from: datetime = NOW - timedelta(days=30),
    valid_until: datetime | None = None,
    revoked_at: datetime | None = None,
) -> ConsentRecord:
    return ConsentRecord(id, subject_id, grantee, scopes, purposes, valid_from, valid_until, revoked_at)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
