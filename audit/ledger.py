"""The audit package's public face: records (tenants, keys, subjects, consents, generations) that are written
together with the log events describing them, in one serialized transaction."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.api_keys import (
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    ApiKeyInfo,
    NewApiKey,
    RateLimiter,
    SecretHasher,
    check_usable,
    generate_key,
    info_from_row,
    parse_key,
    parse_scopes,
    utcnow,
)
from audit.checkpoint import LogSigningKey
from audit.errors import (
    AuthenticationError,
    LogIntegrityError,
    RateLimitedError,
    RecordConflictError,
    RecordNotFoundError,
)
from audit.events import AuditEvent, Decision, EventDraft, EventType
from audit.log import AuditLog
from audit.merkle import leaf_hash
from audit.models import ApiKey, AuditEventRow, Consent, FaceReference, Generation, Subject, Tenant
from audit.query import EventPage, EventQuery, query_events
from audit.rate_limits import HeldBackCounts, KeyRateLimiter, StoreRateLimiter
from audit.reconcile import hold_snapshot
from audit.record_reads import check_consents, check_subjects, checked_generation, unfinished_generation_ids
from audit.records import ATTESTED, VERIFIED_VIDEO, ConsentInfo, ConsentKind, GenerationInfo, SubjectInfo, TenantInfo
from audit.store import Store

SYSTEM_ACTOR = "system"
AUTH_FAILURES_LOGGED_PER_MINUTE = 60
"""Failed authentications logged one by one per key id in a minute (a burst of as many, then one a second); more
are counted (``_log_auth_failure``). A client retrying with a revoked key keeps one event per attempt."""


class Ledger:
    """Everything the gate reads and everything an auditor asks about, over one ``Store``."""

    def __init__(
        self,
        store: Store,
        *,
        origin: str,
        signing_key: LogSigningKey | None = None,
        checkpoint_every: int = 256,
        hasher: SecretHasher | None = None,
        rate_limiter: RateLimiter | KeyRateLimiter | None = None,
    ) -> None:
        """``rate_limiter``: by default the store's own counters, shared by every process on this database."""
        self.store = store
        self.log = AuditLog(store, origin=origin, signing_key=signing_key, checkpoint_every=checkpoint_every)
        self._hasher = hasher or SecretHasher()
        self._rate_limiter = rate_limiter or StoreRateLimiter(store)

    # -- tenants -------------------------------------------------------------------------------------------

    def create_tenant(self, tenant_id: str, name: str | None = None, *, actor: str = SYSTEM_ACTOR) -> TenantInfo:
        _check_slug(tenant_id, "tenant id")
        with self.store.write() as session:
            if session.get(Tenant, tenant_id) is not None:
                raise RecordConflictError(f"tenant {tenant_id!r} already exists")
            row = Tenant(id=tenant_id, name=name or tenant_id, created_at=utcnow())
            session.add(row)
            self.log.append(
                EventDraft(type=EventType.TENANT_CREATED, tenant_id=tenant_id, actor=actor, data={"name": row.name}),
                session=session,
            )
            return TenantInfo(id=row.id, name=row.name, created_at=row.created_at)

    def tenant(self, tenant_id: str) -> TenantInfo:
        with self.store.read() as session:
            row = session.get(Tenant, tenant_id)
            if row is None:
                raise RecordNotFoundError(f"no tenant {tenant_id!r}; create it first (`xp tenants create`)")
            return TenantInfo(id=row.id, name=row.name, created_at=row.created_at)

    # -- API keys ------------------------------------------------------------------------------------------

    def create_key(
        self,
        tenant_id: str,
        *,
        scopes: Iterable[str] | str,
        name: str = "",
        expires_at: datetime | None = None,
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
        actor: str = SYSTEM_ACTOR,
        decision: dict[str, Any] | None = None,
    ) -> NewApiKey:
        scope_list = parse_scopes(scopes)
        if not scope_list:
            raise ValueError("a key needs at least one scope")
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise ValueError(f"expiry {expires_at.isoformat()} is in the past")
        key_id, full_key, secret = generate_key()
        digest = self._hasher.hash(secret)
        with self.store.write() as session:
            _require(session, Tenant, tenant_id, "tenant")
            row = ApiKey(
                id=key_id,
                tenant_id=tenant_id,
                name=name or key_id,
                secret_hash=digest,
                scopes=" ".join(scope_list),
                rate_limit_per_minute=rate_limit_per_minute,
                created_at=now,
                created_by=actor,
                expires_at=expires_at,
                revoked_at=None,
            )
            session.add(row)
            session.flush()
            info = info_from_row(row)
            self.log.append(
                EventDraft(
                    type=EventType.KEY_CREATED,
                    tenant_id=tenant_id,
                    actor=actor,
                    data=_decided(decision) | {
                        "key_id": key_id,
                        "name": info.name,
                        "scopes": list(scope_list),
                        "expires_at": _iso(expires_at),
                        "rate_limit_per_minute": rate_limit_per_minute,
                    },
                ),
                session=session,
            )
        return NewApiKey(info=info, secret=full_key)

    def revoke_key(
        self, key_id: str, *, actor: str = SYSTEM_ACTOR, reason: str = "", decision: dict[str, Any] | None = None
    ) -> ApiKeyInfo:
        with self.store.write() as session:
            row = _require(session, ApiKey, key_id, "API key")
            if row.revoked_at is not None:
                raise RecordConflictError(f"API key {key_id} was already revoked at {row.revoked_at.isoformat()}")
            row.revoked_at = utcnow()
            session.flush()
            self.log.append(
                EventDraft(
                    type=EventType.KEY_REVOKED,
                    tenant_id=row.tenant_id,
                    actor=actor,
                    data=_decided(decision) | {"key_id": key_id, "reason": reason},
                ),
                session=session,
            )
            return info_from_row(row)

    def keys(self, tenant_id: str | None = None) -> list[ApiKeyInfo]:
        with self.store.read() as session:
            query = select(ApiKey).order_by(ApiKey.created_at)
            if tenant_id is not None:
                query = query.where(ApiKey.tenant_id == tenant_id)
            return [info_from_row(row) for row in session.scalars(query)]

    def authenticate(self, api_key: str | None) -> ApiKeyInfo:
        """The key's record when ``api_key`` is valid, unrevoked, unexpired and within its rate limit.

        Every failure is logged (with the key id when the key is well-formed, never with the secret)."""
        try:
            if not api_key:
                raise AuthenticationError("no API key given: pass api_key= or set XP_API_KEY")
            key_id, secret = parse_key(api_key)
        except AuthenticationError as exc:
            self._log_auth_failure(None, None, exc)
            raise
        with self.store.read() as session:
            row = session.get(ApiKey, key_id)
            info = info_from_row(row) if row is not None else None
            stored_hash = row.secret_hash if row is not None else None
        if not self._hasher.check(stored_hash, secret) or info is None:
            invalid = AuthenticationError(f"API key {key_id} is not valid")
            self._log_auth_failure(key_id, info.tenant_id if info else None, invalid)
            raise invalid
        try:
            check_usable(info, utcnow())
        except AuthenticationError as exc:
            self._log_auth_failure(key_id, info.tenant_id, exc)
            raise
        try:
            self._rate_limiter.acquire(info.id, info.rate_limit_per_minute)
        except RateLimitedError as exc:
            self.log.append(
                EventDraft(
                    type=EventType.ACCESS_DENIED,
                    tenant_id=info.tenant_id,
                    actor=info.id,
                    decision=Decision.DENY,
                    data={"reason": "rate_limited", "message": exc.message, "retry_after": round(exc.retry_after, 3)},
                )
            )
            raise
        return info

    def _log_auth_failure(self, key_id: str | None, tenant_id: str | None, exc: AuthenticationError) -> None:
        """One "auth.failed" event, up to ``AUTH_FAILURES_LOGGED_PER_MINUTE`` a minute per key id (key ids are not
        secrets: anyone could otherwise fill a tenant's log with wrong secrets); the failures over that are counted,
        and the next one logged is preceded by one event that says how many were not logged one by one. A key
        id that is no key, and a malformed key, share one bucket, so made-up ids cannot multiply the buckets."""
        bucket = f"auth.failed:{key_id}" if tenant_id is not None else "auth.failed:*"
        try:
            self._rate_limiter.acquire(bucket, AUTH_FAILURES_LOGGED_PER_MINUTE)
        except RateLimitedError:
            with self.store.write() as session:
                HeldBackCounts.add(session, bucket)
            return
        with self.store.write() as session:
            held = HeldBackCounts.take(session, bucket)
            if held:
                self.log.append(
                    EventDraft(
                        type=EventType.AUTHENTICATION_FAILED,
                        tenant_id=tenant_id,
                        actor=key_id,
                        decision=Decision.DENY,
                        data={
                            "reason": f"{held} more failed authentications, not logged one by one (over "
                            f"{AUTH_FAILURES_LOGGED_PER_MINUTE} a minute)",
                            "not_logged": held,
                        },
                    ),
                    session=session,
                )
            self.log.append(
                EventDraft(
                    type=EventType.AUTHENTICATION_FAILED,
                    tenant_id=tenant_id,
                    actor=key_id,
                    decision=Decision.DENY,
                    data={"reason": exc.message},
                ),
                session=session,
            )

    # -- subjects and consent ------------------------------------------------------------------------------

    def register_subject(
        self,
        tenant_id: str,
        name: str,
        references: Sequence[tuple[np.ndarray, str]],
        *,
        model: str,
        protected: bool = False,
        actor: str = SYSTEM_ACTOR,
        decision: dict[str, Any] | None = None,
    ) -> SubjectInfo:
        """Register a person by reference embeddings (each with the SHA-256 of the photo it came from)."""
        if not references:
            raise ValueError("a subject needs at least one reference photo with a face")
        now = utcnow()
        subject_id = "sub_" + secrets.token_hex(8)
        with self.store.write() as session:
            _require(session, Tenant, tenant_id, "tenant")
            session.add(
                Subject(
                    id=subject_id, tenant_id=tenant_id, name=name, protected=protected, created_at=now, created_by=actor
                )
            )
            session.flush()
            for vector, photo_sha256 in references:
                session.add(
                    FaceReference(
                        subject_id=subject_id,
                        embedding=np.asarray(vector, dtype="<f4").tobytes(),
                        model=model,
                        photo_sha256=photo_sha256,
                        created_at=now,
                    )
                )
            self.log.append(
                EventDraft(
                    type=EventType.SUBJECT_REGISTERED,
                    tenant_id=tenant_id,
                    actor=actor,
                    subject_id=subject_id,
                    data=_decided(decision) | {
                        "name": name,
                        "protected": protected,
                        "model": model,
                        "photos_sha256": [sha for _, sha in references],
                    },
                ),
                session=session,
            )
        return self.subject(subject_id)

    def subject(self, subject_id: str) -> SubjectInfo:
        with self.store.read() as session:
            hold_snapshot(session)
            row = _require(session, Subject, subject_id, "subject")
            check_subjects(session, [row])
            count = len(session.scalars(select(FaceReference.id).where(FaceReference.subject_id == subject_id)).all())
            return _subject_info(row, count)

    def subjects(self, tenant_id: str | None = None, *, protected: bool | None = None) -> list[SubjectInfo]:
        with self.store.read() as session:
            query = select(Subject).order_by(Subject.created_at)
            if tenant_id is not None:
                query = query.where(Subject.tenant_id == tenant_id)
            if protected is not None:
                query = query.where(Subject.protected == protected)
            hold_snapshot(session)
            rows = session.scalars(query).all()
            check_subjects(session, rows)
            counts: dict[str, int] = {}
            for sid in session.scalars(select(FaceReference.subject_id)):
                counts[sid] = counts.get(sid, 0) + 1
            return [_subject_info(row, counts.get(row.id, 0)) for row in rows]

    def face_references(self, subject_id: str) -> list[np.ndarray]:
        with self.store.read() as session:
            hold_snapshot(session)
            check_subjects(session, [_require(session, Subject, subject_id, "subject")])
            blobs = session.scalars(select(FaceReference.embedding).where(FaceReference.subject_id == subject_id))
            return [np.frombuffer(blob, dtype="<f4").astype(np.float32) for blob in blobs]

    def protected_references(self, tenant_id: str) -> dict[str, list[np.ndarray]]:
        """Reference embeddings of every person on ``tenant_id``'s protected list, by subject id."""
        with self.store.read() as session:
            hold_snapshot(session)
            rows = session.execute(
                select(FaceReference.subject_id, FaceReference.embedding)
                .join(Subject, Subject.id == FaceReference.subject_id)
                .where(Subject.tenant_id == tenant_id, Subject.protected.is_(True))
            ).all()
            listed = {sid for sid, _ in rows}
            check_subjects(session, session.scalars(select(Subject).where(Subject.id.in_(listed))).all())
        found: dict[str, list[np.ndarray]] = {}
        for sid, blob in rows:
            found.setdefault(sid, []).append(np.frombuffer(blob, dtype="<f4").astype(np.float32))
        return found

    def grant_consent(
        self,
        subject_id: str,
        grantee_tenant_id: str,
        *,
        evidence_sha256: str,
        evidence_kind: str = "signed-statement",
        scopes: Iterable[str] | str = ("animate",),
        purposes: Iterable[str] | str = (),
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        actor: str = SYSTEM_ACTOR,
        decision: dict[str, Any] | None = None,
    ) -> ConsentInfo:
        now = utcnow()
        start = valid_from or now
        scope_list, purpose_list = _consent_terms(evidence_sha256, scopes, purposes, start, valid_until)
        with self.store.write() as session:
            subject = _require(session, Subject, subject_id, "subject")
            _require(session, Tenant, grantee_tenant_id, "tenant")
            row = self._add_consent(
                session, subject, grantee_tenant_id, evidence_sha256=evidence_sha256, evidence_kind=evidence_kind,
                kind=ATTESTED, scopes=scope_list, purposes=purpose_list, valid_from=start, valid_until=valid_until,
                actor=actor, created_at=now, data=_decided(decision),
            )  # fmt: skip
            return _consent_info(row)

    def _add_consent(
        self,
        session: Session,
        subject: Subject,
        grantee_tenant_id: str,
        *,
        evidence_sha256: str,
        evidence_kind: str,
        kind: str,
        scopes: tuple[str, ...],
        purposes: tuple[str, ...],
        valid_from: datetime,
        valid_until: datetime | None,
        actor: str,
        created_at: datetime,
        data: dict[str, Any],
    ) -> Consent:
        """The consent row and its "consent.granted" event, in the caller's write transaction; ``data`` adds to
        the event (the decision, a challenge and its checks)."""
        row = Consent(
            id="con_" + secrets.token_hex(8),
            subject_id=subject.id,
            grantee_tenant_id=grantee_tenant_id,
            scopes=" ".join(scopes),
            purposes=" ".join(purposes),
            valid_from=valid_from,
            valid_until=valid_until,
            evidence_sha256=evidence_sha256,
            evidence_kind=evidence_kind,
            kind=kind,
            recorded_by=actor,
            created_at=created_at,
        )
        session.add(row)
        session.flush()
        self.log.append(
            EventDraft(
                type=EventType.CONSENT_GRANTED,
                tenant_id=subject.tenant_id,
                actor=actor,
                subject_id=subject.id,
                data=data | {
                    "consent_id": row.id,
                    "grantee": grantee_tenant_id,
                    "scopes": list(scopes),
                    "purposes": list(purposes),
                    "valid_from": _iso(valid_from),
                    "valid_until": _iso(valid_until),
                    "evidence_sha256": evidence_sha256,
                    "evidence_kind": evidence_kind,
                    "kind": kind,
                },
            ),
            session=session,
        )
        return row

    def revoke_consent(
        self, consent_id: str, *, actor: str = SYSTEM_ACTOR, reason: str = "", decision: dict[str, Any] | None = None
    ) -> ConsentInfo:
        with self.store.write() as session:
            row = _require(session, Consent, consent_id, "consent")
            if row.revoked_at is not None:
                raise RecordConflictError(f"consent {consent_id} was already revoked at {row.revoked_at.isoformat()}")
            row.revoked_at = utcnow()
            row.revoked_by = actor
            row.revocation_reason = reason or None
            session.flush()
            subject = _require(session, Subject, row.subject_id, "subject")
            self.log.append(
                EventDraft(
                    type=EventType.CONSENT_REVOKED,
                    tenant_id=subject.tenant_id,
                    actor=actor,
                    subject_id=row.subject_id,
                    data=_decided(decision)
                    | {"consent_id": consent_id, "grantee": row.grantee_tenant_id, "reason": reason},
                ),
                session=session,
            )
            return _consent_info(row)

    def consent(self, consent_id: str) -> ConsentInfo:
        with self.store.read() as session:
            hold_snapshot(session)
            row = _require(session, Consent, consent_id, "consent")
            check_consents(session, [row])
            return _consent_info(row)

    def consents(self, *, subject_id: str | None = None, grantee_tenant_id: str | None = None) -> list[ConsentInfo]:
        with self.store.read() as session:
            query = select(Consent).order_by(Consent.created_at)
            if subject_id is not None:
                query = query.where(Consent.subject_id == subject_id)
            if grantee_tenant_id is not None:
                query = query.where(Consent.grantee_tenant_id == grantee_tenant_id)
            hold_snapshot(session)
            rows = session.scalars(query).all()
            # The gate decides on these rows: one edited behind the ledger's back is refused, not acted on.
            check_consents(session, rows)
            return [_consent_info(row) for row in rows]

    def issue_consent_challenge(
        self,
        challenge: Mapping[str, Any],
        *,
        tenant_id: str,
        subject_id: str,
        actor: str = SYSTEM_ACTOR,
        decision: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """Record a consent challenge (its ``id``, phrase, actions, nonce, expiry) as a "consent.challenged" event:
        the log is where it is kept, so the challenge answered is the one issued, hash-chained with the rest."""
        challenge_id = str(challenge.get("id", ""))
        _check_slug(challenge_id, "challenge id")
        with self.store.write() as session:
            _require(session, Subject, subject_id, "subject")
            if self._challenge_row(session, challenge_id, subject_id) is not None:
                raise RecordConflictError(f"challenge {challenge_id} was already issued")
            return self.log.append(
                EventDraft(
                    type=EventType.CONSENT_CHALLENGED,
                    tenant_id=tenant_id,
                    actor=actor,
                    subject_id=subject_id,
                    decision=Decision.ALLOW,
                    data=_decided(decision) | {"challenge": dict(challenge)},
                ),
                session=session,
            )

    def consent_challenge(self, challenge_id: str, subject_id: str) -> tuple[dict[str, Any], str | None]:
        """The challenge issued to ``subject_id`` under ``challenge_id``, and the consent that answered it (None
        while unanswered). ``RecordNotFoundError`` when no such challenge was issued to that subject."""
        _check_slug(challenge_id, "challenge id")
        with self.store.read() as session:
            row = self._challenge_row(session, challenge_id, subject_id)
            if row is None:
                raise RecordNotFoundError(f"no challenge {challenge_id!r} for subject {subject_id!r}")
            return _challenge_of(row), self._challenge_answer(session, challenge_id, subject_id)

    def grant_consent_for_challenge(
        self,
        challenge_id: str,
        subject_id: str,
        grantee_tenant_id: str,
        *,
        evidence_sha256: str,
        evidence_kind: str,
        checks: Mapping[str, Any],
        scopes: Iterable[str] | str = ("animate",),
        purposes: Iterable[str] | str = (),
        valid_from: datetime,
        valid_until: datetime,
        actor: str = SYSTEM_ACTOR,
        decision: dict[str, Any] | None = None,
    ) -> ConsentInfo:
        """Record a consent proven by answering ``challenge_id``, in one transaction with the two checks that must
        hold at that instant: the challenge is still unanswered, and no consent already rests on this evidence
        (``RecordConflictError`` otherwise; two racing grants cannot both pass)."""
        scope_list, purpose_list = _consent_terms(evidence_sha256, scopes, purposes, valid_from, valid_until)
        if not checks or not all(isinstance(c, Mapping) and c.get("passed") is True for c in checks.values()):
            raise ValueError("a consent answering a challenge needs every check of its video passed")
        with self.store.write() as session:
            subject = _require(session, Subject, subject_id, "subject")
            _require(session, Tenant, grantee_tenant_id, "tenant")
            if self._challenge_row(session, challenge_id, subject_id) is None:
                raise RecordNotFoundError(f"no challenge {challenge_id!r} for subject {subject_id!r}")
            answered = self._challenge_answer(session, challenge_id, subject_id)
            if answered is not None:
                raise RecordConflictError(f"challenge {challenge_id} was already answered by consent {answered}")
            reused = session.scalars(select(Consent.id).where(Consent.evidence_sha256 == evidence_sha256)).first()
            if reused is not None:
                raise RecordConflictError(f"this evidence is already the evidence of consent {reused}")
            # The one way a consent becomes verified-video: a challenge answered by evidence whose checks all passed.
            row = self._add_consent(
                session, subject, grantee_tenant_id, evidence_sha256=evidence_sha256, evidence_kind=evidence_kind,
                kind=VERIFIED_VIDEO, scopes=scope_list, purposes=purpose_list, valid_from=valid_from,
                valid_until=valid_until, actor=actor, created_at=utcnow(),
                data=_decided(decision) | {"challenge_id": challenge_id, "checks": dict(checks)},
            )  # fmt: skip
            return _consent_info(row)

    def evidence_used_by(self, evidence_sha256: str, *, tenant_id: str) -> str | None:
        """The consent whose evidence has this SHA-256, among the consents of ``tenant_id``'s subjects, if any.

        Scoped to one tenant so that answering a challenge is no oracle for other tenants' evidence (the grant's
        own transaction still refuses evidence used anywhere, and is reached only by a video that passed every
        check for the caller's own subject)."""
        with self.store.read() as session:
            return session.scalars(
                select(Consent.id)
                .join(Subject, Subject.id == Consent.subject_id)
                .where(Consent.evidence_sha256 == evidence_sha256, Subject.tenant_id == tenant_id)
            ).first()

    @staticmethod
    def _challenge_row(session: Session, challenge_id: str, subject_id: str) -> AuditEventRow | None:
        rows = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.subject_id == subject_id,
                AuditEventRow.event_type == EventType.CONSENT_CHALLENGED.value,
            )
        )
        return next((row for row in rows if _challenge_of(row).get("id") == challenge_id), None)

    @staticmethod
    def _challenge_answer(session: Session, challenge_id: str, subject_id: str) -> str | None:
        rows = session.scalars(
            select(AuditEventRow).where(
                AuditEventRow.subject_id == subject_id, AuditEventRow.event_type == EventType.CONSENT_GRANTED.value
            )
        )
        for row in rows:
            data = json.loads(row.body).get("data", {})
            if data.get("challenge_id") == challenge_id:
                return str(data.get("consent_id"))
        return None

    # -- generations ---------------------------------------------------------------------------------------

    def record_denied(
        self,
        *,
        tenant_id: str,
        key_id: str,
        action: str,
        subject_id: str | None,
        decision: dict[str, Any],
        request: dict[str, Any],
    ) -> AuditEvent:
        event_type = EventType.GENERATION_DENIED if action == "animate" else EventType.ACCESS_DENIED
        return self.log.append(
            EventDraft(
                type=event_type,
                tenant_id=tenant_id,
                actor=key_id,
                subject_id=_indexed(subject_id, SUBJECT_ID_LENGTH),
                decision=Decision.DENY,
                data={"action": action, "decision": decision, "request": request},
            )
        )

    def record_requested(
        self,
        generation_id: str,
        *,
        tenant_id: str,
        key_id: str,
        subject_id: str | None,
        consent_id: str | None,
        decision: dict[str, Any],
        source_sha256: str,
        driving: str,
        request: dict[str, Any],
        consent_kind: str | None = None,
        consent_evidence_sha256: str | None = None,
    ) -> AuditEvent:
        """A generation cleared to run: its row and "requested" event, which names the consent it rests on (id,
        kind and evidence digest) and the decision."""
        now = utcnow()
        with self.store.write() as session:
            _require(session, Tenant, tenant_id, "tenant")
            if session.get(Generation, generation_id) is not None:
                raise RecordConflictError(f"generation {generation_id} already exists")
            row = Generation(
                id=generation_id,
                tenant_id=tenant_id,
                key_id=key_id,
                subject_id=subject_id,
                consent_id=consent_id,
                decision_id=str(decision.get("decision_id", "")),
                status="requested",
                source_sha256=source_sha256,
                driving=driving,
                created_at=now,
            )
            session.add(row)
            session.flush()
            requested = self.log.append(
                EventDraft(
                    type=EventType.GENERATION_REQUESTED,
                    tenant_id=tenant_id,
                    actor=key_id,
                    subject_id=subject_id,
                    generation_id=generation_id,
                    decision=Decision.ALLOW,
                    data={
                        "consent_id": consent_id,
                        "consent_kind": consent_kind,
                        "consent_evidence_sha256": consent_evidence_sha256,
                        "decision": decision,
                        "source_sha256": source_sha256,
                        "driving": driving,
                        "request": request,
                    },
                ),
                session=session,
            )
            # The row's moment is its event's, to the microsecond, so the log vouches for it (audit.reconcile).
            row.created_at = requested.occurred_at
            return requested

    def record_completed(
        self, generation_id: str, *, output_sha256: str, manifest_sha256: str | None, data: dict[str, Any]
    ) -> AuditEvent:
        outputs = {"output_sha256": output_sha256, "manifest_sha256": manifest_sha256, "watermark_id": generation_id}
        return self._finish_generation(generation_id, EventType.GENERATION_COMPLETED, outputs, {**outputs, **data})

    def record_failed(self, generation_id: str, *, error_code: str, message: str) -> AuditEvent:
        data = {"error": error_code, "message": message}
        return self._finish_generation(generation_id, EventType.GENERATION_FAILED, {"error_code": error_code}, data)

    def _finish_generation(
        self, generation_id: str, outcome: EventType, columns: dict[str, Any], data: dict[str, Any]
    ) -> AuditEvent:
        """Move a "requested" generation to its one final state and log it, in one transaction."""
        with self.store.write() as session:
            row = _require(session, Generation, generation_id, "generation")
            if row.status != "requested":
                raise RecordConflictError(f"generation {generation_id} is already {row.status}")
            row.status = "completed" if outcome is EventType.GENERATION_COMPLETED else "failed"
            for name, value in columns.items():
                setattr(row, name, value)
            row.finished_at = utcnow()
            session.flush()
            finished = self.log.append(
                EventDraft(
                    type=outcome,
                    tenant_id=row.tenant_id,
                    actor=row.key_id,
                    subject_id=row.subject_id,
                    generation_id=generation_id,
                    data=data,
                ),
                session=session,
            )
            row.finished_at = finished.occurred_at  # its event's moment, as for created_at
            return finished

    def record_verification(
        self, *, tenant_id: str | None, actor: str | None, generation_id: str | None, data: dict[str, Any]
    ) -> AuditEvent:
        return self.log.append(
            EventDraft(
                type=EventType.VERIFICATION_PERFORMED,
                tenant_id=tenant_id,
                actor=actor,
                generation_id=generation_id,
                decision=Decision.ALLOW,
                data=data,
            )
        )

    def record_access(
        self, *, tenant_id: str, actor: str, action: str, decision: dict[str, Any], request: dict[str, Any]
    ) -> AuditEvent:
        """An allowed read (the audit log, subjects, consents, keys): who looked, at what, under which policy."""
        return self.log.append(
            EventDraft(
                type=EventType.ACCESS_ALLOWED,
                tenant_id=tenant_id,
                actor=actor,
                subject_id=_indexed(request.get("subject_id"), SUBJECT_ID_LENGTH),
                generation_id=_indexed(request.get("generation_id"), GENERATION_ID_LENGTH),
                decision=Decision.ALLOW,
                data={"action": action, "decision": decision, "request": request},
            )
        )

    def unfinished_generations(self, *, requested_before: datetime) -> list[GenerationInfo]:
        """Generations still "requested" that began before ``requested_before``: their process most likely died.

        Found from the log and from the rows, each row checked against its events: ``RecordIntegrityError`` when
        one was edited (to hide a stuck generation, or to make a live one look stuck)."""
        with self.store.read() as session:
            hold_snapshot(session)
            found = [checked_generation(session, g) for g in unfinished_generation_ids(session, requested_before)]
            infos = [GenerationInfo.model_validate(row, from_attributes=True) for row in found if row is not None]
        return sorted(infos, key=lambda g: (g.created_at, g.id))

    def generation(self, generation_id: str) -> GenerationInfo:
        """Generation ``generation_id``'s record, checked against its events: ``RecordIntegrityError`` (naming
        the field) when its row was edited, inserted or deleted behind the ledger's back."""
        with self.store.read() as session:
            hold_snapshot(session)
            row = checked_generation(session, generation_id)
            if row is None:
                raise RecordNotFoundError(f"no generation {generation_id!r}")
            info = GenerationInfo.model_validate(row, from_attributes=True)
            consent = session.get(Consent, row.consent_id) if row.consent_id is not None else None
            if consent is None:
                return info
            check_consents(session, [consent])
            return info.model_copy(
                update={"consent_kind": consent.kind, "consent_evidence_sha256": consent.evidence_sha256}
            )

    def find_generation(self, generation_id: str) -> GenerationInfo | None:
        """Like ``generation``, but None when no row and no event knows ``generation_id``."""
        try:
            return self.generation(generation_id)
        except RecordNotFoundError:
            return None

    # -- queries -------------------------------------------------------------------------------------------

    def query(self, query: EventQuery | None = None, **filters: Any) -> EventPage:
        """Events matching every filter given, oldest first, ``limit`` at a time; pass ``cursor`` from the
        previous page's ``next_cursor`` to continue."""
        chosen = query if query is not None else EventQuery(**filters)
        with self.store.read() as session:
            return query_events(session, chosen)

    def events_for_generation(self, generation_id: str) -> list[AuditEvent]:
        return self.query(generation_id=generation_id, limit=1000).events


