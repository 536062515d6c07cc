"""Real photos and driving clips of ../shared/faces-wide (XP_FACES_WIDE), retargeted as an animation does, for
the tests of how the head moves on its body and how turned faces warp (issue 22, items 2 and 3)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import faces_root
from xp_sdk.engine import topology
from xp_sdk.engine.driving import iter_motion_codes
from xp_sdk.engine.motion import MotionCode
from xp_sdk.engine.photo import PreparedPhoto, prepare_photo
from xp_sdk.engine.retarget import Retargeter, TargetFace, choose_reference, open_eye_openings
from xp_sdk.engine.video import probe_video


def wide_root() -> Path:
    return Path(os.environ.get("XP_FACES_WIDE", faces_root().parent / "faces-wide"))


def wide_file(folder: str, name: str) -> Path:
    path = wide_root() / folder / name
    if not path.is_file():
        pytest.skip(f"real face data not found at {path}; set XP_FACES_WIDE to the shared faces-wide folder")
    return path


@cache
def photo(name: str) -> PreparedPhoto:
    return prepare_photo(wide_file("source", name))


@cache
def clip_codes(name: str) -> list[MotionCode]:
    path = wide_file("driving", name)
    return [code for code in iter_motion_codes(path, probe_video(path).fps) if code is not None]


@cache
def clip_targets(photo_name: str, clip: str) -> list[TargetFace]:
    """Every frame of ``clip`` retargeted onto the photo against the reference an animation would choose."""
    face = photo(photo_name).face
    codes = clip_codes(clip)
    retargeter = Retargeter(face)
    open_eyes = open_eye_openings(codes)
    reference = codes[choose_reference(codes, face, retargeter=retargeter, open_eyes=open_eyes)]
    return [retargeter.from_video(code, reference, open_eyes) for code in codes]


def face_mask(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The filled convex hull of the face oval's ``points`` (x, y pixels) in an image of ``shape``."""
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(points[list(topology.FACE_OVAL), :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)
