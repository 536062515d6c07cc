"""Retargeting: driving motion applied, relatively, to the photo's own face.

A driving frame is compared with a driving *reference* frame, and only the difference is applied to the photo:
the photo keeps its identity, its proportions and its resting expression. The reference is chosen
automatically as the driving frame whose pose and expression best match the photo among the clip's typical
frames, so a clip that starts mid-smile or turned away does not leave a permanent offset on the result, and a
rare extreme frame that happens to match the photo does not shift the whole clip the other way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalysis
from xp_sdk.engine.motion import (
    BLENDSHAPE_INDEX,
    BLENDSHAPE_NAMES,
    MotionCode,
    bounded_head_motion,
    canonical_shape,
    euler_to_matrix,
    rigid_centre,
)
from xp_sdk.engine.rig import ExpressionRig, eye_ratios
from xp_sdk.engine.shading import ShadingRatio

# Blendshapes that describe the visible expression; gaze and the neutral score say little about a match.
_MATCH_BLENDSHAPES = np.array(
    [
        i
        for name, i in BLENDSHAPE_INDEX.items()
        if name != "_neutral" and not name.startswith("eyeLook")
    ]
)


# What a clip typically looks like, without blinks and squints: a clip may keep its eyes shut most of the
# time (lp_d1), but a closed-eyed reference makes every opening an explosion of the photo's eyes.
_TYPICAL_BLENDSHAPES = np.array(
    [i for i in _MATCH_BLENDSHAPES if not BLENDSHAPE_NAMES[i].startswith(("eyeBlink", "eyeSquint"))]
)


# Blendshapes of a held, emotional expression (a grin, a frown, raised or knit brows), as against speech.
_HELD_BLENDSHAPES = np.array(
    [
        i
        for name, i in BLENDSHAPE_INDEX.items()
        if name.startswith(
            ("mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "cheekSquint", "brow", "noseSneer")
        )
    ]
)

# Reference candidates scoring within this of the best match are near-equal (most_faithful); a few at most.
REFERENCE_SLACK = 0.1
REFERENCE_CANDIDATES = 8
# A reference losing 5 % more of the clip's motion counts as a match 0.1 worse: enough to pass over a frame
# caught mid-closure (7 % lost), not enough for the last digits of the loss to pick among equals.
REFERENCE_LOSS_WEIGHT = 2.0
# A reference holding an expression (held_expression) more than HELD_SLACK beyond the driver's rest scores
# REST_WEIGHT worse for each unit beyond: on a clip that grins throughout (dreamtalk_mead_w009_happy) a grinning
# reference played the grin as the photo's rest and the driver's rest as a pout. Within the slack, frames are
# equally at rest: a faint smile is no reason to pass over a better match.
HELD_SLACK = 0.2
REST_WEIGHT = 2.0
# The driver's rest, per blendshape: this low a percentile of the clip (a brow that reads raised all along is the
# driver's face, not an expression; a blendshape's lowest reading alone is one noisy frame).
REST_PERCENTILE = 5.0
_EXPRESSIVE = list(topology.EXPRESSIVE)
# A photo's jaw open (jawOpen) more than this beyond the reference's is a held expression (a scream, a yawn) that
# the driver's rest should close: measured from it, the photo screamed through every closed-mouth frame.
HELD_JAW_SLACK = 0.3
_JAW_OPEN = BLENDSHAPE_INDEX["jawOpen"]


def _expressive(code: MotionCode) -> np.ndarray:
    if code.shape is None:
        raise ValueError("video retargeting needs codes with canonical shapes")
    return code.shape[_EXPRESSIVE, :2]


# An eye at least this share as open as the clip's widest counts as open (see open_eye_openings).
_OPEN_EYE_SHARE = 0.6


@dataclass(frozen=True)
class RetargetOptions:
    expression_scale: float = 1.0
    pose_scale: float = 1.0
    # Eyes: follow the driving eyelid opening as a ratio, so a driver's blink closes eyes of any size.
    relative_eyes: bool = True


@dataclass(frozen=True)
class TargetFace:
    """Where the photo's landmarks go in one output frame (pixels of the working image), and how its shading
    changes."""

    landmarks: np.ndarray  # (478, 2)
    rotation: np.ndarray  # (3, 3) output head rotation
    centre: np.ndarray  # (2,) output head centre
    scale: float  # output inter-ocular distance in pixels
    canonical: np.ndarray | None = None
    """(478, 3) the target's pose-free shape (inter-ocular units), for measuring the expression it asks for."""
    shading: ShadingRatio | None = None
    """The driver's expression shading for this frame (:mod:`xp_sdk.engine.shading`); None leaves it as is."""
    mouth_interior: np.ndarray | None = None
    """The driver's mouth interior for this frame (:mod:`xp_sdk.engine.interior`); None paints a generic one."""


