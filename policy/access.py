"""Who asks to do what: key scopes, actions, the calling principal and the full access request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policy.consent import ConsentEvaluation
from policy.face_match import FaceMatch


class Scope(StrEnum):
    """Scopes an API key can hold."""

    ANIMATE = "animate"
    VERIFY = "verify"
    AUDIT_READ = "audit:read"
    SUBJECTS_WRITE = "subjects:write"
    CONSENTS_WRITE = "consents:write"
    KEYS_ADMIN = "keys:admin"


class Action(StrEnum):
    """Gated operations; their values are the Cedar action ids in ``XP::Action``."""

    ANIMATE = "animate"
    VERIFY = "verify"
    AUDIT_READ = "audit_read"
    REGISTER_SUBJECT = "register_subject"
    GRANT_CONSENT = "grant_consent"
    REVOKE_CONSENT = "revoke_consent"
    MANAGE_KEYS = "manage_keys"

    @property
    def required_scope(self) -> Scope:
        return _REQUIRED_SCOPE[self]


_REQUIRED_SCOPE: dict[Action, Scope] = {
    Action.ANIMATE: Scope.ANIMATE,
    Action.VERIFY: Scope.VERIFY,
    Action.AUDIT_READ: Scope.AUDIT_READ,
    Action.REGISTER_SUBJECT: Scope.SUBJECTS_WRITE,
    Action.GRANT_CONSENT: Scope.CONSENTS_WRITE,
    Action.REVOKE_CONSENT: Scope.CONSENTS_WRITE,
    Action.MANAGE_KEYS: Scope.KEYS_ADMIN,
}


@dataclass(frozen=True)
class Principal:
    """An authenticated API key and the tenant that owns it."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]

    def __post_init__(self) -> None:
        if not self.tenant_id or not self.key_id:
            raise ValueError("a principal needs a tenant_id and a key_id")
        # Callers often hold scopes as a list or set; freezing keeps the value hashable and immutable.
        object.__setattr__(self, "scopes", frozenset(str(s) for s in self.scopes))


@dataclass(frozen=True)
class ProtectedMatch:
    """The photo's face matches someone on the protected-persons list."""

    person_id: str
    similarity: float


@dataclass(frozen=True)
class AccessRequest:
    """Everything a decision needs, already established by the caller; no pixels."""

    principal: Principal
    action: Action
    subject_id: str | None = None
    consent: ConsentEvaluation | None = None
    face: FaceMatch | None = None
    protected: ProtectedMatch | None = None
    purpose: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))
