from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from policy import (
    AccessRequest,
    Action,
    ConsentEvaluation,
    ConsentStatus,
    Decision,
    FaceMatch,
    Policy,
    Principal,
    ProtectedMatch,
    Scope,
)
from tests.policy.helpers import SUBJECT, animate_request, principal

REVOKED = ConsentEvaluation(
    ConsentStatus.REVOKED, "c_123", "consent c_123 for subject s_9 was revoked at 2025-05-01T00:00:00+00:00"
)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def test_allow_path(policy: Policy) -> None:
    decision = policy.decide(animate_request())
    assert decision.allowed
    assert decision.policy_ids == ("permit-animate",)
    assert codes(decision) == ["permitted"]
    assert decision.action == "animate"
    assert uuid.UUID(hex=decision.decision_id).version == 4


def test_decision_ids_are_unique(policy: Policy) -> None:
    assert policy.decide(animate_request()).decision_id != policy.decide(animate_request()).decision_id


def test_to_dict_is_json_ready(policy: Policy) -> None:
    decision = policy.decide(animate_request(consent=REVOKED))
    record = json.loads(json.dumps(decision.to_dict()))
    assert record == {
        "decision_id": decision.decision_id,
        "allowed": False,
        "action": "animate",
        "policy_ids": ["forbid-without-active-consent"],
        "reasons": [
            {
                "code": "consent_required",
                "message": decision.reasons[0].message,
                "policy_id": "forbid-without-active-consent",
                "detail": decision.reasons[0].detail,
            }
        ],
    }


def test_missing_scope(policy: Policy) -> None:
    decision = policy.decide(animate_request(principal=principal(Scope.VERIFY)))
    assert not decision.allowed
    assert decision.policy_ids == ("forbid-missing-scope",)
    assert codes(decision) == ["missing_scope"]
    assert "lacks scope 'animate'" in str(decision.reasons[0].detail)


@pytest.mark.parametrize(
    "consent",
    [
        None,
        REVOKED,
        ConsentEvaluation(ConsentStatus.EXPIRED, "c_1", "expired"),
        ConsentEvaluation(ConsentStatus.NOT_YET_VALID, "c_1", "later"),
        ConsentEvaluation(ConsentStatus.OUT_OF_SCOPE, "c_1", "other scope"),
        ConsentEvaluation(ConsentStatus.NONE, None, "none on record"),
    ],
)
def test_without_active_consent(policy: Policy, consent: ConsentEvaluation | None) -> None:
    decision = policy.decide(animate_request(consent=consent))
    assert not decision.allowed
    assert decision.policy_ids == ("forbid-without-active-consent",)
    assert codes(decision) == ["consent_required"]
    assert decision.reasons[0].policy_id == "forbid-without-active-consent"


def test_consent_message_reaches_the_reason(policy: Policy) -> None:
    detail = str(policy.decide(animate_request(consent=REVOKED)).reasons[0].detail)
    assert "consent c_123 for subject s_9 was revoked at 2025-05-01T00:00:00+00:00" in detail


def test_face_below_threshold(policy: Policy) -> None:
    face = FaceMatch(similarity=0.2, threshold=0.363, matched=False)
    decision = policy.decide(animate_request(face=face))
    assert decision.policy_ids == ("forbid-face-mismatch",)
    assert codes(decision) == ["face_mismatch"]
    reason = decision.reasons[0]
    assert "0.200" in str(reason.detail) and "0.363" in str(reason.detail)
    # The facts are for the audit log; the message a caller may be shown names no number to climb towards.
    assert "0.2" not in reason.message and "0.363" not in reason.message


def test_face_not_checked(policy: Policy) -> None:
    decision = policy.decide(animate_request(face=None))
    assert not decision.allowed
    assert decision.policy_ids == ("forbid-face-mismatch",)
    assert codes(decision) == ["face_mismatch"]


def test_protected_person(policy: Policy) -> None:
    decision = policy.decide(animate_request(protected=ProtectedMatch("pp_7", 0.91)))
    assert decision.policy_ids == ("forbid-protected-person",)
    assert codes(decision) == ["protected_person"]
    assert "pp_7" in str(decision.reasons[0].detail) and "pp_7" not in decision.reasons[0].message


def test_protected_person_forbidden_beyond_animate(policy: Policy) -> None:
    request = AccessRequest(principal(Scope.SUBJECTS_WRITE), Action.REGISTER_SUBJECT, SUBJECT,
                            protected=ProtectedMatch("pp_7", 0.91))
    assert codes(policy.decide(request)) == ["protected_person"]


def test_every_failure_is_listed(policy: Policy) -> None:
    request = animate_request(
        principal=principal(),
        consent=None,
        face=FaceMatch(similarity=-0.1, threshold=0.363, matched=False),
        protected=ProtectedMatch("pp_7", 0.5),
    )
    decision = policy.decide(request)
    assert not decision.allowed
    assert decision.policy_ids == (
        "forbid-missing-scope",
        "forbid-without-active-consent",
        "forbid-face-mismatch",
        "forbid-protected-person",
    )
    assert codes(decision) == ["missing_scope", "consent_required", "face_mismatch", "protected_person"]


@pytest.mark.parametrize(
    ("action", "scope", "permit"),
    [
        (Action.VERIFY, Scope.VERIFY, "permit-verify"),
        (Action.AUDIT_READ, Scope.AUDIT_READ, "permit-audit-read"),
        (Action.REGISTER_SUBJECT, Scope.SUBJECTS_WRITE, "permit-register-subject"),
        (Action.GRANT_CONSENT, Scope.CONSENTS_WRITE, "permit-grant-consent"),
        (Action.REVOKE_CONSENT, Scope.CONSENTS_WRITE, "permit-revoke-consent"),
        (Action.MANAGE_KEYS, Scope.KEYS_ADMIN, "permit-manage-keys"),
    ],
)
def test_other_actions_need_only_their_scope(policy: Policy, action: Action, scope: Scope, permit: str) -> None:
    assert action.required_scope is scope
    allowed = policy.decide(AccessRequest(principal(scope), action))
    assert allowed.allowed
    assert allowed.policy_ids == (permit,)
    denied = policy.decide(AccessRequest(principal(Scope.ANIMATE), action))
    assert not denied.allowed
    assert codes(denied) == ["missing_scope"]


def test_animate_scope_does_not_grant_audit(policy: Policy) -> None:
    every_other = [s for s in Scope if s is not Scope.AUDIT_READ]
    assert not policy.decide(AccessRequest(principal(*every_other), Action.AUDIT_READ)).allowed


def test_odd_identifiers_are_safe(policy: Policy) -> None:
    sneaky = Principal(tenant_id='t"1\n', key_id='k::"x"', scopes=frozenset({"animate"}))
    assert policy.decide(animate_request(principal=sneaky, subject_id='s"\n9')).allowed


def test_malformed_request_fails_closed(policy: Policy) -> None:
    decision = policy.decide("not a request")  # type: ignore[arg-type]
    assert not decision.allowed
    assert codes(decision) == ["policy_error"]


def test_unknown_action_rejected_when_building_request() -> None:
    with pytest.raises(ValueError):
        AccessRequest(principal(Scope.ANIMATE), "delete_everything")  # type: ignore[arg-type]


def test_package_imports_nothing_from_the_rest_of_the_project() -> None:
    code = (
        "import sys, policy; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'xp_sdk', 'audit', 'watermark'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
