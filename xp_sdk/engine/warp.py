"""The CPU generator: a dense piecewise-affine warp of the photo that follows the retargeted landmarks.

How one frame is made:
1. Control points are the 478 face landmarks plus three rings around the face oval, whose motion fades out
   (more slowly above the face, where hair moves with the head, than below it, where the neck does not),
   plus points on the border of the working region, which never move.
2. The photo's control points are triangulated once (Delaunay); besides the landmarks they include the upper
   lids' lash lines and, in a parted photo mouth, two lines that carry the teeth with their lips
   (:class:`~xp_sdk.engine.mouth.TeethRig`). Per frame, each triangle's affine map from its output position
   back to the photo is solved in one batch, the output triangles are rasterised into a triangle-index map
   (face triangles far to near, so where a turning head folds the mesh the nearer surface wins), and every
   output pixel takes the backward coordinate of its triangle. This is the exact inverse of the piecewise-
   affine warp, also where the warp compresses (a closing eyelid squeezes the eye to a line, which iterative
   inversion of a forward field cannot follow). The map is made at up to half resolution, and at full
   resolution around a mouth or eye that the frame squeezes, where neighbouring cells sample far-apart pixels.
3. The photo is resampled with ``cv2.remap``; where the target carries the driver's expression shading
   (:mod:`xp_sdk.engine.shading`), the face's brightness is multiplied by it, looked up where each pixel came
   from in the photo; the mouth interior is painted where the mouth opens beyond the photo's, and closing lids
   over the eyes; the region is pasted back into the full frame through a feathered mask, so everything
   outside it stays exactly still.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
from scipy.spatial import Delaunay
from scipy.spatial.transform import Rotation

from xp_sdk.engine import topology
from xp_sdk.engine.eyelids import LidPainter
from xp_sdk.engine.faces import FaceAnalysis
from xp_sdk.engine.images import padded_box
from xp_sdk.engine.motion import canonical_shape
from xp_sdk.engine.mouth import MouthPainter, TeethRig
from xp_sdk.engine.options import WarpConfig as WarpConfig
from xp_sdk.engine.retarget import TargetFace
from xp_sdk.engine.visibility import facing, seen_share, vertex_normals

# Rings of control points around the face oval: (scale about the face centre, the share of the head's rigid
# motion kept above the face and below it, the share of the oval's own expression motion kept above and below).
# Hair moves with the head; the neck and shoulders follow it less the further down they are, smoothly, so the
# head turns and tilts on its body instead of sliding over it as a cut-out. Expression motion (a jaw dropping)
# fades fast: the chin stretches the skin under it, not the collar.
_RINGS = (
    (1.15, 0.97, 0.85, 0.65, 0.5),
    (1.4, 0.85, 0.6, 0.3, 0.2),
    (1.75, 0.6, 0.35, 0.1, 0.05),
    (2.15, 0.3, 0.15, 0.0, 0.0),
    (2.6, 0.0, 0.0, 0.0, 0.0),
)
# A landmark the photo or the frame sees at this cosine or less moves with the head only; from this one up, fully.
_EDGE_ON = -0.05
_CLEAR = 0.25
# Skin the photo sees at a cosine below this is hidden from it; a turn may bring it to face the camera by at most
# _MAX_REVEAL more (counted up to _CLEAR, where it is seen well enough).
_HIDDEN = 0.05
_MAX_REVEAL = 0.2
# How far (in inter-ocular distances, Gaussian sigma) a poorly seen landmark looks for the seen ones it moves with,
# and how much the head's rigid motion counts against them (as the weight of one landmark right beside it).
_NEARBY = 0.2
# A landmark whose cosine to the camera changes by less than the first (a head that hardly turns) keeps its own
# motion whatever it sees; by more than the second, it moves as its visibility says.
_TURN_LOW = 0.02
_TURN_HIGH = 0.1
_RIGID_WEIGHT = 0.05


class WarpGenerator:
    """Renders frames of one photo; build it once per photo, call :meth:`render` per frame."""

    def __init__(self, image: np.ndarray, face: FaceAnalysis, config: WarpConfig | None = None) -> None:
        self.config = c = config or WarpConfig()
        self.image = image
        h, w = image.shape[:2]
        pts = face.landmarks[:, :2].astype(np.float64)
        self._source_landmarks = pts
        centre = pts[list(topology.FACE_OVAL)].mean(axis=0)
        oval = pts[list(topology.FACE_OVAL)]
        rings = [centre + (oval - centre) * ring[0] for ring in _RINGS]
        # Above the face (negative y relative to the centre) keeps more motion than below.
        up = np.clip(-(oval[:, 1] - centre[1]) / (np.abs(oval - centre).max() + 1e-6) * 2 + 0.5, 0, 1)
        self._ring_rigid = np.concatenate([hi * up + lo * (1 - up) for _, hi, lo, _, _ in _RINGS])
        self._ring_weights = np.concatenate([hi * up + lo * (1 - up) for _, _, _, hi, lo in _RINGS])
        self._ring_parent = np.tile(np.array(topology.FACE_OVAL), len(_RINGS))
        self._rigid_points = list(topology.SKULL)
        normals = vertex_normals(canonical_shape(face))
        self._normals = normals
        self._photo_rotation = face.rotation
        self._facing_in_photo = facing(normals, face.rotation)
        self._seen_in_photo = seen_share(self._facing_in_photo, _EDGE_ON, _CLEAR)
        reach = _NEARBY * max(topology.inter_ocular(pts), 1.0)
        apart = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=-1)
        self._nearby = np.exp(-apart / (2.0 * reach**2))

        outer = np.vstack(rings)
        x0, y0 = np.floor(np.minimum(outer.min(axis=0), pts.min(axis=0))).astype(int) - 4
        x1, y1 = np.ceil(np.maximum(outer.max(axis=0), pts.max(axis=0))).astype(int) + 4
        self.roi = (max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h))
        rx0, ry0, rx1, ry1 = self.roi
        rw, rh = rx1 - rx0, ry1 - ry0
        self._origin = np.array([rx0, ry0], dtype=np.float64)

        self._lids = _EyelidRig(pts)
        self._teeth = TeethRig(image, pts)
        self._source_openings = (topology.mouth_opening(pts), *(topology.eye_opening(pts, e) for e in (0, 1)))
        border = _rectangle_points(rw, rh, per_side=10)
        self._source_ctrl = np.vstack(
            [
                pts - self._origin,
                self._lids.lash_source - self._origin,
                self._teeth.source - self._origin,
                np.vstack(rings) - self._origin,
                border,
            ]
        )
        self._n_lash = len(pts) + len(self._lids.lash_source)
        self._n_face = self._n_lash + self._teeth.count
        self._n_moving = self._n_face + len(outer)
        simplices = Delaunay(self._source_ctrl, qhull_options="QJ").simplices
        # Triangles made only of face points are drawn last, so the face wins where the warp folds; among them
        # the nearer ones last (MediaPipe depth), so a turning head's nose covers the cheek behind it.
        face_only = (simplices < self._n_face).all(axis=1)
        depth = np.concatenate([face.landmarks[:, 2], np.zeros(self._n_face - len(pts))])
        face_tris = simplices[face_only]
        far_first = np.argsort(-depth[face_tris].mean(axis=1), kind="stable")
        self._triangles = np.vstack([simplices[~face_only], face_tris[far_first]])
        self._source_tri = np.concatenate(
            [self._source_ctrl[self._triangles].transpose(0, 2, 1), np.ones((len(self._triangles), 1, 3))], axis=1
        )[:, :2, :]  # (K, 2, 3): source x and y of each triangle's corners
        source_h = np.concatenate(
            [self._source_tri, np.ones((len(self._triangles), 1, 3))], axis=1
        )
        self._orientation = np.sign(np.linalg.det(source_h))
        # Photo point → its barycentric weights in each triangle, for keeping samples inside their triangle.
        self._barycentric = np.zeros_like(source_h)
        solid = np.abs(np.linalg.det(source_h)) > 1e-9
        self._barycentric[solid] = np.linalg.inv(source_h[solid])

        self._step = max(1, int(np.ceil(max(rw, rh) / c.map_cells)))
        mw, mh = int(np.ceil(rw / self._step)), int(np.ceil(rh / self._step))
        self._map_shape = (mh, mw)
        centre_offset = (self._step - 1) / 2
        xs = np.arange(mw, dtype=np.float32) * self._step + centre_offset
        ys = np.arange(mh, dtype=np.float32) * self._step + centre_offset
        self._map_xy = np.stack(np.meshgrid(xs, ys), axis=-1)  # (mh, mw, 2) region coordinates
        self._index = np.zeros((mh, mw), np.int32)
        px, py = np.meshgrid(np.arange(rw, dtype=np.float32), np.arange(rh, dtype=np.float32))
        self._pixel_xy = np.stack([px, py], axis=-1)

        self._roi_image = np.ascontiguousarray(image[ry0:ry1, rx0:rx1])
        self._feather = _feather_mask(rw, rh, self.roi, (w, h))
        self._mouth = MouthPainter(image, face.landmarks, self._teeth) if c.paint_mouth else None
        self._lid_painter = LidPainter(image, face.landmarks) if c.paint_lids else None

    def visible(self, target: TargetFace) -> TargetFace:
        """``target`` with the landmarks that the photo or the frame sees edge-on (or not at all) moved with the
        head's rigid motion instead of their own.

        A three-quarter photo's far cheek is a strip a few pixels wide: turned to face the camera it would stretch
        into spikes over the background, and turned further away it folds over itself. Between the clearly seen
        and the unseen, the landmarks blend the two motions smoothly.
        """
        target = self._revealing_at_most(target)
        cosine = facing(self._normals, target.rotation)
        unseen = 1.0 - np.minimum(self._seen_in_photo, seen_share(cosine, _EDGE_ON, _CLEAR))
        # Only where the turn changes how the landmark faces the camera: expression alone (a blink) moves as asked.
        turned = seen_share(np.abs(cosine - self._facing_in_photo), _TURN_LOW, _TURN_HIGH)
        seen = 1.0 - unseen * turned
        if seen.min() >= 1.0:
            return target
        own = target.landmarks - self._source_landmarks
        rigid = self._rigid_displacement(target.landmarks, self._source_landmarks)
        # The poorly seen take the motion of the well seen skin around them (the head's rigid motion where none
        # is near): a strip that moved on its own would be overrun by the cheek beside it, and fold.
        weights = self._nearby * seen[None, :]
        borrowed = (weights @ own + _RIGID_WEIGHT * rigid) / (weights.sum(axis=1) + _RIGID_WEIGHT)[:, None]
        landmarks = self._source_landmarks + borrowed + seen[:, None] * (own - borrowed)
        return replace(target, landmarks=landmarks)

    def _revealing_at_most(self, target: TargetFace) -> TargetFace:
        """``target`` turned back towards the photo's pose as far as needed so that no skin the photo hides (faces
        away from the camera) comes to face it by more than ``_MAX_REVEAL`` (cosine).

        The photo holds no picture of that skin: a three-quarter photo turned 30° to face the camera tears its far
        cheek whatever the warp does. Expression is kept; only the head's turn stops short.
        """
        hidden = self._facing_in_photo < _HIDDEN
        if target.canonical is None or not hidden.any():
            return target
        photo_rotation = self._photo_rotation
        turn = Rotation.from_matrix(target.rotation @ photo_rotation.T).as_rotvec()

        def reveal(share: float) -> float:
            rotation = Rotation.from_rotvec(turn * share).as_matrix() @ photo_rotation
            cosine = facing(self._normals[hidden], rotation)
            return float((np.minimum(cosine, _CLEAR) - self._facing_in_photo[hidden]).max())

        if reveal(1.0) <= _MAX_REVEAL:
            return target
        low, high = 0.0, 1.0
        for _ in range(12):
            middle = (low + high) / 2.0
            low, high = (middle, high) if reveal(middle) <= _MAX_REVEAL else (low, middle)
        rotation = Rotation.from_rotvec(turn * low).as_matrix() @ photo_rotation
        # Landmarks are the target's shape turned by its rotation and scaled (Retargeter._pose): turn it less.
        moved = (target.canonical @ (rotation - target.rotation).T)[:, :2] * target.scale
        return replace(target, landmarks=target.landmarks + moved, rotation=rotation)

    def _rigid_displacement(self, landmarks: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Displacement of ``points`` (photo pixels) by the head's rigid motion to ``landmarks``: the similarity
        (scale, rotation, shift) that best takes the photo's skull points to the frame's."""
        a, b = _similarity(self._source_landmarks[self._rigid_points], landmarks[self._rigid_points])
        moved: np.ndarray = points @ a.T + b - points
        return moved

    def control_displacement(self, target: TargetFace) -> np.ndarray:
        """Displacement of every control point for one frame, in region pixels (``target`` as :meth:`visible`
        gives it)."""
        face_disp = target.landmarks - self._source_landmarks
        oval_rigid = self._rigid_displacement(target.landmarks, self._source_landmarks)
        ring_source = self._source_ctrl[self._n_face : self._n_moving] + self._origin
        own = (face_disp - oval_rigid)[self._ring_parent]
        ring_disp = (
            self._rigid_displacement(target.landmarks, ring_source) * self._ring_rigid[:, None]
            + own * self._ring_weights[:, None]
        )
        disp = np.zeros_like(self._source_ctrl)
        disp[len(face_disp) : self._n_lash] = self._lids.lash_displacement(target, face_disp)
        disp[: len(face_disp)] = face_disp
        disp[self._n_lash : self._n_face] = self._teeth.points(target.landmarks) - self._teeth.source
        disp[self._n_face : self._n_moving] = ring_disp
        return disp

    def backward_map(self, target: TargetFace) -> np.ndarray:
        """For each region pixel of the output frame, where to sample the photo (region coordinates)."""
        return self._backward_map(self.visible(target))

    def _backward_map(self, target: TargetFace) -> np.ndarray:
        out_ctrl = self._source_ctrl + self.control_displacement(target)
        corners = out_ctrl[self._triangles]  # (K, 3, 2) output positions
        homogeneous = np.concatenate([corners.transpose(0, 2, 1), np.ones((len(corners), 1, 3))], axis=1)
        det = np.linalg.det(homogeneous)
        # A triangle turned inside out by the motion has no sensible inverse: it would sample far-off pixels
        # as specks. Leave it out; its area is filled from its neighbours below.
        usable = (np.abs(det) > 1e-6) & (np.sign(det) == self._orientation)
        inverse = np.zeros_like(homogeneous)
        inverse[usable] = np.linalg.inv(homogeneous[usable])
        affine = (self._source_tri @ inverse).astype(np.float32)  # (K, 2, 3): output (x, y, 1) → photo (x, y)

        index = self._index
        index.fill(-1)
        scale = 16.0 / self._step  # fixed point with 4 fractional bits, in map cells
        offset = (self._step - 1) / 2
        polygons = np.round((corners - offset) * scale).astype(np.int32)
        for k in np.flatnonzero(usable):
            cv2.fillConvexPoly(index, polygons[k], int(k), cv2.LINE_8, 4)

        covered = index >= 0
        a = affine[np.where(covered, index, 0)]  # (mh, mw, 2, 3)
        xy = self._map_xy
        back = a[..., 2] + a[..., 0] * xy[..., :1] + a[..., 1] * xy[..., 1:]
        thin = _thin(affine, usable)
        if thin.any():
            self._keep_inside(back, index, covered & thin[index])
        displacement: np.ndarray = np.where(covered[..., None], back - xy, 0.0).astype(np.float32)
        if not covered.all():
            # Cracks along shared edges, and the holes left by triangles turned inside out (lips pressed
            # shut over a photo's open mouth), take the motion of what surrounds them; a hole left empty
            # samples the unmoved photo and shows as a block of teeth or mouth cavity.
            displacement = _fill_holes(displacement, covered)
        mh, mw = self._map_shape
        rx0, ry0, rx1, ry1 = self.roi
        if self._step > 1:
            # Upsample the displacement, not the coordinates: resizing clamps at the edges, which is harmless
            # for a displacement that is zero there but would smear the border for absolute coordinates.
            displacement = cv2.resize(displacement, (mw * self._step, mh * self._step), interpolation=cv2.INTER_LINEAR)
        region: np.ndarray = displacement[: ry1 - ry0, : rx1 - rx0] + self._pixel_xy
        if self._step > 1:
            for x0, y0, x1, y1 in self._detail_boxes(out_ctrl):
                drawn = _refine(region, (x0, y0, x1, y1), corners, affine, usable)
                self._keep_inside(region[y0:y1, x0:x1], drawn, thin[drawn] & (drawn >= 0))
        return region

    def _keep_inside(self, back: np.ndarray, index: np.ndarray, where: np.ndarray) -> None:
        """Move the samples of ``back`` (photo coordinates of the region) ``where`` True into their own photo
        triangle (``index``), in place.

        Rasterising a sliver of a triangle (a lip squeezed thin as the mouth opens wide) takes in pixels whose
        centres lie just outside it; the sliver's map, squeezing many photo pixels into one, then carries them
        far outside the sliver's photo triangle: a dark dot from the inner lip line on the outer edge of the lip.
        """
        if not where.any():
            return
        points = back[where]
        tri = index[where]
        weights = np.einsum("nij,nj->ni", self._barycentric[tri], np.c_[points, np.ones(len(points))])
        weights = np.clip(weights, 0.0, None)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        back[where] = np.einsum("nij,nj->ni", self._source_tri[tri], weights)

    def _detail_boxes(self, out_ctrl: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Region boxes around a mouth or eye that the frame squeezes, where the map is made at full resolution.

        A lid closing, lips pressed shut over a photo's open mouth, or an upper lip lifted towards the nose
        squeezes many source pixels into a few:
        a half-resolution map blends neighbouring cells whose sources lie far apart there, and shows stair-
        stepped blocks of teeth or iris. Elsewhere (and in frames that squeeze nothing) half resolution is exact
        enough, and four times cheaper.
        """
        openings = (topology.mouth_opening(out_ctrl), *(topology.eye_opening(out_ctrl, e) for e in (0, 1)))
        boxes = []
        for group, opening, source in zip(_DETAIL_GROUPS, openings, self._source_openings, strict=True):
            # A mouth opened far wider than the photo's squeezes the skin between lip and nose instead.
            stretched = group is _DETAIL_GROUPS[0] and opening > source + _STRETCHED_PX
            if opening >= _SQUEEZED * source and not stretched:
                continue
            pts = out_ctrl[group]
            box = padded_box(pts, self._pixel_xy.shape, math.ceil(0.3 * float(np.ptp(pts[:, 0])) + 2.0), (1, 1))
            if box is not None:
                boxes.append(box)
        return boxes


    def render(self, target: TargetFace) -> np.ndarray:
        target = self.visible(target)
        back = self._backward_map(target)
        map1, map2 = cv2.convertMaps(back[..., 0], back[..., 1], cv2.CV_16SC2)
        warped = cv2.remap(self._roi_image, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if target.shading is not None:
            self._shade(warped, back, target)
        if self._mouth is not None:
            local = target.landmarks - self._origin
            self._mouth.paint(warped, local, target.mouth_interior)
        if self._lid_painter is not None:
            self._lid_painter.paint(warped, target.landmarks - self._origin)
        frame = self.image.copy()
        rx0, ry0, rx1, ry1 = self.roi
        if self._feather is None:
            frame[ry0:ry1, rx0:rx1] = warped
        else:
            region = frame[ry0:ry1, rx0:rx1].astype(np.float32)
            frame[ry0:ry1, rx0:rx1] = (region + (warped.astype(np.float32) - region) * self._feather).astype(
                np.uint8
            )
        return frame

    def _shade(self, warped: np.ndarray, back: np.ndarray, target: TargetFace) -> None:
        """Multiply the warped face by the frame's shading ratio, looked up where each pixel came from."""
        assert target.shading is not None
        box = padded_box(target.landmarks - self._origin, back.shape, 4, (1, 1))
        if box is None:
            return
        x0, y0, x1, y1 = box
        ratio = target.shading.sample(back[y0:y1, x0:x1] + self._origin.astype(np.float32))
        window = warped[y0:y1, x0:x1]
        # Brightness only: scaling R, G and B alike also scales the skin's colour towards grey, and a shaded
        # cheek then looks bruised rather than in shadow.
        ycc = cv2.cvtColor(window, cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = np.clip(ycc[..., 0] * ratio, 0.0, 255.0).astype(np.uint8)
        window[...] = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


class _EyelidRig:
    """The upper lid's lash line as extra control points, so a closing eye is covered by lid, not smeared.

    MediaPipe puts its upper-lid contour on the eyeball just below the lashes, with the lashes and the lid
    above it. Moving only that contour down stretches the lashes and the top of the iris over the whole eye,
    which looks like a smear, not a closed eye (and MediaPipe reads it as still two-thirds open). Here a
    lash-line point sits above each contour point; as the eye closes, the band between the two shrinks to
    nothing (the lid covers that strip of eyeball), and the lid skin above the lashes (the next two mesh rings)
    slides down with the lash line instead of being stretched.
    """

    # How much of the lash line's extra motion each ring above the lid (``topology.UPPER_LID_RINGS``) follows.
    _FOLLOW = (0.5, 0.0)
    _LASH = 0.5  # lash line, as a fraction of the way from the contour to the first ring

    def __init__(self, landmarks: np.ndarray) -> None:
        pts = landmarks[:, :2]
        self._iod = max(topology.inter_ocular(pts), 1e-6)
        upper: list[int] = []
        lower: list[int] = []
        followers: list[tuple[int, int, float]] = []  # (landmark, lash point, weight)
        offsets = []
        for eye, (up, lo) in enumerate(topology.EYES):
            mid_up, mid_lo = list(up[1:-1]), list(lo[1:-1])
            base = len(upper)
            upper += mid_up
            lower += mid_lo
            rings = topology.UPPER_LID_RINGS[eye]
            first = np.array(rings[0])
            # Each contour point's ring partner is the ring point nearest to it across the eye (x).
            partner = [int(first[np.argmin(np.abs(pts[first, 0] - pts[i, 0]))]) for i in mid_up]
            for i, r in zip(mid_up, partner, strict=True):
                offsets.append(self._LASH * min(pts[r, 1] - pts[i, 1], 0.0))
            for ring, weight in zip(rings, self._FOLLOW, strict=True):
                for r in ring:
                    k = int(np.argmin(np.abs(pts[mid_up, 0] - pts[r, 0])))
                    followers.append((r, base + k, weight))
        self._upper = np.array(upper)
        self._lower = np.array(lower)
        self._offset = np.array(offsets)  # (N,) y offset of the lash line above the contour, pixels (<= 0)
        self._gap = np.maximum(pts[self._lower, 1] - pts[self._upper, 1], 1.0)
        self._followers = np.array([f[0] for f in followers])
        self._leaders = np.array([f[1] for f in followers])
        self._weights = np.array([f[2] for f in followers])[:, None]
        self.lash_source = pts[self._upper] + np.stack([np.zeros_like(self._offset), self._offset], axis=1)

    def lash_displacement(self, target: TargetFace, face_disp: np.ndarray) -> np.ndarray:
        """Displacement of the lash points; also moves the rings above the lid along (``face_disp``, in place)."""
        pts = target.landmarks
        gap = pts[self._lower, 1] - pts[self._upper, 1]
        closing = np.clip(gap / self._gap, 0.0, 1.0)
        scale = topology.inter_ocular(pts) / self._iod  # the head's size in this frame, relative to the photo
        lash = pts[self._upper].copy()
        lash[:, 1] += self._offset * closing * scale
        disp: np.ndarray = lash - self.lash_source
        # The rings keep their offset from the lash line (weight 1) or part of it: lid skin slides, not stretches.
        pull = disp[self._leaders] - face_disp[self._followers]
        face_disp[self._followers] += self._weights * pull
        return disp


# Photo area per output area above which a triangle counts as a sliver whose samples are kept inside it.
_THIN_SQUEEZE = 4.0

# A mouth or eye opened less than this share of the photo's own is squeezed enough to need the exact map; so
# is a mouth opened this many pixels wider than the photo's.
_SQUEEZED = 0.8
_STRETCHED_PX = 3.0
_DETAIL_GROUPS = (
    list(topology.LIPS_UPPER_OUTER + topology.LIPS_LOWER_OUTER),
    list(topology.EYE_A_UPPER + topology.EYE_A_LOWER),
    list(topology.EYE_B_UPPER + topology.EYE_B_LOWER),
)


def _thin(affine: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per triangle: usable, and squeezing the photo by more than ``_THIN_SQUEEZE`` in area (output → photo)."""
    area = np.abs(affine[:, 0, 0] * affine[:, 1, 1] - affine[:, 0, 1] * affine[:, 1, 0])
    return usable & (area > _THIN_SQUEEZE)  # type: ignore[no-any-return]


def _refine(
    region: np.ndarray,
    box: tuple[int, int, int, int],
    corners: np.ndarray,
    affine: np.ndarray,
    usable: np.ndarray,
) -> np.ndarray:
    """Overwrite ``region`` (the backward map) inside ``box`` with the exact per-pixel piecewise-affine inverse;
    returns which triangle each pixel of the box took (-1: none)."""
    x0, y0, x1, y1 = box
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    near = usable & (hi[:, 0] >= x0) & (lo[:, 0] <= x1) & (hi[:, 1] >= y0) & (lo[:, 1] <= y1)
    index = np.full((y1 - y0, x1 - x0), -1, np.int32)
    polygons = np.round((corners - np.array([x0, y0])) * 16.0).astype(np.int32)
    for k in np.flatnonzero(near):  # ascending: the same drawing order as the coarse map (face last)
        cv2.fillConvexPoly(index, polygons[k], int(k), cv2.LINE_8, 4)
    covered = index >= 0
    if not covered.any():
        return index
    a = affine[index[covered]]  # (n, 2, 3)
    rows, cols = np.nonzero(covered)
    xs = (cols + x0).astype(np.float32)[:, None]
    ys = (rows + y0).astype(np.float32)[:, None]
    window = region[y0:y1, x0:x1]
    window[covered] = a[:, :, 2] + a[:, :, 0] * xs + a[:, :, 1] * ys
    return index


def _fill_holes(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` (H, W, C) with the cells where ``known`` is False filled smoothly from the known ones.

    Pull-push: known values are averaged down a pyramid until every cell has some, then pushed back up, each
    level filling its holes from the coarser one. Holes of any size get the surrounding motion, with no blocks.
    """
    weight = known.astype(np.float32)
    levels: list[tuple[np.ndarray, np.ndarray]] = [(values * weight[..., None], weight)]
    while levels[-1][1].min() <= 0.0 and min(levels[-1][1].shape) > 1:
        sums, w = levels[-1]
        size = (max(1, (w.shape[1] + 1) // 2), max(1, (w.shape[0] + 1) // 2))
        levels.append(
            (cv2.resize(sums, size, interpolation=cv2.INTER_AREA), cv2.resize(w, size, interpolation=cv2.INTER_AREA))
        )
    top_sums, top_weight = levels[-1]
    estimate = top_sums / np.maximum(top_weight, 1e-6)[..., None]
    for sums, w in reversed(levels[:-1]):
        coarse = cv2.resize(estimate, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        own = sums / np.maximum(w, 1e-6)[..., None]
        trust = np.clip(w, 0.0, 1.0)[..., None]
        estimate = own * trust + coarse * (1.0 - trust)
    filled: np.ndarray = np.where(known[..., None], values, estimate).astype(values.dtype)
    return filled


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of the similarity x -> A x + b that best takes the 2-D ``source`` points to ``target`` (Umeyama)."""
    ms, mt = source.mean(axis=0), target.mean(axis=0)
    s, t = source - ms, target - mt
    u, sigma, vt = np.linalg.svd(t.T @ s)
    d = np.diag([1.0, float(np.sign(np.linalg.det(u @ vt)))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d)) / max(float((s**2).sum()), 1e-12)
    a = scale * rotation
    return a, mt - a @ ms


def _rectangle_points(w: int, h: int, per_side: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, per_side + 1)[:-1]
    top = np.stack([t * (w - 1), np.zeros_like(t)], axis=1)
    right = np.stack([np.full_like(t, w - 1), t * (h - 1)], axis=1)
    bottom = np.stack([(1 - t) * (w - 1), np.full_like(t, h - 1)], axis=1)
    left = np.stack([np.zeros_like(t), (1 - t) * (h - 1)], axis=1)
    return np.vstack([top, right, bottom, left])


def _feather_mask(rw: int, rh: int, roi: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray | None:
    """Alpha fading to 0 at region edges that lie inside the image; None when the region is the whole image."""
    x0, y0, x1, y1 = roi
    w, h = size
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return None
    margin = max(4, min(rw, rh) // 20)
    ax = np.ones(rw, np.float32)
    ay = np.ones(rh, np.float32)
    ramp = np.linspace(0.0, 1.0, margin, dtype=np.float32)
    if x0 > 0:
        ax[:margin] = np.minimum(ax[:margin], ramp)
    if x1 < w:
        ax[-margin:] = np.minimum(ax[-margin:], ramp[::-1])
    if y0 > 0:
        ay[:margin] = np.minimum(ay[:margin], ramp)
    if y1 < h:
        ay[-margin:] = np.minimum(ay[-margin:], ramp[::-1])
    return (ay[:, None] * ax[None, :])[..., None]
