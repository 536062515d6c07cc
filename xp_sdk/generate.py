"""One generation, in order, and the only place that knows the order:

    audit "requested" → engine → watermark (per frame, streamed) → H.264 → read-back → C2PA signature
    → audit "completed" → publish ``out``               (any failure after "requested": audit "failed", no file)

The caller (``xp_sdk.service``: authentication, the gate) hands in the source as the gate checked it and a
:class:`GenerationLog`, the three events the audit log needs; nothing here knows keys, tenants or databases.

The read-back looks for the mark in the encoded output, as ``verify`` will, before anything is signed: a clip
that is short, small, nearly still and busy (the astronaut blinking at 384 px, say) can carry the mark too weakly
to be found at the default strength. Such a clip is marked again, stronger, from the frames already made (the
engine does not run again), so no output leaves without a watermark that traces it. A short clip is also read
back after an ordinary re-encode, and marked stronger if the mark would not survive one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from PIL import Image

from watermark import DEFAULT_METHOD, FrameMarker, Payload, WatermarkKey, detect_watermark, get_method, reencode
from watermark.embedding import mark_file
from watermark.fingerprint import Fingerprint, fingerprint_video
from watermark.manifest import GenerationAssertion, IngredientRef, ModelRef, SoftBinding
from watermark.methods import ADJUSTABLE_STRENGTH, algorithm_name
from watermark.signing import sign_video
from xp_sdk.engine import (
    ENGINE_NAME,
    ENGINE_VERSION,
    AnimateOptions,
    AnimationResult,
    Progress,
    ProgressCallback,
    animate,
)
from xp_sdk.engine.models import FACE_LANDMARKER
from xp_sdk.engine.photo import PreparedPhoto
from xp_sdk.engine.templates import MotionTemplate, builtin_template, template_json
from xp_sdk.engine.video import DrivingLimits
from xp_sdk.errors import ProvenanceFailedError
from xp_sdk.output_path import check_output_path
from xp_sdk.provenance import ProvenanceKeys, provenance_errors
from xp_sdk.workspace import generation_workspace, prepare_publication, publish

log = logging.getLogger(__name__)

READBACK_STRENGTHS = (1.0, 1.4, 2.0)
"""Watermark strengths tried in turn until the mark reads back within the code's radius (no soft-decision search:
what is left of the radius is the margin for the re-encodes that follow). Of 30 generations of the 384-px
astronaut blink, each under a new key, 24 read back at 1.0 and 6 at 1.4; all 30 then verified (p ≤ 2e-14)."""
READBACK_FRAMES = 24
"""Frames read back first; all of them only when these do not carry the mark."""
SHORT_CLIP_FRAMES = 2 * READBACK_FRAMES
"""Clips up to this long are also read back after an ordinary re-encode (H.264 at ``SURVIVAL_CRF``): with few
frames to vote, a mark that only just reads back can be lost to one. One second of lp_d18 on the astronaut lost
it after CRF 28 once in CI at 512 px (never in 42 tries here), and every time at 384 px and strength 1.0."""
SURVIVAL_CRF = 28


@dataclass(frozen=True)
class SourcePhoto:
    """The photo to animate as the gate checked it: prepared once (the engine animates :attr:`prepared` without
    analysing it again), and named in the manifest by where it came from."""

    prepared: PreparedPhoto
    path: Path | None
    """The photo's file, or None when it was given as pixels (the manifest then names a PNG of them)."""


PhotoInput = str | os.PathLike[str] | np.ndarray | SourcePhoto


class GenerationLog(Protocol):
    """What one generation tells the audit log, in this order: ``requested`` before any pixel is made, then
    ``completed`` (before ``out`` appears: if it raises, nothing is published) or ``failed``."""

    def requested(self) -> None: ...

    def completed(self, generation: Generation) -> None: ...

    def failed(self, error: BaseException) -> None: ...


@dataclass(frozen=True)
class Generation:
    generation_id: str
    """16 hex digits; the watermark payload, so a copy whose manifest was stripped still names it."""
    output: Path
    watermark_method: str
    watermark_strength: float
    """The strength the mark was embedded at (1.0 unless the read-back asked for more)."""
    manifest_label: str
    manifest_sha256: str | None
    output_sha256: str
    animation: AnimationResult
    fingerprint: Fingerprint | None = None
    """The signed output's content fingerprint, recorded with "completed": ``verify`` attributes a clip to this
    generation only when its watermark and this agree (a mark lifted onto other pictures does not)."""


