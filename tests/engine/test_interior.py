"""The driver's mouth interior on real faces: unrolled between the driver's inner lips and rolled back into an
opening, it is the driver's mouth again; in the photo it keeps its teeth at the top, takes the photo's light, and
changes nothing outside the opening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from xp_sdk.engine import topology
from xp_sdk.engine.driving import ClipTargets, DrivingFrame, iter_driving
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.interior import PATCH_COLUMNS, PATCH_ROWS, roll_out, sample_interior, skin_tone, teeth_span
from xp_sdk.engine.retarget import Retargeter
from xp_sdk.engine.video import probe_video, read_frames
from xp_sdk.engine.warp import WarpGenerator

CLIP = "lp_d18.mp4"  # a driver who opens his mouth wide, teeth and tongue showing


@pytest.fixture(scope="module")
def driver_frames(faces: Path) -> list[tuple[np.ndarray, FaceAnalysis]]:
    """lp_d18's frames with their faces (image mode: every frame on its own)."""
    out = []
    with FaceAnalyzer() as analyzer:
        for frame in read_frames(faces / "driving" / CLIP):
            found = analyzer.detect_all(frame)
            if found:
                out.append((frame, found[0]))
    return out


@pytest.fixture(scope="module")
def widest(driver_frames: list[tuple[np.ndarray, FaceAnalysis]]) -> tuple[np.ndarray, FaceAnalysis]:
    return max(driver_frames, key=lambda item: topology.mouth_opening(item[1].landmarks[:, :2]))


@pytest.fixture(scope="module")
def widest_interior(widest: tuple[np.ndarray, FaceAnalysis]) -> tuple[np.ndarray, FaceAnalysis, np.ndarray]:
    """The widest frame, its face and its unrolled interior."""
    frame, face = widest
    interior = sample_interior(frame, face.landmarks)
    assert interior is not None
    return frame, face, interior


def _widest_index(frames: list[DrivingFrame]) -> int:
    """Index of the frame whose mouth (as its motion code has it) is open widest."""
    return max(
        range(len(frames)),
        key=lambda i: 0.0 if frames[i].code is None else topology.mouth_opening(frames[i].code.shape),
    )


def _opening_mask(landmarks: np.ndarray, shape: tuple[int, ...], erode: int = 0) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(topology.inner_mouth_polygon(landmarks)).astype(np.int32)], 1)
    if erode:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask > 0


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # type: ignore[no-any-return]


def test_a_closed_mouth_has_no_interior(driver_frames: list[tuple[np.ndarray, FaceAnalysis]]) -> None:
    frame, face = min(driver_frames, key=lambda item: topology.mouth_opening(item[1].landmarks[:, :2]))
    assert topology.mouth_opening(face.landmarks[:, :2]) < 0.5
    assert sample_interior(frame, face.landmarks) is None


def test_the_interior_rolled_back_into_its_own_mouth_is_the_driver_mouth(
    widest_interior: tuple[np.ndarray, FaceAnalysis, np.ndarray],
) -> None:
    frame, face, interior = widest_interior
    assert interior.shape[2] == 4 and float(interior[0, 0, 3]) == 1.0  # wide open: used alone
    box = (0, 0, frame.shape[1], frame.shape[0])
    rolled, weight = roll_out(interior, face.landmarks, box, skin_tone(frame, face.landmarks))
    inside = _opening_mask(face.landmarks, frame.shape, erode=2)
    assert inside.sum() > 500
    error = np.abs(rolled - frame.astype(np.float32))[inside]
    # A 32 × 96 patch of a mouth about 100 pixels wide: what is lost is a little resolution, not the picture.
    assert float(error.mean()) < 10.0
    assert float(np.percentile(error, 90)) < 25.0
    np.testing.assert_allclose(weight[inside], 1.0)


def test_teeth_stay_under_the_upper_lip_of_another_mouth(
    widest_interior: tuple[np.ndarray, FaceAnalysis, np.ndarray], photo_faces: dict[str, Any]
) -> None:
    frame, face, interior = widest_interior
    # The photo's mouth, opened by moving its lower lip and chin down by half the mouth's width.
    image, photo = photo_faces["lp_d30.jpg"]
    target = photo.landmarks[:, :2].astype(np.float64).copy()
    width = float(np.linalg.norm(target[61] - target[291]))
    lower = sorted(set(topology.LIPS_LOWER_INNER[1:-1] + topology.LIPS_LOWER_OUTER[1:-1]) | {152, 148, 377})
    target[lower, 1] += 0.5 * width
    box = (0, 0, image.shape[1], image.shape[0])
    rolled, _ = roll_out(interior, target, box, skin_tone(image, photo.landmarks))
    driver_rows = _row_profile(_luma(frame), face.landmarks[:, :2])
    photo_rows = _row_profile(_luma(rolled), target)
    # The driver's upper teeth are the brightest band of his opening, just under the upper lip; so in the photo.
    assert int(np.argmax(driver_rows)) <= 2
    assert int(np.argmax(photo_rows)) <= 2
    assert np.corrcoef(driver_rows, photo_rows)[0, 1] > 0.9


