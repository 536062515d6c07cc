"""The reference frame is the driver at rest (issue 22, item 5): on a clip that grins throughout, a grinning
reference made the grin the photo's rest and the driver's rest a pout on the photo."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.engine import wide_faces
from xp_sdk.engine import topology
from xp_sdk.engine.motion import BLENDSHAPE_INDEX, MotionCode
from xp_sdk.engine.retarget import Retargeter, choose_reference, open_eye_openings

GRIN_CLIP = "dreamtalk_mead_w009_happy.mp4"  # a woman speaking with a very big smile nearly throughout


def _smile(code: MotionCode) -> float:
    shapes = code.blendshapes
    return float((shapes[BLENDSHAPE_INDEX["mouthSmileLeft"]] + shapes[BLENDSHAPE_INDEX["mouthSmileRight"]]) / 2)


def corner_lift(shape: np.ndarray) -> float:
    """How far the mouth corners sit above the middle of the inner lips, in the shape's units (inter-ocular
    distances for canonical shapes): larger in a smile, smaller (negative) in a pout or frown."""
    upper, lower = list(topology.LIPS_UPPER_INNER), list(topology.LIPS_LOWER_INNER)
    middle = (shape[upper[1:-1], 1].mean() + shape[lower[1:-1], 1].mean()) / 2
    corners = (shape[upper[0], 1] + shape[upper[-1], 1]) / 2
    return float(middle - corners)


@pytest.fixture(scope="module")
def grin_codes() -> list[MotionCode]:
    codes = wide_faces.clip_codes(GRIN_CLIP)
    smiles = np.array([_smile(code) for code in codes])
    assert np.median(smiles) > 0.5 and np.percentile(smiles, 10) < 0.1  # mostly a grin, some rest
    return codes


def _photo_face(name: str, photo_faces: dict[str, Any]) -> Any:
    if name in photo_faces:
        return photo_faces[name][1]
    return wide_faces.photo(name).face


@pytest.mark.parametrize("photo", ["lp_s9.jpg", "sadtalker_art_8.png", "gfpgan_adele_crop.png"])
def test_a_clip_that_grins_throughout_is_measured_from_its_rest(
    grin_codes: list[MotionCode], photo_faces: dict[str, Any], photo: str
) -> None:
    face = _photo_face(photo, photo_faces)
    retargeter = Retargeter(face)
    open_eyes = open_eye_openings(grin_codes)
    reference = grin_codes[choose_reference(grin_codes, face, retargeter=retargeter, open_eyes=open_eyes)]
    # The driver at rest, in absolute terms, whatever the photo does (two of these photos smile broadly).
    assert _smile(reference) < 0.2
    own = corner_lift(retargeter.video_shape(reference, reference, open_eyes))

    def lift(code: MotionCode) -> float:
        return corner_lift(retargeter.video_shape(code, reference, open_eyes)) - own

    lifts = {
        "rest": [lift(c) for c in grin_codes if _smile(c) < 0.1],
        "grin": [lift(c) for c in grin_codes if _smile(c) > 0.6],
    }
    # Against a grinning reference the driver's rest pulled the photo's corners down (a pout: -0.016 and -0.022
    # inter-ocular distances on art_8 and adele) and its grin hardly lifted them (0.019, 0.013); from rest, the
    # grin lifts them (0.04 to 0.05) and the rest leaves them be.
    assert np.median(lifts["rest"]) > -0.01
    assert np.median(lifts["grin"]) > 0.03
