"""One generation, in order: engine → watermark (per frame, streamed) → H.264 → C2PA signature → publish.

The gate (authentication, consent, policy) and the audit events wrap it in ``xp_sdk.client``; the
``before_publish`` hook is where the "completed" event is written, so no output exists without it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watermark import DEFAULT_METHOD, FrameMarker, Payload, get_method
from watermark.manifest import GenerationAssertion, IngredientRef, ModelRef, SoftBinding
from watermark.signing import sign_video
from xp_sdk.engine import ENGINE_NAME, ENGINE_VERSION, AnimateOptions, AnimationResult, ProgressCallback, animate
from xp_sdk.engine.models import FACE_LANDMARKER
from xp_sdk.errors import InvalidInputError
from xp_sdk.provenance import ProvenanceKeys, provenance_errors

WATERMARK_ALGORITHM = "com.xp-sdk.watermark.{method}.v1"


@dataclass(frozen=True)
class Generation:
    generation_id: str
    """16 hex digits; the watermark payload, so a copy whose manifest was stripped still names it."""
    output: Path
    watermark_method: str
    manifest_label: str
    manifest_sha256: str | None
    output_sha256: str
    animation: AnimationResult


def generate(
    source: str | os.PathLike[str] | np.ndarray,
    out: str | os.PathLike[str],
    *,
    keys: ProvenanceKeys,
    driving: str | os.PathLike[str] | None = None,
    template: str | None = None,
    options: AnimateOptions | None = None,
    progress: ProgressCallback | None = None,
    consent_id: str | None = None,
    policy_decision_id: str | None = None,
    watermark_method: str = DEFAULT_METHOD,
    payload: Payload | None = None,
    before_publish: Callable[[Generation], None] | None = None,
) -> Generation:
    """Animate, mark every frame, sign, and only then publish ``out``; on any failure no file is left.

    ``payload`` carries the generation id (a fresh one by default). ``before_publish`` sees the finished,
    signed generation just before ``out`` appears; if it raises, nothing is published."""
    out_path = Path(out)
    if out_path.suffix.lower() != ".mp4":
        raise InvalidInputError(f"output {out_path} must end in .mp4")
    if not out_path.parent.is_dir():
        raise InvalidInputError(f"the folder for {out_path} does not exist")
    payload = payload or Payload.new()
    marker = FrameMarker(keys.watermark_key, payload, get_method(watermark_method))
    stem = f".{out_path.stem}.{secrets.token_hex(4)}"
    unsigned = out_path.with_name(f"{stem}.unsigned.mp4")
    signed_path = out_path.with_name(f"{stem}.signed.mp4")
    try:
        animation = animate(
            source, unsigned, driving=driving, template=template, options=options, progress=progress,
            frame_filter=marker,
        )  # fmt: skip
        with provenance_errors():
            signed = sign_video(
                unsigned,
                signed_path,
                assertion=GenerationAssertion(
                    generation_id=payload.hex,
                    consent_id=consent_id,
                    policy_decision_id=policy_decision_id,
                    engine=_engine_name(options),
                    engine_version=ENGINE_VERSION,
                    models=(ModelRef(name=FACE_LANDMARKER.name, sha256=FACE_LANDMARKER.sha256),),
                ),
                soft_binding=SoftBinding(algorithm=WATERMARK_ALGORITHM.format(method=marker.method), value=payload.hex),
                ingredients=_ingredients(source, driving, template),
                credentials=keys.credentials,
                title=out_path.name,
            )
        generation = Generation(
            generation_id=payload.hex,
            output=out_path,
            watermark_method=marker.method,
            manifest_label=signed.label,
            manifest_sha256=signed.manifest_sha256,
            output_sha256=signed.file_sha256,
            animation=animation,
        )
        if before_publish is not None:
            before_publish(generation)
        os.replace(signed_path, out_path)
    finally:
        unsigned.unlink(missing_ok=True)
        signed_path.unlink(missing_ok=True)
    return generation


def _engine_name(options: AnimateOptions | None) -> str:
    return "xp-diffusion" if options is not None and options.engine == "diffusion" else ENGINE_NAME


def _ingredients(
    source: str | os.PathLike[str] | np.ndarray, driving: str | os.PathLike[str] | None, template: str | None
) -> list[IngredientRef]:
    refs = []
    if not isinstance(source, np.ndarray):
        refs.append(IngredientRef(path=Path(source), title=Path(source).name))
    if driving is not None:
        refs.append(IngredientRef(path=Path(driving), title=Path(driving).name))
    if template is not None and Path(template).suffix.lower() == ".json" and Path(template).is_file():
        refs.append(IngredientRef(path=Path(template), title=Path(template).name))
    return refs