def _row_profile(luma: np.ndarray, landmarks: np.ndarray, bands: int = 10) -> np.ndarray:
    """Mean luma of the middle half of the opening (across), in ``bands`` bands from upper to lower lip."""
    upper = landmarks[list(topology.LIPS_UPPER_INNER)]
    lower = landmarks[list(topology.LIPS_LOWER_INNER)]
    left, right = landmarks[78, 0], landmarks[308, 0]
    xs = np.arange(int(left + 0.25 * (right - left)), int(right - 0.25 * (right - left)))
    top = np.interp(xs, *_by_x(upper))
    bottom = np.interp(xs, *_by_x(lower))
    profile = []
    for b in range(bands):
        ys = top + (b + 0.5) / bands * (bottom - top)
        profile.append(float(luma[np.round(ys).astype(int), xs].mean()))
    return np.array(profile)


def _by_x(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


def test_the_interior_takes_the_photo_light(widest_interior: tuple[np.ndarray, FaceAnalysis, np.ndarray]) -> None:
    frame, face, interior = widest_interior
    box = (0, 0, frame.shape[1], frame.shape[0])
    skin = skin_tone(frame, face.landmarks)
    bright, _ = roll_out(interior, face.landmarks, box, skin)
    dim, _ = roll_out(interior, face.landmarks, box, skin * 0.5)
    inside = _opening_mask(face.landmarks, frame.shape, erode=2)
    ratio = _luma(dim)[inside].mean() / _luma(bright)[inside].mean()
    assert ratio == pytest.approx(0.5, abs=0.03)


@pytest.fixture(scope="module")
def clip_frames(faces: Path) -> dict[bool, list[DrivingFrame]]:
    path = faces / "driving" / CLIP
    fps = probe_video(path).fps
    return {wanted: list(iter_driving(path, fps, interiors=wanted)) for wanted in (False, True)}


def test_animation_shows_the_driver_mouth_only_inside_the_opening(
    clip_frames: dict[bool, list[DrivingFrame]], photo_faces: dict[str, Any]
) -> None:
    image, photo = photo_faces["lp_d30.jpg"]
    plain, with_mouth = clip_frames[False], clip_frames[True]
    assert all(f.interior is None for f in plain)
    assert sum(f.interior is not None for f in with_mouth) > 20
    # The codes are the same either way: the interior rides along, it changes no motion.
    for a, b in zip(plain, with_mouth, strict=True):
        assert (a.code is None) == (b.code is None)
        if a.code is not None and b.code is not None:
            np.testing.assert_array_equal(a.code.shape, b.code.shape)
    reference = ClipTargets.best_reference(plain, Retargeter(photo))
    generator = WarpGenerator(image, photo)
    targets = {
        wanted: ClipTargets.from_window(Retargeter(photo), frames, reference) for wanted, frames in clip_frames.items()
    }
    index = _widest_index(with_mouth)
    painted = targets[False](plain[index])
    driven = targets[True](with_mouth[index])
    assert painted.mouth_interior is None and driven.mouth_interior is not None
    np.testing.assert_array_equal(painted.landmarks, driven.landmarks)
    a, b = generator.render(painted), generator.render(driven)
    opening = _opening_mask(driven.landmarks, image.shape)
    near = cv2.dilate(opening.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0
    assert changed[opening].mean() > 0.5
    assert not changed[~near].any()


def test_the_span_between_the_teeth_leaves_the_driver_upper_teeth_out(
    widest_interior: tuple[np.ndarray, FaceAnalysis, np.ndarray],
) -> None:
    _, _, interior = widest_interior
    first, last = teeth_span(interior)
    assert 0.1 < first <= 0.45 and 0.7 <= last <= 1.0
    rows = np.median(interior[:, PATCH_COLUMNS // 4 : 3 * PATCH_COLUMNS // 4, 0].astype(np.float32), axis=1)
    split = round(first * (PATCH_ROWS - 1))
    # Left out: the bright upper teeth. Kept: throat and tongue, in their shade.
    assert rows[:split].max() > 1.0 > rows[split : round(last * (PATCH_ROWS - 1))].mean()


def test_a_smiling_photo_shows_the_driver_mouth_between_its_own_teeth(
    clip_frames: dict[bool, list[DrivingFrame]], photo_faces: dict[str, Any]
) -> None:
    # The astronaut smiles with her teeth showing: they ride her lips (TeethRig) and only the gap between them
    # is new. That gap now shows the driver's throat and tongue instead of a painted cavity, and nothing else
    # in the frame changes.
    image, photo = photo_faces["skimage_astronaut.png"]
    plain, with_mouth = clip_frames[False], clip_frames[True]
    reference = ClipTargets.best_reference(plain, Retargeter(photo))
    index = _widest_index(with_mouth)
    painted = ClipTargets.from_window(Retargeter(photo), plain, reference)(plain[index])
    driven = ClipTargets.from_window(Retargeter(photo), with_mouth, reference)(with_mouth[index])
    generator = WarpGenerator(image, photo)
    a, b = generator.render(painted), generator.render(driven)
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0
    opening = _opening_mask(driven.landmarks, image.shape)
    near = cv2.dilate(opening.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert changed.sum() > 0.2 * opening.sum()
    assert not changed[~near].any()
