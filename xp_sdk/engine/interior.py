"""The driver's mouth interior (teeth, tongue, the dark of the throat), carried into the photo's opening.

A photo with its lips closed has no interior to warp: the opening a driver's speech makes in it must be painted.
A generic painted mouth is a dark hole with a band of teeth; the driver's own mouth, frame by frame, has teeth
that come and go with the lips, and a tongue that moves with the words. So each driving frame's interior is
unrolled into a small patch between its inner lips (columns from one inner corner to the other, rows from the
upper inner lip to the lower), and rolled back into the photo's opening between the target's inner lips: the
driver's upper teeth stay under the photo's upper lip, its tongue on the floor of the photo's mouth.

Colour: brightness is stored relative to the driver's skin and multiplied by the photo's, so teeth are as much
brighter than the skin as the driver's are, under the photo's light; above the skin it rolls off towards the
brightest the photo's own face gets (:func:`face_white`), so teeth under a bright photo's light are not a clipped
white bar. Colour (chroma) is the driver's own, moved half-way from the driver's skin cast to the photo's: a
skin's hue is part pigment and part light, and carrying all of it over (scaling R, G and B each by its skin ratio)
turned teeth green on a varnished painting and blue under a yellow driving video. Its strength is stored relative
to the driver's skin's and laid in relative to the photo's: a grey or faded photo gets a grey or faded mouth, not
the driver's pink tongue and lipstick. Dark pixels carry at most ``_DARK_CHROMA`` of their luma as chroma: a
throat in shadow is dark, not navy or purple.
"""

from __future__ import annotations

import cv2
import numpy as np

from xp_sdk.engine import topology

PATCH_ROWS, PATCH_COLUMNS = 32, 96
_OPEN_FROM_PX, _OPEN_FULL_PX = 0.5, 2.0
"""Driver's inner-lip gap (pixels) from which its interior starts to be used, and from which it is used alone.
Low on purpose: blending it with the painted interior over a wider range (2-6 px) made a talking mouth switch
between the two from frame to frame, and the detector read the flicker (jitter 1.14 -> 1.22 on lp_d18 x lp_d8;
1.18 now)."""
_SKIN = (50, 280, 101, 330, 205, 425, 36, 266, 4)
"""Cheek and nose points whose median colour is the skin's (clear of lips, eyes and brows)."""
_TEETH_LUMA = 0.95
"""Skin-relative luma from which a row of the interior counts as teeth (teeth are about as bright as the skin or
brighter; throat and tongue in its shadow are well below)."""
_CAST_SHARE = 0.5
"""How much of the difference between the two skins' chroma is taken to be light (moved onto the interior)."""
_SKIN_CHROMA_RANGE = (6.0, 40.0)
"""Bounds on a skin's chroma magnitude (Cr, Cb) as the unit of an interior's colour: below, a grey driver's mouth
would be blown up to full colour; above, a painting's saturated skin would make a garish mouth."""
_DARK_CHROMA = 0.5
"""The most chroma (magnitude) a pixel of the interior keeps, as a share of its luma."""
_UPPER = list(topology.LIPS_UPPER_INNER)
_LOWER = list(topology.LIPS_LOWER_INNER)


