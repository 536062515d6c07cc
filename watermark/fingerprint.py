"""A content fingerprint of a video: what binds a watermark payload to the pictures it was made on.

A payload alone can be lifted off one clip and laid on another (a transplant), so a clip is attributed to a
generation only when its pictures also look like that generation's output. Each sampled frame is summarised by a
256-bit perceptual hash (the signs of the lowest 16×16 DCT coefficients of its luma at 32×32, against their
median), which survives re-encodes, resizing, brightness and contrast changes and frame-rate changes. The record
also hashes centred crops of each frame (``RECORDED_CROPS``), so a cropped copy still finds its frame. A clip
matches a recorded fingerprint when its frames lie, at the median, within ``MATCH_DISTANCE`` (a fraction of the
bits) of the nearest recorded hash; nearest-hash matching also survives a trim.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from watermark.video_io import iter_frames

FINGERPRINT_VERSION = "xp-dct-phash-256-crops.v1"
HASH_SIDE = 32
LOW_FREQUENCIES = 16
HASH_BITS = LOW_FREQUENCIES * LOW_FREQUENCIES
RECORDED_FRAMES = 48
"""Frames hashed per generation (evenly spaced over the clip)."""
RECORDED_CROPS = (1.0, 0.92, 0.84, 0.77, 0.71)
"""Side of each centred crop hashed per recorded frame: crops down to half the frame's area still match."""
QUERY_FRAMES = 48
"""Frames of a clip under verification compared with the record (its first ones)."""
MATCH_DISTANCE = 0.265
"""Median fraction of bits from a clip's frame to its nearest recorded hash at or below which it is the same content.
Measured with ``bench/fingerprint_calibration.py`` over the 15 shared real clips (64 frames each): the robustness
bench's handled copies lie within 0.227 (crop to 71 % of the area with brightness and CRF 30 the farthest; re-encodes,
resizes, contrast and frame-rate changes within 0.094), every unrelated pair at 0.305 or more (mean 0.421)."""

_HEX_DIGITS = HASH_BITS // 4


@dataclass(frozen=True)
class Fingerprint:
    version: str
    hashes: tuple[int, ...]
    """``HASH_BITS``-bit frame hashes (recorded: every crop of every sampled frame)."""

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "hashes": [f"{value:0{_HEX_DIGITS}x}" for value in self.hashes]}

    @classmethod
    def from_json(cls, data: object) -> Fingerprint | None:
        """The fingerprint recorded with a generation, or None when ``data`` is not one this version reads."""
        if not isinstance(data, dict) or data.get("version") != FINGERPRINT_VERSION:
            return None
        hashes = data.get("hashes")
        if not isinstance(hashes, list) or not hashes or not all(isinstance(value, str) for value in hashes):
            return None
        try:
            return cls(FINGERPRINT_VERSION, tuple(int(value, 16) for value in hashes))
        except ValueError:
            return None


@dataclass(frozen=True)
class FingerprintMatch:
    distance: float
    """Median fraction of bits from the clip's frames to the nearest recorded hash (0: identical, ~0.5: unrelated)."""
    threshold: float
    frames: int

    @property
    def matched(self) -> bool:
        return self.frames > 0 and self.distance <= self.threshold


def frame_hash(frame: np.ndarray, *, crop: float = 1.0) -> int:
    """The perceptual hash of one frame's luma (H×W uint8) or RGB (H×W×3) pixels, or of its centred crop of
    side ``crop``."""
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if crop < 1.0:
        height, width = gray.shape
        kept_h, kept_w = max(1, round(height * crop)), max(1, round(width * crop))
        top, left = (height - kept_h) // 2, (width - kept_w) // 2
        gray = gray[top : top + kept_h, left : left + kept_w]
    small = cv2.resize(gray, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:LOW_FREQUENCIES, :LOW_FREQUENCIES].flatten()
    # The DC term is the frame's mean brightness; leaving it out makes the hash indifferent to brightness.
    bits = low > np.median(low[1:])
    bits[0] = False
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def fingerprint_frames(
    frames: Iterable[np.ndarray], *, keep: int = RECORDED_FRAMES, crops: Sequence[float] = RECORDED_CROPS
) -> Fingerprint:
    """Hashes of ``keep`` frames spaced evenly over ``frames`` (each at every crop in ``crops``)."""
    kept = list(frames)
    if len(kept) > keep:
        kept = [kept[index] for index in np.linspace(0, len(kept) - 1, keep).round().astype(int)]
    return Fingerprint(FINGERPRINT_VERSION, tuple(frame_hash(frame, crop=crop) for frame in kept for crop in crops))


def fingerprint_video(path: Path) -> Fingerprint:
    """The fingerprint a generation records of its output: ``RECORDED_FRAMES`` frames spread over the whole clip.
    Frames are decoded as luma and every one is held until the clip's length is known, at 1 byte a pixel."""
    return fingerprint_frames(_thumbnails(iter_frames(Path(path), gray=True)))


def compare(clip: Fingerprint, recorded: Fingerprint, *, threshold: float = MATCH_DISTANCE) -> FingerprintMatch:
    if not clip.hashes or not recorded.hashes:
        return FingerprintMatch(distance=1.0, threshold=threshold, frames=0)
    nearest = [min((value ^ other).bit_count() for other in recorded.hashes) for value in clip.hashes]
    return FingerprintMatch(
        distance=round(float(np.median(nearest)) / HASH_BITS, 4), threshold=threshold, frames=len(nearest)
    )


def match_video(
    path: Path, recorded: Fingerprint, *, threshold: float = MATCH_DISTANCE, max_frames: int = QUERY_FRAMES
) -> FingerprintMatch:
    """How closely ``path``'s first ``max_frames`` frames (whole, uncropped) match ``recorded``."""
    frames = iter_frames(Path(path), gray=True, max_frames=max_frames)
    clip = Fingerprint(FINGERPRINT_VERSION, tuple(frame_hash(frame) for frame in frames))
    return compare(clip, recorded, threshold=threshold)


def _thumbnails(frames: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    # Hashes need no more than a few hundred pixels a side: a long clip's frames are kept small until sampled.
    for frame in frames:
        height, width = frame.shape[:2]
        scale = 256 / max(height, width)
        if scale < 1:
            frame = cv2.resize(
                frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
            )
        yield frame


__all__: Sequence[str] = (
    "FINGERPRINT_VERSION",
    "MATCH_DISTANCE",
    "Fingerprint",
    "FingerprintMatch",
    "compare",
    "fingerprint_frames",
    "fingerprint_video",
    "frame_hash",
    "match_video",
)
