"""One verdict on a video: its C2PA manifest, its invisible watermark, and (with an audit store) its generation."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from watermark import DEFAULT_METHOD, DEFAULT_P_THRESHOLD, detect_watermark
from watermark.reading import ManifestReport, ManifestState, read_manifest
from xp_sdk.errors import InvalidInputError, UntrustedMediaError
from xp_sdk.provenance import ProvenanceKeys, provenance_errors


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WatermarkVerdict(_Frozen):
    checked: bool
    """False when no watermark key was available (an outside analyst can still check the manifest)."""
    detected: bool
    payload: str | None
    """The generation id the mark carries (16 hex digits), when detected."""
    p_value: float | None
    """Chance that an unmarked video decodes this well; a detection needs p below ``threshold``."""
    threshold: float
    method: str
    frames: int
    seconds: float


class Verification(_Frozen):
    path: str
    c2pa: ManifestReport
    watermark: WatermarkVerdict
    generation_id: str | None
    """From the watermark when detected, else from a manifest that is at least Valid."""
    consistent: bool | None
    """Whether the manifest's soft binding names the payload the frames carry (None when either is missing)."""
    generation: dict[str, object] | None = None
    """The audited generation record (``Client.verify`` fills it from the audit log; None when the id is not on
    record, or when verifying offline with ``verify`` alone). Another tenant sees only id, status and time."""


def verify(
    path: str | os.PathLike[str],
    *,
    keys: ProvenanceKeys | None = None,
    trust_anchors: str | None = None,
    method: str = DEFAULT_METHOD,
    p_threshold: float = DEFAULT_P_THRESHOLD,
) -> Verification:
    """Check both marks of origin. Never raises for a missing or broken mark: the verdict says so."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"{file} does not exist or is not a file")
    anchors = trust_anchors if trust_anchors is not None else (keys.trust_anchors if keys else None)
    with provenance_errors():
        manifest = read_manifest(file, trust_anchors=anchors)
        if keys is not None:
            detection = detect_watermark(file, keys.watermark_key, method=method, p_threshold=p_threshold)
            mark = WatermarkVerdict(
                checked=True,
                detected=detection.detected,
                payload=detection.payload.hex if detection.payload else None,
                p_value=detection.p_value,
                threshold=p_threshold,
                method=detection.method,
                frames=detection.frames,
                seconds=round(detection.seconds, 4),
            )
        else:
            mark = WatermarkVerdict(
                checked=False, detected=False, payload=None, p_value=None, threshold=p_threshold, method=method,
                frames=0, seconds=0.0,
            )  # fmt: skip
    readable = manifest.state in (ManifestState.TRUSTED, ManifestState.VALID) and manifest.summary is not None
    bound = (
        manifest.summary.soft_binding.value if readable and manifest.summary and manifest.summary.soft_binding else None
    )
    manifest_id = (
        manifest.summary.generation.generation_id
        if readable and manifest.summary and manifest.summary.generation
        else None
    )
    consistent = None if (bound is None or not mark.detected) else bound == mark.payload
    return Verification(
        path=str(file),
        c2pa=manifest,
        watermark=mark,
        generation_id=mark.payload or manifest_id,
        consistent=consistent,
    )


def require_trusted(verification: Verification) -> None:
    """For callers that want a gate rather than a report: raise unless the manifest is Trusted and consistent."""
    if verification.c2pa.state is not ManifestState.TRUSTED:
        codes = ", ".join(verification.c2pa.codes) or "no codes"
        raise UntrustedMediaError(f"{verification.path}: C2PA manifest is {verification.c2pa.state.value} ({codes})")
    if verification.consistent is False:
        raise UntrustedMediaError(f"{verification.path}: the watermark does not match the manifest's soft binding")
