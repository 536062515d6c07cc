"""Errors of the audit package. Each carries a stable ``code``; ``xp_sdk`` maps them onto its own hierarchy."""

from __future__ import annotations


class AuditError(Exception):
    """Root of every error the audit package raises on purpose."""

    code: str = "audit_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreError(AuditError):
    """The database cannot be opened, migrated or written."""

    code = "store_error"


class RecordNotFoundError(AuditError):
    """A tenant, key, subject, consent, generation or event that was named does not exist."""

    code = "not_found"


class RecordConflictError(AuditError):
    """A record that must be unique already exists, or a state change is not allowed (revoking twice)."""

    code = "conflict"


class AuthenticationError(AuditError):
    """An API key is missing, malformed, unknown, wrong, revoked or expired."""

    code = "authentication_failed"


class RateLimitedError(AuditError):
    """A key made more requests than its limit allows; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProofError(AuditError):
    """An inclusion or consistency proof, or a checkpoint signature, does not verify."""

    code = "proof_invalid"


class LogIntegrityError(AuditError):
    """The log was altered: ``seq`` names the first inconsistent event (or None for a checkpoint-level fault)."""

    code = "log_tampered"

    def __init__(self, message: str, seq: int | None = None, checkpoint_size: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
        self.checkpoint_size = checkpoint_size


class RecordIntegrityError(LogIntegrityError):
    """A record row (of ``table``: generations, consents, subjects, api_keys, tenants) disagrees with the events
    that describe it: it was edited, inserted or deleted outside the ledger. ``field`` names the first column
    that disagrees, or is None when the whole row is missing or no event describes it; ``seq`` is the event the
    row contradicts, when there is one."""

    def __init__(self, message: str, *, table: str, record_id: str, field: str | None, seq: int | None = None) -> None:
        super().__init__(message, seq=seq)
        self.table = table
        self.record_id = record_id
        self.field = field
