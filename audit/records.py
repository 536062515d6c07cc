"""Typed views of the store's rows, as callers receive them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

VERIFIED_VIDEO = "verified-video"
ATTESTED = "attested"
ConsentKind = Literal["verified-video", "attested"]
"""How a consent was proven: ``verified-video`` (a challenge video that passed every check) or ``attested`` (an
evidence file the operator recorded, taken on the operator's word)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApiKeyInfo(_Record):
    """A key as listed: everything but its secret."""

    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    rate_limit_per_minute: int
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewApiKey:
    """A freshly minted key. ``secret`` is shown once and never stored."""

    info: ApiKeyInfo
    secret: str = field(repr=False)


class TenantInfo(_Record):
    id: str
    name: str
    created_at: datetime


class SubjectInfo(_Record):
    id: str
    tenant_id: str
    name: str
    protected: bool
    references: int
    """How many reference face embeddings were registered."""
    created_at: datetime
    created_by: str | None


class ConsentInfo(_Record):
    id: str
    subject_id: str
    grantee_tenant_id: str
    scopes: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_from: datetime
    valid_until: datetime | None
    evidence_sha256: str
    evidence_kind: str
    kind: ConsentKind
    """``verified-video``: a live challenge video passed every check (face, actions, phrase, not generated,
    fresh). ``attested``: an evidence file the operator recorded; its truth is the operator's word."""
    recorded_by: str | None
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revocation_reason: str | None


class GenerationInfo(_Record):
    id: str
    tenant_id: str
    key_id: str
    subject_id: str | None
    consent_id: str | None
    decision_id: str
    status: str
    """requested, completed or failed."""
    source_sha256: str
    driving: str
    output_sha256: str | None
    manifest_sha256: str | None
    watermark_id: str | None
    error_code: str | None
    created_at: datetime
    finished_at: datetime | None
    consent_kind: ConsentKind | None = None
    """The kind of the consent it was made under (``Ledger.generation`` reads it from that consent's record)."""
    consent_evidence_sha256: str | None = None
    """The SHA-256 of that consent's evidence."""
