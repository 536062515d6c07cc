"""Eyes opened wider than the photo's: the photo's own eyeball, whole, behind lids that open further.

A warp can only stretch what the photo shows between its lids. When the driver's eyes open wider (surprise),
the iris is stretched with them: meshed by MediaPipe's five iris points as a diamond, it bends into a polygon
and its pupil goes square, and the lid edge above it is dragged down over the eye. Real lids uncover more of
an eyeball that does not change.

So each eye's eyeball is rebuilt once from the photo: the visible eye as it is, the part of the iris the lids
hide completed from its mirror image across the iris centre line (an iris is nearly symmetric), and the hidden
sclera filled with the photo's own sclera tone, a little darker towards the lids. In a frame whose eye opens
wider than the photo's, that eyeball is drawn inside the frame's lid contours, carried rigidly with the iris
(moved with the iris centre, turned and scaled with the eye's corners), fading in from 5 % to
30 % wider than the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.images import padded_box

_FROM, _FULL = 1.05, 1.3
"""Eye opening (relative to the photo's) at which the eyeball starts to show, and from which it shows alone."""
_IRIS_GROUPS = (list(topology.IRIS_A), list(topology.IRIS_B))


@dataclass(frozen=True)
class _Eyeball:
    pixels: np.ndarray  # (h, w, 3) float32: the whole eyeball around the photo's eye
    origin: np.ndarray  # (2,) photo coordinates of pixels[0, 0]
    iris: np.ndarray  # (5, 2) the photo's iris points
    corners: np.ndarray  # (2, 2) the photo's eye corners (first and last upper-lid points)
    opening: float  # the photo's eye opening, pixels


class EyeballPainter:
    def __init__(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        pts = landmarks[:, :2].astype(np.float64)
        self.eyes = [_eyeball(image, pts, eye) for eye in (0, 1)]

    def paint(self, frame: np.ndarray, target: np.ndarray) -> None:
        """Draw the eyeballs into ``frame`` (in place) where ``target`` (the frame's landmarks, in the frame's
        coordinates) opens an eye wider than the photo's."""
        for eye, ball in enumerate(self.eyes):
            if ball is None:
                continue
            wider = topology.eye_opening(target, eye) / ball.opening
            strength = float(np.clip((wider - _FROM) / (_FULL - _FROM), 0.0, 1.0))
            if strength <= 0.0:
                continue
            upper, lower = topology.EYES[eye]
            opening = target[list(upper) + list(reversed(lower[1:-1])), :2]
            box = padded_box(opening, frame.shape, 2, min_size=(4, 3))
            if box is None:
                continue
            x0, y0, x1, y1 = box
            carry = _carry(ball, target[:, :2].astype(np.float64), eye)
            # From the eyeball's own pixel grid to this window of the frame.
            local = carry.copy()
            local[:, 2] += carry[:, :2] @ ball.origin - np.array([x0, y0], np.float64)
            layer = cv2.warpAffine(
                ball.pixels, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [np.round((opening - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            # Over the lid contours by a pixel (the warp's stretched iris reaches them) and no further: the lid
            # margins and lashes lie outside them, and stay the warp's.
            grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
            alpha = cv2.GaussianBlur(grown, (0, 0), 0.6).astype(np.float32)[..., None] / 255.0 * strength
            roi = frame[y0:y1, x0:x1].astype(np.float32)
            frame[y0:y1, x0:x1] = np.clip(roi + (layer - roi) * alpha, 0, 255).astype(np.uint8)


def _eyeball(image: np.ndarray, pts: np.ndarray, eye: int) -> _Eyeball | None:
    upper, lower = topology.EYES[eye]
    iris = pts[_IRIS_GROUPS[eye]]
    centre = iris[0]
    radius = float(np.linalg.norm(iris[1:] - centre, axis=1).mean())
    opening_poly = pts[list(upper) + list(reversed(lower[1:-1]))]
    opening = topology.eye_opening(pts, eye)
    if radius < 2.0 or opening < 2.0:
        return None
    # Room for the eye to open to twice its height, and for the whole iris.
    reach = max(radius * 1.3, opening * 1.2)
    corners = np.vstack([opening_poly, centre + np.array([[0.0, -reach], [0.0, reach]])])
    box = padded_box(corners, image.shape, 3, min_size=(6, 6))
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1].astype(np.float32)
    h, w = crop.shape[:2]
    visible = np.zeros((h, w), np.uint8)
    cv2.fillPoly(visible, [np.round((opening_poly - (x0, y0)) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    # The lashes and the lid margin are not eyeball.
    margin = 2 * max(1, round(0.08 * radius)) + 1
    seen = cv2.erode(visible, np.ones((margin, margin), np.uint8)).astype(bool)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = centre[0] - x0, centre[1] - y0
    radius = _iris_radius(crop, seen, (cx, cy), radius)
    distance = np.hypot(xs - cx, ys - cy)
    in_iris = distance < radius
    sclera_pixels = crop[seen & (distance > radius * 1.1)]
    if len(sclera_pixels) >= 4:
        # The sclera is the bright part of the eye: its darkest corners, the caruncle's pink and lashes are not.
        luma = sclera_pixels @ np.array([0.299, 0.587, 0.114], np.float32)
        sclera = np.median(sclera_pixels[luma >= np.percentile(luma, 60)], axis=0)
    else:
        sclera = np.array([215.0, 210.0, 205.0], np.float32)
    # Hidden sclera: the photo's tone, shaded darker towards the lids (the eyeball curves away from the light).
    shade = 1.0 - 0.2 * np.clip(np.abs(ys - cy) / max(reach, 1.0), 0.0, 1.0) ** 1.5
    ball = sclera[None, None, :] * shade[..., None]
    ball = np.where(seen[..., None], crop, ball)
    # Just outside the iris circle, what the photo shows darker than sclera is iris rim the circle missed: it
    # would ring the carried iris with a ghost of its edge.
    luma = crop @ np.array([0.299, 0.587, 0.114], np.float32)
    dark = luma < 0.8 * float(sclera @ np.array([0.299, 0.587, 0.114], np.float32))
    shadowed = seen & ~in_iris & (distance < radius * 1.15) & dark
    ball[shadowed] = (sclera[None, None, :] * shade[..., None])[shadowed]
    # Hidden iris: at each distance from its centre, the colour seen in the nearest directions (an iris is nearly
    # rotationally symmetric: a ring of it looks alike all round, the rim as dark above as below).
    hidden = in_iris & ~seen
    iris_seen = in_iris & seen
    if hidden.any() and iris_seen.any():
        rings, sectors = 16, 72
        ring = np.minimum((distance / radius * rings).astype(int), rings - 1)
        sector = ((np.arctan2(ys - cy, xs - cx) + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
        polar = _polar_fill(crop[iris_seen], ring[iris_seen], sector[iris_seen], rings, sectors)
        ball[hidden] = polar[ring[hidden], sector[hidden]]
    # Soften the seams between what was seen and what was filled.
    near_filled = cv2.dilate((~seen).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    near_seen = cv2.dilate(seen.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    blurred = cv2.GaussianBlur(ball, (0, 0), 1.2)
    ball = np.where((near_filled & near_seen)[..., None], blurred, ball)
    corners = pts[[upper[0], upper[-1]]].copy()
    return _Eyeball(ball.astype(np.float32), np.array([x0, y0], np.float64), iris.copy(), corners, opening)


def _iris_radius(crop: np.ndarray, seen: np.ndarray, centre: tuple[float, float], guess: float) -> float:
    """The iris's radius as the photo shows it: where, along rays to either side of the centre, the dark iris
    gives way to the bright sclera (MediaPipe's iris points are a model's estimate, small on a painted eye)."""
    luma = crop @ np.array([0.299, 0.587, 0.114], np.float32)
    steps = np.linspace(0.6 * guess, 1.6 * guess, 41)
    found = []
    for angle in np.deg2rad([-30, -15, 0, 15, 30, 150, 165, 180, 195, 210]):
        xs = np.round(centre[0] + np.cos(angle) * steps).astype(int)
        ys = np.round(centre[1] + np.sin(angle) * steps).astype(int)
        inside = (xs >= 0) & (xs < crop.shape[1]) & (ys >= 0) & (ys < crop.shape[0])
        if not inside.all() or not seen[ys, xs].all():
            continue
        rise = np.diff(luma[ys, xs])
        if rise.max() > 12.0:
            found.append(float(steps[int(np.argmax(rise))] + (steps[1] - steps[0]) / 2))
    if not found:
        return guess
    return float(np.clip(np.median(found), 0.85 * guess, 1.4 * guess))


def _polar_fill(
    colours: np.ndarray, ring: np.ndarray, sector: np.ndarray, rings: int, sectors: int
) -> np.ndarray:
    """(rings, sectors, 3) mean colour of each polar cell of the iris, cells without a seen pixel interpolated
    round their ring from the nearest seen cells (or from the ring nearest it that has any)."""
    total = np.zeros((rings, sectors, 3), np.float64)
    count = np.zeros((rings, sectors), np.float64)
    np.add.at(total, (ring, sector), colours)
    np.add.at(count, (ring, sector), 1.0)
    polar = np.zeros((rings, sectors, 3), np.float32)
    known_rings = [r for r in range(rings) if count[r].any()]
    angles = np.arange(sectors, dtype=np.float64)
    for r in range(rings):
        source = r if count[r].any() else min(known_rings, key=lambda k: abs(k - r))
        known = count[source] > 0
        mean = total[source][known] / count[source][known][:, None]
        for channel in range(3):
            polar[r, :, channel] = np.interp(angles, angles[known], mean[:, channel], period=sectors)
    return polar


def _carry(ball: _Eyeball, target: np.ndarray, eye: int) -> np.ndarray:
    """(2, 3) map from the photo to the frame for one eyeball: to the frame's iris centre, turned and scaled as
    the eye's corners are (the iris's own rim points are placed between the lids and tilt with them)."""
    upper = topology.EYES[eye][0]
    a = ball.corners[1] - ball.corners[0]
    b = target[upper[-1]] - target[upper[0]]
    factor = complex(*b) / complex(*a) if np.any(a) else 1.0 + 0j
    m = np.array([[factor.real, -factor.imag], [factor.imag, factor.real]])
    t = target[_IRIS_GROUPS[eye][0]] - m @ ball.iris[0]
    return np.hstack([m, t[:, None]])
