"""Shading transfer: the creases, folds and shadows of the driver's expression, carried onto the photo.

A warp moves the photo's pixels but makes nothing new: a squeezed eye gets no crow's feet, a smile no
nasolabial fold, raised brows no forehead lines. Those are changes of *shading*, and they are measured on the
driver as an expression ratio image (Liu, Shan & Zhang, "Expressive expression mapping with ratio images",
SIGGRAPH 2001): the driver's face in each frame divided by the same face in the reference frame. Dividing
cancels what belongs to the driver (skin tone, make-up, lighting, albedo) and keeps what the expression did
to it, a factor per pixel that multiplies the photo's brightness.

Both faces are compared in one layout, the photo's own face (:class:`FaceLayout`): each driving frame is
resampled onto it through the face mesh, so a driver's fold lands on the photo where that fold would be.
MediaPipe's mesh does not follow the skin to the pixel; the small misregistration left between two frames
turns every edge (nostril, lip line, brow) into a thin bright-and-dark double line. A dense optical flow
between the two textures takes it out before dividing; a fold that appears is no displaced edge, and stays.
Only local change is kept (a change of exposure or light across the whole face is removed), brightening is
capped (misregistration shows as brightening far more than real shading does), and the eyes and the mouth
opening are left out: their pixels are the eyeball and the cavity, not skin, and have their own painters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import Delaunay

from xp_sdk.engine import topology
from xp_sdk.engine.options import ShadingConfig as ShadingConfig

_HOLES = (
    frozenset(
        topology.EYE_A_UPPER + topology.EYE_A_LOWER + topology.EYE_B_UPPER + topology.EYE_B_LOWER
        + topology.IRIS_A + topology.IRIS_B
    ),
    frozenset(topology.LIPS_UPPER_INNER + topology.LIPS_LOWER_INNER),
)  # fmt: skip
# Added to both textures before dividing, so the darkest pixels (pupils, nostrils) give no huge ratios.
_DARK_FLOOR = 10.0
_BLUR = 1.0  # texture pixels: takes out compression noise and the detector's sub-pixel jitter


@dataclass(frozen=True)
class ShadingRatio:
    """A factor on the photo's brightness for one frame, in the photo's face layout (1 = unchanged)."""

    ratio: np.ndarray
    """(h, w) float32, layout pixels."""
    origin: np.ndarray
    """(2,) the photo pixel at layout (0, 0)."""
    scale: float
    """Layout pixels per photo pixel."""

    def sample(self, photo_xy: np.ndarray) -> np.ndarray:
        """The factor at photo coordinates ``photo_xy`` (H, W, 2, float32): 1 outside the layout."""
        xy = ((photo_xy - self.origin.astype(np.float32)) * np.float32(self.scale)).astype(np.float32)
        sampled: np.ndarray = cv2.remap(
            self.ratio, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0
        )
        return sampled


class FaceLayout:
    """The photo's face as a small grid onto which any face can be resampled through the landmark mesh.

    Build it once per photo from the photo's landmarks (pixels); :meth:`texture` resamples a frame's face
    (with that frame's landmarks) onto it, :meth:`ratio` compares two textures.
    """

    def __init__(self, photo_landmarks: np.ndarray, config: ShadingConfig | None = None) -> None:
        self.config = c = config or ShadingConfig()
        pts = photo_landmarks[:, :2].astype(np.float64)
        low, high = pts.min(axis=0), pts.max(axis=0)
        pad = 0.05 * (high - low)
        low, high = low - pad, high + pad
        self.origin = low
        self.scale = float(c.texture_px / max(float((high - low).max()), 1.0))
        width, height = (int(v) for v in np.ceil((high - low) * self.scale))
        self.shape = (height, width)
        layout = (pts - low) * self.scale

        triangles = Delaunay(layout).simplices
        index = np.full(self.shape, -1, np.int32)
        for k, corners in enumerate(np.round(layout[triangles] * 16.0).astype(np.int32)):
            cv2.fillConvexPoly(index, corners, k, cv2.LINE_8, 4)
        rows, cols = np.nonzero(index >= 0)
        inside = index[rows, cols]
        # Each covered layout pixel as barycentric weights of its triangle's three landmarks.
        corners_h = np.concatenate(
            [layout[triangles[inside]].transpose(0, 2, 1), np.ones((len(inside), 1, 3))], axis=1
        )
        pixels_h = np.stack([cols, rows, np.ones_like(cols)], axis=1).astype(np.float64)[..., None]
        weights = np.linalg.solve(corners_h, pixels_h)[..., 0]  # (n, 3)
        # One sparse matrix: layout pixel (row-major) × landmark; a frame's sampling map is one product with it.
        self._sampler = csr_matrix(
            (weights.ravel(), (np.repeat(rows * width + cols, 3), triangles[inside].ravel())),
            shape=(height * width, len(pts)),
            dtype=np.float32,
        )

        skin = np.zeros(self.shape, np.float32)
        hole = np.array([any(all(v in h for v in tri) for h in _HOLES) for tri in triangles])
        skin[rows, cols] = (~hole[inside]).astype(np.float32)
        oval = np.zeros(self.shape, np.uint8)
        cv2.fillPoly(oval, [np.round(layout[list(topology.FACE_OVAL)]).astype(np.int32)], 1)
        eroded = cv2.erode(skin * oval, np.ones((3, 3), np.uint8))
        self._skin = cv2.GaussianBlur(eroded, (0, 0), 2.0)
        self._skin_spread = cv2.GaussianBlur(self._skin, (0, 0), c.detail_px) + 1e-3
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # type: ignore[attr-defined]
        gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self._grid = np.stack([gx, gy], axis=-1)

    def texture(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The brightness of the face in ``rgb`` (with its landmarks, pixels) resampled onto the layout."""
        map_xy = (self._sampler @ landmarks[:, :2].astype(np.float32)).reshape(*self.shape, 2)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        sampled = cv2.remap(gray, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        blurred: np.ndarray = cv2.GaussianBlur(sampled.astype(np.float32), (0, 0), _BLUR)
        return blurred

    def ratio(self, texture: np.ndarray, reference: np.ndarray) -> ShadingRatio:
        """How the face in ``texture`` is shaded relative to the same face in ``reference`` (both from
        :meth:`texture`), as a factor for the photo."""
        c = self.config
        frame = texture.astype(np.float32)
        ref = reference.astype(np.float32)
        flow = self._flow.calc(_to_u8(frame), _to_u8(ref), None)
        moved = self._grid + flow
        aligned = cv2.remap(ref, moved[..., 0], moved[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        change = np.clip((frame + _DARK_FLOOR) / (aligned + _DARK_FLOOR), c.darkest, c.brightest) - 1.0
        change *= self._skin
        change -= cv2.GaussianBlur(change, (0, 0), c.detail_px) / self._skin_spread * self._skin
        ratio = np.clip(1.0 + change, c.darkest, c.brightest) ** np.float32(c.strength)
        return ShadingRatio(ratio=ratio, origin=self.origin.copy(), scale=self.scale)


def _to_u8(texture: np.ndarray) -> np.ndarray:
    return np.clip(texture, 0.0, 255.0).astype(np.uint8)  # type: ignore[no-any-return]


__all__ = ["FaceLayout", "ShadingConfig", "ShadingRatio"]