def reference_distance(code: MotionCode, source: FaceAnalysis) -> float:
    """How far a driving frame is from the photo in pose (radians) and expression (blendshape distance)."""
    rel = code.rotation_matrix().T @ source.rotation
    angle = math.acos(max(-1.0, min(1.0, (float(np.trace(rel)) - 1) / 2)))
    expr = float(np.linalg.norm(code.blendshapes[_MATCH_BLENDSHAPES] - source.blendshapes[_MATCH_BLENDSHAPES]))
    return 2.0 * angle + expr


def choose_reference(
    codes: Sequence[MotionCode],
    source: FaceAnalysis,
    typicality: float = 1.0,
    *,
    retargeter: Retargeter | None = None,
    open_eyes: tuple[float, float] | None = None,
) -> int:
    """Index of the code closest to the photo's pose and expression, among the clip's typical frames.

    The reference is what the photo is taken to be doing: every other frame is applied as its difference from
    it. The single closest frame is often a rare extreme (a wide-eyed frame matching a wide-eyed photo) and
    then the whole clip plays as the opposite on the photo: eyes at 70 % for the rest of the clip, the person
    hard to recognise. ``typicality`` weighs each frame's expression distance from the clip's median
    expression against its distance from the photo (on the shared faces: identity minimum 0.59 → 0.77 on
    lp_d7 × lp_d30, expression ratio as good or better); 0 picks the closest frame alone. With a
    ``retargeter`` (for ``source``), near-equal matches are told apart by :func:`most_faithful`.
    """
    scores = reference_scores(codes, source, typicality)
    if retargeter is None:
        return int(np.argmin(scores))
    return most_faithful(codes, scores, codes, retargeter, open_eyes)


def most_faithful(
    candidates: Sequence[MotionCode],
    scores: np.ndarray,
    clip: Sequence[MotionCode],
    retargeter: Retargeter,
    open_eyes: tuple[float, float] | None = None,
) -> int:
    """Index in ``candidates`` of the best reference among the few scoring within ``REFERENCE_SLACK`` of the
    best match, once what each loses of ``clip``'s motion (:meth:`Retargeter.expression_loss`) is added to its
    score, ``REFERENCE_LOSS_WEIGHT`` to one.

    Matches that near are equally good guesses at what the photo is doing, but not equally good references: one
    caught as the mouth closes makes every closed frame press the photo's lips together, where they stop (on
    lp_d18 × lp_d8, frame 156 loses 7 % of the clip's motion, frame 158 under 1 %; expression ratio 0.38 and
    0.29).
    """
    order = [int(i) for i in np.argsort(scores, kind="stable")[:REFERENCE_CANDIDATES]]
    near = [i for i in order if scores[i] <= scores[order[0]] + REFERENCE_SLACK]
    totals = [
        scores[i] + REFERENCE_LOSS_WEIGHT * retargeter.expression_loss(clip, candidates[i], open_eyes) for i in near
    ]
    return near[int(np.argmin(totals))]


