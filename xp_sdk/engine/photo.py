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
from typing import NamedTuple

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.faces import MIN_PHOTO_FACE_PX, FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.images import MIN_IMAGE_SIDE, check_image_array, load_image
from xp_sdk.engine.options import DEFAULT_MAX_SIDE as DEFAULT_MAX_SIDE
from xp_sdk.engine.paths import as_file_path
from xp_sdk.errors import FaceTooSmallError, ImageTooSmallError, InvalidInputError, MultipleFacesError, NoFaceError

CROP_FACE_SIDES = 3.2
"""The side of the square animated around a small face, in face sizes: the whole head, the neck and some of the
shoulders, so the warp's fixed border lies where nothing moves."""
CROP_MAX_AREA = 0.5
"""A face whose square would cover more than this share of the photo is animated in the whole photo (portraits)."""
CROP_MIN_GAIN = 1.5
"""A small face is cut out at the photo's own resolution when that is at least this many times the capped copy's;
a photo within ``max_side`` (or barely over) is animated whole, as before."""
SEAM_FEATHER = 0.08
"""Width of the feathered seam where the animated square meets the photo, as a share of the square's side."""

Box = tuple[float, float, float, float]

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
    frame: np.ndarray | None = None
    """The whole photo capped to ``max_side`` and upright, where :attr:`image` (a square around a small face) is
    pasted back; None when :attr:`image` is the whole photo."""
    crop: tuple[int, int, int, int] | None = None
    """(x0, y0, x1, y1) of what :attr:`image` shows, in :attr:`upright`'s pixels; None for the whole photo."""

    @property
    def backdrop(self) -> np.ndarray:
        """The whole photo as the output shows it (capped, upright)."""
        return self.image if self.frame is None else self.frame

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the animation: the whole photo capped, in the photo's own orientation."""
        return self.output_size_for(crop_to_face=False)

    def output_size_for(self, *, crop_to_face: bool) -> tuple[int, int]:
        """(width, height) of the animation of the whole photo, or of the square around the face alone."""
        height, width = (self.image if crop_to_face else self.backdrop).shape[:2]
        return (height, width) if self.turns % 2 else (width, height)

    def compose(self, animated: np.ndarray) -> np.ndarray:
        """One animated :attr:`image` back in the whole photo (upright): downscaled onto its square and blended in
        over a feathered seam; :attr:`image`'s own frame when it is the whole photo."""
        if self.frame is None:
            return animated
        x0, y0, x1, y1 = self._paste_box
        patch = cv2.resize(animated, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32)
        out = self.frame.copy()
        below = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(below + (patch - below) * self._seam, 0, 255).round().astype(np.uint8)
        return out

    @cached_property
    def _paste_box(self) -> tuple[int, int, int, int]:
        assert self.frame is not None and self.crop is not None
        factor = self.frame.shape[1] / self.upright.shape[1]
        height, width = self.frame.shape[:2]
        x0, y0, x1, y1 = (round(v * factor) for v in self.crop)
        return max(0, x0), max(0, y0), min(width, max(x1, x0 + 1)), min(height, max(y1, y0 + 1))

    @cached_property
    def _seam(self) -> np.ndarray:
        """(h, w, 1) weight of the animated square: 1 inside, falling smoothly to 0 at its edges, except where
        they are the photo's edges (nothing lies beyond to blend with)."""
        assert self.frame is not None
        x0, y0, x1, y1 = self._paste_box
        height, width = self.frame.shape[:2]
        feather = max(2.0, SEAM_FEATHER * min(x1 - x0, y1 - y0))

        def ramp(length: int, open_start: bool, open_end: bool) -> np.ndarray:
            at = np.arange(length, dtype=np.float32) + 0.5
            weight = np.ones(length, np.float32)
            if not open_start:
                weight = np.minimum(weight, at / feather)
            if not open_end:
                weight = np.minimum(weight, (length - at) / feather)
            weight = np.clip(weight, 0.0, 1.0)
            return weight * weight * (3.0 - 2.0 * weight)  # smoothstep: no visible edge where the ramp ends

        across = ramp(x1 - x0, x0 == 0, x1 == width)
        down = ramp(y1 - y0, y0 == 0, y1 == height)
        weight: np.ndarray = np.outer(down, across)[:, :, None]
        return weight

    @cached_property
    def upright(self) -> np.ndarray:
        """The photo at its own resolution, turned as :attr:`image` is: what its identity is measured on."""
        return np.ascontiguousarray(np.rot90(self.original, self.turns)) if self.turns else self.original

    @property
    def face_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the face that moves, in :attr:`upright`'s pixels."""
        if self.crop is None:
            factor = self.upright.shape[1] / self.image.shape[1]
            return self.face.scaled(factor).bbox
        cx0, cy0, cx1, _ = self.crop
        factor = (cx1 - cx0) / self.image.shape[1]
        x0, y0, x1, y1 = self.face.scaled(factor).bbox
        return x0 + cx0, y0 + cy0, x1 + cx0, y1 + cy0

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


class _Found(NamedTuple):
    box: Box
    """(x0, y0, x1, y1) of the face in the picture searched."""
    face: FaceAnalysis | None
    """Its landmarks, where MediaPipe found it in the whole picture; None where only YuNet did."""
    turns: int


