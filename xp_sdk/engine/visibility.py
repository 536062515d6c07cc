"""How squarely each face landmark faces the camera, from the face mesh's 3-D normals.

A turned photo shows its far cheek edge-on: MediaPipe still places landmarks there, on a strip a few pixels wide
or behind the nose, so the photo holds almost no picture of that skin. Warping those landmarks as if the skin were
there stretches the strip into spikes, or folds it over the background. The warp asks here how much of each
landmark the photo shows, and how much the output frame will show, and moves the poorly seen ones with the head
only (:class:`~xp_sdk.engine.warp.WarpGenerator`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay


def vertex_normals(canonical: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) of a pose-free face shape (N, 3; image axes: y down, z away from the camera), pointing
    towards the camera (negative z) where the surface faces it.

    The mesh is the Delaunay triangulation of the frontal shape's x and y: a face seen from the front is a height
    field, so that triangulation follows its surface (one made in a turned photo joins points across the nose).
    """
    triangles = Delaunay(canonical[:, :2]).simplices
    corners = canonical[triangles]  # (K, 3, 3)
    faces = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # area-weighted
    # Delaunay's triangles all wind the same way in x, y; make the camera-facing side the negative-z one.
    faces *= -np.sign(faces[:, 2].sum())
    normals = np.zeros_like(canonical, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, triangles[:, k], faces)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)  # type: ignore[no-any-return]


def facing(normals: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Per landmark, the cosine between its normal turned by ``rotation`` (image axes, as
    :attr:`~xp_sdk.engine.faces.FaceAnalysis.rotation`) and the direction to the camera: 1 faces it, 0 edge-on,
    negative faces away."""
    turned = normals @ rotation.T
    return -turned[:, 2]  # type: ignore[no-any-return]


def seen_share(cosine: np.ndarray, edge_on: float, clear: float) -> np.ndarray:
    """0 for a landmark seen at ``edge_on`` or worse, 1 at ``clear`` or better, smoothly between."""
    t = np.clip((cosine - edge_on) / (clear - edge_on), 0.0, 1.0)
    share: np.ndarray = t * t * (3.0 - 2.0 * t)
    return share


__all__ = ["facing", "seen_share", "vertex_normals"]
