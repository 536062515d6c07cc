"""Mark a video file, and look for the mark in one: the package's two entry points for whole files."""

from __future__ import annotations

from pathlib import Path

from watermark.detection import DEFAULT_P_THRESHOLD, WatermarkDetection, detect_in_video
from watermark.embedding import FrameMarker, MarkReport, mark_file
from watermark.methods import DEFAULT_METHOD, get_method
from watermark.payload import Payload, WatermarkKey


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
