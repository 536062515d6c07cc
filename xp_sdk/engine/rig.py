"""A procedural expression rig: blendshape activations → landmark displacements for a particular face.

Templates carry blendshapes, not landmarks (they must fit every face), so the engine needs its own mapping
from, say, ``jawOpen = 0.6`` to where this photo's lips and chin go. Each rig term moves a landmark region
by a displacement in canonical inter-ocular units, with weights derived from the face's own geometry.
Eye closing and widening are not displacements but eyelid-opening ratios (see :func:`eye_ratios`).
"""

from __future__ import annotations

import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.motion import BLENDSHAPE_INDEX


def _gauss(points: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    d2 = ((points[:, :2] - centre[:2]) ** 2).sum(axis=1)
    return np.exp(-d2 / (2 * sigma**2))  # type: ignore[no-any-return]


class ExpressionRig:
    """Displacement basis for one face, built from its canonical shape (478×3, inter-ocular units, y down)."""

    def __init__(self, canonical: np.ndarray) -> None:
        c = canonical
        n = len(c)
        upper_inner = c[list(topology.LIPS_UPPER_INNER)]
        lower_inner = c[list(topology.LIPS_LOWER_INNER)]
        mouth_centre = np.vstack([upper_inner, lower_inner]).mean(axis=0)
        y_upper = upper_inner[2:-2, 1].mean()
        y_lower = lower_inner[2:-2, 1].mean()
        corner_a, corner_b = c[topology.MOUTH_CORNERS[0]], c[topology.MOUTH_CORNERS[1]]
        # Which mouth corner is the subject's left (image right) decides Left/Right blendshapes.
        right_corner, left_corner = (corner_a, corner_b) if corner_a[0] < corner_b[0] else (corner_b, corner_a)
        basis: dict[str, np.ndarray] = {}

        # Jaw: everything below the upper lip swings down, less towards the jaw hinges.
        # By membership, not height: on a closed mouth both inner lips lie on the same line.
        below = np.clip((c[:, 1] - y_lower) / 0.12, 0.0, 1.0)
        below[list(topology.LIPS_LOWER_INNER + topology.LIPS_LOWER_OUTER)] = 1.0
        below[list(topology.LIPS_UPPER_INNER + topology.LIPS_UPPER_OUTER)] = 0.0
        below[list(topology.MOUTH_CORNERS + topology.INNER_MOUTH_CORNERS)] = 0.35
        lateral = np.clip(1.25 - np.abs(c[:, 0] - mouth_centre[0]) / 1.1, 0.3, 1.0)
        jaw = np.zeros((n, 3))
        jaw[:, 1] = 0.42 * below * lateral
        jaw[:, 2] = -0.05 * below * lateral
        basis["jawOpen"] = jaw

        for side, corner, sign in (("Left", left_corner, 1.0), ("Right", right_corner, -1.0)):
            w = _gauss(c, corner, 0.2)
            cheek = _gauss(c, corner + np.array([0.12 * sign, -0.3, 0.0]), 0.3)
            smile = np.zeros((n, 3))
            smile[:, 0] = 0.08 * sign * w
            smile[:, 1] = -0.1 * w - 0.035 * cheek
            basis[f"mouthSmile{side}"] = smile
            frown = np.zeros((n, 3))
            frown[:, 1] = 0.07 * w
            basis[f"mouthFrown{side}"] = frown
            stretch = np.zeros((n, 3))
            stretch[:, 0] = 0.07 * sign * w
            stretch[:, 1] = 0.02 * w
            basis[f"mouthStretch{side}"] = stretch
            pucker_half = np.zeros((n, 3))
            pucker_half[:, 0] = -0.09 * sign * w
            pucker_half[:, 2] = -0.05 * w
            basis[f"_pucker{side}"] = pucker_half

        basis["mouthPucker"] = basis.pop("_puckerLeft") + basis.pop("_puckerRight")
        funnel = basis["mouthPucker"] * 0.7
        lower_lip = _gauss(c, c[14], 0.22)
        upper_lip = _gauss(c, c[13], 0.22)
        funnel[:, 1] += 0.06 * lower_lip - 0.03 * upper_lip
        basis["mouthFunnel"] = funnel
        lower_down = np.zeros((n, 3))
        lower_down[:, 1] = 0.06 * lower_lip * (c[:, 1] > y_upper)
        basis["mouthLowerDown"] = lower_down
        upper_up = np.zeros((n, 3))
        upper_up[:, 1] = -0.04 * upper_lip * (c[:, 1] < y_lower)
        basis["mouthUpperUp"] = upper_up

        for brows, side in ((topology.BROW_A, "A"), (topology.BROW_B, "B")):
            pts = c[list(brows)]
            inner = pts[np.argmin(np.abs(pts[:, 0] - mouth_centre[0]))]
            outer = pts[np.argmax(np.abs(pts[:, 0] - mouth_centre[0]))]
            is_left = outer[0] > mouth_centre[0]
            name = "Left" if is_left else "Right"
            up_inner = np.zeros((n, 3))
            up_inner[:, 1] = -0.11 * _gauss(c, inner, 0.22)
            basis[f"_browInner{side}"] = up_inner
            up_outer = np.zeros((n, 3))
            up_outer[:, 1] = -0.1 * _gauss(c, outer, 0.25)
            basis[f"browOuterUp{name}"] = up_outer
            down = np.zeros((n, 3))
            brow_mid = pts.mean(axis=0)
            g = _gauss(c, brow_mid, 0.28)
            down[:, 1] = 0.07 * g
            down[:, 0] = -0.03 * g * (1.0 if is_left else -1.0)
            basis[f"browDown{name}"] = down
        basis["browInnerUp"] = basis.pop("_browInnerA") + basis.pop("_browInnerB")

        self.names = tuple(sorted(basis))
        self._index = np.array([_blendshape_slot(name) for name in self.names], dtype=np.int64)
        self._basis = np.stack([basis[name] for name in self.names])  # (K, 478, 3)

    def displacement(self, blendshapes: np.ndarray) -> np.ndarray:
        """(478, 3) canonical displacement for a 52-vector of activations."""
        weights = blendshapes[self._index]
        return np.tensordot(weights, self._basis, axes=1)


def _blendshape_slot(name: str) -> int:
    if name in BLENDSHAPE_INDEX:
        return BLENDSHAPE_INDEX[name]
    # Rig terms shared by both sides read the left activation; templates set both.
    if name in ("mouthLowerDown", "mouthUpperUp"):
        return BLENDSHAPE_INDEX[name + "Left"]
    raise KeyError(name)


def eye_ratios(blendshapes: np.ndarray) -> tuple[float, float]:
    """Eyelid opening, relative to the photo's own, for eye A (image left) and eye B (image right).

    Eye A is the subject's right eye, so it follows the ``…Right`` blendshapes.
    """

    def ratio(blink: str, wide: str) -> float:
        b = float(blendshapes[BLENDSHAPE_INDEX[blink]])
        w = float(blendshapes[BLENDSHAPE_INDEX[wide]])
        return max(0.0, 1.0 - b) * (1.0 + 0.35 * w)

    return ratio("eyeBlinkRight", "eyeWideRight"), ratio("eyeBlinkLeft", "eyeWideLeft")
