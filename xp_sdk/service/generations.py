"""``animate``: one gated, audited generation, and the audit log's side of it (``AuditedGeneration``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from audit import AuditEvent, Ledger
from policy import Action
from watermark import Payload
from xp_sdk.deployment import audit_errors
from xp_sdk.engine import AnimateOptions, ProgressCallback
from xp_sdk.engine.diffusion import require_weights
from xp_sdk.engine.photo import PreparedPhoto, prepare_photo
from xp_sdk.engine.templates import MotionTemplate, template_ref
from xp_sdk.engine.video import DrivingLimits, check_driving_limits
from xp_sdk.errors import InvalidInputError, XPError
from xp_sdk.gate import AnimationClearance, Caller
from xp_sdk.generate import Generation, SourcePhoto, generate
from xp_sdk.inputs import Purposes, checked
from xp_sdk.output_path import check_output_path
from xp_sdk.results import AnimationResult
from xp_sdk.service.core import PhotoInput, ServiceCore, sha256_file


class Generations(ServiceCore):
    """Animating a photo: the gate's checks, then one generation the audit log follows from start to end."""

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
            prepared = prepare_photo(source, allow_multiple_faces=chosen.allow_multiple_faces, max_side=chosen.max_side)
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
            consent_kind=clearance.consent.kind if clearance.consent is not None else None,
            consent_evidence_sha256=clearance.consent.evidence_sha256 if clearance.consent is not None else None,
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


def _photo_sha256(source: PhotoInput, prepared: PreparedPhoto) -> str:
    """What identifies the photo in the log: its file's SHA-256, or that of the pixels given."""
    if isinstance(source, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(prepared.original).tobytes()).hexdigest()
    return sha256_file(Path(source))


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
        consent = clearance.consent
        # The consent the generation rests on, named in "requested" and "completed" as in its manifest.
        self._consent: dict[str, str | None] = {
            "consent_id": clearance.consent_id,
            "consent_kind": consent.kind if consent is not None else None,
            "consent_evidence_sha256": consent.evidence_sha256 if consent is not None else None,
        }

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
                consent_kind=self._consent.get("consent_kind"),
                consent_evidence_sha256=self._consent.get("consent_evidence_sha256"),
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
                    **self._consent,
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
