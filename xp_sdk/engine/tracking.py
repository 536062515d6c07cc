"""Face tracking through a video: the FaceLandmarker's own models, run on a crop found from the previous frame.

MediaPipe's video mode does the same work (detect once, then crop each frame around the last landmarks and run the
landmark and blendshape models) but takes about 12 ms a frame on this project's 2-core target, of which the two
models need 6: the rest is its graph scheduler and building Python result objects. :class:`FaceTracker` runs
those two models itself through LiteRT (the runtime MediaPipe embeds, shipped on PyPI as ``ai-edge-litert``),
read from the same sha256-pinned ``face_landmarker.task``, and keeps MediaPipe for what happens once: finding a
face in the first frame, or again after it was lost.

It reproduces MediaPipe's tracking step by step, so motion codes stay as the encoder and its filters were tuned on:
the rotated square crop (1.5 × the landmarks' box, turned by the line through the eye corners 33 and 263), the
projection back to the frame, the face-presence test, the One Euro landmark smoothing of video mode (the next
crop is found from the unsmoothed landmarks), and the 146 landmarks the blendshape model reads. On the shared
clips its landmarks are within 0.0004 inter-ocular units of MediaPipe's (bench/tracking.py).

The head pose of a tracked frame is the rotation that carries its skull landmarks onto the detected frame's
(weighted as MediaPipe's pose solver weighs them), composed with the detected frame's pose: MediaPipe solves it
in a perspective camera model, this in the image plane. The motion encoder re-fits every frame's rotation to its
first frame's skull anyway, so codes do not depend on the difference.
"""

from __future__ import annotations

import functools
import math
import os
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer, next_timestamp
from xp_sdk.engine.models import FACE_LANDMARKER, resolve_model
from xp_sdk.engine.motion import kabsch
from xp_sdk.errors import EngineError

_CROP = 256
_CROP_SCALE = 1.5
_MIN_PRESENCE = 0.5
# The presence output is a logit: comparing it with the threshold's logit avoids the sigmoid (and its overflow).
_MIN_PRESENCE_LOGIT = math.log(_MIN_PRESENCE / (1.0 - _MIN_PRESENCE))
# MediaPipe's video-mode landmark filter (face_landmarks_detector_graph.cc).
_SMOOTH_MIN_CUTOFF = 0.05
_SMOOTH_BETA = 80.0
_SMOOTH_D_CUTOFF = 1.0
_SMOOTH_FIRST_HZ = 30.0

# The landmarks the blendshape model reads, in its order (face_blendshapes_graph.cc).
_BLENDSHAPE_INPUT = np.array((
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78,
    80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152,
    153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312,
    314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381,
    382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477,
))  # fmt: skip

# MediaPipe's pose solver weights (geometry_pipeline_metadata_landmarks): skull points, none on the mouth.
_POSE_WEIGHTS = {
    4: 0.0709, 6: 0.0321, 10: 0.00845, 33: 0.0587, 263: 0.0587, 54: 0.00767, 284: 0.00767, 67: 0.00908,
    297: 0.00908, 117: 0.00979, 346: 0.00979, 119: 0.01457, 348: 0.01457, 121: 0.01859, 350: 0.01859,
    127: 0.0052, 356: 0.0052, 129: 0.1206, 358: 0.1206, 132: 0.00556, 361: 0.00556, 133: 0.05329, 362: 0.05329,
    136: 0.06689, 365: 0.06689, 143: 0.01482, 372: 0.01482, 147: 0.01426, 376: 0.01426, 198: 0.02546,
    420: 0.02546, 205: 0.04725, 425: 0.04725,
}  # fmt: skip
_POSE_POINTS = np.array(sorted(_POSE_WEIGHTS))
_POSE_W = np.array([_POSE_WEIGHTS[i] for i in sorted(_POSE_WEIGHTS)])


