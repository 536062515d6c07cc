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
from xp_sdk.engine.images import padded_box, pixels_at

_START, _FULL = 0.25, 0.6
"""Closure (1 − opening / photo's opening) at which the lid above the closing line starts to be painted, and at
which it is opaque."""
_SLIT_START, _SLIT_FULL = 0.75, 0.95
"""Closure from which the slit still open below the closing line is painted over too, and from which fully.
Painting lid and slit alike, half-transparent, over a half-closed eye left the squashed eye showing through a
veil of lid: a blurred smear (lp_d30 under a smiling squint). A narrowed eye is a crisp slit under a lid."""


class LidPainter:
    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        pts = landmarks[:, :2]
        self.tones: list[np.ndarray] = []
        self.lashes: list[np.ndarray] = []
        self.source_openings: list[float] = []
        self.profiles: list[np.ndarray] = []
        for eye, (upper, _lower) in enumerate(topology.EYES):
            first, second = (pts[list(ring)] for ring in topology.UPPER_LID_RINGS[eye])
            # Lid skin: just above the second ring, clear of the lashes and the crease's shadow, below the brow.
            self.tones.append(_median(image, second + (second - first) * 0.5))
            self.profiles.append(_lid_profile(image, first, second, self.tones[-1]))
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
            strength = _smoothstep(strength)  # no visible onset
            closure = self.closure(target, eye)
            slit = _smoothstep(float(np.clip((closure - _SLIT_START) / (_SLIT_FULL - _SLIT_START), 0.0, 1.0)))
            ring = target[list(topology.UPPER_LID_RINGS[eye][1]), :2]
            closing_line = target[list(upper), :2]
            bottom = target[list(lower), :2]
            self._paint_eye(frame, eye, ring, closing_line, bottom, (strength, slit), scale)

    def _paint_eye(
        self,
        frame: np.ndarray,
        eye: int,
        ring: np.ndarray,
        closing_line: np.ndarray,
        bottom: np.ndarray,
        strengths: tuple[float, float],
        scale: float,
    ) -> None:
        """``strengths``: how opaque the lid is above the closing line, and over the slit below it."""
        strength, slit = strengths
        # The lid: from the second ring above the lashes (the stretched skin under the brow) down to the lower
        # lid, so nothing of the eye shows through.
        poly = np.vstack([_by_x(ring), _by_x(bottom)[::-1]])
        box = padded_box(poly, frame.shape, 4, min_size=(4, 3))
        if box is None:
            return
        x0, y0, x1, y1 = box
        origin = np.array([x0, y0], dtype=np.float64)
        bw, bh = x1 - x0, y1 - y0
        mask = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        feather = max(0.6, 0.012 * self.iod * scale)
        alpha = cv2.GaussianBlur(mask, (0, 0), feather).astype(np.float32) / 255.0

        # Shade: the lid's tone at the top, a little darker towards the closure (the lid curves away there).
        line = _by_x(closing_line) - origin
        top = _by_x(ring) - origin
        xs = np.arange(bw, dtype=np.float32)
        y_top = np.interp(xs, top[:, 0], top[:, 1])
        y_line = np.interp(xs, line[:, 0], line[:, 1])
        ys = np.arange(bh, dtype=np.float32)[:, None]
        down = np.clip((ys - y_top[None, :]) / np.maximum(y_line - y_top, 1.0)[None, :], 0.0, 1.0)
        # Above the closing line the lid; below it (half a pixel's blend across) the slit of eye still open.
        below = np.clip(ys - y_line[None, :] + 0.5, 0.0, 1.0)
        alpha *= strength * (1.0 - below) + slit * below
        # The top of the lid melts into the skin above it rather than ending at an edge.
        alpha *= np.clip(down / 0.55, 0.0, 1.0) ** 1.5
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        # The tone runs along the lid as the photo's own lid skin does (between the two rings above the lashes,
        # column by column): no pale patch where make-up or the brow's highlight lies above, and nothing taken
        # from the frame itself, which would flicker from frame to frame.
        profile = self.profiles[eye]
        left, span = float(line[:, 0].min()), max(float(np.ptp(line[:, 0])), 1.0)
        along = np.clip((xs - left) / span, 0.0, 1.0) * (len(profile) - 1)
        tone = np.stack([np.interp(along, np.arange(len(profile)), profile[:, k]) for k in range(3)], axis=1)
        layer = tone[None, :, :] * (1.0 - 0.12 * down[..., None] ** 2)
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


def _lid_profile(image: np.ndarray, first: np.ndarray, second: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The lid skin's colour along the lid (inner to outer corner, 32 steps), from between the two rings above
    the lashes, smoothed; where a lash or the crease's shadow darkens it far from ``fallback``, that instead."""
    a, b = _by_x(first), _by_x(second)
    u = np.linspace(0.0, 1.0, 32)
    xy = np.stack(
        [np.interp(u, np.linspace(0, 1, len(a)), (0.35 * a + 0.65 * b)[:, k]) for k in (0, 1)], axis=1
    )
    colours = pixels_at(image, xy)
    colours = cv2.GaussianBlur(colours[None, :, :].astype(np.float32), (0, 0), sigmaX=3.0)[0].astype(np.float64)
    off = np.abs(colours - fallback[None, :]).mean(axis=1, keepdims=True)
    trust = np.clip(1.0 - (off - 15.0) / 20.0, 0.0, 1.0)
    return colours * trust + fallback[None, :] * (1.0 - trust)  # type: ignore[no-any-return]


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


def _by_x(points: np.ndarray) -> np.ndarray:
    return points[np.argsort(points[:, 0])]


def _median(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.median(pixels_at(image, points), axis=0)  # type: ignore[no-any-return]


def _darkest(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    pixels = pixels_at(image, points)
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    return pixels[luma <= np.percentile(luma, 25)].mean(axis=0)  # type: ignore[no-any-return]
