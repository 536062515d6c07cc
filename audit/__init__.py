"""The tamper-evident audit log and the records it describes.

``Ledger`` is the package's face: tenants, API keys, subjects, consents and generations, each written in the
same serialized transaction as the log event describing it. ``AuditLog`` appends RFC 6962-hashed, linked events,
signs checkpoints (C2SP signed notes, Ed25519), serves inclusion and consistency proofs and re-verifies it all.
Knows no pixels and imports nothing from the rest of xp-sdk.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.api_keys import RateLimiter, SecretHasher
    from audit.checkpoint import Checkpoint, LogSigningKey, LogVerifierKey, SignedCheckpoint, verify_checkpoint
    from audit.errors import (
        AuditError,
        AuthenticationError,
        LogIntegrityError,
        ProofError,
        RateLimitedError,
        RecordConflictError,
        RecordNotFoundError,
        StoreError,
    )
    from audit.events import AuditEvent, Decision, EventDraft, EventPage, EventType
    from audit.ledger import Ledger
    from audit.log import AuditLog, ConsistencyProof, InclusionProof
    from audit.log_verification import LogVerification
    from audit.query import EventQuery
    from audit.records import ApiKeyInfo, ConsentInfo, GenerationInfo, NewApiKey, SubjectInfo, TenantInfo
    from audit.store import Store, sqlite_url

_EXPORTS: dict[str, str] = {
    "RateLimiter": "audit.api_keys",
    "SecretHasher": "audit.api_keys",
    "Checkpoint": "audit.checkpoint",
    "LogSigningKey": "audit.checkpoint",
    "LogVerifierKey": "audit.checkpoint",
    "SignedCheckpoint": "audit.checkpoint",
    "verify_checkpoint": "audit.checkpoint",
    "AuditError": "audit.errors",
    "AuthenticationError": "audit.errors",
    "LogIntegrityError": "audit.errors",
    "ProofError": "audit.errors",
    "RateLimitedError": "audit.errors",
    "RecordConflictError": "audit.errors",
    "RecordNotFoundError": "audit.errors",
    "StoreError": "audit.errors",
    "AuditEvent": "audit.events",
    "Decision": "audit.events",
    "EventDraft": "audit.events",
    "EventPage": "audit.events",
    "EventType": "audit.events",
    "Ledger": "audit.ledger",
    "AuditLog": "audit.log",
    "ConsistencyProof": "audit.log",
    "InclusionProof": "audit.log",
    "LogVerification": "audit.log_verification",
    "EventQuery": "audit.query",
    "ApiKeyInfo": "audit.records",
    "ConsentInfo": "audit.records",
    "GenerationInfo": "audit.records",
    "NewApiKey": "audit.records",
    "SubjectInfo": "audit.records",
    "TenantInfo": "audit.records",
    "Store": "audit.store",
    "sqlite_url": "audit.store",
}
"""Each public name and the module it comes from: imported on first use (PEP 562), so importing one light
module of the package does not load the heavy ones."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "ApiKeyInfo",
    "AuditError",
    "AuditEvent",
    "AuditLog",
    "AuthenticationError",
    "Checkpoint",
    "ConsentInfo",
    "ConsistencyProof",
    "Decision",
    "EventDraft",
    "EventPage",
    "EventQuery",
    "EventType",
    "GenerationInfo",
    "InclusionProof",
    "Ledger",
    "LogIntegrityError",
    "LogSigningKey",
    "LogVerification",
    "LogVerifierKey",
    "NewApiKey",
    "ProofError",
    "RateLimitedError",
    "RateLimiter",
    "RecordConflictError",
    "RecordNotFoundError",
    "SecretHasher",
    "SignedCheckpoint",
    "Store",
    "StoreError",
    "SubjectInfo",
    "TenantInfo",
    "sqlite_url",
    "verify_checkpoint",
]