def generate(
    source: PhotoInput,
    out: str | os.PathLike[str],
    *,
    keys: ProvenanceKeys,
    driving: str | os.PathLike[str] | None = None,
    template: str | MotionTemplate | None = None,
    options: AnimateOptions | None = None,
    progress: ProgressCallback | None = None,
    consent_id: str | None = None,
    consent_kind: Literal["verified-video", "attested"] | None = None,
    consent_evidence_sha256: str | None = None,
    policy_decision_id: str | None = None,
    watermark_method: str = DEFAULT_METHOD,
    payload: Payload | None = None,
    log: GenerationLog | None = None,
    watermark_strengths: Sequence[float] = READBACK_STRENGTHS,
    work_dir: str | os.PathLike[str] | None = None,
    driving_limits: DrivingLimits | None = None,
) -> Generation:
    """Animate, mark every frame, check the mark reads back, sign, and only then publish ``out``; on any failure
    no file is left.

    ``log`` hears "requested" first (when it raises, nothing is made), "completed" with the signed generation just
    before ``out`` appears (when it raises, nothing is published) and "failed" for any failure in between.

    Every temporary lives in ``<work_dir>/<generation id>/`` (``Home.work_dir``; see ``xp_sdk.workspace``; a
    private folder in the system's temporary directory when None), never beside ``out``, and ``out`` appears by one
    atomic rename, so a process killed at any point leaves nothing a user could take for the output.

    ``payload`` carries the generation id (a fresh one by default). ``watermark_strengths`` are tried in turn
    until the mark reads back (methods with a fixed strength get one try); if none does, nothing is published
    and ``ProvenanceFailedError`` (code ``watermark_unreadable``) is raised."""
    out_path = check_output_path(out, inputs=[_source_file(source), driving])
    payload = payload or Payload.new()
    strengths = tuple(watermark_strengths) if watermark_method in ADJUSTABLE_STRENGTH else (1.0,)
    if not strengths:
        raise ValueError("watermark_strengths must name at least one strength")
    if log is not None:
        log.requested()
    completed = False
    try:
        with generation_workspace(work_dir, payload.hex) as work:
            unsigned, signed_path = work / "unsigned.mp4", work / "signed.mp4"
            animation, strength = _animate_until_the_mark_reads_back(
                source, unsigned, keys=keys, payload=payload, method=watermark_method, strengths=strengths,
                driving=driving, template=template, options=options, progress=progress, work=work,
                driving_limits=driving_limits,
            )  # fmt: skip
            with provenance_errors():
                signed = sign_video(
                    unsigned,
                    signed_path,
                    assertion=GenerationAssertion(
                        generation_id=payload.hex,
                        consent_id=consent_id,
                        consent_kind=consent_kind,
                        consent_evidence_sha256=consent_evidence_sha256,
                        policy_decision_id=policy_decision_id,
                        engine=_engine_name(options),
                        engine_version=ENGINE_VERSION,
                        models=tuple(ModelRef(name=m.name, sha256=m.sha256) for m in animation.models)
                        or (ModelRef(name=FACE_LANDMARKER.name, sha256=FACE_LANDMARKER.sha256),),
                    ),
                    soft_binding=SoftBinding(
                        algorithm=algorithm_name(watermark_method), value=payload.hex
                    ),
                    ingredients=_ingredients(source, driving, template, work),
                    credentials=keys.credentials,
                    title=out_path.name,
                )
            generation = Generation(
                generation_id=payload.hex,
                output=out_path,
                watermark_method=watermark_method,
                watermark_strength=strength,
                manifest_label=signed.label,
                manifest_sha256=signed.manifest_sha256,
                output_sha256=signed.file_sha256,
                animation=animation,
                fingerprint=_fingerprint(signed_path),
            )
            staged = prepare_publication(signed_path, out_path)
            try:
                if log is not None:
                    log.completed(generation)
                completed = True
                publish(staged, out_path)
            finally:
                if staged != signed_path:  # a copy beside the output, left only if publishing failed
                    staged.unlink(missing_ok=True)
    except BaseException as exc:
        if log is not None and not completed:
            log.failed(exc)
        raise
    return generation


def mark_reads_back(path: Path, key: WatermarkKey, payload: Payload, *, method: str = DEFAULT_METHOD) -> bool:
    """Whether ``verify`` will find ``payload`` in ``path``: first from its first ``READBACK_FRAMES`` frames
    (enough for almost every clip, and bounded in cost), else from all of them, as ``verify`` reads it."""
    with provenance_errors():
        for max_frames in (READBACK_FRAMES, None):
            found = detect_watermark(path, key, method=method, max_frames=max_frames, expected=payload)
            if found.detected and found.payload == payload:
                return True
            if max_frames is not None and found.frames < max_frames:
                return False  # that was the whole clip
    return False


