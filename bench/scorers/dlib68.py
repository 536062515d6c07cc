"""An animation scorer independent of the engine: dlib's HOG face detector, its 68-point shape predictor and
its ResNet face encoder (PyPI ``dlib-bin`` + ``face-recognition-models``). It shares no model with the engine
(MediaPipe FaceLandmarker, YuNet, SFace), so the engine cannot grade its own mistakes through it.

The measures mirror :mod:`xp_sdk.engine.evaluate`, on 68 points in 2-D:

pose-free shape (per frame)
    The points are aligned with a similarity transform (Procrustes: shift, rotation, scale) on the ``RIGID``
    points (nose bridge and tip, eye corners) onto the track's first shape, which is centred on its rigid
    points and scaled to inter-ocular units (distance between the two eye centres). The ``EXPRESSIVE`` points
    (brows, eyes, mouth) are kept.
expression_error / expression_static / expression_ratio
    As the engine's: each track is centred on its temporal mean over the frames where both videos have a face;
    the error is the mean distance between the output's centred points and the driving's, the static baseline
    (the photo repeated unchanged, which centres to zero) is the mean norm of the driving's centred points.
jitter / jitter_driving / jitter_ratio
    Mean norm of the second temporal difference of the pose-free points over runs of three frames with a face.
identity
    Euclidean distance between the encoder's 128-d descriptors of the photo and of output frames; dlib's
    convention is that below ``SAME_PERSON_DISTANCE`` (0.6) two faces are the same person. A sampled output
    frame without a face counts as not kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from xp_sdk.engine.models import PinnedModel, resolve_model
from xp_sdk.errors import NoFaceError

SHAPE_PREDICTOR_68 = PinnedModel(
    name="dlib_shape_predictor_68",
    package="face_recognition_models",
    relative_path="models/shape_predictor_68_face_landmarks.dat",
    sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
    env_override="XP_BENCH_DLIB68_MODEL",
)
FACE_ENCODER = PinnedModel(
    name="dlib_face_recognition_resnet_v1",
    package="face_recognition_models",
    relative_path="models/dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    env_override="XP_BENCH_DLIB_ENCODER_MODEL",
)
SAME_PERSON_DISTANCE = 0.6

RIGID = [27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45]
EXPRESSIVE = list(range(17, 27)) + list(range(36, 48)) + list(range(48, 68))
_WINDOW_SIDE = 320  # the face about 107 px, above the HOG detector's 80 px minimum
# The detector's box in inter-ocular units, relative to the RIGID points' mean (measured on lp_d18 and
# sadtalker_wda_aoc: side 2.1-2.6, centre 0.1-0.26 below).
_BOX_SIDE = 2.4
_BOX_DROP = 0.2
_REFINE_STEPS = 2
_LEFT_EYE = list(range(36, 42))
_RIGHT_EYE = list(range(42, 48))

Track = list[np.ndarray | None]
"""Pose-free ``EXPRESSIVE`` points per frame, (len(EXPRESSIVE), 2) in inter-ocular units, None without a face."""


@dataclass(frozen=True)
class MotionScore:
    frames_compared: int
    frames_scored: int
    expression_error: float
    expression_static: float
    expression_ratio: float | None
    jitter: float | None
    jitter_driving: float | None
    jitter_ratio: float | None


@dataclass(frozen=True)
class IdentityScore:
    frames: int
    frames_without_face: int
    distance_mean: float
    distance_max: float
    kept: bool


class Dlib68Scorer:
    """Landmarks, pose-free tracks, expression/jitter and identity with dlib's models only."""

    def __init__(self, detect_side: int = 512) -> None:
        import dlib  # type: ignore[import-untyped]  # dlib-bin ships no type information

        self._dlib: Any = dlib
        self._detector: Any = dlib.get_frontal_face_detector()
        self._predictor: Any = dlib.shape_predictor(str(resolve_model(SHAPE_PREDICTOR_68)))
        self._encoder: Any = dlib.face_recognition_model_v1(str(resolve_model(FACE_ENCODER)))
        self._detect_side = detect_side

    def _detect(self, rgb: np.ndarray, near: np.ndarray | None = None) -> Any | None:
        """The largest face's rectangle in full-resolution pixels, or None. Where the whole frame has none at
        the detector's own scale, ``near`` (the previous frame's 68 points) points to a window three faces wide
        around them, searched scaled to _WINDOW_SIDE: it finds a face too small for the whole frame, cheaply."""
        # The whole frame at one fixed scale first: the predictor follows its box, and a box found at the same
        # scale every frame keeps the points steady (a window that follows the face doubled the noise floor).
        found = self._detect_in(rgb, self._detect_side, upsamples=(0,), upscale=False)
        if found is None and near is not None:
            x0, y0 = near.min(axis=0)
            x1, y1 = near.max(axis=0)
            half = max(x1 - x0, y1 - y0)
            left, top = max(0, round(x0 - half)), max(0, round(y0 - half))
            window = rgb[top : round(y1 + half), left : round(x1 + half)]
            if window.size:
                box = self._detect_in(window, _WINDOW_SIDE, upsamples=(0,), upscale=True)
                if box is not None:
                    return self._dlib.rectangle(
                        box.left() + left, box.top() + top, box.right() + left, box.bottom() + top
                    )
        if found is None:
            found = self._detect_in(rgb, self._detect_side, upsamples=(1,), upscale=False)
        if found is None and max(rgb.shape[:2]) > self._detect_side:
            # A small face in a large photo: search at twice the size before giving up.
            found = self._detect_in(rgb, 2 * self._detect_side, upsamples=(0, 1), upscale=False)
        return found

    def _detect_in(self, rgb: np.ndarray, side: float, upsamples: tuple[int, ...], upscale: bool) -> Any | None:
        scale = side / max(rgb.shape[:2])
        if not upscale:
            scale = min(1.0, scale)
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        small = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=interpolation)
        for upsample in upsamples:
            rects = self._detector(np.ascontiguousarray(small), upsample)
            if len(rects):
                best = max(rects, key=lambda r: r.width() * r.height())
                return self._dlib.rectangle(
                    round(best.left() / scale), round(best.top() / scale),
                    round(best.right() / scale), round(best.bottom() / scale),
                )  # fmt: skip
        return None

    def landmarks(self, rgb: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray | None:
        """dlib's 68 points (pixels) of the largest face; ``hint``, the previous frame's points, narrows the
        search and stands in for the detector's box where it misses, as a tracker would."""
        rect = self._detect(rgb, hint)
        if rect is None and hint is not None:
            x0, y0 = hint.min(axis=0)
            x1, y1 = hint.max(axis=0)
            rect = self._dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
        if rect is None:
            return None
        image = np.ascontiguousarray(rgb)
        points = self._predict(image, rect)
        # The detector's box varies by a fifth of its size between near-identical frames (it is found on a
        # coarse grid of scales), and the predictor's points follow the box. Predicting again from a box set by
        # the points themselves (stable nose and eye corners) takes that noise out.
        for _ in range(_REFINE_STEPS):
            points = self._predict(image, self._box_around(points))
        return points

    def _predict(self, image: np.ndarray, rect: Any) -> np.ndarray:
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def _box_around(self, points: np.ndarray) -> Any:
        size = _eye_distance(points)
        cx, cy = points[RIGID].mean(axis=0) + np.array([0.0, _BOX_DROP * size])
        half = _BOX_SIDE * size / 2
        return self._dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))

    def landmark_track(self, frames: Iterable[np.ndarray]) -> list[np.ndarray | None]:
        found: list[np.ndarray | None] = []
        hint: np.ndarray | None = None
        for rgb in frames:
            hint = self.landmarks(rgb, hint)
            found.append(hint)
        return found

    def track(self, frames: Iterable[np.ndarray]) -> Track:
        return pose_free(self.landmark_track(frames))

    def embed(self, rgb: np.ndarray, points: np.ndarray | None = None) -> np.ndarray | None:
        """The face encoder's 128-d descriptor of the face at ``points`` (found here when not given)."""
        if points is None:
            points = self.landmarks(rgb)
        if points is None:
            return None
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        rect = self._dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
        parts = self._dlib.points([self._dlib.point(round(x), round(y)) for x, y in points])
        shape = self._dlib.full_object_detection(rect, parts)
        descriptor = self._encoder.compute_face_descriptor(np.ascontiguousarray(rgb), shape, 0)
        return np.asarray(descriptor, dtype=np.float64)

    def _embed_known(self, rgb: np.ndarray, points: np.ndarray | None) -> np.ndarray | None:
        return None if points is None else self.embed(rgb, points)

    def identity(
        self, photo_rgb: np.ndarray, frames: Iterable[np.ndarray], points: Iterable[np.ndarray | None] | None = None
    ) -> IdentityScore:
        """Descriptor distances of ``frames`` to the photo; ``points``, the frames' 68 points where known
        (a frame whose points are None has no face)."""
        reference = self.embed(photo_rgb)
        if reference is None:
            raise NoFaceError("dlib's detector finds no face in the source photo")
        distances: list[float] = []
        missing = 0
        known = iter(points) if points is not None else None
        for rgb in frames:
            descriptor = self.embed(rgb) if known is None else self._embed_known(rgb, next(known))
            if descriptor is None:
                missing += 1
                continue
            distances.append(float(np.linalg.norm(descriptor - reference)))
        worst = max(distances) if distances else math.inf
        return IdentityScore(
            frames=len(distances) + missing,
            frames_without_face=missing,
            distance_mean=float(np.mean(distances)) if distances else math.inf,
            distance_max=worst,
            kept=missing == 0 and worst < SAME_PERSON_DISTANCE,
        )


