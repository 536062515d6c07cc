"""Driving video → motion codes (and shading textures) → the photo's targets; recording a motion template."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xp_sdk.engine.faces import MIN_VIDEO_FACE_PX, FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.interior import sample_interior
from xp_sdk.engine.motion import MotionCode, MotionEncoder, MotionSmoother, SmoothingConfig
from xp_sdk.engine.retarget import Retargeter, TargetFace, choose_reference, open_eye_openings
from xp_sdk.engine.shading import FaceLayout
from xp_sdk.engine.templates import MotionTemplate, template_from_codes
from xp_sdk.engine.video import probe_video, read_frames

ANALYSIS_MAX_SIDE = 720


class StageClock:
    """Seconds spent inside a stage, summed over calls (read from another thread when the stage is done)."""

    def __init__(self) -> None:
        self.seconds = 0.0


@dataclass(frozen=True)
class DrivingFrame:
    """One driving frame as the generator needs it: its smoothed motion code (None: no usable face), the
    driver's face brightness in the photo's layout (None without a layout, or before any face was seen), and
    its mouth interior (None when not asked for, or the mouth is closed)."""

    code: MotionCode | None
    texture: np.ndarray | None = None
    interior: np.ndarray | None = None


def iter_driving(
    path: str | os.PathLike[str],
    fps: float,
    smoothing: SmoothingConfig | None = None,
    clock: StageClock | None = None,
    layout: FaceLayout | None = None,
    interiors: bool = False,
) -> Iterator[DrivingFrame]:
    """One :class:`DrivingFrame` per driving frame, in order.

    With a smoothing look-ahead, frames come out a few frames behind the decoding. With a ``layout`` each frame
    also carries its face texture, and with ``interiors`` its mouth interior, both smoothed over a few frames; a
    frame without a face repeats the last of them, as the generator repeats the last code.
    """
    encoder = MotionEncoder()
    smoother = MotionSmoother(fps, smoothing)
    textures = _TextureWindow()
    mouths = _TextureWindow()
    last_texture: np.ndarray | None = None
    last_interior: np.ndarray | None = None

    def ready(codes: list[MotionCode | None]) -> Iterator[DrivingFrame]:
        for code in codes:
            yield DrivingFrame(
                code,
                textures.pop() if layout is not None else None,
                mouths.pop() if interiors else None,
            )

    with FaceAnalyzer(video=True, max_faces=1) as analyzer:
        for index, rgb in enumerate(read_frames(path, max_side=ANALYSIS_MAX_SIDE)):
            t0 = time.perf_counter()
            faces = analyzer.detect_all(rgb, timestamp_ms=round(index * 1000 / fps))
            code = None
            # The minimum face size is stated for 480-pixel frames and scales with the frame.
            if faces and faces[0].size >= MIN_VIDEO_FACE_PX * min(rgb.shape[:2]) / 480:
                code = encoder.encode(faces[0])
                if layout is not None:
                    last_texture = layout.texture(rgb, faces[0].landmarks)
                if interiors:
                    last_interior = sample_interior(rgb, faces[0].landmarks)
            if layout is not None:
                textures.push(last_texture)
            if interiors:
                mouths.push(last_interior)
            codes = smoother.push(code)
            if clock is not None:
                clock.seconds += time.perf_counter() - t0
            yield from ready(codes)
        yield from ready(smoother.flush())


class _TextureWindow:
    """Textures of the frames read but not yet returned; each comes out averaged with up to two neighbours on
    either side (binomial weights), so the shading taken from it does not flicker with compression noise and
    the detector's jitter."""

    _WEIGHTS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

    def __init__(self) -> None:
        self._pending: deque[np.ndarray | None] = deque()
        self._previous: deque[np.ndarray | None] = deque([None, None], maxlen=2)

    def push(self, texture: np.ndarray | None) -> None:
        self._pending.append(texture)

    def pop(self) -> np.ndarray | None:
        current = self._pending.popleft()
        window = [*self._previous, current, *list(self._pending)[:2]]
        window += [None] * (5 - len(window))
        self._previous.append(current)
        if current is None:
            return None
        total = np.zeros_like(current, dtype=np.float32)
        for weight, texture in zip(self._WEIGHTS, window, strict=True):
            total += weight * (current if texture is None else texture)
        # float16 halves what a reference window of textures holds; shading needs no more precision.
        return total.astype(np.float16)


class ClipTargets:
    """The photo's target for each frame of a driving clip, relative to one reference frame of it.

    ``window``: the clip's first frames (all of them, or the reference window); ``reference``: the index of
    the reference frame in it, which must have a face (:meth:`best_reference` picks one). A frame without a
    face repeats the last code (counted in ``frames_without_face``). With a ``layout``, each target carries the
    driver's shading relative to the reference (time spent in ``shading_seconds``).
    """

    def __init__(
        self,
        retargeter: Retargeter,
        window: Sequence[DrivingFrame],
        reference: int,
        layout: FaceLayout | None = None,
    ) -> None:
        codes = [f.code for f in window if f.code is not None]
        chosen = window[reference]
        if chosen.code is None or not codes:
            raise ValueError("the reference frame must have a face")
        self.reference = reference
        self.frames_without_face = 0
        self.shading_seconds = 0.0
        self._retargeter = retargeter
        self._reference = chosen.code
        self._reference_texture = chosen.texture
        self._layout = layout
        self._open_eyes = open_eye_openings(codes)
        self._last = codes[0]

    @staticmethod
    def best_reference(window: Sequence[DrivingFrame], face: FaceAnalysis) -> int:
        """Index in ``window`` of the frame that best matches the photo (:func:`choose_reference`)."""
        valid = [(i, f.code) for i, f in enumerate(window) if f.code is not None]
        if not valid:
            raise ValueError("no frame with a face to choose a reference from")
        return valid[choose_reference([c for _, c in valid], face)][0]

    def __call__(self, frame: DrivingFrame) -> TargetFace:
        if frame.code is None:
            self.frames_without_face += 1
        else:
            self._last = frame.code
        target = self._retargeter.from_video(self._last, self._reference, self._open_eyes)
        if frame.interior is not None:
            target = replace(target, mouth_interior=frame.interior)
        if self._layout is None or frame.texture is None or self._reference_texture is None:
            return target
        t0 = time.perf_counter()
        shading = self._layout.ratio(frame.texture, self._reference_texture)
        self.shading_seconds += time.perf_counter() - t0
        return replace(target, shading=shading)


def iter_motion_codes(
    path: str | os.PathLike[str],
    fps: float,
    smoothing: SmoothingConfig | None = None,
    clock: StageClock | None = None,
) -> Iterator[MotionCode | None]:
    """One smoothed motion code per driving frame, or None where no usable face was found (see
    :func:`iter_driving`)."""
    for frame in iter_driving(path, fps, smoothing, clock):
        yield frame.code


def record_template(path: str | os.PathLike[str], *, name: str, stride: int = 2) -> MotionTemplate:
    """A motion template capturing a driving video's expressions and head motion."""
    info = probe_video(path)
    codes = [c for c in iter_motion_codes(path, info.fps) if c is not None]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.lower()) or "recorded"
    return template_from_codes(
        codes, fps=info.fps, name=safe[:64], description=f"Recorded from {Path(path).name}", stride=stride
    )