def _consent_terms(
    evidence_sha256: str,
    scopes: Iterable[str] | str,
    purposes: Iterable[str] | str,
    valid_from: datetime,
    valid_until: datetime | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A consent's scopes and purposes, once its evidence hash and validity are checked (``ValueError`` if not)."""
    if len(evidence_sha256) != 64 or any(c not in "0123456789abcdef" for c in evidence_sha256):
        raise ValueError("evidence_sha256 must be the 64-hex-digit SHA-256 of the consent evidence")
    if valid_until is not None and valid_until <= valid_from:
        raise ValueError("a consent must end after it starts")
    scope_list, purpose_list = parse_scopes(scopes), parse_scopes(purposes)
    if not scope_list:
        raise ValueError("a consent needs at least one scope, e.g. animate")
    return scope_list, purpose_list


SUBJECT_ID_LENGTH = 64
GENERATION_ID_LENGTH = 32


def _indexed(value: object, length: int) -> str | None:
    """``value`` for an event's indexed column when it fits the column (a caller's over-long id, refused or not
    found, stays in the event's data only: PostgreSQL would refuse the whole event)."""
    return value if isinstance(value, str) and 0 < len(value) <= length else None


def _decided(decision: dict[str, Any] | None) -> dict[str, Any]:
    """The policy decision that allowed a change, when the caller went through the gate."""
    return {"decision": decision} if decision is not None else {}


def _require(session: Session, model: Any, key: str, what: str) -> Any:
    row = session.get(model, key)
    if row is None:
        raise RecordNotFoundError(f"no {what} {key!r}")
    return row


def _check_slug(value: str, what: str) -> None:
    if not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '-', '_' or '.'")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _challenge_of(row: AuditEventRow) -> dict[str, Any]:
    """A "consent.challenged" event's challenge, once its body is shown to be the one the log hashed."""
    if leaf_hash(row.body.encode("utf-8")).hex() != row.leaf_hash:
        raise LogIntegrityError(f"audit event {row.seq} does not match its hash: the challenge in it was altered")
    challenge = json.loads(row.body).get("data", {}).get("challenge", {})
    return dict(challenge) if isinstance(challenge, dict) else {}


def _subject_info(row: Subject, references: int) -> SubjectInfo:
    return SubjectInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        protected=row.protected,
        references=references,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _consent_info(row: Consent) -> ConsentInfo:
    return ConsentInfo(
        id=row.id,
        subject_id=row.subject_id,
        grantee_tenant_id=row.grantee_tenant_id,
        scopes=tuple(row.scopes.split()),
        purposes=tuple(row.purposes.split()),
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        evidence_sha256=row.evidence_sha256,
        evidence_kind=row.evidence_kind,
        kind=cast(ConsentKind, row.kind),
        recorded_by=row.recorded_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revocation_reason=row.revocation_reason,
    )
