"""The mouth interior: teeth that ride their lips, and a painted cavity where the mouth opens wider than the photo's.

A warp can only stretch the lips' pixels across the opening; real mouths show a dark cavity and teeth.
For a photo with its lips closed, the interior is painted from the photo's own colours (lip tone for the
cavity, a teeth tone matched to the face's brightness), shaped by the inner lip contour of the output frame.
For a photo whose lips are parted (a smile showing teeth), :class:`TeethRig` adds warp control points inside
the opening so its upper teeth move with the upper lip and its lower teeth with the lower lip, unstretched,
as a jaw moves them; only the new gap between them is painted, as cavity.
"""

from __future__ import annotations

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.images import padded_box, pixels_at
from xp_sdk.engine.interior import face_white, roll_out, skin_tone

# Inner-lip gap (pixels) from which a photo's mouth counts as parted, with teeth or cavity worth keeping.
_PARTED_PX = 2.5
# Inner-lip gap (pixels) a column of the opening needs to get teeth control points.
_COLUMN_PX = 1.5
# Without a visible cavity between the teeth rows, the share of the gap taken to be upper teeth.
_UPPER_TEETH_SHARE = 0.8
# How much darker (luma) than the teeth on both sides a cavity between the rows must be.
_VALLEY = 15.0
# Opening (as a share of the mouth's width) from which a tongue starts to show; fully at twice that.
_TONGUE_FROM = 0.12
# Half the width of the band (as a share of the photo's gap) that stretches when the mouth opens.
_HINGE = 0.04


