"""What verifying a clip found: plain values, free of the readers that found them (no c2pa, OpenCV or database),
so a remote client can receive one."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from watermark.reading import ManifestReport


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


class Attribution(StrEnum):
    ATTRIBUTED = "attributed"
    """This deployment's watermark, on the very content its generation recorded: the clip is that generation."""
    FORGED = "forged"
    """This deployment's watermark names a generation on record, but the pictures are not that generation's output:
    the mark was transplanted or forged onto other content. Never reported as the generation."""
    UNCONFIRMED = "unconfirmed"
    """A watermark, but no recorded fingerprint to bind it to content (checked offline, or no fingerprint on
    record). ``generation_id`` is then set only where a Trusted manifest, bound to these very bytes, names the
    generation the mark names."""
    NONE = "none"
    """No watermark of this deployment (or none checked)."""


class ContentMatch(_Frozen):
    """How closely the clip's pictures match the fingerprint recorded when its generation was made."""

    distance: float
    """Median bits (of 64) from the clip's frames to the nearest recorded frame."""
    threshold: float
    frames: int
    matched: bool


class Verification(_Frozen):
    path: str
    c2pa: ManifestReport
    watermark: WatermarkVerdict
    generation_id: str | None
    """The generation the clip is attributed to: when the watermark and the recorded content fingerprint agree
    (``attribution`` ATTRIBUTED), or when a Trusted manifest (hash-bound to the file) names it and the watermark,
    where checked, names the same. An untrusted or disagreeing manifest, or a payload on other content, never
    sets it: the payload alone is ``watermark.payload``."""
    attribution: Attribution = Attribution.NONE
    content: ContentMatch | None = None
    """The fingerprint comparison, when the watermark's generation has a recorded fingerprint."""
    consistent: bool | None
    """Whether the manifest's soft binding names the payload the frames carry (None when either is missing)."""
    generation: dict[str, object] | None = None
    """The audited generation record (``Client.verify`` fills it from the audit log; None when the id is not on
    record, or when verifying offline with ``verify`` alone). Another tenant sees only id, status and time."""
