"""Typed results the client returns (pydantic, so they print and serialise as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from audit import AuditEvent, GenerationInfo

if TYPE_CHECKING:
    # Only annotates from_generation; importing it would load the engine, watermark and C2PA for a remote client.
    from xp_sdk.generate import Generation


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AnimationResult(_Frozen):
    generation_id: str
    watermark_id: str
    """The id the invisible watermark carries (the generation id)."""
    output: Path
    output_sha256: str
    manifest_label: str
    manifest_sha256: str | None
    subject_id: str
    consent_id: str | None
    decision_id: str
    face_similarity: float
    frames: int
    fps: float
    width: int
    height: int
    seconds: float
    reference_frame: int | None
    """The driving frame the motion is measured from (None for a template)."""
    frames_without_face: int
    """Driving frames where no face was found (the last good motion is held)."""
    audit_seq: tuple[int, int]
    """Sequence numbers of the "requested" and "completed" events."""

    @classmethod
    def from_generation(
        cls,
        generation: Generation,
        *,
        subject_id: str,
        consent_id: str | None,
        decision_id: str,
        face_similarity: float,
        requested_seq: int,
        completed_seq: int,
    ) -> AnimationResult:
        animation = generation.animation
        return cls(
            generation_id=generation.generation_id,
            watermark_id=generation.generation_id,
            output=generation.output,
            output_sha256=generation.output_sha256,
            manifest_label=generation.manifest_label,
            manifest_sha256=generation.manifest_sha256,
            subject_id=subject_id,
            consent_id=consent_id,
            decision_id=decision_id,
            face_similarity=round(face_similarity, 4),
            frames=animation.frames,
            fps=animation.fps,
            width=animation.width,
            height=animation.height,
            seconds=round(animation.seconds, 3),
            reference_frame=animation.reference_frame,
            frames_without_face=animation.frames_without_face,
            audit_seq=(requested_seq, completed_seq),
        )


class ConsistencyProofView(_Frozen):
    """``client.audit.consistency``: the first ``old_size`` events are unchanged in the signed tree of
    ``new_size``. Check it with ``audit.merkle.verify_consistency`` against the root *you* kept for
    ``old_size`` (a witnessed checkpoint) and the root of ``checkpoint``, signed by the log's key."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: list[str]
    checkpoint: str
    """The signed note of the checkpoint at ``new_size``."""


class GenerationAudit(_Frozen):
    """``client.audit.show``: the record, its events and their inclusion proofs."""

    generation: GenerationInfo
    events: list[AuditEvent]
    proofs: list[dict[str, Any]]
    log_verifier_key: str
