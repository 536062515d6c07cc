"""Consents: granting one with its evidence, revoking, listing, and issuing a challenge for a consent video."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from audit import ConsentInfo
from policy import Action
from xp_sdk.consent.challenge import DEFAULT_CHALLENGE_MINUTES, MAX_CHALLENGE_MINUTES, ConsentChallenge, draw_challenge
from xp_sdk.deployment import audit_errors
from xp_sdk.errors import InvalidInputError, NotFoundError
from xp_sdk.inputs import ConsentScopes, Moment, Purposes, TenantId, Text, checked, record_id
from xp_sdk.service.core import ServiceCore, listed
from xp_sdk.service.evidence import evidence_digest


class Consents(ServiceCore):
    """A subject's consent to a tenant: granted with its evidence, revoked, listed, challenged."""

    def grant_consent(
        self,
        api_key: str | None,
        subject: str,
        *,
        evidence: str | os.PathLike[str] | bytes,
        tenant: str | None = None,
        scopes: Iterable[str] = ("animate",),
        purposes: Iterable[str] = (),
        valid_from: datetime | None = None,
        expires: datetime | None = None,
    ) -> ConsentInfo:
        """Record ``subject``'s consent for ``tenant`` (default: the caller's). Only the tenant that registered the
        subject records their consent. ``evidence`` is the signed statement or other file (a path or its bytes);
        only its SHA-256 is stored and nothing in it is checked, so the consent's kind is ``attested``: the
        operator's word (``grant_consent_by_video`` records a ``verified-video`` one). Without ``expires`` it lapses
        after the deployment's ``consent_validity_days``."""
        request: dict[str, Any] = {"subject_id": subject, "tenant": tenant}
        caller = self.authorized(api_key, Action.GRANT_CONSENT, **request)
        with self._refusals(caller, Action.GRANT_CONSENT, request, subject_id=subject):
            grantee = checked(TenantId, tenant, "tenant") if tenant is not None else caller.tenant_id
            scope_list = checked(ConsentScopes, listed(scopes), "consent scope")
            purpose_list = checked(Purposes, listed(purposes), "purpose")
            start = checked(Moment, valid_from, "valid_from") if valid_from is not None else datetime.now(UTC)
            until = (
                checked(Moment, expires, "expires")
                if expires is not None
                else start + timedelta(days=self.deployment.settings.consent_validity_days)
            )
            # Only the subject's own tenant may speak for them: another tenant's subject is not found at all.
            self._visible_subject(caller, subject, owner_only=True)
            digest, kind = evidence_digest(evidence)
            self._grantee_tenant(caller, grantee)
            with audit_errors():
                try:
                    return self.deployment.ledger.grant_consent(
                        subject,
                        grantee,
                        evidence_sha256=digest,
                        evidence_kind=kind,
                        scopes=tuple(scope_list),
                        purposes=tuple(purpose_list),
                        valid_from=start,
                        valid_until=until,
                        actor=caller.key.id,
                        decision=self._decision(caller),
                    )
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from exc

    def revoke_consent(self, api_key: str | None, consent_id: str, *, reason: str = "") -> ConsentInfo:
        """Revoke a consent: by the subject's tenant, or by the tenant it was granted to (giving it up)."""
        request: dict[str, Any] = {"consent_id": consent_id}
        caller = self.authorized(api_key, Action.REVOKE_CONSENT, **request)
        with self._refusals(caller, Action.REVOKE_CONSENT, request):
            record_id("consent", consent_id)
            why = checked(Text, reason, "reason")
            with audit_errors():
                consent = self.deployment.ledger.consent(consent_id)
                owner = self.deployment.ledger.subject(consent.subject_id).tenant_id
            if caller.tenant_id not in (owner, consent.grantee_tenant_id):
                raise NotFoundError(f"no consent {consent_id!r}")
            with audit_errors():
                return self.deployment.ledger.revoke_consent(
                    consent_id, actor=caller.key.id, reason=why, decision=self._decision(caller)
                )

    def consents(self, api_key: str | None, *, subject: str | None = None) -> list[ConsentInfo]:
        """Consents granted to the caller's tenant, and consents on the subjects it registered."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="consents.list")
        with self._refusals(caller, Action.AUDIT_READ, {"operation": "consents.list", "subject_id": subject}):
            if subject is not None:
                self._visible_subject(caller, subject)
            with audit_errors():
                ledger = self.deployment.ledger
                own = {s.id for s in ledger.subjects(caller.tenant_id)}
                found = [
                    c
                    for c in ledger.consents(subject_id=subject)
                    if c.grantee_tenant_id == caller.tenant_id or c.subject_id in own
                ]
        self._record_read(caller, Action.AUDIT_READ, operation="consents.list", subject_id=subject, returned=len(found))
        return found

    def consent_challenge(
        self,
        api_key: str | None,
        subject: str,
        *,
        purpose: str | None = None,
        expires_in_minutes: int = DEFAULT_CHALLENGE_MINUTES,
    ) -> ConsentChallenge:
        """A one-time challenge for ``subject``'s consent video: a sentence to say and facial actions to perform,
        in order, before it expires. Only the subject's own tenant may ask; the challenge is an audit event."""
        request: dict[str, Any] = {"operation": "consents.challenge", "subject_id": subject, "purpose": purpose}
        caller = self.authorized(api_key, Action.GRANT_CONSENT, **request)
        with self._refusals(caller, Action.GRANT_CONSENT, request, subject_id=subject):
            chosen = checked(Purposes, [purpose], "purpose")[0] if purpose is not None else None
            if (
                isinstance(expires_in_minutes, bool)
                or not isinstance(expires_in_minutes, int)
                or not (1 <= expires_in_minutes <= MAX_CHALLENGE_MINUTES)
            ):
                raise InvalidInputError(
                    f"a challenge expires after 1 to {MAX_CHALLENGE_MINUTES} minutes, not {expires_in_minutes!r}"
                )
            self._visible_subject(caller, subject, owner_only=True)
            challenge = draw_challenge(
                subject_id=subject, tenant_id=caller.tenant_id, purpose=chosen, minutes=expires_in_minutes
            )
            with audit_errors():
                self.deployment.ledger.issue_consent_challenge(
                    challenge.model_dump(mode="json"),
                    tenant_id=caller.tenant_id,
                    subject_id=subject,
                    actor=caller.key.id,
                    decision=self._decision(caller),
                )
        return challenge
