"""The driver's mouth interior in the photo's colours (issue 22, item 4): a grey photo gets a grey mouth, not the
driver's pink tongue; teeth under a bright photo's light are not a clipped white bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.engine import wide_faces
from xp_sdk.engine import topology
from xp_sdk.engine.driving import ClipTargets, DrivingFrame, iter_driving
from xp_sdk.engine.interior import skin_tone
from xp_sdk.engine.retarget import Retargeter
from xp_sdk.engine.video import probe_video
from xp_sdk.engine.warp import WarpGenerator

CLIP = "lp_d18.mp4"  # opens his mouth wide: a pink tongue, teeth and throat fill the opening
_YCC = np.array([[0.299, 0.587, 0.114], [0.5, -0.418688, -0.081312], [-0.168736, -0.331264, 0.5]], np.float32)


@pytest.fixture(scope="module")
def frames(faces: Path) -> list[DrivingFrame]:
    path = faces / "driving" / CLIP
    return list(iter_driving(path, probe_video(path).fps, interiors=True))


def _widest_mouth(image: np.ndarray, photo: Any, frames: list[DrivingFrame]) -> tuple[np.ndarray, np.ndarray]:
    """The photo rendered at the clip's widest mouth (with the driver's interior), and the YCbCr of the pixels
    well inside its opening."""
    retargeter = Retargeter(photo)
    targets = ClipTargets.from_window(retargeter, frames, ClipTargets.best_reference(frames, retargeter))
    def opening(i: int) -> float:
        code = frames[i].code
        return 0.0 if code is None or code.shape is None else topology.mouth_opening(code.shape)

    index = max(range(len(frames)), key=opening)
    target = targets(frames[index])
    assert target.mouth_interior is not None
    out = WarpGenerator(image, photo).render(target)
    mask = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(topology.inner_mouth_polygon(target.landmarks)).astype(np.int32)], 1)
    inside = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    assert inside.sum() > 500
    return out, out[inside].astype(np.float32) @ _YCC.T


def _chroma(ycc: np.ndarray) -> np.ndarray:
    return np.linalg.norm(ycc[..., 1:], axis=-1)  # type: ignore[no-any-return]


def test_a_grey_photo_gets_a_grey_mouth(frames: list[DrivingFrame]) -> None:
    prepared = wide_faces.photo("joyvasa_003.png")  # a white marble bust on grey
    skin = float(_chroma(skin_tone(prepared.image, prepared.face.landmarks) @ _YCC.T))
    assert skin < 3.0
    _, mouth = _widest_mouth(prepared.image, prepared.face, frames)
    # The driver's pink tongue and red throat came through (mean chroma 12.0 against the stone's 1.5).
    assert _chroma(mouth).mean() < max(2.0 * skin, 4.0)


@pytest.mark.parametrize("photo", ["lp_d30.jpg", "deepface_img40.jpg"])
def test_teeth_in_a_bright_photo_are_not_clipped_white(
    frames: list[DrivingFrame], photo_faces: dict[str, Any], photo: str
) -> None:
    if photo in photo_faces:
        image, face = photo_faces[photo]
    else:
        prepared = wide_faces.photo(photo)
        image, face = prepared.image, prepared.face
    _, mouth = _widest_mouth(image, face, frames)
    # Teeth as much brighter than the skin as the driver's, on a bright skin (luma 217 on lp_d30), clipped to a
    # flat white bar; rolled off towards the face's own highlights they keep their shading.
    assert np.percentile(mouth[:, 0], 99) < 240
    # And the mouth keeps the photo's colour where it has one: a pink mouth in a pink face.
    assert _chroma(mouth).mean() > 8.0
