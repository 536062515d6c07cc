"""The gate: who is calling (API key), and may they do this (consent, face match, protected persons, Cedar)?

Every refusal is written to the audit log before it is raised; nothing here makes pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from audit import ApiKeyInfo, ConsentInfo, Ledger
from policy import (
    AccessRequest,
    Action,
    ConsentKind,
    ConsentRecord,
    Decision,
    FaceMatch,
    Policy,
    Principal,
    ProtectedMatch,
    Reason,
    evaluate_consent,
    match_face,
)
from xp_sdk.deployment import audit_errors
from xp_sdk.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    FaceMismatchError,
    PermissionDeniedError,
    PolicyDeniedError,
)

# A refusal shows the caller each reason's message; a reason's facts (``detail``) only where they are the caller's
# to know. A similarity would let a caller climb towards the threshold with doctored photos, and a protected
# person's id names someone the caller may not see; both stay in the audit log.
_PUBLIC_DETAIL = frozenset({"missing_scope", "consent_required", "verified_consent_required"})

# When several forbids fire, the error names the one a caller should fix first.
_ERROR_BY_REASON: tuple[tuple[str, type[AccessDeniedError]], ...] = (
    ("missing_scope", PermissionDeniedError),
    ("consent_required", ConsentRequiredError),
    ("verified_consent_required", ConsentRequiredError),
    ("face_mismatch", FaceMismatchError),
)


@dataclass(frozen=True)
class Caller:
    key: ApiKeyInfo
    principal: Principal
    decision: Decision | None = None
    """The policy decision that allowed the current action, once ``Gate.authorize`` has made one."""

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    def decision_record(self, policy_digest: str) -> dict[str, Any] | None:
        """What the audit event of the allowed action records of its decision."""
        if self.decision is None:
            return None
        return {**self.decision.to_dict(), "policy_digest": policy_digest}


@dataclass(frozen=True)
class AnimationClearance:
    """What an allowed animation request was cleared on: the decision and the facts behind it."""

    decision: Decision
    consent_id: str | None
    face: FaceMatch
    facts: dict[str, Any]
    consent: ConsentInfo | None = None
    """The consent ``consent_id`` names: its kind and evidence digest go into the manifest and the log."""


class Gate:
    def __init__(self, ledger: Ledger, policy: Policy, *, face_match_threshold: float) -> None:
        self.ledger = ledger
        self.policy = policy
        self.face_match_threshold = face_match_threshold

    def authenticate(self, api_key: str | None) -> Caller:
        with audit_errors():
            key = self.ledger.authenticate(api_key)
        return Caller(key, Principal(tenant_id=key.tenant_id, key_id=key.id, scopes=frozenset(key.scopes)))

    def authorize(
        self, caller: Caller, action: Action, *, subject_id: str | None = None, request: dict[str, Any] | None = None
    ) -> Decision:
        """Decide an action that needs only the key's scopes; a deny is logged and raised."""
        decision = self.policy.decide(AccessRequest(principal=caller.principal, action=action, subject_id=subject_id))
        if not decision.allowed:
            self._deny(caller, action, subject_id, decision, request or {})
        return decision

    def require_scope(self, caller: Caller, action: Action, *, request: dict[str, Any] | None = None) -> None:
        """The policy set's scope rule alone, before any record or face is looked at: a key without the scope is
        refused for that and nothing else, so its refusal says nothing of the subject (logged and raised)."""
        decision = _only(self.policy.decide(AccessRequest(principal=caller.principal, action=action)), "missing_scope")
        if decision.reasons:
            self._deny(caller, action, None, dataclasses.replace(decision, allowed=False), request or {})

    def clear_animation(
        self,
        caller: Caller,
        *,
        subject_id: str,
        probe: np.ndarray,
        purpose: str | None,
        request: dict[str, Any],
    ) -> AnimationClearance:
        """Consent, face match against the subject's references, the tenant's protected list, then Cedar."""
        with audit_errors():
            self.ledger.subject(subject_id)
            consents = self.ledger.consents(subject_id=subject_id, grantee_tenant_id=caller.tenant_id)
            references = self.ledger.face_references(subject_id)
            protected = self.ledger.protected_references(caller.tenant_id)
        consent = evaluate_consent(
            [_consent_record(c) for c in consents],
            subject_id=subject_id,
            grantee_tenant_id=caller.tenant_id,
            scope=Action.ANIMATE.required_scope.value,
            purpose=purpose,
            now=datetime.now(UTC),
        )
        chosen = next((c for c in consents if c.id == consent.consent_id), None)
        face = match_face(probe, references, self.face_match_threshold)
        protected_match = _protected_match(probe, protected, self.face_match_threshold)
        decision = self.policy.decide(
            AccessRequest(
                principal=caller.principal,
                action=Action.ANIMATE,
                subject_id=subject_id,
                consent=consent,
                face=face,
                protected=protected_match,
                purpose=purpose,
            )
        )
        facts = {
            "consent": {
                "status": consent.status.value,
                "consent_id": consent.consent_id,
                "kind": chosen.kind if chosen is not None else None,
                "evidence_sha256": chosen.evidence_sha256 if chosen is not None else None,
            },
            "face": {"similarity": round(face.similarity, 4), "threshold": face.threshold, "matched": face.matched},
            "protected_match": (
                {"subject_id": protected_match.person_id, "similarity": round(protected_match.similarity, 4)}
                if protected_match
                else None
            ),
            "purpose": purpose,
            "policy_digest": self.policy.digest,
        }
        if not decision.allowed:
            # The caller's tenant reads its own refusals (audit:read): a refused photo's similarity there would
            # let it doctor a photo step by step until it passes, so a refusal records only that it fell short.
            refused_facts = {**facts, "face": {"threshold": face.threshold, "matched": face.matched}}
            self._deny(caller, Action.ANIMATE, subject_id, decision, {**request, "facts": refused_facts})
        return AnimationClearance(decision, consent.consent_id, face, facts, chosen)

    def _deny(
        self, caller: Caller, action: Action, subject_id: str | None, decision: Decision, request: dict[str, Any]
    ) -> None:
        with audit_errors():
            self.ledger.record_denied(
                tenant_id=caller.tenant_id,
                key_id=caller.key.id,
                action=action.value,
                subject_id=subject_id,
                decision={**_without_scores(decision).to_dict(), "policy_digest": self.policy.digest},
                request=request,
            )
        raise denial_error(decision)


