"""The verification page's still shows a video as a player does: upright, with square pixels."""

from __future__ import annotations

import base64
import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import first_frames, write_shown_clip
from xp_sdk.server.still import middle_frame_jpeg


def _still(path: Path) -> np.ndarray:
    url = middle_frame_jpeg(path)
    assert url is not None and url.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


@pytest.mark.parametrize(("rotation", "aspect"), [(-90, None), (180, None), (0, Fraction(2, 1))])
def test_the_still_is_shown_as_a_player_shows_it(
    driving_videos: list[Path], tmp_path: Path, rotation: int, aspect: Fraction | None
) -> None:
    clip = next((p for p in driving_videos if p.name == "lp_d5_hist.mp4"), None)
    if clip is None:
        pytest.skip("shared driving clip lp_d5_hist.mp4 not found")
    upright = [f[60:420] for f in first_frames(clip, 9)]  # 480×360: a turn shows in the shape
    stored = upright
    if aspect is not None:
        stored = [np.ascontiguousarray(f.reshape(360, 240, 2, 3).mean(axis=2).astype(np.uint8)) for f in upright]
    path = write_shown_clip(tmp_path / "clip.mp4", stored, rotation=rotation, sample_aspect_ratio=aspect)
    still = _still(path)
    assert still.shape == (360, 480, 3)
    # The middle frame, upright (JPEG and, for the squeezed file, the width's interpolation allowed for).
    assert np.abs(still.astype(np.float32) - upright[4]).mean() < 8
