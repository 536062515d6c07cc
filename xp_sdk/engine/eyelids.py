"""Closed-eye lids for a warp: lid skin and a lash line painted where the driving eye closes.

In an open-eyed photo the lid skin that covers a closed eye is folded away under the crease: there is nothing to
warp into place, so a warp can only stretch the lash band over the eye, which reads as dark facets. Here the
covered eye is painted with the photo's own lid tone (sampled between the lashes and the brow), shaded darker
towards the closure, with a lash line along it, faded in as the eye closes.
"""

from __future__ import annotations

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.images import pixels_at

_START, _FULL = 0.35, 0.85
"""Closure (1 − opening / photo's opening) at which painting starts, and at which it is fully opaque."""


class LidPainter:
    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        pts = landmarks[:, :2]
        self.tones: list[np.ndarray] = []
        self.lashes: list[np.ndarray] = []
        self.source_openings: list[float] = []
        self.grain: list[np.ndarray] = []
        for eye, (upper, _lower) in enumerate(topology.EYES):
            first, second = (pts[list(ring)] for ring in topology.UPPER_LID_RINGS[eye])
            # Lid skin: just above the second ring, clear of the lashes and the crease's shadow, below the brow.
            self.tones.append(_median(image, second + (second - first) * 0.5))
            self.grain.append(_skin_grain(image, first, second))
            contour = pts[list(upper[1:-1])]
            # The lashes: the darkest of the band just above the upper-lid contour.
            band = np.vstack([contour + (first.mean(axis=0) - contour.mean(axis=0)) * f for f in (0.15, 0.3)])
            self.lashes.append(_darkest(image, band))
            self.source_openings.append(max(topology.eye_opening(pts, eye), 1.0))
        self.iod = max(topology.inter_ocular(pts), 1.0)

    def closure(self, target: np.ndarray, eye: int) -> float:
        return float(np.clip(1.0 - topology.eye_opening(target, eye) / self.source_openings[eye], 0.0, 1.0))

    def paint(self, frame: np.ndarray, target: np.ndarray) -> None:
        """Paint closing lids into ``frame`` (in place); ``target`` are the frame's landmarks."""
        scale = topology.inter_ocular(target[:, :2]) / self.iod
        for eye, (upper, lower) in enumerate(topology.EYES):
            strength = float(np.clip((self.closure(target, eye) - _START) / (_FULL - _START), 0.0, 1.0))
            if strength <= 0.01:
                continue
            strength = strength * strength * (3 - 2 * strength)  # smoothstep: no visible onset
            ring = target[list(topology.UPPER_LID_RINGS[eye][1]), :2]
            closing_line = target[list(upper), :2]
            bottom = target[list(lower), :2]
            self._paint_eye(frame, eye, ring, closing_line, bottom, strength, scale)

    def _paint_eye(
        self,
        frame: np.ndarray,
        eye: int,
        ring: np.ndarray,
        closing_line: np.ndarray,
        bottom: np.ndarray,
        strength: float,
        scale: float,
    ) -> None:
        # The lid: from the second ring above the lashes (the stretched skin under the brow) down to the lower
        # lid, so nothing of the eye shows through.
        poly = np.vstack([_by_x(ring), _by_x(bottom)[::-1]])
        h, w = frame.shape[:2]
        x0, y0 = np.floor(poly.min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 5
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 4 or y1 - y0 < 3:
            return
        origin = np.array([x0, y0], dtype=np.float64)
        bw, bh = x1 - x0, y1 - y0
        mask = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        feather = max(0.6, 0.012 * self.iod * scale)
        alpha = cv2.GaussianBlur(mask, (0, 0), feather).astype(np.float32) / 255.0 * strength

        # Shade: the lid's tone at the top, a little darker towards the closure (the lid curves away there).
        line = _by_x(closing_line) - origin
        top = _by_x(ring) - origin
        xs = np.arange(bw, dtype=np.float32)
        y_top = np.interp(xs, top[:, 0], top[:, 1])
        y_line = np.interp(xs, line[:, 0], line[:, 1])
        ys = np.arange(bh, dtype=np.float32)[:, None]
        down = np.clip((ys - y_top[None, :]) / np.maximum(y_line - y_top, 1.0)[None, :], 0.0, 1.0)
        # The top of the lid melts into the skin above it rather than ending at an edge.
        alpha *= np.clip(down / 0.55, 0.0, 1.0) ** 1.5
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        # The tone continues the lid skin as this frame shows it, in the top quarter of the painted area (where
        # the lid has slid down over the eye and is hardly painted), column by column and smoothed: no edge of its
        # own against the skin around it. Above that area lies the brow on a big-eyed face.
        rows = np.clip(np.round(y_top + 0.25 * (y_line - y_top)).astype(int), 0, bh - 1)
        band = np.stack([roi[np.clip(rows + k, 0, bh - 1), np.arange(bw)] for k in (-1, 0, 1)]).mean(axis=0)
        band = cv2.GaussianBlur(band[None, :, :], (0, 0), sigmaX=max(1.0, 0.12 * self.iod * scale))[0]
        # Where the band is far from the photo's own lid tone (a lash or the iris slid up there), keep the latter.
        off = np.abs(band - self.tones[eye][None, :]).mean(axis=1, keepdims=True)
        trust = np.clip(1.0 - (off - 8.0) / 16.0, 0.0, 1.0)
        tone = band * trust + self.tones[eye][None, :] * (1.0 - trust)
        layer = tone[None, :, :] * (1.0 - 0.12 * down[..., None] ** 2)
        # The photo's own skin grain, laid along the lid, so the painted lid is not plastic-smooth.
        grain = self.grain[eye]
        gh, gw = grain.shape[:2]
        left, span = float(line[:, 0].min()), max(float(np.ptp(line[:, 0])), 1.0)
        map_x = np.broadcast_to(np.clip((xs - left) / span, 0.0, 1.0)[None, :] * (gw - 1), (bh, bw))
        map_y = (ys - y_top[None, :]) / max(float(gh), 1.0) % 1.0 * (gh - 1)
        layer = layer + cv2.remap(
            grain, np.ascontiguousarray(map_x, np.float32), np.ascontiguousarray(map_y, np.float32), cv2.INTER_LINEAR
        )

        a = alpha[..., None]
        painted = roi * (1 - a) + layer * a

        # The lash line along the closure, fading towards the corners.
        lash_mask = np.zeros((bh, bw), np.uint8)
        thickness = max(1, round(0.03 * self.iod * scale))
        cv2.polylines(lash_mask, [np.round(line * 16).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, shift=4)
        span = max(float(np.ptp(line[:, 0])), 1.0)
        corners = np.clip(1.0 - np.abs(xs - float(line[:, 0].mean())) / (0.5 * span), 0.0, 1.0) ** 0.5
        lash_alpha = cv2.GaussianBlur(lash_mask, (0, 0), 0.6).astype(np.float32) / 255.0 * corners[None, :]
        la = (lash_alpha * strength)[..., None]
        painted = painted * (1 - la) + self.lashes[eye][None, None, :] * la
        frame[y0:y1, x0:x1] = np.clip(painted, 0, 255).astype(np.uint8)


def _skin_grain(image: np.ndarray, first: np.ndarray, second: np.ndarray, rows: int = 12) -> np.ndarray:
    """The fine texture (high-pass, float) of the photo's lid skin above the second ring, as a strip
    (rows × columns along the lid), to be laid over the painted lid."""
    left, right = _by_x(second)[[0, -1]]
    width = max(int(np.ceil(np.linalg.norm(right - left))), 8)
    u = np.linspace(0.0, 1.0, width)
    base = np.stack([np.interp(u, np.linspace(0, 1, len(second)), _by_x(second)[:, k]) for k in (0, 1)], axis=1)
    lift = (second - first).mean(axis=0)  # towards the brow, one ring spacing
    v = np.linspace(0.1, 0.5, rows)
    xy = base[None, :, :] + v[:, None, None] * lift[None, None, :]
    map_x, map_y = xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32)
    strip = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    grain = strip - cv2.GaussianBlur(strip, (0, 0), 1.5)
    return np.clip(0.8 * grain, -6.0, 6.0)  # type: ignore[no-any-return]


def _by_x(points: np.ndarray) -> np.ndarray:
    return points[np.argsort(points[:, 0])]


def _median(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.median(pixels_at(image, points), axis=0)  # type: ignore[no-any-return]


def _darkest(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    pixels = pixels_at(image, points)
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    return pixels[luma <= np.percentile(luma, 25)].mean(axis=0)  # type: ignore[no-any-return]