def reference_scores(
    codes: Sequence[MotionCode],
    source: FaceAnalysis,
    typicality: float = 1.0,
    typical: np.ndarray | None = None,
    rest: np.ndarray | None = None,
) -> np.ndarray:
    """Each code's score as a reference for ``source`` (:func:`choose_reference` takes the lowest).

    ``typical`` and ``rest``: the clip's :func:`typical_expression` and :func:`rest_level`, when ``codes`` are only
    some of its frames.
    """
    if not codes:
        raise ValueError("no motion codes to choose a reference from")
    expressions = np.stack([code.blendshapes[_TYPICAL_BLENDSHAPES] for code in codes])
    if typical is None:
        typical = typical_expression(codes)
    # Only expression beyond the clip's usual counts as atypical: a frame nearer rest than the usual face is rarer
    # but no extreme, and a better reference (a clip that grins throughout made its grin the photo's rest).
    atypical = np.linalg.norm(np.maximum(expressions - typical, 0.0), axis=1)
    distances = np.array([reference_distance(code, source) for code in codes])
    beyond_rest = np.maximum(held_expression(codes, rest_level(codes) if rest is None else rest) - HELD_SLACK, 0.0)
    return distances + typicality * (atypical + REST_WEIGHT * beyond_rest)  # type: ignore[no-any-return]


def rest_level(codes: Sequence[MotionCode]) -> np.ndarray:
    """The driver's rest: per held-expression blendshape, its ``REST_PERCENTILE`` over ``codes``."""
    return np.percentile(np.stack([code.blendshapes[_HELD_BLENDSHAPES] for code in codes]), REST_PERCENTILE, axis=0)  # type: ignore[no-any-return]


def held_expression(codes: Sequence[MotionCode], rest: np.ndarray) -> np.ndarray:
    """How far each code holds an emotional expression beyond the driver's ``rest`` (:func:`rest_level`): its
    smile, frown, brow and sneer blendshapes above rest. The reference is what the photo's own face stands for,
    so it should be the driver at rest, whatever the photo does. Speech (jaw, lip shapes) is left out: a closed
    mouth presses and rolls its lips as much as an open one moves them, and :func:`most_faithful` weighs lips."""
    held = np.stack([code.blendshapes[_HELD_BLENDSHAPES] for code in codes])
    return np.linalg.norm(np.maximum(held - rest, 0.0), axis=1)  # type: ignore[no-any-return]


def typical_expression(codes: Sequence[MotionCode]) -> np.ndarray:
    """The clip's median expression (blinks and squints left out), which a reference should be close to."""
    return np.median(np.stack([code.blendshapes[_TYPICAL_BLENDSHAPES] for code in codes]), axis=0)  # type: ignore[no-any-return]


def open_eye_openings(codes: Sequence[MotionCode]) -> tuple[float, float]:
    """Per eye, the driver's usual opening when the eye is open: the median over frames at least 60 % as
    open as the widest.

    The photo's eyes follow the driver's as a ratio of this, not of the reference frame's: a reference caught
    mid-blink made every opening an explosion of the photo's eyes, and a wide-eyed one (the best match for a
    wide-eyed photo) held them at 70 % for the whole clip.
    """
    shapes = [code.shape for code in codes if code.shape is not None]
    if not shapes:
        raise ValueError("no motion codes with landmark shapes")
    usual = []
    for eye in (0, 1):
        openings = np.array([topology.eye_opening(shape, eye) for shape in shapes])
        usual.append(float(np.median(openings[openings >= _OPEN_EYE_SHARE * openings.max()])))
    return usual[0], usual[1]


