"""The tamper-evident audit log and the records it describes.

``Ledger`` is the package's face: tenants, API keys, subjects, consents and generations, each written in the
same serialized transaction as the log event describing it. ``AuditLog`` appends RFC 6962-hashed, linked events,
signs checkpoints (C2SP signed notes, Ed25519), serves inclusion and consistency proofs and re-verifies it all.
Knows no pixels and imports nothing from the rest of xp-sdk.
"""

from audit.api_keys import ApiKeyInfo, NewApiKey, RateLimiter, SecretHasher
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
from audit.events import AuditEvent, Decision, EventDraft, EventType
from audit.ledger import Ledger
from audit.log import AuditLog, ConsistencyProof, InclusionProof, LogVerification
from audit.query import EventPage, EventQuery
from audit.records import ConsentInfo, GenerationInfo, SubjectInfo, TenantInfo
from audit.store import Store, sqlite_url

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
