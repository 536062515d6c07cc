"""Translation of an ``AccessRequest`` into the Cedar request, entities and context of the ``XP`` schema."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from policy.access import AccessRequest
from policy.consent import ConsentStatus

SERVICE_ID = "xp"


@dataclass(frozen=True)
class CedarCall:
    request: dict[str, Any]
    entities: list[dict[str, Any]]


def _uid(kind: str, entity_id: str) -> dict[str, str]:
    return {"type": f"XP::{kind}", "id": entity_id}


def cedar_decimal(value: float) -> dict[str, Any]:
    """A Cedar ``decimal`` literal; Cedar keeps at most four fractional digits."""
    if not math.isfinite(value):
        raise ValueError(f"{value} has no Cedar decimal form")
    return {"__extn": {"fn": "decimal", "arg": f"{value:.4f}"}}


def context_of(request: AccessRequest) -> dict[str, Any]:
    face = request.face
    consent = request.consent
    return {
        "consent_kind": str(consent.kind) if consent is not None and consent.kind is not None else "",
        "consent_status": str(consent.status if consent else ConsentStatus.NONE),
        "face_checked": face is not None,
        "face_matched": face is not None and face.matched,
        "face_similarity": cedar_decimal(face.similarity if face is not None else -1.0),
        "protected_match": request.protected is not None,
        "purpose": request.purpose or "",
        "required_scope": str(request.action.required_scope),
    }


def to_cedar(request: AccessRequest) -> CedarCall:
    principal = request.principal
    key = _uid("ApiKey", principal.key_id)
    tenant = _uid("Tenant", principal.tenant_id)
    resource = _uid("Subject", request.subject_id) if request.subject_id else _uid("Service", SERVICE_ID)
    entities: list[dict[str, Any]] = [
        {"uid": key, "attrs": {"scopes": sorted(principal.scopes)}, "parents": [tenant]},
        {"uid": tenant, "attrs": {}, "parents": []},
        {"uid": resource, "attrs": {}, "parents": []},
    ]
    cedar_request = {
        "principal": key,
        "action": {"type": "XP::Action", "id": str(request.action)},
        "resource": resource,
        "context": context_of(request),
    }
    return CedarCall(cedar_request, entities)