class Retargeter:
    def __init__(self, source: FaceAnalysis, options: RetargetOptions | None = None) -> None:
        self.options = options or RetargetOptions()
        pts = source.landmarks.astype(np.float64)
        self.source = source
        self._points = pts
        self._centre = rigid_centre(pts)
        self._rotation = source.rotation
        self._canonical = canonical_shape(source)
        # Pixels per canonical unit: the de-rotated eye distance, so the photo reprojects onto itself exactly.
        self._iod = topology.inter_ocular((pts - self._centre) @ self._rotation)
        self._rig: ExpressionRig | None = None
        self._eye_open = [max(topology.eye_opening(self._canonical, e), 1e-3) for e in (0, 1)]
        self._iris_place = []
        for upper, lower in topology.EYES:
            iris = list(topology.IRIS_A if upper == topology.EYE_A_UPPER else topology.IRIS_B)
            top, bottom = _lid_curves(self._canonical, upper, lower, self._canonical[iris, 0])
            self._iris_place.append((self._canonical[iris, 1] - top) / np.maximum(bottom - top, 1e-3))

    @property
    def rig(self) -> ExpressionRig:
        if self._rig is None:
            self._rig = ExpressionRig(self._canonical)
        return self._rig

    def from_video(
        self, code: MotionCode, reference: MotionCode, open_eyes: tuple[float, float] | None = None
    ) -> TargetFace:
        """Target for a code measured from video, relative to the chosen reference code.

        ``open_eyes``: the driver's usual open-eye opening per eye (:func:`open_eye_openings`), against which
        the eyes' opening ratio is measured; without it, the reference frame's own.
        """
        o = self.options
        canonical = self.video_shape(code, reference, open_eyes)
        rel = code.rotation_matrix() @ reference.rotation_matrix().T
        return self._pose(
            canonical,
            _scale_rotation(rel, o.pose_scale),
            o.pose_scale * (code.translation - reference.translation),
            o.pose_scale * (code.log_scale - reference.log_scale),
        )

    def video_shape(
        self, code: MotionCode, reference: MotionCode, open_eyes: tuple[float, float] | None = None
    ) -> np.ndarray:
        """The pose-free target shape (478, 3), in inter-ocular units, of :meth:`from_video`."""
        if code.shape is None or reference.shape is None:
            raise ValueError("video retargeting needs codes with canonical shapes")
        o = self.options
        canonical = self._resting(reference) + o.expression_scale * (code.shape - reference.shape)
        if o.relative_eyes:
            usual = open_eyes or tuple(topology.eye_opening(reference.shape, eye) for eye in (0, 1))
            ratios = [
                (max(topology.eye_opening(code.shape, eye), 0.0) / max(usual[eye], 1e-3))
                ** max(o.expression_scale, 0.0)
                for eye in (0, 1)
            ]
            canonical = self._set_eye_openings(canonical, ratios)
        return self._keep_lips_apart(canonical)

    def _resting(self, reference: MotionCode) -> np.ndarray:
        """The photo's canonical shape with its jaw closed as far as it hangs open beyond the reference's, once
        that is more than ``HELD_JAW_SLACK`` (fully from half as much again): what the driver's rest stands for.
        Unchanged for every ordinary photo (a toothy smile reads jawOpen 0.2 at most on the shared faces)."""
        beyond = float(self.source.blendshapes[_JAW_OPEN]) - float(reference.blendshapes[_JAW_OPEN])
        share = min(max((beyond - HELD_JAW_SLACK) / (0.5 * HELD_JAW_SLACK), 0.0), 1.0)
        if share <= 0.0:
            return self._canonical
        activations = np.zeros(len(self.source.blendshapes), dtype=np.float64)
        activations[_JAW_OPEN] = -share * beyond
        return self._canonical + self.rig.displacement(activations)  # type: ignore[no-any-return]

    def expression_loss(
        self, codes: Sequence[MotionCode], reference: MotionCode, open_eyes: tuple[float, float] | None = None
    ) -> float:
        """The share of ``codes``' expression motion that retargeting against ``reference`` does not carry to the
        photo: the mean distance between the targets' and the driver's expressive shapes, each centred on its
        own mean over ``codes``, over the driver's mean motion. Lips stopping where they meet and eyes following
        as a ratio lose motion when the reference is caught mid-closure or mid-blink."""
        if not codes:
            raise ValueError("no motion codes to measure the loss over")
        driver = np.stack([_expressive(code) for code in codes])
        target = np.stack([self.video_shape(code, reference, open_eyes)[_EXPRESSIVE, :2] for code in codes])
        driver -= driver.mean(axis=0)
        target -= target.mean(axis=0)
        motion = float(np.linalg.norm(driver, axis=-1).mean())
        return float(np.linalg.norm(target - driver, axis=-1).mean()) / max(motion, 1e-9)

    def from_template(self, code: MotionCode) -> TargetFace:
        """Target for a template code: activations and pose offsets on top of the photo's own."""
        o = self.options
        canonical = self._canonical + o.expression_scale * self.rig.displacement(code.blendshapes)
        ratios = [r ** max(o.expression_scale, 0.0) for r in eye_ratios(code.blendshapes)]
        canonical = self._set_eye_openings(canonical, ratios)
        rel = euler_to_matrix(code.rotation)
        return self._pose(
            canonical,
            _scale_rotation(rel, o.pose_scale),
            o.pose_scale * code.translation,
            o.pose_scale * code.log_scale,
        )

    def _pose(self, canonical: np.ndarray, rel: np.ndarray, translation: np.ndarray, log_scale: float) -> TargetFace:
        translation, log_scale = bounded_head_motion(translation, log_scale)
        rotation = rel @ self._rotation
        scale = self._iod * math.exp(log_scale)
        centre = self._centre.copy()
        centre[:2] += translation * self._iod
        projected = (canonical @ rotation.T) * scale + centre
        return TargetFace(
            landmarks=projected[:, :2], rotation=rotation, centre=centre[:2], scale=scale, canonical=canonical
        )

    @staticmethod
    def _keep_lips_apart(canonical: np.ndarray) -> np.ndarray:
        """Inner lips that the relative motion pushes through each other meet at their midline instead.

        A driver closing from an open reference (chosen to match a parted, smiling photo) moves the photo's
        lips by more than the photo's opening; the rest of the motion is kept as it is (lips pressed together
        read as pressed lips), only the inner contours stop where they meet.
        """
        upper = list(topology.LIPS_UPPER_INNER[1:-1])
        lower = list(topology.LIPS_LOWER_INNER[1:-1])
        crossed = canonical[lower, 1] < canonical[upper, 1]
        if not crossed.any():
            return canonical
        out = canonical.copy()
        middle = (canonical[upper, 1] + canonical[lower, 1]) / 2.0
        out[np.array(upper)[crossed], 1] = middle[crossed]
        out[np.array(lower)[crossed], 1] = middle[crossed]
        return out

    def _set_eye_openings(self, canonical: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
        out = canonical.copy()
        for eye, ratio in enumerate(ratios):
            upper, lower = topology.EYES[eye]
            up = list(upper[1:-1])
            lo = list(lower[1:-1])
            iris = list(topology.IRIS_A if eye == 0 else topology.IRIS_B)
            gap = out[lo, 1] - out[up, 1]
            wanted = self._eye_open[eye] * min(max(ratio, 0.0), 1.6)
            current = max(topology.eye_opening(out, eye), 1e-3)
            change = gap * (wanted / current) - gap
            # Blinks are mostly the upper lid coming down.
            out[up, 1] -= 0.8 * change
            out[lo, 1] += 0.2 * change
            out[up, 1] = np.minimum(out[up, 1], out[lo, 1])  # a lid never passes the other
            # The iris keeps its place between the lids in the photo (as a fraction of the opening), so a
            # closing lid squeezes it instead of crossing it (a crossed iris renders as a spike through the lid).
            top, bottom = _lid_curves(out, upper, lower, out[iris, 0])
            placed = top + self._iris_place[eye] * np.maximum(bottom - top, 0.0)
            # Opening wider, the lids move and the eyeball does not: the iris stays where the motion put it (kept
            # at its share of the opening, it rose with the upper lid and was stretched with it).
            wider = float(np.clip((wanted / self._eye_open[eye] - 1.0) / 0.1, 0.0, 1.0))
            out[iris, 1] = placed + wider * (canonical[iris, 1] - placed)
        return out


def _lid_curves(
    points: np.ndarray, upper: Sequence[int], lower: Sequence[int], xs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """y of the upper and lower lid contours at ``xs`` (linear between contour points)."""
    curves = []
    for contour in (upper, lower):
        xy = points[list(contour), :2]
        order = np.argsort(xy[:, 0])
        curves.append(np.interp(xs, xy[order, 0], xy[order, 1]))
    return curves[0], curves[1]


def _scale_rotation(rel: np.ndarray, factor: float) -> np.ndarray:
    """``rel`` with its rotation angle multiplied by ``factor`` (axis kept)."""
    if factor == 1.0:
        return rel
    angle = math.acos(max(-1.0, min(1.0, (float(np.trace(rel)) - 1) / 2)))
    if angle < 1e-8:
        return np.eye(3)
    axis = np.array([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]]) / (2 * math.sin(angle))
    a = angle * factor
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * (k @ k)  # type: ignore[no-any-return]
