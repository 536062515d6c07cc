"""Ordinary photos: a portrait in a phone-size frame (the face about a tenth of its width) and real pictures with
small faces are found, animated around the face at a sensible size, and pasted back into the whole photo (issue
22, item 1). The faces are real (../shared/faces and ../shared/faces-wide), placed into large frames here, in the
test's own temporary folder, never copied into the project."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import faces_root
from xp_sdk.engine import AnimateOptions, MotionTemplate, animate
from xp_sdk.engine.faces import FaceAnalyzer
from xp_sdk.engine.images import load_image
from xp_sdk.engine.photo import prepare_photo
from xp_sdk.engine.templates import Keyframe

PHONE_LANDSCAPE = (4032, 3024)
PHONE_PORTRAIT = (3024, 4032)


def faces_wide_root() -> Path:
    return Path(os.environ.get("XP_FACES_WIDE", faces_root().parent / "faces-wide"))


def _photo(folder: str, name: str) -> Path:
    root = faces_root() if folder == "faces" else faces_wide_root()
    path = root / "source" / name
    if not path.is_file():
        pytest.skip(f"real face data not found at {path}; set XP_FACES / XP_FACES_WIDE")
    return path


def phone_photo(portrait: np.ndarray, size: tuple[int, int], *, blurred: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """``portrait`` scaled so that its face is a tenth of the frame's width and placed a little off centre in a
    ``size`` (width, height) frame, on a plain or a blurred background without a face; returns the frame and the
    face's box (x0, y0, x1, y1) in it."""
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze_photo(portrait, allow_multiple=True)
    x0, y0, x1, y1 = face.bbox
    scale = size[0] / 10 / (x1 - x0)
    placed = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    width, height = size
    if blurred:  # the portrait's own colours, smeared far beyond anything a detector takes for a face
        tiny = cv2.resize(portrait, (8, 6), interpolation=cv2.INTER_AREA)
        frame = cv2.GaussianBlur(cv2.resize(tiny, size, interpolation=cv2.INTER_CUBIC), (0, 0), 40)
    else:
        frame = np.full((height, width, 3), (96, 110, 128), np.uint8)
    left, top = int(width * 0.35), int(height * 0.3)
    cut = placed[: height - top, : width - left]
    frame[top : top + cut.shape[0], left : left + cut.shape[1]] = cut
    box = (left + x0 * scale, top + y0 * scale, left + x1 * scale, top + y1 * scale)
    return np.ascontiguousarray(frame), tuple(round(v) for v in box)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _open_mouth() -> MotionTemplate:
    return MotionTemplate(
        name="open-mouth",
        fps=30,
        duration=0.4,
        keyframes=[Keyframe(t=0.0), Keyframe(t=0.4, blendshapes={"jawOpen": 0.8, "eyeBlinkLeft": 0.9})],
    )


PLACED = [
    ("faces", "lp_d8.jpg", PHONE_LANDSCAPE, False),
    ("faces", "skimage_astronaut.png", PHONE_LANDSCAPE, True),
    ("faces", "skimage_astronaut.png", PHONE_PORTRAIT, False),
    ("faces-wide", "codeformer_0717.png", PHONE_LANDSCAPE, True),
    ("faces-wide", "geneface3dr_vd051.png", PHONE_PORTRAIT, True),
    ("faces-wide", "deepface_img61.jpg", PHONE_PORTRAIT, False),
]


@pytest.mark.parametrize(("folder", "name", "size", "blurred"), PLACED)
def test_a_face_a_tenth_of_a_phone_photo_is_found_where_it_is(
    folder: str, name: str, size: tuple[int, int], blurred: bool
) -> None:
    photo, box = phone_photo(load_image(_photo(folder, name)), size, blurred=blurred)
    prepared = prepare_photo(photo)
    assert prepared.upright.shape[:2] == photo.shape[:2]
    # The gate embeds the face at face_box in the full upright photo: it must be the face placed there.
    assert _iou(prepared.face_box, box) > 0.6, (prepared.face_box, box)
    assert prepared.output_size == (round(size[0] * 1024 / max(size)), round(size[1] * 1024 / max(size)))
    # Animated at a sensible size: the face is larger in what is animated than in the capped whole photo.
    assert prepared.face.size > 1.5 * (box[2] - box[0]) * 1024 / max(size)


@pytest.mark.parametrize(("folder", "name", "size", "blurred"), [PLACED[1], PLACED[4]])
def test_a_phone_photo_animates_around_the_face_and_keeps_its_background(
    folder: str, name: str, size: tuple[int, int], blurred: bool, tmp_path: Path
) -> None:
    photo, box = phone_photo(load_image(_photo(folder, name)), size, blurred=blurred)
    result = animate(photo, tmp_path / "phone.mp4", template=_open_mouth())
    frames = _frames(tmp_path / "phone.mp4")
    scale = 1024 / max(size)
    assert (result.width, result.height) == (round(size[0] * scale), round(size[1] * scale))
    assert frames[0].shape[:2] == (result.height, result.width)
    first, last = frames[0].astype(np.float32), frames[-1].astype(np.float32)
    x0, y0, x1, y1 = (round(v * scale) for v in box)
    face_change = np.abs(last[y0:y1, x0:x1] - first[y0:y1, x0:x1]).mean()
    assert face_change > 4.0, face_change  # the mouth opened and an eye closed
    # The far background (a face-width away from the face box and beyond) stays as it was in the photo.
    pad = x1 - x0
    far = np.ones(first.shape[:2], bool)
    far[max(0, y0 - pad) : y1 + 2 * pad, max(0, x0 - pad) : x1 + pad] = False
    assert np.abs(last - first)[far].mean() < 0.5
    still = cv2.resize(photo, (result.width, result.height), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(first - still)[far].mean() < 2.5  # the photo itself, not a crop or a shifted copy


def test_a_real_photo_with_small_faces_animates_the_largest(tmp_path: Path) -> None:
    """gfpgan_10045 (783×1146, an old snapshot of three people, faces about 90 pixels across) was refused "no
    face found": MediaPipe's detector misses its faces, YuNet finds them."""
    path = _photo("faces-wide", "gfpgan_10045.png")
    prepared = prepare_photo(path, allow_multiple_faces=True)
    assert prepared.face.size >= 64
    result = animate(prepared, tmp_path / "group.mp4", template=_open_mouth(),
                     options=AnimateOptions(allow_multiple_faces=True))  # fmt: skip
    assert (result.width, result.height) == prepared.output_size == (700, 1024)


def test_the_crop_alone_is_returned_when_asked(tmp_path: Path) -> None:
    photo, box = phone_photo(load_image(_photo("faces", "lp_d8.jpg")), PHONE_LANDSCAPE, blurred=False)
    prepared = prepare_photo(photo)
    result = animate(prepared, tmp_path / "crop.mp4", template=_open_mouth(),
                     options=AnimateOptions(crop_to_face=True))  # fmt: skip
    height, width = prepared.image.shape[:2]
    # H.264 in yuv420p takes even sides: the writer drops an odd last column or row.
    assert (result.width, result.height) == (width - width % 2, height - height % 2)
    assert max(width, height) <= 1024
    # The crop shows the face with room around it, at more pixels than the face has in the capped whole photo.
    assert prepared.face.size > 2 * (box[2] - box[0]) * 1024 / 4032
