"""Motion codes: an identity-agnostic description of one driving frame, and how they are made and smoothed.

A :class:`MotionCode` holds the head pose (rotation, translation, scale) and the expression (52 blendshapes and,
for codes measured from video, the 478 landmarks in a canonical pose-free space in inter-ocular units). Codes
from a video are relative to the clip's first analysed frame; codes from a template are relative to the photo's
own pose and expression.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.bounds import SettingsCheck
from xp_sdk.engine.faces import FaceAnalysis

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
BLENDSHAPE_INDEX = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}


@dataclass(frozen=True)
class MotionCode:
    rotation: np.ndarray  # (3,) pitch, yaw, roll in radians, image axes
    translation: np.ndarray  # (2,) in inter-ocular units
    log_scale: float
    blendshapes: np.ndarray  # (52,)
    shape: np.ndarray | None = None  # (478, 3) canonical landmarks in inter-ocular units; None for templates

    def rotation_matrix(self) -> np.ndarray:
        return euler_to_matrix(self.rotation)


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch), image axes (x right, y down, z away from the camera)."""
    pitch, yaw, roll = (float(a) for a in angles)
    cx, sx = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cz, sz = math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx  # type: ignore[no-any-return]


def matrix_to_euler(r: np.ndarray) -> np.ndarray:
    yaw = math.asin(max(-1.0, min(1.0, -float(r[2, 0]))))
    pitch = math.atan2(float(r[2, 1]), float(r[2, 2]))
    roll = math.atan2(float(r[1, 0]), float(r[0, 0]))
    return np.array([pitch, yaw, roll])


def rigid_centre(points: np.ndarray) -> np.ndarray:
    return points[list(topology.RIGID)].mean(axis=0)  # type: ignore[no-any-return]


def canonical_shape(face: FaceAnalysis, anchor: np.ndarray | None = None) -> np.ndarray:
    """Landmarks with head pose removed: centred, de-rotated, in inter-ocular units.

    With ``anchor`` (another canonical shape), the de-rotation is refined so the skull points match the
    anchor's: MediaPipe's pose matrix is a few tenths of a degree noisy, which turns depth into visible
    false expression motion.
    """
    return canonical_and_rotation(face, anchor)[0]