def pose_free(found: list[np.ndarray | None]) -> Track:
    """68-point tracks in pixels to pose-free EXPRESSIVE points (see the module docstring)."""
    anchor: np.ndarray | None = None
    shapes: Track = []
    for points in found:
        if points is not None and anchor is None:
            anchor = _first_shape(points)
        shapes.append(None if points is None or anchor is None else _align(points, anchor)[EXPRESSIVE])
    return shapes


def _eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[_LEFT_EYE].mean(axis=0) - points[_RIGHT_EYE].mean(axis=0)))


def _first_shape(points: np.ndarray) -> np.ndarray | None:
    size = _eye_distance(points)
    if not math.isfinite(size) or size <= 1e-6:
        return None
    centred: np.ndarray = (points - points[RIGID].mean(axis=0)) / size
    return centred


def _align(points: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """``points`` mapped onto ``anchor`` by the similarity transform that best fits their RIGID points."""
    src = points[RIGID]
    dst = anchor[RIGID]
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    a = src - src_mean
    b = dst - dst_mean
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    correction = np.diag([1.0, d])
    rotation = u @ correction @ vt
    scale = float((s * np.diag(correction)).sum() / (a**2).sum())
    aligned: np.ndarray = (points - src_mean) @ rotation * scale + dst_mean
    return aligned


def compare(driving: Track, output: Track) -> MotionScore:
    """Expression and jitter of ``output`` against ``driving``, frame ``i`` with frame ``i`` (see the module)."""
    compared = min(len(driving), len(output))
    scored = [i for i in range(compared) if driving[i] is not None and output[i] is not None]
    if not scored:
        raise NoFaceError(f"no frame pair of the {compared} compared has a face in both videos (dlib)")
    drv = np.stack([np.asarray(driving[i]) for i in scored])
    out = np.stack([np.asarray(output[i]) for i in scored])
    drv_centred = drv - drv.mean(axis=0)
    out_centred = out - out.mean(axis=0)
    error = float(np.linalg.norm(out_centred - drv_centred, axis=2).mean())
    static = float(np.linalg.norm(drv_centred, axis=2).mean())
    jitter = track_jitter(output[:compared])
    jitter_driving = track_jitter(driving[:compared])
    return MotionScore(
        frames_compared=compared,
        frames_scored=len(scored),
        expression_error=error,
        expression_static=static,
        expression_ratio=error / static if static > 0 else None,
        jitter=jitter,
        jitter_driving=jitter_driving,
        jitter_ratio=None if jitter is None or not jitter_driving else jitter / jitter_driving,
    )


def track_jitter(shapes: Track) -> float | None:
    values = []
    for t in range(1, len(shapes) - 1):
        prev, cur, nxt = shapes[t - 1], shapes[t], shapes[t + 1]
        if prev is None or cur is None or nxt is None:
            continue
        values.append(float(np.linalg.norm(nxt - 2.0 * cur + prev, axis=1).mean()))
    return float(np.mean(values)) if values else None
