"""The shared ground of ``Service``'s operations: authenticating the caller, logging refusals and reads, which
subjects a caller may see, and the face embedder."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from audit import ConsentInfo, SubjectInfo
from audit.errors import RecordConflictError, RecordNotFoundError
from policy import Action, Scope
from xp_sdk.deployment import Deployment, audit_errors
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.errors import (
    AccessDeniedError,
    AuditStoreError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    XPError,
)
from xp_sdk.gate import Caller, Gate
from xp_sdk.inputs import record_id

PhotoInput = str | os.PathLike[str] | np.ndarray

# These refusals are logged where they are decided (the ledger logs a failed authentication or a rate limit, the
# gate its denials); a store that cannot be written cannot log anything.
_LOGGED_ELSEWHERE = (AccessDeniedError, AuthenticationError, RateLimitedError, AuditStoreError)


class ServiceCore:
    """What every resource's operations share: the deployment, the gate, the face embedder, and how a request
    is authenticated, refused and logged."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.gate = Gate(
            deployment.ledger, deployment.policy, face_match_threshold=deployment.settings.face_match_threshold
        )
        self._embedder: IdentityEmbedder | None = None
        self._embedder_lock = threading.Lock()

    def close(self) -> None:
        with self._embedder_lock:
            if self._embedder is not None:
                self._embedder.close()
                self._embedder = None
        self.deployment.close()

    def caller(self, api_key: str | None) -> Caller:
        return self.gate.authenticate(api_key)

    def authorized(self, api_key: str | None, action: Action, **request: Any) -> Caller:
        """The caller, carrying the decision that allowed ``action`` (a deny is logged and raised)."""
        caller = self.caller(api_key)
        decision = self.gate.authorize(caller, action, subject_id=request.get("subject_id"), request=request)
        return dataclasses.replace(caller, decision=decision)

    def _decision(self, caller: Caller) -> dict[str, Any] | None:
        return caller.decision_record(self.deployment.policy.digest)

    @contextmanager
    def _refusals(
        self, caller: Caller, action: Action, request: dict[str, Any], *, subject_id: str | None = None
    ) -> Iterator[None]:
        """Every request that reaches the gate is one event: an input refused inside this block (invalid, not
        found, a conflict) is logged as a denial before it is raised."""
        try:
            yield
        except XPError as exc:
            if not isinstance(exc, _LOGGED_ELSEWHERE):
                self._refuse(caller, action, subject_id, request, exc)
            raise

    def _refuse(
        self, caller: Caller, action: Action, subject_id: str | None, request: dict[str, Any], exc: XPError
    ) -> None:
        with audit_errors():
            self.deployment.ledger.record_denied(
                tenant_id=caller.tenant_id,
                key_id=caller.key.id,
                action=action.value,
                subject_id=subject_id,
                decision={"allowed": False, "reasons": [{"code": exc.code, "message": exc.message[:500]}]},
                request={k: v for k, v in request.items() if v is not None},
            )

    def record_refusal(self, caller: Caller, action: Action, error: XPError, request: dict[str, Any]) -> None:
        """Log a refusal decided at a transport's edge (an upload, a form), as this service logs its own."""
        if not isinstance(error, _LOGGED_ELSEWHERE):
            self._refuse(caller, action, None, request, error)

    def _is_admin(self, caller: Caller) -> bool:
        return Scope.KEYS_ADMIN.value in caller.key.scopes

    def _visible_subject(self, caller: Caller, subject_id: str, *, owner_only: bool = False) -> SubjectInfo:
        """The subject, if the caller's tenant owns it, or (unless ``owner_only``) holds a consent for it or
        administers the deployment; otherwise exactly the answer a subject that does not exist gets."""
        record_id("subject", subject_id)
        with audit_errors():
            found = self.deployment.ledger.subject(subject_id)
            if found.tenant_id == caller.tenant_id:
                return found
            if not owner_only and (
                self._is_admin(caller)
                or any(
                    in_force(c)
                    for c in self.deployment.ledger.consents(subject_id=subject_id, grantee_tenant_id=caller.tenant_id)
                )
            ):
                return found
        raise NotFoundError(f"no subject {subject_id!r}")

    def _grantee_tenant(self, caller: Caller, tenant_id: str) -> None:
        """Make sure a consent's grantee tenant exists, creating it (logged, by the granting key) when it does not:
        a grant to any well-formed tenant name is accepted and takes effect once that tenant has keys, so the
        answer to a grant never tells whether another tenant exists (it used to be "no tenant ...")."""
        with audit_errors():
            try:
                self.deployment.ledger.tenant(tenant_id)
            except RecordNotFoundError:
                with suppress(RecordConflictError):  # created meanwhile by another request: as good
                    self.deployment.ledger.create_tenant(tenant_id, actor=caller.key.id)

    def _record_read(self, caller: Caller, action: Action, **request: Any) -> None:
        """Reads are decisions too: logged after they are served, so a query never returns its own event."""
        with audit_errors():
            self.deployment.ledger.record_access(
                tenant_id=caller.tenant_id,
                actor=caller.key.id,
                action=action.value,
                decision=self._decision(caller) or {},
                request={k: v for k, v in request.items() if v is not None},
            )

    def _identity(self) -> IdentityEmbedder:
        """The face embedder, made on first use; call with ``_embedder_lock`` held."""
        if self._embedder is None:
            self._embedder = IdentityEmbedder()
        return self._embedder


def listed(values: Iterable[str] | str) -> list[str]:
    """Scopes and purposes as a list, from a list or a comma- or space-separated string."""
    if isinstance(values, str):
        return values.replace(",", " ").split()
    if not isinstance(values, Iterable) or isinstance(values, bytes | dict):
        raise InvalidInputError(f"expected a list of names or a comma-separated string, got {type(values).__name__}")
    names = list(values)
    if not all(isinstance(v, str) for v in names):
        raise InvalidInputError("expected a list of names (strings)")
    return names


def in_force(consent: ConsentInfo) -> bool:
    """Whether ``consent`` lets its grantee see the subject now: unrevoked and within its validity."""
    now = datetime.now(UTC)
    return (
        consent.revoked_at is None
        and consent.valid_from <= now
        and (consent.valid_until is None or consent.valid_until > now)
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