def mark_survives_reencode(
    path: Path, key: WatermarkKey, payload: Payload, *, method: str = DEFAULT_METHOD, work: Path | None = None
) -> bool:
    """Whether the mark still reads back (:func:`mark_reads_back`, within the code's radius) from ``path`` after an
    ordinary re-encode, H.264 at ``SURVIVAL_CRF`` as the robustness bench makes it: what ``verify``'s wider
    search can still correct beyond that is the margin for encoders and settings that are not this one. The
    re-encoded copy is made in ``work`` (a generation's work folder), else in a private temporary folder."""
    with contextlib.ExitStack() as stack:
        folder = work if work is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xp-")))
        copy = folder / f"{path.stem}.reencoded.mp4"
        try:
            with provenance_errors():
                reencode(path, copy, SURVIVAL_CRF)
            return mark_reads_back(copy, key, payload, method=method)
        finally:
            copy.unlink(missing_ok=True)


def _animate_until_the_mark_reads_back(
    source: PhotoInput,
    unsigned: Path,
    *,
    keys: ProvenanceKeys,
    payload: Payload,
    method: str,
    strengths: tuple[float, ...],
    driving: str | os.PathLike[str] | None,
    template: str | MotionTemplate | None,
    options: AnimateOptions | None,
    progress: ProgressCallback | None,
    work: Path,
    driving_limits: DrivingLimits | None,
) -> tuple[AnimationResult, float]:
    onward = _onward(progress)
    photo = source.prepared if isinstance(source, SourcePhoto) else source
    marked_at = strengths[0]
    marker = FrameMarker(keys.watermark_key, payload, get_method(method, strength=marked_at))
    animation = animate(
        photo, unsigned, driving=driving, template=template, options=options, progress=onward,
        frame_filter=marker, driving_limits=driving_limits,
    )  # fmt: skip
    crf = (options or AnimateOptions()).crf
    for stronger in (*strengths[1:], None):
        if mark_reads_back(unsigned, keys.watermark_key, payload, method=method) and (
            stronger is None
            or animation.frames > SHORT_CLIP_FRAMES
            or mark_survives_reencode(unsigned, keys.watermark_key, payload, method=method, work=work)
        ):
            return animation, marked_at
        if stronger is None:
            break
        log.info(
            "generation %s: the mark at strength %g is too weak to trace this clip; marking it at %g",
            payload.hex, marked_at, stronger,
        )  # fmt: skip
        # The frames are made once: the mark is raised by adding the difference to the clip already encoded (the
        # tiled mark is additive), re-encoded with its sound and timing, instead of running the engine again.
        remarked = work / "remarked.mp4"
        with provenance_errors():
            mark_file(
                unsigned, remarked,
                FrameMarker(keys.watermark_key, payload, get_method(method, strength=stronger - marked_at)), crf=crf,
            )  # fmt: skip
        remarked.replace(unsigned)
        marked_at = stronger
    raise ProvenanceFailedError(
        f"the watermark could not be read back from the output at strength {strengths[-1]:g} (the clip may be "
        f"too short, small or still to carry it); nothing was published",
        code="watermark_unreadable",
    )


def _fingerprint(path: Path) -> Fingerprint:
    with provenance_errors():
        return fingerprint_video(path)


_STAGES = {"analyse": 0, "generate": 1}


def _onward(progress: ProgressCallback | None) -> ProgressCallback | None:
    """``progress`` told only what is past everything it was told before: a clip made again with a stronger mark
    does not send the caller's progress back to the start."""
    if progress is None:
        return None
    furthest = (-1, -1)

    def report(update: Progress) -> None:
        nonlocal furthest
        where = (_STAGES.get(update.stage, len(_STAGES)), update.done)
        if where > furthest:
            furthest = where
            progress(update)

    return report


def _engine_name(options: AnimateOptions | None) -> str:
    return "xp-diffusion" if options is not None and options.engine == "diffusion" else ENGINE_NAME


def _source_file(source: PhotoInput) -> Path | None:
    if isinstance(source, SourcePhoto):
        return source.path
    return None if isinstance(source, np.ndarray) else Path(source)


def _ingredients(
    source: PhotoInput,
    driving: str | os.PathLike[str] | None,
    template: str | MotionTemplate | None,
    work: Path,
) -> list[IngredientRef]:
    """The manifest's ingredients: the photo (its file, or a PNG of pixels given as such), the driving video or
    the template (a template given as content is written to ``work`` as its canonical JSON, so the ingredient's
    hash is the one its audit record names)."""
    refs = []
    file = _source_file(source)
    if file is not None:
        refs.append(IngredientRef(path=file, title=file.name))
    else:
        pixels = source.prepared.original if isinstance(source, SourcePhoto) else source
        assert isinstance(pixels, np.ndarray)
        png = work / "source-photo.png"
        Image.fromarray(pixels).save(png)
        refs.append(IngredientRef(path=png, title=png.name))
    if driving is not None:
        refs.append(IngredientRef(path=Path(driving), title=Path(driving).name))
    if template is not None:
        motion = template if isinstance(template, MotionTemplate) else builtin_template(template)
        copy = work / "template.json"
        copy.write_bytes(template_json(motion))
        refs.append(IngredientRef(path=copy, title=f"{motion.name}.json"))
    return refs
