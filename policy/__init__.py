"""Consent and Cedar policy decisions: ``Policy.load().decide(request)`` → ``Decision``. Knows no pixels.

Imports only the standard library, numpy and cedarpy; nothing from the rest of xp-sdk.
"""

from policy.access import AccessRequest, Action, Principal, ProtectedMatch, Scope
from policy.consent import ConsentEvaluation, ConsentKind, ConsentRecord, ConsentStatus, evaluate_consent
from policy.decision import Decision, Reason
from policy.engine import Policy
from policy.errors import PolicyError, PolicyLoadError
from policy.face_match import DEFAULT_FACE_MATCH_THRESHOLD, FaceMatch, match_face

__all__ = [
    "DEFAULT_FACE_MATCH_THRESHOLD",
    "AccessRequest",
    "Action",
    "ConsentEvaluation",
    "ConsentKind",
    "ConsentRecord",
    "ConsentStatus",
    "Decision",
    "FaceMatch",
    "Policy",
    "PolicyError",
    "PolicyLoadError",
    "Principal",
    "ProtectedMatch",
    "Reason",
    "Scope",
    "evaluate_consent",
    "match_face",
]
