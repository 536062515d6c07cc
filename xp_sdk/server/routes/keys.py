"""``/v1/keys``: mint, list and revoke API keys (the keys:admin scope)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from audit import ApiKeyInfo
from xp_sdk.server.schemas import DataList, NewKeyRequest, NewKeyView, Revocation
from xp_sdk.server.state import bearer_key, get_state

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", status_code=201, response_model=NewKeyView, summary="Mint an API key (its secret is shown once)")
def create_key(body: NewKeyRequest, request: Request) -> NewKeyView:
    created = get_state(request).service.create_key(
        bearer_key(request), tenant=body.tenant, scopes=body.scopes, name=body.name, expires=body.expires,
        rate_limit_per_minute=body.rate_limit_per_minute,
    )  # fmt: skip
    return NewKeyView.of(created)


@router.get("", response_model=DataList[ApiKeyInfo], summary="List API keys (all tenants, or one)")
def list_keys(request: Request, tenant: str | None = None) -> DataList[ApiKeyInfo]:
    return DataList[ApiKeyInfo](data=get_state(request).service.keys(bearer_key(request), tenant=tenant))


@router.post("/{key_id}/revoke", response_model=ApiKeyInfo, summary="Revoke an API key, at once")
def revoke_key(key_id: str, request: Request, body: Revocation | None = None) -> ApiKeyInfo:
    reason = body.reason if body is not None else ""
    return get_state(request).service.revoke_key(bearer_key(request), key_id, reason=reason)
