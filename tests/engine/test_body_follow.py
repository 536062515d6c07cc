"""The head moves on its body, not as a cut-out over it (issue 22, item 2): a driver leaning to and from the camera
shrank the photo's head by 16 % inside a frame whose shoulders stayed put, and one moving about slid it more than an
eye distance over the collar, the neck stretched between. The head's own shift and scale now stay small (smoothly
bounded), and the neck and shoulders follow its rigid motion with a smooth fall-off.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.engine.wide_faces import clip_targets, photo
from xp_sdk.engine import topology
from xp_sdk.engine.retarget import Retargeter
from xp_sdk.engine.warp import WarpGenerator

# Lively drivers: a head that turns, tilts and moves about (tpsmm), and one that leans in and out (lia_vox_driving3).
PAIRS = [
    ("sadtalker_happy1.png", "lia_vox_driving3.mov"),
    ("joyvasa_005.png", "lia_vox_driving3.mov"),
    ("deepface_img61.jpg", "tpsmm_driving.mp4"),
]
# The head may grow or shrink by about 7 % on its body at most (0.84 before), and move by 0.4 eye distances.
MAX_SCALE_CHANGE = 0.07
MAX_SHIFT = 0.4


def _similarity_parts(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation and shift (of the mean) of the least-squares similarity taking ``source`` points to
    ``target`` (Umeyama)."""
    ms, mt = source.mean(axis=0), target.mean(axis=0)
    s, t = source - ms, target - mt
    u, sigma, vt = np.linalg.svd(t.T @ s)
    d = np.diag([1.0, float(np.sign(np.linalg.det(u @ vt)))])
    return float(np.trace(np.diag(sigma) @ d) / (s**2).sum()), u @ d @ vt, mt - ms


@pytest.mark.parametrize(("name", "clip"), PAIRS)
def test_the_head_keeps_its_size_on_its_body(name: str, clip: str) -> None:
    face = photo(name).face
    rest = Retargeter(face)._iod
    scales = np.array([t.scale / rest for t in clip_targets(name, clip)])
    assert abs(math.log(scales.min())) <= MAX_SCALE_CHANGE + 1e-9, f"head shrinks to {scales.min():.3f}"
    assert abs(math.log(scales.max())) <= MAX_SCALE_CHANGE + 1e-9, f"head grows to {scales.max():.3f}"


@pytest.mark.parametrize(("name", "clip"), PAIRS)
def test_the_head_does_not_slide_over_its_body(name: str, clip: str) -> None:
    prepared = photo(name)
    source = prepared.face.landmarks[list(topology.RIGID), :2].astype(np.float64)
    iod = prepared.face.inter_ocular
    shifts = [
        float(np.linalg.norm(_similarity_parts(source, t.landmarks[list(topology.RIGID)])[2])) / iod
        for t in clip_targets(name, clip)
    ]
    assert max(shifts) <= MAX_SHIFT, f"frame {int(np.argmax(shifts))}: head moved {max(shifts):.2f} eye distances"


@pytest.mark.parametrize(("name", "clip"), PAIRS)
def test_the_neck_follows_the_head(name: str, clip: str) -> None:
    # The skin a fifth of a face below the chin moves with the head (in most frames at least part of the way the
    # head's rigid motion would take it), and the motion fades towards the shoulders instead of stopping at the
    # jaw line.
    prepared = photo(name)
    generator = WarpGenerator(prepared.image, prepared.face)
    landmarks = prepared.face.landmarks[:, :2].astype(np.float64)
    skull = list(topology.SKULL)
    height = float(np.ptp(landmarks[list(topology.FACE_OVAL), 1]))
    neck = landmarks[topology.CHIN] + np.array([0.0, 0.2 * height])
    assert neck[1] < prepared.image.shape[0]
    x0, y0 = generator.roi[:2]
    follows = []
    for target in clip_targets(name, clip)[::3]:
        scale, rotation, shift = _similarity_parts(landmarks[skull], target.landmarks[skull])
        centre = landmarks[skull].mean(axis=0)
        head_motion = scale * rotation @ (neck - centre) + centre + shift - neck
        if np.linalg.norm(head_motion) < 0.1 * prepared.face.inter_ocular:
            continue
        back = generator.backward_map(target) + np.array([x0, y0], np.float32)
        # Where the photo's neck point is shown now: the output pixel whose sample lies nearest to it.
        row, col = np.unravel_index(np.argmin(np.linalg.norm(back - neck, axis=-1)), back.shape[:2])
        shown_at = np.array([col + x0, row + y0], np.float64)
        follows.append(float(np.dot(shown_at - neck, head_motion) / np.dot(head_motion, head_motion)))
    # Before: a tenth of the frames 0.01-0.36 of the head's motion, half of them 0.02-0.44; now 0.25-0.57, 0.43-0.64
    # (img61 x tpsmm 0.196 and median 0.36 since the reference is the driver at rest, frame 15 rather than 66:
    # another head pose to measure motion from). The bars stand against the cut-out's 0.01 and 0.02, with room for
    # the reference's choice.
    assert follows
    assert np.percentile(follows, 10) >= 0.15, f"the neck follows the head by {np.percentile(follows, 10):.2f} or less"
    assert np.median(follows) >= 0.3, f"the neck follows the head by {np.median(follows):.2f} in half the frames"
