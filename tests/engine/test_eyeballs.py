"""Eyes opened wider than the photo's, on real faces: the iris keeps its round shape and size while the lids
uncover more eyeball; at the photo's own opening, and closing, the eyes are the warp's alone."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from xp_sdk.engine import topology
from xp_sdk.engine.eyeballs import EyeballPainter
from xp_sdk.engine.motion import BLENDSHAPE_INDEX, MotionCode
from xp_sdk.engine.retarget import Retargeter, TargetFace
from xp_sdk.engine.warp import WarpConfig, WarpGenerator


def _code(**shapes: float) -> MotionCode:
    values = np.zeros(len(BLENDSHAPE_INDEX))
    for name, value in shapes.items():
        values[BLENDSHAPE_INDEX[name]] = value
    return MotionCode(rotation=np.zeros(3), translation=np.zeros(2), log_scale=0.0, blendshapes=values)


def _iris_box(frame: np.ndarray, landmarks: np.ndarray, eye: int) -> tuple[float, float]:
    """Height and width of the dark iris blob inside one eye's lid contours of ``frame``."""
    upper, lower = topology.EYES[eye]
    opening = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(landmarks[list(upper) + list(reversed(lower[1:-1])), :2]).astype(np.int32)], 1)
    opening = cv2.erode(opening, np.ones((3, 3), np.uint8)) > 0
    luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dark = opening & (luma < 0.55 * np.percentile(luma[opening], 90))
    _, _, stats, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8))
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return float(stats[biggest, cv2.CC_STAT_HEIGHT]), float(stats[biggest, cv2.CC_STAT_WIDTH])


@pytest.fixture(scope="module")
def photo(photo_faces: dict[str, Any]) -> tuple[np.ndarray, Any]:
    return photo_faces["lp_d30.jpg"]  # type: ignore[no-any-return]


def test_an_eye_opened_wider_keeps_its_iris_round(photo: tuple[np.ndarray, Any]) -> None:
    image, face = photo
    target = Retargeter(face).from_template(_code(eyeWideLeft=1.0, eyeWideRight=1.0))
    photo_height = [_iris_box(image, face.landmarks, eye)[0] for eye in (0, 1)]
    with_balls = WarpGenerator(image, face).render(target)
    stretched = WarpGenerator(image, face, WarpConfig(paint_eyeballs=False)).render(target)
    for eye in (0, 1):
        assert topology.eye_opening(target.landmarks, eye) > 1.3 * topology.eye_opening(face.landmarks[:, :2], eye)
        radius = float(np.linalg.norm(face.landmarks[list(topology.IRIS_A if eye == 0 else topology.IRIS_B)[1:], :2]
                                      - face.landmarks[topology.IRIS_A[0] if eye == 0 else topology.IRIS_B[0], :2],
                                      axis=1).mean())  # fmt: skip
        height, width = _iris_box(with_balls, target.landmarks, eye)
        # The whole iris shows, round: about as tall as wide and as its diameter, where the photo's lids cut it.
        assert height > photo_height[eye]
        assert abs(height / width - 1.0) < 0.2
        assert height < 2.4 * radius
        # The warp alone stretches it with the lids.
        assert _iris_box(stretched, target.landmarks, eye)[0] > 1.1 * height


def test_eyes_at_or_below_the_photo_opening_are_left_to_the_warp(photo: tuple[np.ndarray, Any]) -> None:
    image, face = photo
    retargeter = Retargeter(face)
    still = TargetFace(
        landmarks=face.landmarks[:, :2].astype(np.float64), rotation=face.rotation, centre=np.zeros(2), scale=1.0
    )
    for target in (still, retargeter.from_template(_code(eyeBlinkLeft=0.6, eyeBlinkRight=0.6))):
        painted = image.copy()
        EyeballPainter(image, face.landmarks).paint(painted, target.landmarks)
        assert np.array_equal(painted, image)


def test_the_eyeball_fades_in_as_the_eye_opens_wider(photo: tuple[np.ndarray, Any]) -> None:
    image, face = photo
    retargeter = Retargeter(face)
    painter = EyeballPainter(image, face.landmarks)
    base = WarpGenerator(image, face, WarpConfig(paint_eyeballs=False))
    changed = []
    for wide in (0.1, 0.4, 1.0):
        target = retargeter.from_template(_code(eyeWideLeft=wide, eyeWideRight=wide))
        frame = base.render(target)
        painted = frame.copy()
        painter.paint(painted, target.landmarks)
        changed.append(float(np.abs(painted.astype(float) - frame.astype(float)).sum()))
    assert changed[0] == 0.0  # 3.5 % wider: below where the eyeball starts to show
    assert 0.0 < changed[1] < changed[2]