def denial_error(decision: Decision) -> AccessDeniedError:
    codes = {reason.code for reason in decision.reasons}
    error_type: type[AccessDeniedError] = PolicyDeniedError
    for code, candidate in _ERROR_BY_REASON:
        if code in codes:
            error_type = candidate
            break
    shown = tuple((r.code, _public_message(r), r.policy_id) for r in decision.reasons)
    messages = "; ".join(message for _, message, _ in shown) or "no policy permits this request"
    return error_type(
        f"refused: {messages} (decision {decision.decision_id})", reasons=shown, decision_id=decision.decision_id
    )


def _public_message(reason: Reason) -> str:
    if reason.detail and reason.code in _PUBLIC_DETAIL:
        return f"{reason.message}: {reason.detail}"
    return reason.message


def _without_scores(decision: Decision) -> Decision:
    """``decision`` as a refusal's event keeps it: a face mismatch's detail names the similarity, which the
    caller's tenant could read back from its own log."""
    kept = tuple(
        dataclasses.replace(reason, detail=None) if reason.code == "face_mismatch" else reason
        for reason in decision.reasons
    )
    return dataclasses.replace(decision, reasons=kept)


def _has(decision: Decision, code: str) -> bool:
    return any(reason.code == code for reason in decision.reasons)


def _only(decision: Decision, code: str) -> Decision:
    """``decision`` reduced to its reasons of ``code``: what the caller may be told at that stage."""
    kept = tuple(reason for reason in decision.reasons if reason.code == code)
    return dataclasses.replace(
        decision, reasons=kept, policy_ids=tuple(r.policy_id for r in kept if r.policy_id is not None)
    )


def _consent_record(info: ConsentInfo) -> ConsentRecord:
    return ConsentRecord(
        id=info.id,
        subject_id=info.subject_id,
        grantee_tenant_id=info.grantee_tenant_id,
        scopes=frozenset(info.scopes),
        purposes=frozenset(info.purposes),
        valid_from=info.valid_from,
        valid_until=info.valid_until,
        revoked_at=info.revoked_at,
        kind=ConsentKind(info.kind),
    )


def _protected_match(
    probe: np.ndarray, protected: dict[str, list[np.ndarray]], threshold: float
) -> ProtectedMatch | None:
    best: ProtectedMatch | None = None
    for person_id, references in protected.items():
        match = match_face(probe, references, threshold)
        if match.matched and (best is None or match.similarity > best.similarity):
            best = ProtectedMatch(person_id=person_id, similarity=match.similarity)
    return best

