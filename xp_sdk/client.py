"""``Client``: the product's face. Every call is authenticated, gated and audited.

    client = xp_sdk.Client(api_key="xp_…")                       # embedded: the deployment in XP_HOME
    client = xp_sdk.Client(api_key="xp_…", base_url="https://…")  # remote: the same calls against `xp serve`
    result = client.animate("photo.jpg", template="showcase", subject="sub_…", out="clip.mp4")
    report = client.verify("clip.mp4")
    page = client.audit.query(subject="sub_…")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from audit import ApiKeyInfo, ConsentInfo, EventPage, GenerationInfo, LogVerification, NewApiKey, SubjectInfo
from xp_sdk.engine import AnimateOptions, ProgressCallback
from xp_sdk.engine.templates import MotionTemplate, resolve_template
from xp_sdk.errors import InvalidInputError
from xp_sdk.operations import Operations, PhotoInput
from xp_sdk.remote import HttpOperations
from xp_sdk.results import AnimationResult, ConsistencyProofView, GenerationAudit
from xp_sdk.verify import Verification

if TYPE_CHECKING:
    # An embedded client's machinery, imported when one is made: a remote client never loads it.
    from xp_sdk.config import Settings
    from xp_sdk.deployment import Deployment
    from xp_sdk.service import Service


class Client:
    """One API key talking to one deployment: in process (``home`` / ``database_url``) or remote (``base_url``).

    Safe to share across threads; parallel ``animate`` calls produce separately audited outputs."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        base_url: str | None = None,
        policy_paths: Sequence[str | os.PathLike[str]] | None = None,
        face_match_threshold: float | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
    ) -> None:
        base_url = base_url or os.environ.get("XP_BASE_URL") or None
        self._service: Service | None = None
        if base_url is not None:
            if home is not None or database_url is not None or policy_paths is not None:
                raise InvalidInputError("a remote client (base_url) takes no home, database_url or policy_paths")
            key = api_key or os.environ.get("XP_API_KEY") or None
            self._api_key = key
            self._ops: Operations = HttpOperations(base_url, timeout=timeout, max_retries=max_retries)
        else:
            from xp_sdk.config import Settings
            from xp_sdk.deployment import Deployment
            from xp_sdk.service import Service

            settings = Settings.resolve(
                home=home,
                api_key=api_key,
                database_url=database_url,
                policy_paths=tuple(Path(p) for p in policy_paths) if policy_paths is not None else None,
                face_match_threshold=face_match_threshold,
            )
            self._api_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
            self._service = Service(Deployment.open(settings))
            self._ops = self._service
        self.base_url = base_url
        self.audit = AuditResource(self)
        self.subjects = SubjectsResource(self)
        self.consents = ConsentsResource(self)
        self.keys = KeysResource(self)

    @property
    def settings(self) -> Settings:
        """The resolved settings of an embedded client."""
        return self.deployment.settings

    @property
    def deployment(self) -> Deployment:
        """The opened deployment of an embedded client (a remote one has none)."""
        if self._service is None:
            raise InvalidInputError("a remote client has no local deployment")
        return self._service.deployment

    def close(self) -> None:
        self._ops.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def animate(
        self,
        source: PhotoInput,
        *,
        subject: str,
        out: str | os.PathLike[str],
        driving: str | os.PathLike[str] | None = None,
        template: str | os.PathLike[str] | MotionTemplate | None = None,
        options: AnimateOptions | None = None,
        purpose: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> AnimationResult:
        """Animate ``source`` (a photo of ``subject``) with a driving video or a motion template into ``out``.
        ``template``: a built-in template's name, a template JSON file of yours, or a ``MotionTemplate``.

        Refusals raise an ``AccessDeniedError`` subclass (``ConsentRequiredError``, ``FaceMismatchError``,
        ``PermissionDeniedError``, ``PolicyDeniedError``) and are logged; no file is left on any failure."""
        return self._ops.animate(
            self._api_key, source, subject=subject, out=out, driving=driving,
            template=resolve_template(template) if template is not None else None,
            options=options, purpose=purpose, progress=progress,
        )  # fmt: skip

    def verify(self, path: str | os.PathLike[str], *, trust_anchors: str | None = None) -> Verification:
        """C2PA state, watermark payload and p-value, and the audited generation behind ``path``."""
        return self._ops.verify(self._api_key, path, trust_anchors=trust_anchors)


class AuditResource:
    """``client.audit``: query, show, verify, checkpoint. Needs ``audit:read``; a key sees its own tenant's
    events unless it also holds ``keys:admin``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def query(
        self,
        *,
        tenant: str | None = None,
        subject: str | None = None,
        generation_id: str | None = None,
        decision: str | None = None,
        type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> EventPage:
        """Events matching every filter, oldest first; pass ``next_cursor`` back as ``cursor`` for more."""
        return self._client._ops.audit_query(
            self._client._api_key, tenant=tenant, subject=subject, generation_id=generation_id,
            decision=decision, type=type, since=since, until=until, limit=limit, cursor=cursor,
        )  # fmt: skip

    def show(self, generation_id: str) -> GenerationAudit:
        """A generation's record, its events and their inclusion proofs against a signed checkpoint."""
        return self._client._ops.audit_show(self._client._api_key, generation_id)

    def verify(self, *, witnessed: Iterable[str] = ()) -> LogVerification:
        """Recompute every hash, link and signed root; raise ``AuditIntegrityError`` at the first fault.
        ``witnessed``: signed checkpoint notes kept outside the database."""
        return self._client._ops.audit_verify(self._client._api_key, witnessed=witnessed)

    def consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProofView:
        """Proof that the first ``old_size`` events (a checkpoint you kept) are unchanged in the signed tree of
        ``new_size`` (default: the latest checkpoint)."""
        return self._client._ops.audit_consistency(self._client._api_key, old_size, new_size)

    def abandoned(self, *, older_than: timedelta = timedelta(hours=1), close: bool = False) -> list[GenerationInfo]:
        """Generations still "requested" after ``older_than`` (their process died); ``close=True`` (keys:admin)
        writes each one's "failed" event (``abandoned``)."""
        return self._client._ops.audit_abandoned(self._client._api_key, older_than=older_than, close=close)

    def checkpoint(self) -> str | None:
        """Sign the current tree head now; returns the signed note for a witness to keep."""
        return self._client._ops.audit_checkpoint(self._client._api_key)

    def checkpoints(self) -> list[str]:
        """Every signed checkpoint note, oldest first."""
        return self._client._ops.audit_checkpoints(self._client._api_key)


class SubjectsResource:
    """``client.subjects``: the people who may be animated (and the tenant's protected persons)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def register(
        self, name: str, photos: Sequence[PhotoInput] | PhotoInput, *, protected: bool = False
    ) -> SubjectInfo:
        """Register a person from one or more reference photos, each showing their face."""
        listed: list[PhotoInput] = (
            [photos] if isinstance(photos, (str, os.PathLike, np.ndarray)) else list(photos)
        )
        return self._client._ops.register_subject(self._client._api_key, name, listed, protected=protected)

    def get(self, subject_id: str) -> SubjectInfo:
        return self._client._ops.subject(self._client._api_key, subject_id)

    def list(self, *, protected: bool | None = None) -> list[SubjectInfo]:
        return self._client._ops.subjects(self._client._api_key, protected=protected)


class ConsentsResource:
    """``client.consents``: who agreed to be animated, by whom, for what, until when, on what evidence."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def grant(
        self,
        subject: str,
        *,
        evidence: str | os.PathLike[str] | bytes,
        tenant: str | None = None,
        scopes: Iterable[str] = ("animate",),
        purposes: Iterable[str] = (),
        valid_from: datetime | None = None,
        expires: datetime | None = None,
    ) -> ConsentInfo:
        """Record ``subject``'s consent for ``tenant`` (default: the caller's); only the SHA-256 of the
        ``evidence`` (a signed statement or consent video, as a path or bytes) is stored."""
        return self._client._ops.grant_consent(
            self._client._api_key, subject, evidence=evidence, tenant=tenant, scopes=scopes, purposes=purposes,
            valid_from=valid_from, expires=expires,
        )  # fmt: skip

    def revoke(self, consent_id: str, *, reason: str = "") -> ConsentInfo:
        return self._client._ops.revoke_consent(self._client._api_key, consent_id, reason=reason)

    def list(self, *, subject: str | None = None) -> list[ConsentInfo]:
        return self._client._ops.consents(self._client._api_key, subject=subject)


class KeysResource:
    """``client.keys``: API key administration (the ``keys:admin`` scope)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        tenant: str | None = None,
        scopes: Iterable[str] | str,
        name: str = "",
        expires: datetime | None = None,
        rate_limit_per_minute: int = 60,
    ) -> NewApiKey:
        """Mint a key; its secret is in the result once and never again. A new tenant is made on first use."""
        return self._client._ops.create_key(
            self._client._api_key, tenant=tenant, scopes=scopes, name=name, expires=expires,
            rate_limit_per_minute=rate_limit_per_minute,
        )  # fmt: skip

    def list(self, *, tenant: str | None = None) -> list[ApiKeyInfo]:
        return self._client._ops.keys(self._client._api_key, tenant=tenant)

    def revoke(self, key_id: str, *, reason: str = "") -> ApiKeyInfo:
        return self._client._ops.revoke_key(self._client._api_key, key_id, reason=reason)
