"""Driving video → motion codes, and recording a motion template from a driving video."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from xp_sdk.engine.faces import MIN_VIDEO_FACE_PX, FaceAnalyzer
from xp_sdk.engine.motion import MotionCode, MotionEncoder, MotionSmoother, SmoothingConfig
from xp_sdk.engine.templates import MotionTemplate, template_from_codes
from xp_sdk.engine.video import probe_video, read_frames

ANALYSIS_MAX_SIDE = 720


class StageClock:
    """Seconds spent inside a stage, summed over calls (read from another thread when the stage is done)."""

    def __init__(self) -> None:
        self.seconds = 0.0


def iter_motion_codes(
    path: str | os.PathLike[str],
    fps: float,
    smoothing: SmoothingConfig | None = None,
    clock: StageClock | None = None,
) -> Iterator[MotionCode | None]:
    """One smoothed motion code per driving frame, or None where no usable face was found.

    With a smoothing look-ahead, codes come out a few frames behind the decoding; still one per frame, in order.
    """
    encoder = MotionEncoder()
    smoother = MotionSmoother(fps, smoothing)
    with FaceAnalyzer(video=True, max_faces=1) as analyzer:
        for index, rgb in enumerate(read_frames(path, max_side=ANALYSIS_MAX_SIDE)):
            t0 = time.perf_counter()
            faces = analyzer.detect_all(rgb, timestamp_ms=round(index * 1000 / fps))
            code = None
            # The minimum face size is stated for 480-pixel frames and scales with the frame.
            if faces and faces[0].size >= MIN_VIDEO_FACE_PX * min(rgb.shape[:2]) / 480:
                code = encoder.encode(faces[0])
            ready = smoother.push(code)
            if clock is not None:
                clock.seconds += time.perf_counter() - t0
            yield from ready
        yield from smoother.flush()


def record_template(path: str | os.PathLike[str], *, name: str, stride: int = 2) -> MotionTemplate:
    """A motion template capturing a driving video's expressions and head motion."""
    info = probe_video(path)
    codes = [c for c in iter_motion_codes(path, info.fps) if c is not None]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.lower()) or "recorded"
    return template_from_codes(
        codes, fps=info.fps, name=safe[:64], description=f"Recorded from {Path(path).name}", stride=stride
    )