def canonical_and_rotation(face: FaceAnalysis, anchor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    pts = face.landmarks.astype(np.float64)
    rot = face.rotation
    canon = (pts - rigid_centre(pts)) @ rot
    if anchor is None:
        canon /= max(topology.inter_ocular(canon), 1e-6)
        return canon, rot
    # Later frames are scaled to the anchor's skull size, not to their own iris distance: MediaPipe's iris
    # centres drift when the lids close, and a per-frame iris scale turns every blink into a fake zoom of the
    # whole face (chin, mouth and brows move by up to 0.1 inter-ocular units).
    canon *= topology.skull_size(anchor) / max(topology.skull_size(canon), 1e-6)
    refine = kabsch(canon[list(topology.RIGID)], anchor[list(topology.RIGID)])
    canon = canon @ refine
    rot = rot @ refine
    return canon, rot


def kabsch(points: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotation Q minimising |points @ Q - target| (both centred on their mean), each point's error weighted by
    ``weights`` when given."""
    w = np.ones(len(points)) if weights is None else weights
    a = points - (w[:, None] * points).sum(axis=0) / w.sum()
    b = target - (w[:, None] * target).sum(axis=0) / w.sum()
    u, _, vt = np.linalg.svd((a * w[:, None]).T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt  # type: ignore[no-any-return]


MAX_HEAD_LOG_SCALE = 0.06
"""The most a head grows or shrinks on its body (log scale, about 6 %), approached smoothly: a driver leaning
towards the camera would otherwise inflate the photo's head inside a frame whose shoulders stay put."""
MAX_HEAD_SHIFT = 0.3
"""The furthest a head moves across the picture, in inter-ocular units, approached smoothly: the neck and shoulders
follow it only so far (:mod:`xp_sdk.engine.warp`), and a driver walking across the frame is not a portrait's motion."""


def bounded_head_motion(translation: np.ndarray, log_scale: float) -> tuple[np.ndarray, float]:
    """A head shift and log scale limited to :data:`MAX_HEAD_SHIFT` and :data:`MAX_HEAD_LOG_SCALE`, smoothly
    (``limit * tanh(x / limit)``: small motion passes as it is, large motion approaches the limit without a kink)."""
    shift = float(np.linalg.norm(translation))
    kept = MAX_HEAD_SHIFT * math.tanh(shift / MAX_HEAD_SHIFT)
    bounded = translation * (kept / shift) if shift > 1e-12 else translation
    return bounded, MAX_HEAD_LOG_SCALE * math.tanh(log_scale / MAX_HEAD_LOG_SCALE)


class MotionEncoder:
    """Turns the face analyses of a video's frames, in order, into motion codes."""

    def __init__(self) -> None:
        self._origin: tuple[np.ndarray, float, float] | None = None
        self._anchor: np.ndarray | None = None

    @property
    def origin_set(self) -> bool:
        """Whether a face has been encoded yet: every later code is measured from the first."""
        return self._origin is not None

    def encode(self, face: FaceAnalysis) -> MotionCode:
        points = face.landmarks.astype(np.float64)
        centre = rigid_centre(points)[:2]
        # Head size from the skull points (3-D, so turning the head does not shrink it), not the iris distance.
        size = max(topology.skull_size(points), 1e-6)
        shape, rotation = canonical_and_rotation(face, self._anchor)
        if self._origin is None:
            self._origin = (centre, max(face.inter_ocular, 1e-6), size)
            self._anchor = shape
        origin, origin_iod, origin_size = self._origin
        return MotionCode(
            rotation=matrix_to_euler(rotation),
            translation=(centre - origin) / origin_iod,
            log_scale=math.log(size / origin_size),
            blendshapes=face.blendshapes.astype(np.float64),
            shape=shape,
        )


class OneEuroFilter:
    """The One Euro filter (Casiez et al. 2012) over arrays: smooth when still, responsive when moving fast.

    The cutoff rises with speed, so detector jitter at rest is removed while fast lip motion keeps its timing.
    """

    def __init__(self, fps: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        self.dt = 1.0 / fps
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / self.dt)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._x is None or self._dx is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            return x
        dx = (x - self._x) / self.dt
        a_d = self._alpha(self.d_cutoff)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff)
        self._x = a * x + (1 - a) * self._x
        return self._x


MAX_CUTOFF_HZ = 1000.0
MAX_BETA = 1000.0
MAX_LOOKAHEAD_FRAMES = 30
"""A second at 30 fps: each code waits this many frames for its future; more only delays the output."""


@dataclass(frozen=True)
class SmoothingConfig:
    """One Euro parameters per part of the code (speeds are per second, in inter-ocular units or radians)."""

    # Tuned on the shared faces (bench/quality.py): lighter smoothing transfers more expression (less lag);
    # the price is jitter above 1.2× the driving video's own on 4 of 25 pairs (heavier settings: 0 of 25).
    pose_min_cutoff: float = 3.0
    pose_beta: float = 3.0
    shape_min_cutoff: float = 5.0
    shape_beta: float = 10.0
    blendshape_min_cutoff: float = 5.0
    blendshape_beta: float = 1.0
    lookahead_frames: int = 3
    """Frames of the future each code is smoothed with (0: causal, as a live camera needs). A causal One Euro
    filter trails fast motion by about a frame, which on a blink or a syllable is much of the motion; with a
    look-ahead the forward pass is averaged with a backward pass and the two lags cancel."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> SmoothingConfig:
        """This config, or :class:`~xp_sdk.errors.InvalidInputError` naming every setting out of range."""
        check = SettingsCheck(self)
        for part in ("pose", "shape", "blendshape"):
            # A cutoff of 0 Hz never moves; the filter's alpha needs a positive one.
            check.number(f"{part}_min_cutoff", 0.0, MAX_CUTOFF_HZ, above_low=True)
            check.number(f"{part}_beta", 0.0, MAX_BETA)
        check.whole("lookahead_frames", 0, MAX_LOOKAHEAD_FRAMES)
        check.done("smoothing settings")
        return self


def _code_parts(code: MotionCode) -> list[np.ndarray]:
    parts = [np.concatenate([code.rotation, code.translation, [code.log_scale]]), code.blendshapes]
    return parts if code.shape is None else [*parts, code.shape]


def _with_parts(code: MotionCode, parts: list[np.ndarray]) -> MotionCode:
    pose = parts[0]
    return replace(
        code,
        rotation=pose[:3],
        translation=pose[3:5],
        log_scale=float(pose[5]),
        blendshapes=parts[1],
        shape=parts[2] if len(parts) > 2 else None,
    )


class MotionSmoother:
    """Smooths a stream of codes; with a look-ahead, each code comes out ``lookahead_frames`` pushes later.

    ``push`` takes the next code (None for a frame without a face, which ends a run: filters restart after
    it) and returns the codes now ready, in order; ``flush`` returns the rest at the end of the stream.
    """

    def __init__(self, fps: float, config: SmoothingConfig | None = None) -> None:
        self._fps = fps
        self._config = c = config or SmoothingConfig()
        self._params = [
            (c.pose_min_cutoff, c.pose_beta),
            (c.blendshape_min_cutoff, c.blendshape_beta),
            (c.shape_min_cutoff, c.shape_beta),
        ]
        self._forward = self._filters()
        # Codes not yet returned: (code, its parts, the forward filter's value).
        self._pending: deque[tuple[MotionCode, list[np.ndarray], list[np.ndarray]]] = deque()

    def _filters(self) -> list[OneEuroFilter]:
        return [OneEuroFilter(self._fps, cutoff, beta) for cutoff, beta in self._params]

    def push(self, code: MotionCode | None) -> list[MotionCode | None]:
        if code is None:
            ready: list[MotionCode | None] = [*self.flush(), None]
            return ready
        parts = _code_parts(code)
        forward = [f(x) for f, x in zip(self._forward, parts, strict=False)]
        self._pending.append((code, parts, forward))
        return [self._emit() for _ in range(len(self._pending) - self._config.lookahead_frames)]

    def flush(self) -> list[MotionCode | None]:
        ready: list[MotionCode | None] = [self._emit() for _ in range(len(self._pending))]
        self._forward = self._filters()
        return ready

    def _emit(self) -> MotionCode:
        code, parts, forward = self._pending[0]
        if self._config.lookahead_frames == 0:
            self._pending.popleft()
            return _with_parts(code, forward)
        # A fresh filter run backwards from the newest pending code lags the other way; the mean cancels.
        backward = self._filters()
        value = parts
        for _, later, _ in reversed(self._pending):
            value = [f(x) for f, x in zip(backward, later, strict=False)]
        self._pending.popleft()
        return _with_parts(code, [(a + b) / 2.0 for a, b in zip(forward, value, strict=True)])


def smooth(
    codes: Iterable[MotionCode | None], fps: float, config: SmoothingConfig | None = None
) -> Iterator[MotionCode | None]:
    """The codes smoothed, one out for each in, Nones kept in place."""
    smoother = MotionSmoother(fps, config)
    for code in codes:
        yield from smoother.push(code)
    yield from smoother.flush()
