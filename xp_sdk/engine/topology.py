"""Named landmark groups of the 478-point MediaPipe face mesh (image-space left/right, subject mirrored)."""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 478

LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNERS = (61, 291)
INNER_MOUTH_CORNERS = (78, 308)

# Eye contours, each listed corner to corner.
EYE_A_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_A_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_B_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_B_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
EYES = ((EYE_A_UPPER, EYE_A_LOWER), (EYE_B_UPPER, EYE_B_LOWER))
OUTER_EYE_CORNERS = (EYE_A_UPPER[0], EYE_B_UPPER[-1])
"""33 and 263, eye A's first: left to right in the picture of an upright face, so their line gives its roll."""
UPPER_LID_RINGS = (
    ((247, 30, 29, 27, 28, 56, 190), (113, 225, 224, 223, 222, 221, 189)),
    ((467, 260, 259, 257, 258, 286, 414), (342, 445, 444, 443, 442, 441, 413)),
)
"""Per eye (in ``EYES`` order), the first two face-mesh rings above the upper lid (MediaPipe's "EyeUpper1" and
"EyeUpper2"): the lid skin between the lashes and the brow."""
IRIS_A = (468, 469, 470, 471, 472)
IRIS_B = (473, 474, 475, 476, 477)

BROW_A = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_B = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
CHIN = 152
FOREHEAD = 10
NOSE_TIP = 1

# Points that move with the skull, not with expression: used for pose and alignment.
RIGID = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 234, 454, 127, 356, 33, 263, 133, 362)

# The skull points of RIGID without the eye corners (a squint moves those): their spread measures the face's
# size. The iris distance does not: MediaPipe's iris centres drift inwards when the lids close (about 5 % in a
# squeeze), which would read as the whole face shrinking at every blink.
SKULL = tuple(i for i in RIGID if i not in (33, 263, 133, 362))

# Points whose motion is the expression: lips, eyes, brows, jaw line. Used by quality evaluation.
EXPRESSIVE = tuple(
    sorted(
        set(LIPS_UPPER_INNER + LIPS_LOWER_INNER + LIPS_UPPER_OUTER + LIPS_LOWER_OUTER)
        | set(EYE_A_UPPER + EYE_A_LOWER + EYE_B_UPPER + EYE_B_LOWER)
        | set(BROW_A + BROW_B)
        | {148, 176, 149, 150, 152, 377, 400, 378, 379, 365}
    )
)


def iris_centers(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[IRIS_A[0]], points[IRIS_B[0]]


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the two iris centres, in the units of ``points``."""
    a, b = iris_centers(points)
    return float(np.linalg.norm(a[:2] - b[:2]))


def eye_opening(points: np.ndarray, eye: int) -> float:
    """Mean vertical gap between upper and lower lid over the eye's middle points."""
    upper, lower = EYES[eye]
    up = points[list(upper[2:-2]), 1]
    lo = points[list(lower[2:-2]), 1]
    return float(np.mean(lo - up))


def skull_size(points: np.ndarray) -> float:
    """RMS distance of the SKULL points from their mean (3-D when given), in the units of ``points``."""
    skull = points[list(SKULL)]
    return float(np.sqrt(((skull - skull.mean(axis=0)) ** 2).sum(axis=1).mean()))


def mouth_opening(points: np.ndarray) -> float:
    """Mean vertical gap between the inner lips over their middle points."""
    up = points[list(LIPS_UPPER_INNER[2:-2]), 1]
    lo = points[list(LIPS_LOWER_INNER[2:-2]), 1]
    return float(np.mean(lo - up))


def inner_mouth_polygon(points: np.ndarray) -> np.ndarray:
    """The inner lip contour as a closed polygon (x, y)."""
    ring = list(LIPS_UPPER_INNER) + list(reversed(LIPS_LOWER_INNER[1:-1]))
    return points[ring, :2]
