"""What the diffusion model sees: a fixed square crop around the face, and face-mesh renders with pupils.

The renders follow the annotator the public MediaPipe-face ControlNet (CrucibleAI/ControlNetMediaPipeFace) was
trained on: black background; face oval, eyes, brows and lips as 2-px polylines (at 512 px) in its colours; each
pupil as a 4×4 square, so gaze follows the driving video. Its annotator drew in BGR and flipped the image at the
end; the colours below are the RGB values that came out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalysis

Colour = tuple[int, int, int]
_OVAL: Colour = (10, 200, 10)
_MOUTH: Colour = (10, 180, 10)
_EYE_B: Colour = (10, 200, 180)  # MediaPipe's "left" eye: landmarks 362–263
_BROW_B: Colour = (10, 220, 180)
_EYE_A: Colour = (180, 200, 10)  # MediaPipe's "right" eye: landmarks 33–133
_BROW_A: Colour = (180, 220, 10)
_PUPIL_A: Colour = (250, 200, 10)  # landmark 468
_PUPIL_B: Colour = (10, 200, 250)  # landmark 473

# Polylines in the annotator's drawing order (later strokes cover earlier ones where they cross).
_STROKES: tuple[tuple[tuple[int, ...], Colour, bool], ...] = (
    (topology.FACE_OVAL, _OVAL, True),
    (topology.EYE_B_LOWER, _EYE_B, False),
    (topology.EYE_B_UPPER, _EYE_B, False),
    ((276, 283, 282, 295, 285), _BROW_B, False),
    ((300, 293, 334, 296, 336), _BROW_B, False),
    (topology.EYE_A_LOWER, _EYE_A, False),
    (topology.EYE_A_UPPER, _EYE_A, False),
    ((46, 53, 52, 65, 55), _BROW_A, False),
    ((70, 63, 105, 66, 107), _BROW_A, False),
    (topology.LIPS_LOWER_OUTER, _MOUTH, False),
    (topology.LIPS_UPPER_OUTER, _MOUTH, False),
    (topology.LIPS_LOWER_INNER, _MOUTH, False),
    (topology.LIPS_UPPER_INNER, _MOUTH, False),
)
_PUPILS = ((topology.IRIS_A[0], _PUPIL_A), (topology.IRIS_B[0], _PUPIL_B))
FACE_MASK_GROW = 1.1
"""The blended region: the face oval (hairline to chin) and a tenth more, so the jaw and brow edges are the model's."""


def render_face_mesh(landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """RGB uint8 (resolution, resolution, 3) render of 478 landmarks given in the render's pixels."""
    canvas = np.zeros((resolution, resolution, 3), np.uint8)
    scale = resolution / 512
    thickness = max(1, round(2 * scale))
    half = max(1, round(2 * scale))
    # The annotator truncates normalised coordinates to whole pixels.
    px = np.floor(landmarks[:, :2]).astype(np.int32)
    for indices, colour, closed in _STROKES:
        cv2.polylines(canvas, [px[list(indices)]], closed, colour, thickness, cv2.LINE_8)
    for index, colour in _PUPILS:
        x, y = px[index]
        if 0 <= x < resolution and 0 <= y < resolution:
            canvas[max(y - half, 0) : y + half, max(x - half, 0) : x + half] = colour
    return canvas


@dataclass(frozen=True)
class FaceCrop:
    """A square of the frame, fixed for the whole video so the crop itself never jitters."""

    x0: int
    y0: int
    side: int
    resolution: int
    image_size: tuple[int, int]  # (width, height) of the full frame

    @classmethod
    def around(cls, face: FaceAnalysis, image_size: tuple[int, int], scale: float, resolution: int) -> FaceCrop:
        w, h = image_size
        x0, y0, x1, y1 = face.bbox
        side = round(min(max(x1 - x0, y1 - y0) * scale, w, h))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # A little more room above the eyes than below the chin: hair moves with the head.
        left = round(min(max(cx - side / 2, 0), w - side))
        top = round(min(max(cy - side * 0.55, 0), h - side))
        return cls(left, top, side, resolution, (w, h))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels → crop render pixels."""
        out: np.ndarray = (points[:, :2] - np.array([self.x0, self.y0])) * (self.resolution / self.side)
        return out

    def cut(self, frame: np.ndarray) -> np.ndarray:
        region = frame[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side]
        interpolation = cv2.INTER_AREA if self.side > self.resolution else cv2.INTER_CUBIC
        return cv2.resize(region, (self.resolution, self.resolution), interpolation=interpolation)

    def feather(self) -> np.ndarray:
        """Alpha (side, side, 1): 1 inside, fading to 0 at crop edges that lie inside the frame."""
        w, h = self.image_size
        margin = max(2, self.side // 12)
        ramp = np.linspace(0.0, 1.0, margin + 2, dtype=np.float32)[1:-1]
        ax = np.ones(self.side, np.float32)
        ay = np.ones(self.side, np.float32)
        if self.x0 > 0:
            ax[:margin] = ramp
        if self.x0 + self.side < w:
            ax[-margin:] = np.minimum(ax[-margin:], ramp[::-1])
        if self.y0 > 0:
            ay[:margin] = ramp
        if self.y0 + self.side < h:
            ay[-margin:] = np.minimum(ay[-margin:], ramp[::-1])
        return (ay[:, None] * ax[None, :])[..., None]

    def face_alpha(self, landmarks: np.ndarray, grow: float = FACE_MASK_GROW) -> np.ndarray:
        """Alpha (side, side, 1) of the face in this frame: 1 over the face oval grown by ``grow`` about its centre,
        fading to 0 over a Gaussian edge (sigma a fortieth of the crop), and never beyond the crop's own feather.

        Only the face is taken from the model: the background and hair around it stay the warp result, so the
        crop's square edge never shows and the background does not shimmer from window to window."""
        points = landmarks[list(topology.FACE_OVAL), :2] - np.array([self.x0, self.y0])
        centre = points.mean(axis=0)
        grown = np.round(centre + (points - centre) * grow).astype(np.int32)
        hard = np.zeros((self.side, self.side), np.float32)
        cv2.fillPoly(hard, [grown], 1.0)
        sigma = max(1.0, self.side / 40)
        soft: np.ndarray = cv2.GaussianBlur(hard, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        alpha: np.ndarray = soft[..., None] * self.feather()
        return alpha

    def paste(self, frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """``frame`` with ``patch`` (the crop at render resolution) blended in through ``alpha``."""
        interpolation = cv2.INTER_AREA if self.resolution > self.side else cv2.INTER_CUBIC
        resized = cv2.resize(patch, (self.side, self.side), interpolation=interpolation).astype(np.float32)
        out = frame.copy()
        region = out[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side].astype(np.float32)
        blended = region + (resized - region) * alpha
        out[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side] = np.clip(
            np.rint(blended), 0, 255
        ).astype(np.uint8)
        return out
