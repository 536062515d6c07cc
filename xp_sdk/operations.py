"""``Operations``: every operation of the product, declared once.

``Service`` runs them in process and ``xp_sdk.remote.HttpOperations`` over HTTP, each taking the caller's API key
first; ``Client``'s resources are these methods with the client's key bound (``client.audit.query`` is
``audit_query``). tests/test_operation_signatures.py holds ``Service``, ``HttpOperations``, the HTTP routes and the
CLI to the signatures below.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from audit import ApiKeyInfo, ConsentInfo, EventPage, GenerationInfo, LogVerification, NewApiKey, SubjectInfo
    from xp_sdk.consent.challenge import ConsentChallenge
    from xp_sdk.engine import AnimateOptions, ProgressCallback
    from xp_sdk.engine.templates import MotionTemplate
    from xp_sdk.results import AnimationResult, ConsistencyProofView, GenerationAudit
    from xp_sdk.verification import PublicVerification, Verification

PhotoInput = str | os.PathLike[str] | np.ndarray
"""A photo: a file's path, or its pixels (RGB, uint8)."""


class Operations(Protocol):
    """What a transport offers: ``Service`` in process, ``xp_sdk.remote.HttpOperations`` over HTTP."""

    # -- generation and verification ---------------------------------------------------------------------

    def animate(
        self, api_key: str | None, source: PhotoInput, *, subject: str, out: str | os.PathLike[str],
        driving: str | os.PathLike[str] | None = None, template: str | MotionTemplate | None = None,
        options: AnimateOptions | None = None, purpose: str | None = None, progress: ProgressCallback | None = None,
    ) -> AnimationResult:  # fmt: skip
        """Animate ``source`` (a photo of ``subject``) with a driving video or a motion template into ``out``.

        Refusals raise an ``AccessDeniedError`` subclass (``ConsentRequiredError``, ``FaceMismatchError``,
        ``PermissionDeniedError``, ``PolicyDeniedError``) and are logged; no file is left on any failure."""
        ...

    def verify(
        self, api_key: str | None, path: str | os.PathLike[str], *, trust_anchors: str | None = None
    ) -> Verification | PublicVerification:
        """C2PA state, watermark payload and p-value, and the audited generation behind ``path``. Without an API
        key, a remote client gets the server's public verdict instead (``PublicVerification``: whether this
        deployment made the clip, and when; never whose face it shows or for whom)."""
        ...

    # -- audit: audit:read; a key sees its own tenant's events unless it also holds keys:admin ------------

    def audit_query(
        self, api_key: str | None, *, tenant: str | None = None, subject: str | None = None,
        generation_id: str | None = None, decision: str | None = None, type: str | None = None,
        since: datetime | None = None, until: datetime | None = None, limit: int = 100, cursor: str | None = None,
    ) -> EventPage:  # fmt: skip
        """Events matching every filter, oldest first; pass ``next_cursor`` back as ``cursor`` for more."""
        ...

    def audit_show(self, api_key: str | None, generation_id: str) -> GenerationAudit:
        """A generation's record, its events and their inclusion proofs against a signed checkpoint."""
        ...

    def audit_verify(self, api_key: str | None, *, witnessed: Iterable[str] = ()) -> LogVerification:
        """Recompute every hash, link and signed root; raise ``AuditIntegrityError`` at the first fault.
        ``witnessed``: signed checkpoint notes kept outside the database."""
        ...

    def audit_consistency(
        self, api_key: str | None, old_size: int, new_size: int | None = None
    ) -> ConsistencyProofView:
        """Proof that the first ``old_size`` events (a checkpoint you kept) are unchanged in the signed tree of
        ``new_size`` (default: the latest checkpoint)."""
        ...

    def audit_abandoned(
        self, api_key: str | None, *, older_than: timedelta = timedelta(hours=1), close: bool = False
    ) -> list[GenerationInfo]:
        """Generations still "requested" after ``older_than`` (their process died); ``close=True`` (keys:admin)
        writes each one's "failed" event (``abandoned``)."""
        ...

    def audit_checkpoint(self, api_key: str | None) -> str | None:
        """Sign the current tree head now; returns the signed note for a witness to keep."""
        ...

    def audit_checkpoints(self, api_key: str | None) -> list[str]:
        """Every signed checkpoint note, oldest first."""
        ...

    # -- subjects: the people who may be animated (and the tenant's protected persons) ---------------------

    def register_subject(
        self, api_key: str | None, name: str, photos: Sequence[PhotoInput], *, protected: bool = False
    ) -> SubjectInfo:
        """Register a person from one or more reference photos, each showing their face."""
        ...

    def subject(self, api_key: str | None, subject_id: str) -> SubjectInfo:
        """One subject of the caller's tenant."""
        ...

    def subjects(self, api_key: str | None, *, protected: bool | None = None) -> list[SubjectInfo]:
        """The tenant's subjects (only protected persons, or only others, when ``protected`` says so)."""
        ...

    # -- consents: who agreed to be animated, by whom, for what, until when, on what evidence --------------

    def grant_consent(
        self, api_key: str | None, subject: str, *, evidence: str | os.PathLike[str] | bytes,
        tenant: str | None = None, scopes: Iterable[str] = ("animate",), purposes: Iterable[str] = (),
        valid_from: datetime | None = None, expires: datetime | None = None,
    ) -> ConsentInfo:  # fmt: skip
        """Record ``subject``'s consent for ``tenant`` (default: the caller's); only the SHA-256 of the
        ``evidence`` (a signed statement or consent video, as a path or bytes) is stored."""
        ...

    def revoke_consent(self, api_key: str | None, consent_id: str, *, reason: str = "") -> ConsentInfo:
        """Revoke a consent; animations that relied on it are refused from now on."""
        ...

    def consents(self, api_key: str | None, *, subject: str | None = None) -> list[ConsentInfo]:
        """The consents granted to the caller's tenant (one subject's, when ``subject`` is given)."""
        ...

    def consent_challenge(
        self, api_key: str | None, subject: str, *, purpose: str | None = None, expires_in_minutes: int = 10
    ) -> ConsentChallenge:
        """A one-time challenge for ``subject``'s consent video (a sentence to say, facial actions to perform in
        order), expiring after ``expires_in_minutes``; only the subject's own tenant may ask."""
        ...

    def grant_consent_by_video(
        self, api_key: str | None, subject: str, *, video: str | os.PathLike[str], challenge: str,
        tenant: str | None = None, scopes: Iterable[str] = ("animate",), purposes: Iterable[str] = (),
        expires: datetime | None = None,
    ) -> ConsentInfo:  # fmt: skip
        """Record ``subject``'s consent from a ``video`` answering ``challenge``: refused with
        ``ConsentVideoRejectedError`` naming each failed check (face, liveness, phrase, not_generated, fresh)."""
        ...

    # -- API keys: the keys:admin scope ---------------------------------------------------------------------

    def create_key(
        self, api_key: str | None, *, tenant: str | None = None, scopes: Iterable[str] | str, name: str = "",
        expires: datetime | None = None, rate_limit_per_minute: int = 60,
    ) -> NewApiKey:  # fmt: skip
        """Mint a key; its secret is in the result once and never again. A new tenant is made on first use."""
        ...

    def keys(self, api_key: str | None, *, tenant: str | None = None) -> list[ApiKeyInfo]:
        """API keys (never their secrets): every tenant's, or one tenant's."""
        ...

    def revoke_key(self, api_key: str | None, key_id: str, *, reason: str = "") -> ApiKeyInfo:
        """Revoke an API key; it stops working at once."""
        ...

    def close(self) -> None: ...