class TeethRig:
    """Control points inside a parted photo mouth: two lines either side of the gap between the teeth rows.

    The line below the upper lip moves with it, the line above the lower lip with the lower lip, each by
    its own lip's motion: what lies between lip and line (teeth) keeps its size. Opening wider than the
    photo stretches only the thin band between the lines, which :class:`MouthPainter` covers with cavity;
    closing squeezes everything in proportion, as before.
    """

    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        pts = landmarks[:, :2].astype(np.float64)
        upper = np.array(topology.LIPS_UPPER_INNER[1:-1])
        lower = np.array(topology.LIPS_LOWER_INNER[1:-1])
        gap = pts[lower] - pts[upper]
        parted = topology.mouth_opening(pts) >= _PARTED_PX
        # Columns near the corners, where the lips nearly touch, get no points: they would only make slivers.
        keep = gap[:, 1] >= _COLUMN_PX if parted else np.zeros(len(upper), bool)
        self._upper, self._lower = upper[keep], lower[keep]
        self._gap = gap[keep]
        self.split = _teeth_split(image, pts[self._upper], self._gap) if keep.any() else _UPPER_TEETH_SHARE
        self.source = self.points(pts)

    @property
    def count(self) -> int:
        return 2 * len(self._upper)

    def lines(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The upper and the lower line, (count / 2, 2) each, for a frame's landmarks (pixels)."""
        pts = landmarks[:, :2]
        gap_now = pts[self._lower] - pts[self._upper]
        # Opening: lines keep their distance to their own lip (teeth ride the lips). Closing: in proportion.
        squeeze = np.clip(gap_now[:, 1] / self._gap[:, 1], 0.0, 1.0)[:, None]
        top = pts[self._upper] + (self.split - _HINGE) * self._gap * squeeze
        bottom = pts[self._lower] - (1.0 - self.split - _HINGE) * self._gap * squeeze
        return top, bottom

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """(count, 2): both lines as warp control points, the upper first."""
        return np.vstack(self.lines(landmarks))

    def gap_polygon(self, landmarks: np.ndarray) -> np.ndarray:
        """The opening between the two lines in a frame, closed through the inner mouth corners (x, y)."""
        top, bottom = self.lines(landmarks)
        corners = landmarks[list(topology.INNER_MOUTH_CORNERS), :2]
        return np.vstack([corners[:1], top, corners[1:], bottom[::-1]])


def _teeth_split(image: np.ndarray, upper: np.ndarray, gap: np.ndarray) -> float:
    """Where, as a share of the gap below the upper lip, the upper teeth row ends.

    A dark valley across the opening (the cavity between the two rows) marks it; without one (a smile shows
    the upper teeth down to the lower lip), the upper teeth are taken to fill most of the gap, as they do in
    most smiles: the jaw then opens below them.
    """
    fractions = np.linspace(0.2, 0.9, 15)
    luma = np.array(
        [float(np.dot(pixels_at(image, upper + f * gap).mean(axis=0), [0.299, 0.587, 0.114])) for f in fractions]
    )
    low = int(np.argmin(luma[1:-1])) + 1
    if min(luma[:low].max(), luma[low + 1 :].max()) - luma[low] >= _VALLEY:
        return float(fractions[low])
    return _UPPER_TEETH_SHARE


class MouthPainter:
    def __init__(self, image: np.ndarray, landmarks: np.ndarray, teeth: TeethRig | None = None) -> None:
        pts = landmarks[:, :2]
        outer = pts[list(topology.LIPS_UPPER_OUTER[2:-2] + topology.LIPS_LOWER_OUTER[2:-2])]
        inner = pts[list(topology.LIPS_UPPER_INNER[2:-2] + topology.LIPS_LOWER_INNER[2:-2])]
        lips = _sample(image, (outer + inner) / 2)
        cheeks = _sample(image, pts[[50, 280, 101, 330, 4]])
        skin_luma = float(np.dot(cheeks, [0.299, 0.587, 0.114]))
        brightness = np.clip(skin_luma / 165.0, 0.55, 1.15)
        # Cavity: the lip hue, deep and dark, as in a real open mouth; teeth: off-white matched to the exposure.
        hue = lips / max(float(lips.max()), 1.0)
        self.cavity = np.clip(hue * np.array([92.0, 52.0, 50.0]) * brightness, 0, 255)
        self.throat = self.cavity * 0.35
        # The tongue: the lip hue, a little deeper, lying on the floor of a wide-open mouth.
        self.tongue = np.clip(lips * 0.78, 0, 255)
        self.teeth = np.clip(np.array([222.0, 214.0, 198.0]) * brightness, 0, 238)
        # The seam where lips press together: the lip tone, deepened.
        self.seam = np.clip(lips * 0.6, 0, 255)
        self.source_opening = max(topology.mouth_opening(pts), 0.0)
        self.skin = skin_tone(image, pts)
        self.white = face_white(image, pts)
        self._teeth = teeth if teeth is not None and teeth.count else None

    def paint(self, frame: np.ndarray, target: np.ndarray, interior: np.ndarray | None = None) -> None:
        """Paint the interior into ``frame`` (in place) where the target mouth opens beyond the photo's, or
        the seam of pressed lips where it closes a photo's open mouth.

        ``interior``: the driver's own mouth interior for this frame (:func:`~xp_sdk.engine.interior.sample_interior`),
        used in place of the painted one as far as its weight says; None paints a generic interior."""
        opening = topology.mouth_opening(target)
        if opening < self.source_opening - 1.0:
            self._paint_seam(frame, target, opening)
            return
        if opening <= self.source_opening + 1.0:
            return
        if self._teeth is not None:
            self._paint_gap(frame, target, interior)
            return
        strength = float(np.clip(1.0 - self.source_opening / opening, 0.0, 1.0))
        poly = topology.inner_mouth_polygon(target)
        box = padded_box(poly, frame.shape, 3)
        if box is None:
            return
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        alpha = cv2.GaussianBlur(_polygon_mask(poly, box), (0, 0), 0.8).astype(np.float32) / 255.0 * strength

        upper = target[list(topology.LIPS_UPPER_INNER), :2] - np.array([x0, y0])
        lower = target[list(topology.LIPS_LOWER_INNER), :2] - np.array([x0, y0])
        xs = np.arange(bw, dtype=np.float32)
        y_up = np.interp(xs, *_sorted_xy(upper))
        y_lo = np.interp(xs, *_sorted_xy(lower))
        ys = np.arange(bh, dtype=np.float32)[:, None]
        gap = np.maximum(y_lo - y_up, 1e-3)[None, :]
        depth = np.clip((ys - y_up[None, :]) / gap, 0.0, 1.0)  # 0 at the upper lip, 1 at the lower lip
        width = float(np.ptp(poly[:, 0])) or 1.0
        centre_x = float(poly[:, 0].mean())
        across = np.clip(1.0 - np.abs(xs + x0 - centre_x) / (0.5 * width), 0.0, 1.0)[None, :]

        # Cavity darkens towards the throat (middle of the opening, centre of the mouth).
        throat_w = np.sin(np.pi * depth) * across
        tw = throat_w[..., None]
        layer = self.cavity[None, None, :] * (1 - tw) + self.throat[None, None, :] * tw
        layer = self._with_tongue(layer, depth, across, opening, width)

        # Upper teeth hang from the upper lip; lower teeth show only when the mouth is open wide.
        teeth_h = min(0.16 * width, 0.42 * opening)
        below_upper = ys - y_up[None, :]
        upper_teeth = np.clip(1.0 - below_upper / max(teeth_h, 1.0), 0.0, 1.0) ** 0.35 * (below_upper >= -1)
        lower_h = max(0.0, min(0.1 * width, 0.25 * (opening - 0.2 * width)))
        above_lower = y_lo[None, :] - ys
        lower_teeth = (
            np.clip(1.0 - above_lower / max(lower_h, 1.0), 0.0, 1.0) ** 0.35 * (above_lower >= -1) * 0.75
            if lower_h > 0.5
            else np.zeros_like(upper_teeth)
        )
        teeth_visibility = np.clip(across * 1.6, 0.0, 1.0) ** 0.7
        lip_shadow = 1.0 - 0.35 * np.clip(1.0 - below_upper / max(0.25 * teeth_h, 1.0), 0.0, 1.0)
        shade = (0.75 + 0.25 * across) * lip_shadow
        teeth_rgb = self.teeth[None, None, :] * shade[..., None]
        t = np.clip(np.maximum(upper_teeth, lower_teeth) * teeth_visibility, 0.0, 1.0)[..., None]
        layer = layer * (1 - t) + teeth_rgb * t
        if interior is not None:
            driver, weight = roll_out(interior, target, box, self.skin, white=self.white)
            layer = layer * (1 - weight[..., None]) + driver * weight[..., None]

        _composite(frame, box, layer, alpha[..., None])


    def _paint_gap(self, frame: np.ndarray, target: np.ndarray, interior: np.ndarray | None) -> None:
        # The photo's own teeth ride the lips (TeethRig); between them is only the stretched hinge band. The
        # driver's interior there is the part between the driver's own teeth: throat and tongue.
        assert self._teeth is not None
        poly = self._teeth.gap_polygon(target)
        box = padded_box(poly, frame.shape, 2)
        if box is None:
            return
        x0, y0, x1, y1 = box
        alpha = cv2.GaussianBlur(_polygon_mask(poly, box), (0, 0), 0.8).astype(np.float32)[..., None] / 255.0
        # Darker towards the middle of the gap, as a throat seen past the teeth.
        top, bottom = self._teeth.lines(target)
        xs = np.arange(x0, x1, dtype=np.float32)
        y_top = np.interp(xs, *_sorted_xy(top))
        y_bottom = np.interp(xs, *_sorted_xy(bottom))
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        depth = np.clip((ys - y_top[None, :]) / np.maximum(y_bottom - y_top, 1.0)[None, :], 0.0, 1.0)
        throat = np.sin(np.pi * depth)[..., None]
        layer = self.cavity[None, None, :] * (1 - throat) + self.throat[None, None, :] * throat
        width = float(np.ptp(poly[:, 0])) or 1.0
        across = np.clip(1.0 - np.abs(xs - float(poly[:, 0].mean())) / (0.5 * width), 0.0, 1.0)[None, :]
        layer = self._with_tongue(layer, depth, across, float(np.mean(y_bottom - y_top)), width)
        if interior is not None:
            driver, weight = roll_out(interior, target, box, self.skin, between=(top, bottom), white=self.white)
            layer = layer * (1 - weight[..., None]) + driver * weight[..., None]
        _composite(frame, box, layer, alpha)

    def _with_tongue(
        self, layer: np.ndarray, depth: np.ndarray, across: np.ndarray, opening: float, width: float
    ) -> np.ndarray:
        """``layer`` with a tongue on the floor of the opening, once it is open wide enough to show one.

        Without it a wide-open mouth reads as a black hole."""
        show = float(np.clip((opening / width - _TONGUE_FROM) / _TONGUE_FROM, 0.0, 1.0)) ** 0.5
        if show <= 0.0:
            return layer
        floor = np.clip((depth - 0.45) / 0.35, 0.0, 1.0)
        weight = (0.85 * show * floor * np.sqrt(across))[..., None]
        return layer * (1 - weight) + self.tongue[None, None, :] * weight  # type: ignore[no-any-return]

    def _paint_seam(self, frame: np.ndarray, target: np.ndarray, opening: float) -> None:
        # The warp squeezes the photo's teeth and cavity into the few pixels between the lips, where they
        # alias into a speckled line; pressed lips show a soft dark seam instead.
        strength = float(np.clip(1.0 - max(opening, 0.0) / self.source_opening, 0.0, 1.0))
        poly = topology.inner_mouth_polygon(target)
        box = padded_box(poly, frame.shape, 3, min_size=(3, 1))
        if box is None:
            return
        mask = _polygon_mask(poly, box)
        origin = np.array(box[:2])
        upper = target[list(topology.LIPS_UPPER_INNER), :2]
        lower = target[list(topology.LIPS_LOWER_INNER), :2]
        middle = np.round(((upper + lower) / 2 - origin) * 16).astype(np.int32)
        cv2.polylines(mask, [middle], False, 255, thickness=1, lineType=cv2.LINE_AA, shift=4)
        alpha = cv2.GaussianBlur(mask, (0, 0), 0.5).astype(np.float32)[..., None] / 255.0 * (0.85 * strength)
        _composite(frame, box, self.seam[None, None, :], alpha)


def _polygon_mask(poly: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 mask of ``box`` (x0, y0, x1, y1) with ``poly`` filled (anti-aliased, sub-pixel) at 255."""
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    local = np.round((poly - np.array([x0, y0])) * 16).astype(np.int32)
    cv2.fillPoly(mask, [local], 255, lineType=cv2.LINE_AA, shift=4)
    return mask


def _composite(frame: np.ndarray, box: tuple[int, int, int, int], layer: np.ndarray, alpha: np.ndarray) -> None:
    """Blend ``layer`` over ``frame`` inside ``box`` (in place) with per-pixel ``alpha`` (H, W, 1)."""
    x0, y0, x1, y1 = box
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi * (1 - alpha) + layer * alpha, 0, 255).astype(np.uint8)


def _sorted_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


def _sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    return pixels_at(image, points).mean(axis=0)  # type: ignore[no-any-return]
