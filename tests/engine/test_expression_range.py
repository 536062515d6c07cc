"""A photo that already holds an expression is brought to rest when the driver rests (issue 22, item 7): a
screaming photo stayed screaming through every closed-mouth frame of the driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.engine import wide_faces
from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalyzer
from xp_sdk.engine.motion import BLENDSHAPE_INDEX, MotionCode
from xp_sdk.engine.photo import prepare_photo
from xp_sdk.engine.retarget import Retargeter, choose_reference, open_eye_openings
from xp_sdk.engine.video import read_frames

Codes = Any


def _shape(code: MotionCode) -> np.ndarray:
    assert code.shape is not None
    return code.shape


@pytest.fixture(scope="module")
def screaming_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frame of dreamtalk_mead_m030_surprised where his mouth hangs open widest (jawOpen 0.68), as a photo."""
    clip = wide_faces.wide_file("driving", "dreamtalk_mead_m030_surprised.mp4")
    widest: tuple[float, np.ndarray] | None = None
    with FaceAnalyzer() as analyzer:
        for frame in read_frames(clip):
            found = analyzer.detect_all(frame)
            if found:
                jaw = float(found[0].blendshapes[BLENDSHAPE_INDEX["jawOpen"]])
                if widest is None or jaw > widest[0]:
                    widest = (jaw, frame)
    assert widest is not None and widest[0] > 0.6
    path = tmp_path_factory.mktemp("scream") / "scream.png"
    cv2.imwrite(str(path), cv2.cvtColor(widest[1], cv2.COLOR_RGB2BGR))
    return path


def test_a_screaming_photo_closes_its_mouth_when_the_driver_rests(screaming_photo: Path, driving_codes: Codes) -> None:
    face = prepare_photo(screaming_photo).face
    codes: list[MotionCode] = [c for c in driving_codes("lp_d18.mp4") if c is not None]
    retargeter = Retargeter(face)
    eyes = open_eye_openings(codes)
    reference = codes[choose_reference(codes, face, retargeter=retargeter, open_eyes=eyes)]
    photo_opening = topology.mouth_opening(face.landmarks[:, :2]) / face.inter_ocular
    assert photo_opening > 0.3
    openings: dict[str, list[float]] = {"closed": [], "wide": []}
    driver = [topology.mouth_opening(_shape(c)) for c in codes]
    for code, opening in zip(codes, driver, strict=True):
        target = retargeter.from_video(code, reference, eyes)
        share = topology.mouth_opening(target.landmarks) / face.inter_ocular / photo_opening
        if opening <= np.percentile(driver, 20):
            openings["closed"].append(share)
        elif opening >= np.percentile(driver, 95):
            openings["wide"].append(share)
    # Before, the driver's closed mouth left the photo's three quarters open (0.76); now it closes ...
    assert np.median(openings["closed"]) < 0.4
    # ... and the driver's widest opens it again.
    assert np.median(openings["wide"]) > 1.5 * np.median(openings["closed"])
