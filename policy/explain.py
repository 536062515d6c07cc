"""Reasons for a decision: each determining policy's annotations, enriched with the facts of the request."""

from __future__ import annotations

from collections.abc import Callable

from policy.access import AccessRequest
from policy.decision import Reason
from policy.loader import LoadedPolicy

NOT_PERMITTED = "not_permitted"
POLICY_ERROR = "policy_error"


def _missing_scope(request: AccessRequest) -> str:
    return (
        f"API key {request.principal.key_id} lacks scope '{request.action.required_scope}' "
        f"required for {request.action}"
    )


def _consent_required(request: AccessRequest) -> str:
    if request.consent is not None:
        return request.consent.message
    if request.subject_id is None:
        return "the request names no subject, so no consent can cover it"
    return f"no consent was evaluated for subject {request.subject_id}"


def _verified_consent_required(request: AccessRequest) -> str:
    consent = request.consent
    how = (
        f"issue a challenge (xp consents challenge --subject {request.subject_id}) and record the subject's video "
        "answering it (xp consents grant --video V --challenge ID)"
    )
    if consent is None or consent.consent_id is None:
        return f"no consent is on record; a verified-video consent is needed: {how}"
    return f"consent {consent.consent_id} is {consent.kind or 'attested'}; a verified-video consent is needed: {how}"


def _face_mismatch(request: AccessRequest) -> str:
    face = request.face
    if face is None:
        return "the photo's face was not compared with the subject's reference faces"
    relation = "below" if not face.matched else "against"
    return f"face similarity {face.similarity:.3f} is {relation} the threshold {face.threshold:.3f}"


def _protected_person(request: AccessRequest) -> str:
    match = request.protected
    if match is None:
        return "the photo matches a protected person"
    return f"the photo matches protected person {match.person_id} (similarity {match.similarity:.3f})"


_FACTS: dict[str, Callable[[AccessRequest], str]] = {
    "missing_scope": _missing_scope,
    "consent_required": _consent_required,
    "verified_consent_required": _verified_consent_required,
    "face_mismatch": _face_mismatch,
    "protected_person": _protected_person,
}


def reason_for(policy: LoadedPolicy, request: AccessRequest) -> Reason:
    default_code = "permitted" if policy.effect == "permit" else "forbidden"
    code = policy.annotations.get("reason") or default_code
    verb = "permitted" if policy.effect == "permit" else "denied"
    message = policy.annotations.get("message") or f"{verb} by policy {policy.policy_id}"
    facts = _FACTS.get(code)
    detail = facts(request) if facts is not None and policy.effect == "forbid" else None
    return Reason(code=code, message=message, policy_id=policy.policy_id, detail=detail)


def not_permitted(request: AccessRequest) -> Reason:
    return Reason(
        code=NOT_PERMITTED,
        message=f"no policy permits {request.action} for API key {request.principal.key_id}",
        policy_id=None,
    )


def policy_error(message: str, policy_id: str | None = None) -> Reason:
    return Reason(
        code=POLICY_ERROR,
        message=f"policy evaluation failed, so the request is denied: {message}",
        policy_id=policy_id,
    )
