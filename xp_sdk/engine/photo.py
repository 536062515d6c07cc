"""The photo as the engine animates it, analysed once: checked, capped to ``max_side``, its face found (the only
one, or the largest when several are allowed) and stood upright.

The SDK prepares the photo before its gate matches the face, so that what is wrong with the photo itself (no face,
several faces, a face too small) is said first, as that, and so that the face matched is the face that moves:
:meth:`~xp_sdk.engine.identity.IdentityEmbedder.embed_face` embeds the face at :attr:`PreparedPhoto.face_box`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.images import MIN_IMAGE_SIDE, check_image_array, load_image
from xp_sdk.engine.paths import as_file_path
from xp_sdk.errors import ImageTooSmallError, InvalidInputError

DEFAULT_MAX_SIDE = 1024

PhotoSource = str | os.PathLike[str] | np.ndarray


@dataclass(frozen=True, eq=False)
class PreparedPhoto:
    """One photo, analysed as :func:`prepare_photo` made it; hand it to ``animate`` as the source to animate it
    without analysing it again."""

    original: np.ndarray
    """The photo as given (RGB ``uint8``, checked), at its own size and orientation."""
    image: np.ndarray
    """What the engine animates: the photo capped to ``max_side`` and turned upright by ``turns``."""
    face: FaceAnalysis
    """The face that moves, in :attr:`image`'s pixels."""
    turns: int
    """Counter-clockwise quarter turns from the photo to :attr:`image` (0, 1 or 3; see :func:`upright_turns`)."""
    max_side: int
    allow_multiple_faces: bool
    name: str
    """How messages name the photo ("source photo portrait.jpg", "the source photo")."""

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the animation: :attr:`image` back in the photo's own orientation."""
        height, width = self.image.shape[:2]
        return (height, width) if self.turns % 2 else (width, height)

    @cached_property
    def upright(self) -> np.ndarray:
        """The photo at its own resolution, turned as :attr:`image` is: what its identity is measured on."""
        return np.ascontiguousarray(np.rot90(self.original, self.turns)) if self.turns else self.original

    @property
    def face_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the face that moves, in :attr:`upright`'s pixels."""
        factor = self.upright.shape[1] / self.image.shape[1]
        return self.face.scaled(factor).bbox

    def made_for(self, *, max_side: int, allow_multiple_faces: bool) -> bool:
        """Whether the photo was prepared with these settings (else it must be prepared again)."""
        return self.max_side == max_side and self.allow_multiple_faces == allow_multiple_faces


def read_photo(source: PhotoSource) -> tuple[np.ndarray, str]:
    """The photo as checked RGB ``uint8`` (from a file, EXIF orientation applied, or from an array), and how
    messages name it."""
    if isinstance(source, np.ndarray):
        return check_image_array(source, name="source photo"), "the source photo"
    path = as_file_path(source, "source photo", also="an RGB uint8 numpy array")
    return load_image(path), f"source photo {path}"


def capped(image: np.ndarray, max_side: int, name: str) -> np.ndarray:
    """``image`` downscaled so that its longer side is at most ``max_side``; ImageTooSmallError when that would
    leave its shorter side under the smallest photo accepted."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (round(width * scale), round(height * scale))
    if min(size) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"{name} is {width}×{height} pixels; capped to max_side {max_side} it would be {size[0]}×{size[1]}, "
            f"under {MIN_IMAGE_SIDE} pixels on its shorter side. Crop it closer to the face, or raise max_side"
        )
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def upright_turns(face: FaceAnalysis) -> int:
    """Counter-clockwise quarter turns that stand ``face`` upright: 1 or 3 for a face lying at ±90° (a photo taken
    with the camera on its side whose orientation was lost, as apps that strip EXIF lose it), else 0. Upside-down
    faces are not turned: MediaPipe's landmarks on them are not where the features are."""
    left, right = face.landmarks[list(topology.OUTER_EYE_CORNERS), :2]
    dx, dy = right - left
    angle = math.degrees(math.atan2(dy, dx))  # 0 for an upright face; y points down
    return round(angle / 90.0) % 4 if 45.0 < abs(angle) < 135.0 else 0


def prepare_photo(
    source: PhotoSource, *, allow_multiple_faces: bool = False, max_side: int = DEFAULT_MAX_SIDE
) -> PreparedPhoto:
    """Read (or check) the photo, cap it to ``max_side``, find its face with MediaPipe's FaceLandmarker (one
    analysis of the photo, and one more when its face lies on its side) and stand it upright.

    Raises what is wrong with the photo as such: ``UnreadableImageError`` and its kin, ``NoFaceError``,
    ``MultipleFacesError`` (several faces, unless ``allow_multiple_faces``: then the largest is the one that
    moves), ``FaceTooSmallError``. Head motion is carried in the picture's axes, so on a face lying on its side a
    nod became a shake (pose error 2.6° against 1.1° upright, lp_d5 driving lp_s7): the engine animates the face
    upright and turns the frames back.
    """
    if isinstance(max_side, bool) or not (isinstance(max_side, int) and max_side >= MIN_IMAGE_SIDE):
        raise InvalidInputError(
            f"max_side must be a whole number of pixels, at least {MIN_IMAGE_SIDE}, got {max_side!r}"
        )
    if not isinstance(allow_multiple_faces, bool):
        raise InvalidInputError(f"allow_multiple_faces must be true or false, got {allow_multiple_faces!r}")
    original, name = read_photo(source)
    image = capped(original, max_side, name)
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze_photo(image, allow_multiple=allow_multiple_faces, name=name)
        turns = upright_turns(face)
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
            face = analyzer.analyze_photo(image, allow_multiple=allow_multiple_faces, name=name)
    return PreparedPhoto(
        original=original, image=image, face=face, turns=turns, max_side=max_side,
        allow_multiple_faces=allow_multiple_faces, name=name,
    )  # fmt: skip


__all__ = [
    "DEFAULT_MAX_SIDE",
    "PhotoSource",
    "PreparedPhoto",
    "capped",
    "prepare_photo",
    "read_photo",
    "upright_turns",
]
