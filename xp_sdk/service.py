"""``Service``: every gated operation over one deployment, for any caller presenting an API key.

The embedded ``Client`` and the HTTP server both run on it, so the gate, the audit events and the order of one
generation are written once. Safe to share across threads: the database pool and the policy set are shared, the
face embedder sits behind a lock, and every call authenticates afresh (a revoked key stops working at once).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from audit import (
    ApiKeyInfo,
    AuditEvent,
    ConsentInfo,
    Decision,
    EventPage,
    EventQuery,
    GenerationInfo,
    InclusionProof,
    Ledger,
    LogVerification,
    NewApiKey,
    RecordNotFoundError,
    SubjectInfo,
)
from policy import Action, Scope
from watermark import Payload
from watermark.fingerprint import Fingerprint
from xp_sdk.consent.challenge import (
    CHALLENGE_ID,
    DEFAULT_CHALLENGE_MINUTES,
    MAX_CHALLENGE_MINUTES,
    ConsentChallenge,
    draw_challenge,
)
from xp_sdk.consent.check import CONSENT_VIDEO_KIND, CheckResult, examine_consent_video
from xp_sdk.consent.observe import CONSENT_VIDEO_LIMITS
from xp_sdk.deployment import Deployment, audit_errors
from xp_sdk.engine import AnimateOptions, ProgressCallback
from xp_sdk.engine.diffusion import require_weights
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.engine.images import check_image_array, load_image
from xp_sdk.engine.models import FACE_RECOGNIZER_SFACE
from xp_sdk.engine.paths import as_file_path
from xp_sdk.engine.photo import PreparedPhoto, prepare_photo
from xp_sdk.engine.templates import MotionTemplate, template_ref
from xp_sdk.engine.video import DrivingLimits, check_driving_limits
from xp_sdk.errors import (
    AccessDeniedError,
    AuditStoreError,
    AuthenticationError,
    ConsentVideoRejectedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    XPError,
)
from xp_sdk.gate import AnimationClearance, Caller, Gate
from xp_sdk.generate import Generation, SourcePhoto, generate
from xp_sdk.inputs import (
    Age,
    ConsentScopes,
    KeyScopes,
    Moment,
    Name,
    PageSize,
    Purposes,
    RateLimit,
    TenantId,
    Text,
    TreeSize,
    WitnessNote,
    checked,
    pem_certificates,
    record_id,
)
from xp_sdk.output_path import check_output_path
from xp_sdk.results import AnimationResult, ConsistencyProofView, GenerationAudit
from xp_sdk.verify import (
    PublicVerification,
    Verification,
    attribute,
    deployment_name,
    public_verification,
    verify,
)
from xp_sdk.workspace import remove_work_folders

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"})
PhotoInput = str | os.PathLike[str] | np.ndarray
MAX_REFERENCE_PHOTOS = 20

# These refusals are logged where they are decided (the ledger logs a failed authentication or a rate limit, the
# gate its denials); a store that cannot be written cannot log anything.
_LOGGED_ELSEWHERE = (AccessDeniedError, AuthenticationError, RateLimitedError, AuditStoreError)


class Service:
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

    # -- the gate ------------------------------------------------------------------------------------------

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
                    _in_force(c)
                    for c in self.deployment.ledger.consents(subject_id=subject_id, grantee_tenant_id=caller.tenant_id)
                )
            ):
                return found
        raise NotFoundError(f"no subject {subject_id!r}")

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

    # -- generation ----------------------------------------------------------------------------------------

    def animate(
        self,
        api_key: str | None,
        source: PhotoInput,
        *,
        subject: str,
        out: str | os.PathLike[str],
        driving: str | os.PathLike[str] | None = None,
        template: str | MotionTemplate | None = None,
        options: AnimateOptions | None = None,
        purpose: str | None = None,
        progress: ProgressCallback | None = None,
        generation_id: str | None = None,
    ) -> AnimationResult:
        """Authenticate → consent, face match, protected persons, Cedar → audit "requested" → engine →
        watermark → H.264 → C2PA → audit "completed" → publish ``out``. A refusal raises an
        ``AccessDeniedError`` subclass after logging it; a failure after "requested" logs "failed"; either way
        no file is left.

        ``generation_id`` (16 hex digits, fresh by default) lets a job server name the generation before it
        runs, so a generation whose worker died can still be marked failed."""
        caller = self.caller(api_key)
        if options is not None and options.engine == "diffusion":
            # A deployment without diffusion weights is a configuration problem, not a request to audit.
            require_weights(options.diffusion.models)
        request: dict[str, Any] = {"subject": subject, "out": Path(out).name, "purpose": purpose}
        # Scope first: a key that may not animate learns nothing of the subject, its consent or its face.
        self.gate.require_scope(caller, Action.ANIMATE, request=request)
        with self._refusals(caller, Action.ANIMATE, request, subject_id=subject):
            if (driving is None) == (template is None):
                raise InvalidInputError("give exactly one of driving= (a video) or template= (a motion template name)")
            if purpose is not None:
                purpose = checked(Purposes, [purpose], "purpose")[0]
            payload = _payload(generation_id)
            # A template is a built-in's name or the template itself, never a path: a service opens no file a
            # caller names for it (the client resolves the caller's own file, resolve_template).
            request["driving"] = driving_ref = _driving_ref(driving, template)
            check_output_path(out, inputs=[driving, None if isinstance(source, np.ndarray) else source])
            settings = self.deployment.settings
            limits = DrivingLimits(settings.max_driving_seconds, settings.max_driving_frames)
            if driving is not None:
                check_driving_limits(driving, max_seconds=limits.max_seconds, max_frames=limits.max_frames)
            self._visible_subject(caller, subject)
            # The photo is analysed once: what is wrong with it as such (no face, several, too small) is said as
            # that, and the face the gate matches is the face the engine moves.
            chosen = options or AnimateOptions()
            prepared = prepare_photo(
                source, allow_multiple_faces=chosen.allow_multiple_faces, max_side=chosen.max_side
            )
            request["source_sha256"] = source_sha256 = _photo_sha256(source, prepared)
            with self._embedder_lock:
                probe = self._identity().embed_face(prepared.upright, prepared.face_box, name=prepared.name)
        clearance = self.gate.clear_animation(caller, subject_id=subject, probe=probe, purpose=purpose, request=request)
        record = AuditedGeneration(
            self.deployment.ledger, payload.hex, caller=caller, subject_id=subject, clearance=clearance,
            source_sha256=source_sha256, driving=driving_ref, request=request,
        )  # fmt: skip
        generation = generate(
            SourcePhoto(prepared, None if isinstance(source, np.ndarray) else Path(source)),
            out,
            keys=self.deployment.provenance,
            driving=driving,
            template=template,
            options=options,
            progress=progress,
            consent_id=clearance.consent_id,
            policy_decision_id=clearance.decision.decision_id,
            payload=payload,
            log=record,
            work_dir=self.deployment.home.work_dir,
            driving_limits=limits,
        )
        return AnimationResult.from_generation(
            generation,
            subject_id=subject,
            consent_id=clearance.consent_id,
            decision_id=clearance.decision.decision_id,
            face_similarity=clearance.face.similarity,
            requested_seq=record.sequence("requested"),
            completed_seq=record.sequence("completed"),
        )

    # -- verification --------------------------------------------------------------------------------------

    def verify(
        self, api_key: str | None, path: str | os.PathLike[str], *, trust_anchors: str | None = None
    ) -> Verification:
        """C2PA state, watermark payload and the audited generation behind ``path``. Never raises for a
        missing or broken mark: the report says so."""
        request: dict[str, Any] = {"path": Path(path).name}
        caller = self.authorized(api_key, Action.VERIFY, **request)
        with self._refusals(caller, Action.VERIFY, request):
            if trust_anchors is not None:
                pem_certificates(trust_anchors, "trust_anchors")
            report = verify(path, keys=self.deployment.provenance, trust_anchors=trust_anchors)
            file_sha256 = sha256_file(Path(path))
        record: dict[str, object] | None = None
        claimed = report.watermark.payload if report.watermark.detected else None
        if claimed is not None:
            # The payload is only a claim until the pictures match what its generation recorded: a mark lifted onto
            # other content is reported as forged, never as the generation.
            with audit_errors():
                recorded = self._recorded_fingerprint(claimed)
            with self._refusals(caller, Action.VERIFY, request):
                report = attribute(report, recorded)
        if report.generation_id is not None:
            with audit_errors():
                found = self.deployment.ledger.find_generation(report.generation_id)
            if found is not None:
                record = _generation_view(found, caller, file_sha256)
        with audit_errors():
            self.deployment.ledger.record_verification(
                tenant_id=caller.tenant_id,
                actor=caller.key.id,
                generation_id=report.generation_id or claimed,
                data={
                    "file_name": Path(path).name,
                    "file_sha256": file_sha256,
                    "c2pa": report.c2pa.state.value,
                    "watermark_detected": report.watermark.detected,
                    "p_value": report.watermark.p_value,
                    "consistent": report.consistent,
                    "attribution": report.attribution.value,
                    "watermark_payload": claimed,
                    "content_distance": report.content.distance if report.content else None,
                    "generation_on_record": record is not None,
                    "decision": self._decision(caller),
                },
            )
        return report.model_copy(update={"generation": record})

    def verify_anonymous(self, path: str | os.PathLike[str], *, client_address: str) -> PublicVerification:
        """Verification for anyone, without an API key: whether this deployment made ``path`` (a mark bound to its
        recorded content) and when, never the subject, consent, tenant, key or record. Logged with tenant none and
        actor ``anonymous:<SHA-256 of the client address, 16 hex>``."""
        provenance = self.deployment.provenance
        report = verify(path, keys=provenance)
        claimed = report.watermark.payload if report.watermark.detected else None
        if claimed is not None:
            with audit_errors():
                recorded = self._recorded_fingerprint(claimed)
            report = attribute(report, recorded)
        found = None
        if report.generation_id is not None:
            with audit_errors():
                found = self.deployment.ledger.find_generation(report.generation_id)
        public = public_verification(
            report,
            deployment=deployment_name(provenance.trust_anchors),
            generated_at=found.created_at if found is not None and found.status == "completed" else None,
        )
        with audit_errors():
            self.deployment.ledger.record_verification(
                tenant_id=None,
                actor="anonymous:" + hashlib.sha256(client_address.encode("utf-8")).hexdigest()[:16],
                generation_id=report.generation_id or claimed,
                data={
                    "file_sha256": sha256_file(Path(path)),
                    "anonymous": True,
                    "c2pa": report.c2pa.state.value,
                    "watermark_detected": report.watermark.detected,
                    "p_value": report.watermark.p_value,
                    "attribution": report.attribution.value,
                    "watermark_payload": claimed,
                    "content_distance": report.content.distance if report.content else None,
                    "verdict": public.verdict,
                },
            )
        return public

    def _recorded_fingerprint(self, generation_id: str) -> Fingerprint | None:
        """The content fingerprint generation ``generation_id``'s "completed" event recorded (None before one)."""
        for event in self.deployment.ledger.events_for_generation(generation_id):
            if event.type == "generation.completed":
                return Fingerprint.from_json(event.data.get("fingerprint"))
        return None

    # -- audit ---------------------------------------------------------------------------------------------

    def _audit_scope(self, api_key: str | None, tenant: str | None, **request: Any) -> tuple[Caller, str | None]:
        """The reader, and the tenant it may see: its own, unless the key administers keys (then any, or all)."""
        caller = self.authorized(api_key, Action.AUDIT_READ, tenant=tenant, **request)
        with self._refusals(caller, Action.AUDIT_READ, {"tenant": tenant, **request}):
            if tenant is not None:
                checked(TenantId, tenant, "tenant")
            if self._is_admin(caller):
                return caller, tenant
        if tenant is not None and tenant != caller.tenant_id:
            # Refused the same way whether or not that tenant exists.
            refused = PermissionDeniedError(
                f"refused: API key {caller.key.id} reads its own tenant {caller.tenant_id!r} only",
                reasons=(("other_tenant", "a key reads its own tenant's records only", None),),
            )
            self._refuse(caller, Action.AUDIT_READ, None, {"tenant": tenant, **request}, refused)
            raise refused
        return caller, caller.tenant_id

    def audit_query(
        self,
        api_key: str | None,
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
        caller, scoped = self._audit_scope(api_key, tenant, operation="audit.query")
        asked = {"operation": "audit.query", "tenant": tenant, "subject_id": subject, "generation_id": generation_id}
        with self._refusals(caller, Action.AUDIT_READ, asked):
            for value, what in ((subject, "subject"), (generation_id, "generation_id"), (type, "type")):
                if value is not None:
                    checked(Name, value, what)
            try:
                query = EventQuery(
                    tenant=scoped, subject=subject, generation_id=generation_id,
                    decision=Decision(decision) if decision else None, type=type,
                    since=checked(Moment, since, "since") if since is not None else None,
                    until=checked(Moment, until, "until") if until is not None else None,
                    limit=checked(PageSize, limit, "limit"), cursor=checked(Text, cursor, "cursor") if cursor else None,
                )  # fmt: skip
            except ValueError as exc:
                raise InvalidInputError(f"invalid audit query: {exc}") from exc
            with audit_errors():
                try:
                    page = self.deployment.ledger.query(query)
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from exc
        filters = query.model_dump(mode="json", exclude={"limit"}, exclude_none=True)
        self._record_read(caller, Action.AUDIT_READ, operation="audit.query", returned=len(page.events), **filters)
        return page

    def audit_show(self, api_key: str | None, generation_id: str) -> GenerationAudit:
        """A generation's record, its events, and each event's inclusion proof against a signed checkpoint."""
        caller, scoped = self._audit_scope(api_key, None, operation="audit.show", generation_id=generation_id)
        ledger = self.deployment.ledger
        with self._refusals(caller, Action.AUDIT_READ, {"operation": "audit.show", "generation_id": generation_id}):
            record_id("generation", generation_id)
            with audit_errors():
                record = ledger.generation(generation_id)
                if scoped is not None and record.tenant_id != scoped:
                    # Another tenant's generation is answered exactly as one that does not exist.
                    raise NotFoundError(f"no generation {generation_id!r}")
                # Another tenant's verification of this clip is that tenant's event, not the owner's to read.
                events = [
                    e for e in ledger.events_for_generation(generation_id) if scoped is None or e.tenant_id == scoped
                ]
                proofs: list[InclusionProof] = [ledger.log.inclusion_proof(event.seq) for event in events]
        self._record_read(caller, Action.AUDIT_READ, operation="audit.show", generation_id=generation_id)
        return GenerationAudit(
            generation=record,
            events=events,
            proofs=[p.to_dict() for p in proofs],
            log_verifier_key=self.deployment.log_verifier.to_vkey(),
        )

    def audit_verify(self, api_key: str | None, *, witnessed: Iterable[str] = ()) -> LogVerification:
        """Recompute every hash, link and signed root; raise ``AuditIntegrityError`` at the first fault."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.verify")
        with self._refusals(caller, Action.AUDIT_READ, {"operation": "audit.verify"}):
            notes = [checked(WitnessNote, note, "witnessed checkpoint") for note in witnessed]
            with audit_errors():
                checked_log = self.deployment.ledger.log.verify(self.deployment.log_verifier, witnessed=notes)
        self._record_read(caller, Action.AUDIT_READ, operation="audit.verify", tree_size=checked_log.tree_size)
        return checked_log

    def audit_consistency(
        self, api_key: str | None, old_size: int, new_size: int | None = None
    ) -> ConsistencyProofView:
        """Prove the log's first ``old_size`` events are a prefix of the signed tree of ``new_size`` (default: the
        latest checkpoint), for a witness holding an older checkpoint."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.consistency")
        log = self.deployment.ledger.log
        asked = {"operation": "audit.consistency", "old_size": old_size, "new_size": new_size}
        with self._refusals(caller, Action.AUDIT_READ, asked):
            checked(TreeSize, old_size, "old_size")
            if new_size is not None:
                checked(TreeSize, new_size, "new_size")
            with audit_errors():
                notes = {c.checkpoint.tree_size: c for c in log.checkpoints()}
                target = new_size if new_size is not None else max(notes, default=0)
                if target not in notes:
                    raise InvalidInputError(
                        f"no signed checkpoint at tree size {target}; "
                        f"sizes: {', '.join(map(str, sorted(notes))) or 'none'}"
                    )
                try:
                    proof = log.consistency_proof(old_size, target)
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from exc
        self._record_read(caller, Action.AUDIT_READ, operation="audit.consistency", old_size=old_size, new_size=target)
        return ConsistencyProofView(
            old_size=proof.old_size, new_size=proof.new_size, old_root=proof.old_root,
            new_root=notes[target].checkpoint.root_hash.hex(), path=list(proof.path),
            checkpoint=notes[target].to_text(),
        )  # fmt: skip

    def audit_abandoned(
        self, api_key: str | None, *, older_than: timedelta = timedelta(hours=1), close: bool = False
    ) -> list[GenerationInfo]:
        """Generations left "requested" for longer than ``older_than`` (a process died mid-generation); with
        ``close`` (needs keys:admin) each gets its "failed" event (``abandoned``), so the record says how it ended."""
        action = Action.MANAGE_KEYS if close else Action.AUDIT_READ
        caller = self.authorized(api_key, action, operation="audit.abandoned", close=close)
        ledger = self.deployment.ledger
        with self._refusals(caller, action, {"operation": "audit.abandoned", "close": close}):
            age = checked(Age, older_than, "older_than")
            with audit_errors():
                stale = ledger.unfinished_generations(requested_before=datetime.now(UTC) - age)
                if not self._is_admin(caller):
                    stale = [g for g in stale if g.tenant_id == caller.tenant_id]
                if close:
                    for generation in stale:
                        ledger.record_failed(
                            generation.id,
                            error_code="abandoned",
                            message=f"closed by {caller.key.id}: still requested after {age}",
                        )
                    stale = [ledger.generation(g.id) for g in stale]
            if close:
                remove_work_folders(self.deployment.home.work_dir, [g.id for g in stale])
        self._record_read(caller, action, operation="audit.abandoned", close=close, returned=len(stale))
        return stale

    def audit_checkpoint(self, api_key: str | None) -> str | None:
        """Sign the current tree head now; the signed note, for a witness to keep."""
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.checkpoint")
        # Logged first, so the checkpoint it asked for also covers the asking.
        self._record_read(caller, Action.AUDIT_READ, operation="audit.checkpoint")
        with audit_errors():
            signed = self.deployment.ledger.log.checkpoint()
        return signed.to_text() if signed is not None else None

    def audit_checkpoints(self, api_key: str | None) -> list[str]:
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="audit.checkpoints")
        with audit_errors():
            notes = [c.to_text() for c in self.deployment.ledger.log.checkpoints()]
        self._record_read(caller, Action.AUDIT_READ, operation="audit.checkpoints", returned=len(notes))
        return notes

    # -- subjects and consent ------------------------------------------------------------------------------

    def register_subject(
        self, api_key: str | None, name: str, photos: Sequence[PhotoInput], *, protected: bool = False
    ) -> SubjectInfo:
        """Register a person from one or more reference photos (each must show their face)."""
        request: dict[str, Any] = {"name": name if isinstance(name, str) else None, "protected": protected}
        caller = self.authorized(api_key, Action.REGISTER_SUBJECT, **request)
        with self._refusals(caller, Action.REGISTER_SUBJECT, request):
            clean = checked(Name, name.strip() if isinstance(name, str) else name, "subject name")
            if not photos:
                raise InvalidInputError("register a subject with at least one reference photo")
            if len(photos) > MAX_REFERENCE_PHOTOS:
                raise InvalidInputError(f"register a subject with at most {MAX_REFERENCE_PHOTOS} reference photos")
            references: list[tuple[np.ndarray, str]] = []
            for index, photo in enumerate(photos):
                image, digest = read_photo(photo)
                what = f"reference photo {photo}" if not isinstance(photo, np.ndarray) else f"reference photo #{index}"
                # A reference is a face both detectors see (YuNet alone sees one in a coffee cup), whichever way up
                # its photo was stored.
                with self._embedder_lock:
                    references.append((self._identity().reference_embedding(image, name=what), digest))
        with audit_errors():
            return self.deployment.ledger.register_subject(
                caller.tenant_id,
                clean,
                references,
                model=f"sface:{FACE_RECOGNIZER_SFACE.sha256[:16]}",
                protected=bool(protected),
                actor=caller.key.id,
                decision=self._decision(caller),
            )

    def subject(self, api_key: str | None, subject_id: str) -> SubjectInfo:
        caller = self.authorized(api_key, Action.AUDIT_READ, subject_id=subject_id)
        request = {"operation": "subjects.get", "subject_id": subject_id}
        with self._refusals(caller, Action.AUDIT_READ, request, subject_id=subject_id):
            found = self._visible_subject(caller, subject_id)
        self._record_read(caller, Action.AUDIT_READ, operation="subjects.get", subject_id=subject_id)
        return found

    def subjects(self, api_key: str | None, *, protected: bool | None = None) -> list[SubjectInfo]:
        caller = self.authorized(api_key, Action.AUDIT_READ, operation="subjects.list")
        with audit_errors():
            found = self.deployment.ledger.subjects(caller.tenant_id, protected=protected)
        self._record_read(caller, Action.AUDIT_READ, operation="subjects.list", returned=len(found))
        return found

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
        subject records their consent. ``evidence`` is the signed statement or consent video (a path or its
        bytes); only its SHA-256 is stored. Without ``expires`` it lapses after the deployment's
        ``consent_validity_days``."""
        request: dict[str, Any] = {"subject_id": subject, "tenant": tenant}
        caller = self.authorized(api_key, Action.GRANT_CONSENT, **request)
        with self._refusals(caller, Action.GRANT_CONSENT, request, subject_id=subject):
            grantee = checked(TenantId, tenant, "tenant") if tenant is not None else caller.tenant_id
            scope_list = checked(ConsentScopes, _listed(scopes), "consent scope")
            purpose_list = checked(Purposes, _listed(purposes), "purpose")
            start = checked(Moment, valid_from, "valid_from") if valid_from is not None else datetime.now(UTC)
            until = (
                checked(Moment, expires, "expires")
                if expires is not None
                else start + timedelta(days=self.deployment.settings.consent_validity_days)
            )
            # Only the subject's own tenant may speak for them: another tenant's subject is not found at all.
            self._visible_subject(caller, subject, owner_only=True)
            digest, kind = _evidence(evidence)
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
            if isinstance(expires_in_minutes, bool) or not isinstance(expires_in_minutes, int) or not (
                1 <= expires_in_minutes <= MAX_CHALLENGE_MINUTES
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

    def grant_consent_by_video(
        self,
        api_key: str | None,
        subject: str,
        *,
        video: str | os.PathLike[str],
        challenge: str,
        tenant: str | None = None,
        scopes: Iterable[str] = ("animate",),
        purposes: Iterable[str] = (),
        expires: datetime | None = None,
    ) -> ConsentInfo:
        """Record ``subject``'s consent from a video answering ``challenge``: accepted only when the face is the
        subject's throughout, the actions are performed in order by a moving face, the sentence is said, the video
        is no generation of this deployment (nor declares itself generated) and both the challenge and the video
        are fresh. Otherwise ``ConsentVideoRejectedError`` names each failed check, and the refusal (an attempted
        forgery when the video carries this deployment's watermark) is logged with every check's facts."""
        request: dict[str, Any] = {
            "operation": "consents.grant_video", "subject_id": subject, "challenge_id": challenge, "tenant": tenant,
        }  # fmt: skip
        caller = self.authorized(api_key, Action.GRANT_CONSENT, **request)
        with self._refusals(caller, Action.GRANT_CONSENT, request, subject_id=subject):
            grantee = checked(TenantId, tenant, "tenant") if tenant is not None else caller.tenant_id
            scope_list = checked(ConsentScopes, _listed(scopes), "consent scope")
            purpose_list = checked(Purposes, _listed(purposes), "purpose")
            start = datetime.now(UTC)
            until = (
                checked(Moment, expires, "expires")
                if expires is not None
                else start + timedelta(days=self.deployment.settings.consent_validity_days)
            )
            self._visible_subject(caller, subject, owner_only=True)
            if not isinstance(challenge, str) or not CHALLENGE_ID.fullmatch(challenge):
                raise NotFoundError(f"no challenge {str(challenge)[:80]!r} for subject {subject!r}")
            file = as_file_path(video, "consent video")
            check_driving_limits(
                file, max_seconds=CONSENT_VIDEO_LIMITS.max_seconds, max_frames=CONSENT_VIDEO_LIMITS.max_frames
            )
            digest = sha256_file(file)
            request["evidence_sha256"] = digest
            with audit_errors():
                ledger = self.deployment.ledger
                issued, answered_by = ledger.consent_challenge(challenge, subject)
                references = ledger.face_references(subject)
                video_used_by = ledger.evidence_used_by(digest)
            asked = ConsentChallenge.model_validate(issued)
            if asked.purpose is not None and purpose_list and asked.purpose not in purpose_list:
                raise InvalidInputError(f"challenge {challenge} was issued for purpose {asked.purpose!r}")
            purposes_granted = list(purpose_list) or ([asked.purpose] if asked.purpose is not None else [])
            marks = verify(file, keys=self.deployment.provenance)
            with self._embedder_lock:
                facts = examine_consent_video(
                    file, asked, references=references,
                    face_match_threshold=self.deployment.settings.face_match_threshold,
                    embedder=self._identity(), marks=marks, now=datetime.now(UTC),
                    challenge_used_by=answered_by, video_used_by=video_used_by,
                )  # fmt: skip
            request["checks"] = facts.as_record()
            if not facts.passed:
                if not facts.check("not_generated").passed and marks.watermark.detected:
                    request["attempted_forgery"] = {
                        "watermark_payload": marks.watermark.payload, "generation_id": marks.generation_id,
                    }  # fmt: skip
                rejected = ConsentVideoRejectedError(
                    f"consent video refused: failed check(s) {', '.join(facts.failed)}",
                    reasons=tuple((name, _check_message(facts.check(name)), None) for name in facts.failed),
                )
                # An AccessDeniedError is one _refusals leaves to whoever decided it: here, this service.
                self._refuse(caller, Action.GRANT_CONSENT, subject, request, rejected)
                raise rejected
            kept = _keep_evidence(self.deployment.home.root, file, digest)
            try:
                with audit_errors():
                    try:
                        return ledger.grant_consent_for_challenge(
                            challenge, subject, grantee,
                            evidence_sha256=digest, evidence_kind=CONSENT_VIDEO_KIND, checks=facts.as_record(),
                            scopes=tuple(scope_list), purposes=tuple(purposes_granted),
                            valid_from=start, valid_until=until, actor=caller.key.id,
                            decision=self._decision(caller),
                        )  # fmt: skip
                    except ValueError as exc:
                        raise InvalidInputError(str(exc)) from exc
            except BaseException:
                kept.unlink(missing_ok=True)  # no evidence kept for a consent that was not recorded
                raise

    # -- API keys ------------------------------------------------------------------------------------------

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
            asked = _listed(scopes)
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


def _listed(values: Iterable[str] | str) -> list[str]:
    """Scopes and purposes as a list, from a list or a comma- or space-separated string."""
    if isinstance(values, str):
        return values.replace(",", " ").split()
    if not isinstance(values, Iterable) or isinstance(values, bytes | dict):
        raise InvalidInputError(f"expected a list of names or a comma-separated string, got {type(values).__name__}")
    listed = list(values)
    if not all(isinstance(v, str) for v in listed):
        raise InvalidInputError("expected a list of names (strings)")
    return listed


def _in_force(consent: ConsentInfo) -> bool:
    """Whether ``consent`` lets its grantee see the subject now: unrevoked and within its validity."""
    now = datetime.now(UTC)
    return (
        consent.revoked_at is None
        and consent.valid_from <= now
        and (consent.valid_until is None or consent.valid_until > now)
    )


def _evidence(evidence: str | os.PathLike[str] | bytes) -> tuple[str, str]:
    """(SHA-256, kind) of a consent's evidence."""
    if isinstance(evidence, bytes):
        if not evidence:
            raise InvalidInputError("consent evidence is empty")
        return hashlib.sha256(evidence).hexdigest(), "signed-statement"
    file = Path(evidence)
    if not file.is_file():
        raise InvalidInputError(f"consent evidence {file} does not exist or is not a file")
    if file.stat().st_size == 0:
        raise InvalidInputError(f"consent evidence {file} is empty")
    kind = "consent-video" if file.suffix.lower() in VIDEO_SUFFIXES else "signed-statement"
    return sha256_file(file), kind


def evidence_path(home: Path, digest: str, suffix: str) -> Path:
    """Where a consent video is kept: the home's ``evidence`` folder (0700), by its SHA-256."""
    return home / "evidence" / f"{digest}{suffix.lower() if suffix.lower() in VIDEO_SUFFIXES else '.video'}"


def _keep_evidence(home: Path, video: Path, digest: str) -> Path:
    """A private copy (0600) of a consent video, before its consent is recorded."""
    kept = evidence_path(home, digest, video.suffix)
    kept.parent.mkdir(mode=0o700, exist_ok=True)
    os.chmod(kept.parent, 0o700)
    partial = kept.with_name(kept.name + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out, video.open("rb") as source:
        shutil.copyfileobj(source, out, 1 << 20)
    os.replace(partial, kept)
    return kept


def _check_message(result: CheckResult) -> str:
    """One line a person can act on, from a failed check's facts."""
    detail = {k: v for k, v in result.detail.items() if v not in (None, [], 0, False) or k == "heard"}
    return f"{result.name}: " + "; ".join(f"{k}={v}" for k, v in detail.items())[:400]


def read_photo(source: PhotoInput) -> tuple[np.ndarray, str]:
    """The photo as RGB and the SHA-256 that identifies it in the log (of the file, or of the pixels)."""
    if isinstance(source, np.ndarray):
        image = check_image_array(source, name="source photo")
        return image, hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    image = load_image(source)
    return image, sha256_file(Path(source))


def _photo_sha256(source: PhotoInput, prepared: PreparedPhoto) -> str:
    """What identifies the photo in the log: its file's SHA-256, or that of the pixels given."""
    if isinstance(source, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(prepared.original).tobytes()).hexdigest()
    return sha256_file(Path(source))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _payload(generation_id: str | None) -> Payload:
    if generation_id is None:
        return Payload.new()
    if len(generation_id) != 16 or any(c not in "0123456789abcdef" for c in generation_id):
        raise InvalidInputError(f"generation id {generation_id!r} must be 16 lowercase hex digits")
    return Payload.from_hex(generation_id)


def _driving_ref(driving: str | os.PathLike[str] | None, template: str | MotionTemplate | None) -> str:
    if driving is not None:
        file = Path(driving)
        if not file.is_file():
            raise InvalidInputError(f"driving video {file} does not exist or is not a file")
        return f"sha256:{sha256_file(file)}"
    assert template is not None
    return template_ref(template)


def _generation_view(record: GenerationInfo, caller: Caller, file_sha256: str) -> dict[str, object]:
    """The whole record for its own tenant (or an admin key); for anyone else, only that it exists and when."""
    same = record.tenant_id == caller.tenant_id or Scope.KEYS_ADMIN.value in caller.key.scopes
    view: dict[str, object] = (
        record.model_dump(mode="json")
        if same
        else {"id": record.id, "status": record.status, "created_at": record.created_at.isoformat()}
    )
    view["file_matches_record"] = record.output_sha256 == file_sha256
    return view


class AuditedGeneration:
    """The audit log's side of one generation (:class:`xp_sdk.generate.GenerationLog`): "requested" with the
    decision that cleared it, "completed" with what was published, or "failed" with why."""

    def __init__(
        self,
        ledger: Ledger,
        generation_id: str,
        *,
        caller: Caller,
        subject_id: str,
        clearance: AnimationClearance,
        source_sha256: str,
        driving: str,
        request: dict[str, Any],
    ) -> None:
        self._ledger = ledger
        self._id = generation_id
        self._caller = caller
        self._subject_id = subject_id
        self._clearance = clearance
        self._source_sha256 = source_sha256
        self._driving = driving
        self._request = request
        self._events: dict[str, AuditEvent] = {}

    def sequence(self, stage: str) -> int:
        return self._events[stage].seq

    def requested(self) -> None:
        with audit_errors():
            self._events["requested"] = self._ledger.record_requested(
                self._id,
                tenant_id=self._caller.tenant_id,
                key_id=self._caller.key.id,
                subject_id=self._subject_id,
                consent_id=self._clearance.consent_id,
                decision={**self._clearance.decision.to_dict(), **self._clearance.facts},
                source_sha256=self._source_sha256,
                driving=self._driving,
                request=self._request,
            )

    def completed(self, generation: Generation) -> None:
        with audit_errors():
            self._events["completed"] = self._ledger.record_completed(
                generation.generation_id,
                output_sha256=generation.output_sha256,
                manifest_sha256=generation.manifest_sha256,
                data={
                    "manifest_label": generation.manifest_label,
                    "watermark_method": generation.watermark_method,
                    "watermark_strength": generation.watermark_strength,
                    "frames": generation.animation.frames,
                    "fps": generation.animation.fps,
                    "output_name": Path(generation.output).name,
                    "fingerprint": generation.fingerprint.to_json() if generation.fingerprint else None,
                },
            )
            # Sign the tree head that now holds "completed", so the published output is covered by a checkpoint.
            self._ledger.log.checkpoint()

    def failed(self, error: BaseException) -> None:
        code = error.code if isinstance(error, XPError) else type(error).__name__
        with audit_errors():
            self._ledger.record_failed(self._id, error_code=code, message=str(error)[:500])