class VideoFaceAnalyzer(Protocol):
    """What the driving analysis needs: the frames of one video in order, each with its face (or none)."""

    def detect_all(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> list[FaceAnalysis]: ...

    def close(self) -> None: ...


TRACKING_ENV = "XP_FACE_TRACKING"
"""Environment variable choosing how driving videos are tracked: ``auto`` (the default: :class:`FaceTracker` where
LiteRT imports, else MediaPipe), ``litert`` (FaceTracker or an error) or ``mediapipe`` (MediaPipe's video mode)."""


@functools.cache
def tracker_available() -> bool:
    """Whether LiteRT imports here, so :class:`FaceTracker` can run (a wheel can be installed and still fail to
    load its native library)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def open_video_analyzer(model_path: str | os.PathLike[str] | None = None) -> VideoFaceAnalyzer:
    """The analyzer for a driving video, as ``XP_FACE_TRACKING`` chooses (:data:`TRACKING_ENV`).

    MediaPipe's video mode finds the same landmarks, 1.4–1.7× slower; choosing it is the way round a LiteRT that
    misbehaves on some platform.
    """
    choice = os.environ.get(TRACKING_ENV, "").strip().lower() or "auto"
    if choice not in ("auto", "litert", "mediapipe"):
        raise EngineError(f"{TRACKING_ENV}={choice!r} is not a tracking choice; use auto, litert or mediapipe")
    if choice == "litert" and not tracker_available():
        raise EngineError(
            f"{TRACKING_ENV}=litert, but ai-edge-litert does not import here: install it "
            f"(pip install 'ai-edge-litert>=2.0') or unset {TRACKING_ENV}"
        )
    if choice == "mediapipe" or not tracker_available():
        return FaceAnalyzer(video=True, max_faces=1, model_path=model_path)
    return FaceTracker(model_path=model_path)


class FaceTracker:
    """One face through the frames of one video, in order, as MediaPipe's video mode with one face finds it.

    Use it as a context manager or call :meth:`close`. ``threads`` is LiteRT's thread count: one, because the
    engine runs the generator on the other core.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = resolve_model(FACE_LANDMARKER, model_path)
        landmarks_model, blendshapes_model = _read_bundle(path)
        self._landmarks = Interpreter(model_content=landmarks_model, num_threads=threads)
        self._blendshapes = Interpreter(model_content=blendshapes_model, num_threads=threads)
        self._landmarks.allocate_tensors()
        self._blendshapes.allocate_tensors()
        self._landmarks_in = self._landmarks.get_input_details()[0]["index"]
        outputs = self._landmarks.get_output_details()
        # MediaPipe splits the outputs by position: landmarks first, face presence second.
        self._landmarks_out, self._presence_out = outputs[0]["index"], outputs[1]["index"]
        self._blendshapes_in = self._blendshapes.get_input_details()[0]["index"]
        self._blendshapes_out = self._blendshapes.get_output_details()[0]["index"]
        self._detector: FaceAnalyzer | None = FaceAnalyzer(video=False, max_faces=1, model_path=path)
        self._raw: np.ndarray | None = None  # the last frame's unsmoothed landmarks: the next crop comes from them
        self._detected: tuple[np.ndarray, FaceAnalysis] | None = None  # its pose points, the detected face
        self._smoother = _LandmarkSmoother()
        self._last_ts = -1

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def detect_all(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> list[FaceAnalysis]:
        """The face in this frame (a list of at most one, like :meth:`FaceAnalyzer.detect_all`)."""
        if self._detector is None:
            raise EngineError("FaceTracker is closed")
        ts = self._last_ts = next_timestamp(self._last_ts, timestamp_ms)
        height, width = rgb.shape[:2]
        if self._raw is None:
            faces = self._detector.detect_all(rgb)
            if not faces:
                self._smoother.reset()
                return []
            face = faces[0]
            raw = face.landmarks.astype(np.float64)
            self._detected = (raw[_POSE_POINTS], face)
        else:
            found = self._run_landmarks(rgb, self._raw)
            if found is None:
                # As in MediaPipe: this frame has no face, and the next one is searched whole.
                self._raw = None
                self._smoother.reset()
                return []
            raw = found
        self._raw = raw
        smoothed = self._smoother(raw, ts)
        return [
            FaceAnalysis(
                landmarks=smoothed.astype(np.float32),
                blendshapes=self._run_blendshapes(smoothed),
                pose=self._pose(smoothed),
                image_size=(width, height),
            )
        ]

    def _run_landmarks(self, rgb: np.ndarray, previous: np.ndarray) -> np.ndarray | None:
        to_frame = _crop_transform(previous)
        crop = cv2.warpAffine(
            rgb,
            to_frame,
            (_CROP, _CROP),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        self._landmarks.set_tensor(self._landmarks_in, (crop[None].astype(np.float32) * np.float32(1 / 255)))
        self._landmarks.invoke()
        logit = float(self._landmarks.get_tensor(self._presence_out).ravel()[0])
        if logit <= _MIN_PRESENCE_LOGIT:
            return None
        raw: np.ndarray = self._landmarks.get_tensor(self._landmarks_out).reshape(-1, 3).astype(np.float64)
        points = np.empty_like(raw)
        points[:, :2] = raw[:, :2] @ to_frame[:, :2].T + to_frame[:, 2]
        # Depth is scaled as x is: by the crop's side over the model's input size.
        points[:, 2] = raw[:, 2] * math.hypot(to_frame[0, 0], to_frame[1, 0])
        return points

    def _run_blendshapes(self, landmarks: np.ndarray) -> np.ndarray:
        self._blendshapes.set_tensor(self._blendshapes_in, landmarks[None, _BLENDSHAPE_INPUT, :2].astype(np.float32))
        self._blendshapes.invoke()
        scores: np.ndarray = self._blendshapes.get_tensor(self._blendshapes_out).reshape(-1).astype(np.float32)
        return scores

    def _pose(self, landmarks: np.ndarray) -> np.ndarray:
        assert self._detected is not None
        reference, detected = self._detected
        # The rotation R with (points - centre) @ R = the detected frame's canonical points.
        turn = kabsch(landmarks[_POSE_POINTS], reference, _POSE_W)
        return detected.with_rotation(turn @ detected.rotation)


def _read_bundle(path: Path) -> tuple[bytes, bytes]:
    """The landmark and blendshape models inside the pinned FaceLandmarker bundle (a zip)."""
    with zipfile.ZipFile(path) as bundle:
        return bundle.read("face_landmarks_detector.tflite"), bundle.read("face_blendshapes.tflite")


def _crop_transform(landmarks: np.ndarray) -> np.ndarray:
    """The 2×3 affine taking crop pixels (0…256) to frame pixels: a square of 1.5 × the landmarks' longer side
    around their box's centre, turned so the eye corners lie level."""
    x0, y0 = landmarks[:, :2].min(axis=0)
    x1, y1 = landmarks[:, :2].max(axis=0)
    a, b = landmarks[list(topology.OUTER_EYE_CORNERS), :2]
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    step = max(x1 - x0, y1 - y0) * _CROP_SCALE / _CROP
    c, s = math.cos(angle) * step, math.sin(angle) * step
    half = _CROP / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[c, -s, cx - half * (c - s)], [s, c, cy - half * (s + c)]])


class _LandmarkSmoother:
    """MediaPipe's video-mode landmark filter: a One Euro filter per coordinate, its speed measured in face sizes
    a second, its rate taken from the timestamps.

    Not :class:`~xp_sdk.engine.motion.OneEuroFilter`: MediaPipe takes the speed from the previous raw value (not
    the filtered one), scales it by the face's size and reads the rate from timestamps, and matching it exactly is
    what keeps the tracker's landmarks on MediaPipe's."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._raw: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._last_ts: int | None = None
        self._hz = _SMOOTH_FIRST_HZ

    def __call__(self, points: np.ndarray, timestamp_ms: int) -> np.ndarray:
        """``points`` in pixels (depth on the x scale), as MediaPipe converts them before filtering."""
        if self._last_ts is not None and self._last_ts > 0:
            self._hz = 1000.0 / (timestamp_ms - self._last_ts)
        self._last_ts = timestamp_ms
        xy = points[:, :2]
        extent = xy.max(axis=0) - xy.min(axis=0)
        scale = 1.0 / max(float(extent.mean()), 1e-6)
        if self._x is None or self._raw is None or self._dx is None:
            self._x, self._raw, self._dx = points.copy(), points.copy(), np.zeros_like(points)
            return points
        speed = (points - self._raw) * (scale * self._hz)
        self._dx = self._dx + _alpha(_SMOOTH_D_CUTOFF, self._hz) * (speed - self._dx)
        alpha = _alpha(_SMOOTH_MIN_CUTOFF + _SMOOTH_BETA * np.abs(self._dx), self._hz)
        self._x = self._x + alpha * (points - self._x)
        self._raw = points.copy()
        return self._x


def _alpha(cutoff: Any, hz: float) -> Any:
    return 1.0 / (1.0 + hz / (2 * math.pi * cutoff))