def skin_tone(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(3,) median RGB of the face's skin around the cheek and nose points (3×3 pixels each)."""
    h, w = rgb.shape[:2]
    pts = np.round(landmarks[list(_SKIN), :2]).astype(int)
    offsets = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    xy = (pts[:, None, :] + offsets[None]).reshape(-1, 2)
    xy = np.clip(xy, 0, [w - 1, h - 1])
    return np.median(rgb[xy[:, 1], xy[:, 0]].astype(np.float32), axis=0)  # type: ignore[no-any-return]


def sample_interior(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The driver's mouth interior in one frame: (PATCH_ROWS, PATCH_COLUMNS, 4) float16: luma relative to the
    driver's skin's, chroma (Cr, Cb) less part of the skin's cast (module docstring), and how much of it to use
    (0 for a closed mouth). None when the mouth is closed."""
    pts = landmarks[:, :2].astype(np.float64)
    opening = topology.mouth_opening(pts)
    weight = float(np.clip((opening - _OPEN_FROM_PX) / (_OPEN_FULL_PX - _OPEN_FROM_PX), 0.0, 1.0))
    if weight <= 0.0:
        return None
    frame = _MouthFrame(pts)
    u = np.linspace(0.0, 1.0, PATCH_COLUMNS)
    v = np.linspace(0.0, 1.0, PATCH_ROWS)[:, None]
    top, bottom = frame.lips_at(u)
    along = np.broadcast_to(u[None, :], (PATCH_ROWS, PATCH_COLUMNS))
    across = top[None, :] + v * (bottom - top)[None, :]
    xy = frame.to_image(along, across)
    patch = cv2.remap(
        rgb, xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32), cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float32)  # fmt: skip
    ycc = _to_ycc(patch)
    skin = _to_ycc(skin_tone(rgb, pts))
    out = np.empty((PATCH_ROWS, PATCH_COLUMNS, 4), np.float16)
    out[..., 0] = ycc[..., 0] / max(float(skin[0]), 1.0)
    out[..., 1:3] = (ycc[..., 1:] - _CAST_SHARE * skin[1:]) / _skin_chroma(skin, floor=True)
    out[..., 3] = weight
    return out


def face_white(rgb: np.ndarray, landmarks: np.ndarray) -> float:
    """The brightest the face gets (99th percentile luma inside the face oval): how white teeth may be in it."""
    mask = np.zeros(rgb.shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(landmarks[list(topology.FACE_OVAL), :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    luma = _to_ycc(rgb[mask > 0])[:, 0] if mask.any() else np.array([255.0])
    return float(np.percentile(luma, 99))


def _skin_chroma(ycc_skin: np.ndarray, *, floor: bool) -> float:
    """The skin's chroma magnitude, as the unit of an interior's colour (bounded by ``_SKIN_CHROMA_RANGE``; with
    ``floor`` False a grey skin's own, near zero)."""
    low, high = _SKIN_CHROMA_RANGE
    magnitude = float(np.linalg.norm(ycc_skin[1:]))
    return min(max(magnitude, low) if floor else magnitude, high)


def roll_out(
    interior: np.ndarray,
    landmarks: np.ndarray,
    box: tuple[int, int, int, int],
    skin: np.ndarray,
    between: tuple[np.ndarray, np.ndarray] | None = None,
    white: float = 255.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The interior laid into the target's opening over ``box`` (x0, y0, x1, y1): RGB in the photo's colours
    (H, W, 3) float32, and how much of it to use (H, W) float32 (the interior's own weight; the opening's shape
    is the caller's mask).

    ``between``: two lines (x, y points) to lay it between instead of the inner lips, with only the part of the
    driver's opening between its teeth (:func:`teeth_span`): the gap a smiling photo's own teeth leave.
    ``white``: the brightest the photo's face gets (:func:`face_white`); what is brighter than the skin rolls off
    towards it."""
    pts = landmarks[:, :2].astype(np.float64)
    if between is None:
        frame = _MouthFrame(pts)
        first, last = 0.0, 1.0
    else:
        frame = _MouthFrame(pts, *between)
        first, last = teeth_span(interior)
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    along, across = frame.from_image(xs, ys)
    top, bottom = frame.lips_at(np.clip(along, 0.0, 1.0))
    v = first + (last - first) * np.clip((across - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)
    cols = (np.clip(along, 0.0, 1.0) * (PATCH_COLUMNS - 1)).astype(np.float32)
    rows = (v * (PATCH_ROWS - 1)).astype(np.float32)
    sampled = cv2.remap(interior.astype(np.float32), cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    photo_skin = _to_ycc(skin)
    ycc = np.empty((*sampled.shape[:2], 3), np.float32)
    ycc[..., 0] = _roll_off(sampled[..., 0] * photo_skin[0], float(photo_skin[0]), white)
    chroma = sampled[..., 1:3] * _skin_chroma(photo_skin, floor=False) + _CAST_SHARE * photo_skin[1:]
    magnitude = np.linalg.norm(chroma, axis=-1, keepdims=True)
    ycc[..., 1:] = chroma * np.minimum(1.0, _DARK_CHROMA * np.maximum(ycc[..., :1], 0.0) / np.maximum(magnitude, 1e-3))
    return np.clip(_to_rgb(ycc), 0.0, 255.0), sampled[..., 3]


def _roll_off(luma: np.ndarray, knee: float, white: float) -> np.ndarray:
    """``luma`` as it is up to ``knee``; above, approaching ``white`` without reaching it (never clipped flat)."""
    room = max(white - knee, 1.0)
    over = np.maximum(luma - knee, 0.0)
    return np.minimum(luma, knee) + room * (1.0 - np.exp(-over / room))  # type: ignore[no-any-return]


def teeth_span(interior: np.ndarray) -> tuple[float, float]:
    """The rows (fractions from the upper inner lip to the lower) between the driver's upper and lower teeth.

    Teeth are the brightest of a mouth, about as bright as its skin or brighter, where throat and tongue are in
    shadow. A bright band starting near the top (past a row or two of lip edge) is the upper teeth, at most 45 %
    of the opening; one near the bottom the lower teeth, at most 30 %.
    """
    middle = interior[:, PATCH_COLUMNS // 4 : 3 * PATCH_COLUMNS // 4, 0].astype(np.float32)
    bright = np.median(middle, axis=1) >= _TEETH_LUMA
    n = PATCH_ROWS
    edge = max(1, n // 6)
    first = 0
    start = int(np.argmax(bright[:edge])) if bright[:edge].any() else None
    if start is not None:
        first = start
        while first < int(0.45 * n) and bright[first]:
            first += 1
    last = n - 1
    tail = bright[n - edge :][::-1]
    if tail.any():
        last = n - 1 - int(np.argmax(tail))
        while last > int(0.7 * n) and bright[last]:
            last -= 1
    return first / (n - 1), last / (n - 1)


# BT.601 luma and centred chroma (Cr, Cb), on 0-255 RGB.
_YCC = np.array([[0.299, 0.587, 0.114], [0.5, -0.418688, -0.081312], [-0.168736, -0.331264, 0.5]], np.float32)
_RGB = np.linalg.inv(_YCC).astype(np.float32)


def _to_ycc(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _YCC.T


def _to_rgb(ycc: np.ndarray) -> np.ndarray:
    return ycc @ _RGB.T


class _MouthFrame:
    """Coordinates along the mouth (0 at one inner corner, 1 at the other) and across it (pixels, towards the
    chin), so a tilted head's mouth unrolls like a level one."""

    def __init__(self, pts: np.ndarray, upper: np.ndarray | None = None, lower: np.ndarray | None = None) -> None:
        """``pts``: the face's landmarks; ``upper``, ``lower``: the lines that bound the opening (default: the inner
        lips)."""
        left, right = pts[topology.INNER_MOUTH_CORNERS[0]], pts[topology.INNER_MOUTH_CORNERS[1]]
        span = right - left
        self.length = max(float(np.linalg.norm(span)), 1e-3)
        self.axis = span / self.length
        self.normal = np.array([-self.axis[1], self.axis[0]])
        if self.normal[1] < 0:
            self.normal = -self.normal
        self.origin = left
        self._upper = self._contour(pts[_UPPER] if upper is None else np.vstack([left, upper, right]))
        self._lower = self._contour(pts[_LOWER] if lower is None else np.vstack([left, lower, right]))

    def _contour(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        along, across = self.from_image(points[:, 0], points[:, 1])
        order = np.argsort(along)
        return along[order], across[order]

    def from_image(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xs - self.origin[0], ys - self.origin[1]
        along = (dx * self.axis[0] + dy * self.axis[1]) / self.length
        across = dx * self.normal[0] + dy * self.normal[1]
        return along, across

    def to_image(self, along: np.ndarray, across: np.ndarray) -> np.ndarray:
        base = self.origin + (along * self.length)[..., None] * self.axis
        return base + across[..., None] * self.normal  # type: ignore[no-any-return]

    def lips_at(self, along: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Across-coordinate of the upper and the lower inner lip at each ``along``."""
        return np.interp(along, *self._upper), np.interp(along, *self._lower)