def _find_face(analyzer: FaceAnalyzer, image: np.ndarray, allow_multiple: bool, name: str) -> _Found:
    """The face that moves in ``image`` (the capped photo): MediaPipe's, or where its detector misses a small face
    (its short-range model sees the picture at 128 pixels), YuNet's."""
    try:
        face = analyzer.analyze_photo(image, allow_multiple=allow_multiple, min_face_px=0, name=name)
        return _Found(face.bbox, face, upright_turns(face))
    except NoFaceError:
        from xp_sdk.engine.identity import IdentityEmbedder

        with IdentityEmbedder() as yunet:
            rows = yunet.detect_all(image)
        if not len(rows):
            raise
        if len(rows) > 1 and not allow_multiple:
            raise MultipleFacesError(
                f"{len(rows)} faces found in {name}; crop the photo to one person, or allow the largest "
                "face to be used (allow_multiple_faces=True, --allow-multiple-faces)",
                count=len(rows),
            ) from None
        x, y, w, h = (float(v) for v in rows[0][:4])
        # YuNet's landmarks start with the right eye (on the picture's left), then the left eye.
        (rx, ry), (lx, ly) = rows[0][4:6], rows[0][6:8]
        angle = math.degrees(math.atan2(float(ly - ry), float(lx - rx)))
        turns = round(angle / 90.0) % 4 if 45.0 < abs(angle) < 135.0 else 0
        return _Found((x, y, x + w, y + h), None, turns)


def _square_around(box: Box, width: int, height: int) -> Box:
    """The square :data:`CROP_FACE_SIDES` faces wide around ``box``, moved (and cut) to lie inside the picture."""
    x0, y0, x1, y1 = box
    side = CROP_FACE_SIDES * max(x1 - x0, y1 - y0)
    w, h = min(side, float(width)), min(side, float(height))
    left = min(max((x0 + x1 - w) / 2, 0.0), width - w)
    top = min(max((y0 + y1 - h) / 2, 0.0), height - h)
    return left, top, left + w, top + h


def _big_enough(face: FaceAnalysis, name: str) -> FaceAnalysis:
    if face.size < MIN_PHOTO_FACE_PX:
        raise FaceTooSmallError(
            f"the face in {name} is {face.size:.0f} pixels across; at least {MIN_PHOTO_FACE_PX} are needed. "
            "Use a larger or tighter photo"
        )
    return face


def _nearest(faces: list[FaceAnalysis], box: Box) -> FaceAnalysis:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

    def distance(face: FaceAnalysis) -> float:
        x0, y0, x1, y1 = face.bbox
        return math.hypot((x0 + x1) / 2 - cx, (y0 + y1) / 2 - cy)

    return min(faces, key=distance)


def prepare_photo(
    source: PhotoSource, *, allow_multiple_faces: bool = False, max_side: int = DEFAULT_MAX_SIDE
) -> PreparedPhoto:
    """Read (or check) the photo, cap it to ``max_side``, find its face with MediaPipe's FaceLandmarker (one
    analysis of the photo, and one more when its face lies on its side) and stand it upright.

    A face that is small in the photo (a phone's 4032×3024 picture with the face a tenth of its width, a group
    photo) is found on the capped copy (by YuNet where MediaPipe's detector misses it), and a square of
    :data:`CROP_FACE_SIDES` faces around it is cut from the photo at its own resolution (capped to ``max_side``)
    and analysed again: that square is what is animated, and :meth:`PreparedPhoto.compose` pastes it back.

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
        found = _find_face(analyzer, image, allow_multiple_faces, name)
        turns = found.turns
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
            found = _find_face(analyzer, image, allow_multiple_faces, name)
        height, width = image.shape[:2]
        square = _square_around(found.box, width, height)
        small = (square[2] - square[0]) * (square[3] - square[1]) <= CROP_MAX_AREA * width * height
        # Cut out only where the photo's own resolution adds detail the capped copy lost (or MediaPipe needs it).
        finer = max(original.shape[:2]) >= CROP_MIN_GAIN * max(height, width)
        if found.face is not None and not (small and finer):
            return PreparedPhoto(
                original=original, image=image, face=_big_enough(found.face, name), turns=turns, max_side=max_side,
                allow_multiple_faces=allow_multiple_faces, name=name,
            )  # fmt: skip
        upright = np.ascontiguousarray(np.rot90(original, turns)) if turns else original
        factor = upright.shape[1] / width
        x0, y0, x1, y1 = (round(v * factor) for v in square)
        piece = np.ascontiguousarray(upright[y0:y1, x0:x1])
        if min(piece.shape[:2]) < MIN_IMAGE_SIDE:
            raise FaceTooSmallError(
                f"the face in {name} is {max(piece.shape[:2]) / CROP_FACE_SIDES:.0f} pixels across; at least "
                f"{MIN_PHOTO_FACE_PX} are needed. Use a larger or tighter photo"
            )
        working = capped(piece, max_side, name)
        shrink = working.shape[1] / piece.shape[1]
        faces = analyzer.detect_all(working)
        if not faces:
            raise NoFaceError(
                f"a face was found in {name} but its features could not be read; use a photo where the face is "
                "larger and clearly visible"
            )
        bx0, by0, bx1, by1 = (v * factor * shrink for v in found.box)
        expected = (bx0 - x0 * shrink, by0 - y0 * shrink, bx1 - x0 * shrink, by1 - y0 * shrink)
        face = _big_enough(_nearest(faces, expected), name)
    return PreparedPhoto(
        original=original, image=working, face=face, turns=turns, max_side=max_side,
        allow_multiple_faces=allow_multiple_faces, name=name, frame=image, crop=(x0, y0, x1, y1),
    )  # fmt: skip


__all__ = [
    "CROP_FACE_SIDES",
    "DEFAULT_MAX_SIDE",
    "PhotoSource",
    "PreparedPhoto",
    "capped",
    "prepare_photo",
    "read_photo",
    "upright_turns",
]
