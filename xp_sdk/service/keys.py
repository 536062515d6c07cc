"""API keys: minting, listing and revoking them (``keys:admin``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from audit import ApiKeyInfo, NewApiKey, RecordNotFoundError
from policy import Action, Scope
from xp_sdk.deployment import audit_errors
from xp_sdk.errors import InvalidInputError
from xp_sdk.inputs import KeyScopes, Moment, Name, RateLimit, TenantId, Text, checked, record_id
from xp_sdk.service.core import ServiceCore, listed


class ApiKeys(ServiceCore):
    """The deployment's API keys, managed by a ``keys:admin`` key."""

    def create_key(
        self,
        api_key: str | None,
        *,
        tenant: str | None = None,
        scopes: Iterable[str] | str,
        name: str = "",
        expires: datetime | None = None,
        rate_limit_per_minute: int = 60,
    ) -> NewApiKey:
        """Mint a key; its secret is in the result once and never again. A new tenant is created on first use."""
        caller = self.authorized(api_key, Action.MANAGE_KEYS, tenant=tenant, operation="keys.create")
        request: dict[str, Any] = {"operation": "keys.create", "tenant": tenant}
        with self._refusals(caller, Action.MANAGE_KEYS, request):
            chosen = checked(TenantId, tenant, "tenant") if tenant is not None else caller.tenant_id
            asked = listed(scopes)
            unknown = sorted(set(asked) - {s.value for s in Scope})
            if unknown:
                known = ", ".join(s.value for s in Scope)
                raise InvalidInputError(f"unknown scope(s) {', '.join(unknown)}; known: {known}")
            wanted = [s.value for s in checked(KeyScopes, asked, "scope")]
            label = checked(Name, name, "key name") if name else ""
            until = checked(Moment, expires, "expires") if expires is not None else None
            rate = checked(RateLimit, rate_limit_per_minute, "rate_limit_per_minute")
            ledger = self.deployment.ledger
            with audit_errors():
                try:
                    ledger.tenant(chosen)
                except RecordNotFoundError:
                    ledger.create_tenant(chosen, actor=caller.key.id)
                try:
                    return ledger.create_key(
                        chosen, scopes=wanted, name=label, expires_at=until,
                        rate_limit_per_minute=rate, actor=caller.key.id, decision=self._decision(caller),
                    )  # fmt: skip
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from exc

    def keys(self, api_key: str | None, *, tenant: str | None = None) -> list[ApiKeyInfo]:
        caller = self.authorized(api_key, Action.MANAGE_KEYS, operation="keys.list")
        with self._refusals(caller, Action.MANAGE_KEYS, {"operation": "keys.list", "tenant": tenant}):
            if tenant is not None:
                checked(TenantId, tenant, "tenant")
            with audit_errors():
                found = self.deployment.ledger.keys(tenant)
        self._record_read(caller, Action.MANAGE_KEYS, operation="keys.list", tenant=tenant, returned=len(found))
        return found

    def revoke_key(self, api_key: str | None, key_id: str, *, reason: str = "") -> ApiKeyInfo:
        caller = self.authorized(api_key, Action.MANAGE_KEYS, operation="keys.revoke", key_id=key_id)
        with self._refusals(caller, Action.MANAGE_KEYS, {"operation": "keys.revoke", "key_id": key_id}):
            record_id("API key", key_id)
            why = checked(Text, reason, "reason")
            with audit_errors():
                return self.deployment.ledger.revoke_key(
                    key_id, actor=caller.key.id, reason=why, decision=self._decision(caller)
                )
