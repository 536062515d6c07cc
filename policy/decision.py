"""The outcome of a policy decision, in the shape the audit log records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reason:
    """Why a decision went the way it did: a stable code, a message a person can act on, and its policy.

    ``detail`` holds the facts behind the reason (a similarity, a protected person's id): the audit log records
    them, but a refusal shown to the caller carries only ``message``, so a refusal cannot serve as an oracle."""

    code: str
    message: str
    policy_id: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "policy_id": self.policy_id, "detail": self.detail}


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
