"""The generated face goes back through a feathered mask of the face (from its landmarks), not the whole square:
background and hair around the face stay the warp result, so no box edge can show and nothing there shimmers."""

from __future__ import annotations

import numpy as np

from tests.engine.diffusion.conftest import Face, run_generator
from tests.engine.diffusion.dummy import tiny_components
from xp_sdk.engine import topology
from xp_sdk.engine.diffusion.conditioning import FaceCrop


def _crop(astronaut: Face) -> FaceCrop:
    height, width = astronaut.image.shape[:2]
    return FaceCrop.around(astronaut.face, (width, height), 2.0, 32)


def test_the_mask_covers_the_face_fades_out_smoothly_and_leaves_the_square_s_corners(astronaut: Face) -> None:
    crop = _crop(astronaut)
    landmarks = astronaut.targets[0].landmarks
    alpha = crop.face_alpha(landmarks)[..., 0]
    assert alpha.shape == (crop.side, crop.side)
    oval = landmarks[list(topology.FACE_OVAL), :2] - np.array([crop.x0, crop.y0])
    cx, cy = np.round(oval.mean(axis=0)).astype(int)
    assert alpha[cy, cx] == 1.0
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert alpha[y, x] == 0.0
    # Feathered: no step between neighbouring pixels is more than a few percent of the whole.
    assert max(np.abs(np.diff(alpha, axis=0)).max(), np.abs(np.diff(alpha, axis=1)).max()) < 0.08
    assert ((alpha > 0) & (alpha < 1)).sum() > 0.05 * alpha.size
    assert 0.2 < (alpha > 0.5).mean() < 0.8  # the face, not the square


def test_outside_the_face_every_pixel_is_the_warp_result(astronaut: Face, warp_frames: np.ndarray) -> None:
    frames, generator = run_generator(astronaut, tiny_components(), frames=4)
    crop = generator.crop
    for frame, warp, target in zip(frames, warp_frames[:4], astronaut.targets[:4], strict=True):
        alpha = crop.face_alpha(target.landmarks)[..., 0]
        square = (slice(crop.y0, crop.y0 + crop.side), slice(crop.x0, crop.x0 + crop.side))
        outside = alpha == 0
        assert outside.mean() > 0.2  # the square's corners and sides: background and hair
        assert np.array_equal(frame[square][outside], warp[square][outside])
        inside = alpha == 1
        assert np.abs(frame[square][inside].astype(int) - warp[square][inside]).mean() > 1
