"""One pass over a consent video: per frame, the tracked face's head pose and blendshapes, how many faces the
identity detector sees, and (at a few moments a second) the face's identity embedding."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from xp_sdk.engine.faces import FaceAnalysis
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.engine.motion import BLENDSHAPE_INDEX, matrix_to_euler
from xp_sdk.engine.tracking import FaceTracker
from xp_sdk.engine.video import DrivingLimits, frame_times, probe_video, read_frames_where
from xp_sdk.errors import NoFaceError

ANALYSIS_MAX_SIDE = 640
IDENTITY_EVERY_SECONDS = 0.5
THUMBNAIL_SIDE = 24
# A consent video is a few seconds of actions and one sentence.
CONSENT_VIDEO_LIMITS = DrivingLimits(max_seconds=60.0, max_frames=3600)
_SIGNALS = {
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "brows": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "blink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "jaw": ("jawOpen",),
}


@dataclass(frozen=True)
class FrameObservation:
    t: float
    faces: int
    """Faces the identity detector (YuNet) sees in this frame; -1 where it was not asked."""
    yaw: float | None
    """Degrees, the template convention (positive: the head turns to its left); None without a tracked face."""
    pitch: float | None
    """Degrees, positive: the head tips down."""
    signals: dict[str, float]
    """smile, brows, blink, jaw: mean blendshape scores of the tracked face."""
    landmarks: np.ndarray | None
    embedding: np.ndarray | None
    thumbnail: np.ndarray


@dataclass
class VideoObservation:
    fps: float
    frames: list[FrameObservation] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.frames[-1].t if self.frames else 0.0


def observe_video(path: str | os.PathLike[str], embedder: IdentityEmbedder) -> VideoObservation:
    """Track the face through every frame; embed it every ``IDENTITY_EVERY_SECONDS``. ``embedder`` is the
    caller's (the service's, behind its lock)."""
    info = probe_video(path)
    times = frame_times(path, limits=CONSENT_VIDEO_LIMITS)
    seen = VideoObservation(fps=info.fps)
    next_identity = 0.0
    with FaceTracker() as tracker:
        for index, rgb in read_frames_where(path, None, max_side=ANALYSIS_MAX_SIDE, limits=CONSENT_VIDEO_LIMITS):
            t = times[index] - times[0] if times is not None and index < len(times) else index / info.fps
            tracked = tracker.detect_all(rgb, timestamp_ms=round(t * 1000))
            face = tracked[0] if len(tracked) == 1 else None
            faces, embedding = -1, None
            if t + 1e-6 >= next_identity:
                next_identity += IDENTITY_EVERY_SECONDS
                boxes = embedder.detect_all(rgb)
                faces = max(len(boxes), len(tracked))
                if face is not None and faces == 1:
                    try:
                        embedding = embedder.embed_face(rgb, face.bbox, name="the consent video")
                    except NoFaceError:
                        embedding = None
            seen.frames.append(_observation(t, faces, face, embedding, rgb))
    return seen


def _observation(
    t: float, faces: int, face: FaceAnalysis | None, embedding: np.ndarray | None, rgb: np.ndarray
) -> FrameObservation:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    thumbnail = cv2.resize(gray, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    if face is None:
        return FrameObservation(t, faces, None, None, {}, None, None, thumbnail)
    pitch, yaw, _ = (math.degrees(a) for a in matrix_to_euler(face.rotation))
    signals = {
        name: float(np.mean([face.blendshapes[BLENDSHAPE_INDEX[b]] for b in shapes]))
        for name, shapes in _SIGNALS.items()
    }
    landmarks = face.landmarks[:, :2] / max(face.inter_ocular, 1e-6)
    return FrameObservation(t, faces, yaw, pitch, signals, landmarks, embedding, thumbnail)
