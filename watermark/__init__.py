"""Provenance for generated video: an invisible keyed watermark and signed C2PA manifests.

Marking: ``FrameMarker(key, payload)`` marks frames as they stream to the encoder; ``mark_video`` marks a file.
Checking: ``detect_watermark(path, key)`` returns a ``WatermarkDetection`` with the payload and a p-value.
This package knows no database and no engine; ``xp_sdk`` composes it with both.
"""

from __future__ import annotations

from pathlib import Path

from watermark.detection import DEFAULT_P_THRESHOLD, WatermarkDetection, detect_in_video
from watermark.embedding import FrameMarker, MarkReport, mark_file
from watermark.errors import ProvenanceError, UnreadableVideoError, WatermarkError, WatermarkKeyError
from watermark.methods import DEFAULT_METHOD, METHOD_NAMES, get_method
from watermark.payload import CODEWORD_BITS, Payload, WatermarkKey
from watermark.transcode import reencode


def mark_video(
    src: Path, dst: Path, key: WatermarkKey, payload: Payload, *, method: str = DEFAULT_METHOD, crf: int = 18
) -> MarkReport:
    """Write ``dst``: ``src`` re-encoded (H.264) with every frame carrying ``payload``."""
    return mark_file(Path(src), Path(dst), FrameMarker(key, payload, get_method(method)), crf=crf)


def detect_watermark(
    path: Path,
    key: WatermarkKey,
    *,
    method: str = DEFAULT_METHOD,
    p_threshold: float = DEFAULT_P_THRESHOLD,
    max_frames: int | None = None,
    expected: Payload | None = None,
) -> WatermarkDetection:
    """Look for a mark made with ``key``. Never raises for "no mark": that is ``detected=False``, p-value 1.

    ``expected``: check for that one payload (a read-back of a mark just made) rather than search for any."""
    return detect_in_video(
        Path(path), key, get_method(method), p_threshold=p_threshold, max_frames=max_frames, expected=expected
    )


__all__ = [
    "CODEWORD_BITS",
    "DEFAULT_METHOD",
    "DEFAULT_P_THRESHOLD",
    "METHOD_NAMES",
    "FrameMarker",
    "MarkReport",
    "Payload",
    "ProvenanceError",
    "UnreadableVideoError",
    "WatermarkDetection",
    "WatermarkError",
    "WatermarkKey",
    "WatermarkKeyError",
    "detect_watermark",
    "get_method",
    "mark_video",
    "reencode",
]
