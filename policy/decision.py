"""The outcome of a policy decision, in the shape the audit log records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reason:
    """Why a decision went the way it did: a stable code, a message a person can act on, and its policy."""

    code: str
    message: str
    policy_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "policy_id": self.policy_id}


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Allow or deny, with the policies that determined it and the reasons drawn from them."""

    allowed: bool
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    policy_ids: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()
    action: str

    def to_dict(self) -> dict[str, object]:
        return {
            "decision_id": self.decision_id,
            "allowed": self.allowed,
            "action": self.action,
            "policy_ids": list(self.policy_ids),
            "reasons": [r.to_dict() for r in self.reasons],
        }
