"""Face-mesh renders in the MediaPipe-face ControlNet's style, and the fixed face crop."""

from __future__ import annotations

import numpy as np

from tests.engine.diffusion.conftest import Face
from xp_sdk.engine import topology
from xp_sdk.engine.diffusion.conditioning import FaceCrop, render_face_mesh

PALETTE = {
    (0, 0, 0), (10, 200, 10), (10, 180, 10), (10, 200, 180), (10, 220, 180), (180, 200, 10), (180, 220, 10),
    (250, 200, 10), (10, 200, 250),
}  # fmt: skip


def _crop_and_points(astronaut: Face, resolution: int = 512) -> tuple[FaceCrop, np.ndarray]:
    h, w = astronaut.image.shape[:2]
    crop = FaceCrop.around(astronaut.face, (w, h), 2.0, resolution)
    return crop, crop.to_crop(astronaut.face.landmarks)


def test_render_uses_only_the_annotator_colours(astronaut: Face) -> None:
    _, points = _crop_and_points(astronaut)
    render = render_face_mesh(points, 512)
    assert render.shape == (512, 512, 3) and render.dtype == np.uint8
    colours = {tuple(int(v) for v in c) for c in np.unique(render.reshape(-1, 3), axis=0)}
    assert colours <= PALETTE
    assert len(colours) == len(PALETTE)  # every part drawn, both pupils included


def test_pupils_are_4px_squares_that_follow_the_iris(astronaut: Face) -> None:
    _, points = _crop_and_points(astronaut)
    for index, colour in ((topology.IRIS_A[0], (250, 200, 10)), (topology.IRIS_B[0], (10, 200, 250))):
        x, y = np.floor(points[index]).astype(int)
        render = render_face_mesh(points, 512)
        assert (render[y - 2 : y + 2, x - 2 : x + 2] == colour).all()
        moved = points.copy()
        moved[index] += (3, 0)  # look sideways
        after = render_face_mesh(moved, 512)
        assert (after[y - 2 : y + 2, x + 1 : x + 5] == colour).all()
        assert not (after[y - 2 : y + 2, x - 2] == colour).all()


def test_line_width_scales_with_the_resolution(astronaut: Face) -> None:
    widths = []
    for resolution in (256, 512, 1024):
        _, points = _crop_and_points(astronaut, resolution)
        render = render_face_mesh(points, resolution)
        oval = (render == (10, 200, 10)).all(axis=-1)
        row = oval[resolution // 2]
        widths.append(int(np.argmax(~row[np.argmax(row) :])))  # first run of the oval at mid height
    assert widths[0] == 1 and widths[0] < widths[1] < widths[2], widths


def test_crop_is_square_inside_the_frame_and_pastes_only_inside(astronaut: Face) -> None:
    image = astronaut.image
    crop, _ = _crop_and_points(astronaut, 64)
    h, w = image.shape[:2]
    assert crop.x0 >= 0 and crop.x0 + crop.side <= w and crop.y0 >= 0 and crop.y0 + crop.side <= h
    x0, y0, x1, y1 = astronaut.face.bbox
    assert crop.x0 <= x0 and x1 <= crop.x0 + crop.side and crop.y0 <= y0 and y1 <= crop.y0 + crop.side
    patch = np.full((64, 64, 3), 255, np.uint8)
    alpha = crop.feather()
    pasted = crop.paste(image, patch, alpha)
    outside = np.ones((h, w), bool)
    outside[crop.y0 : crop.y0 + crop.side, crop.x0 : crop.x0 + crop.side] = False
    assert np.array_equal(pasted[outside], image[outside])
    centre = pasted[crop.y0 + crop.side // 2, crop.x0 + crop.side // 2]
    assert (centre == 255).all()
    assert alpha.min() > 0 and alpha.max() == 1.0


def test_crop_of_a_face_near_the_edge_is_shifted_inside_and_not_feathered_there(astronaut: Face) -> None:
    face = astronaut.face.scaled(1.0)
    crop = FaceCrop.around(face, (320, 320), 4.0, 64)
    assert crop.side == 320 and crop.x0 == 0 and crop.y0 == 0
    assert crop.feather().min() == 1.0  # the crop is the whole frame: nothing to fade into
