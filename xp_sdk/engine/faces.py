"""Face analysis with MediaPipe FaceLandmarker: 478 landmarks, 52 blendshapes and the head pose of one face."""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from xp_sdk.engine import topology
from xp_sdk.engine.models import FACE_LANDMARKER, resolve_model
from xp_sdk.errors import EngineError, FaceTooSmallError, MultipleFacesError, NoFaceError, UnreadableImageError

# MediaPipe's metric face space has y up and z towards the camera; image landmarks have y down and z away.
_FLIP = np.diag([1.0, -1.0, -1.0])
MIN_PHOTO_FACE_PX = 64
MIN_VIDEO_FACE_PX = 40


@dataclass(frozen=True)
class FaceAnalysis:
    """One analysed face. ``landmarks`` are pixels (x, y) plus depth z on the x scale."""

    landmarks: np.ndarray  # (478, 3) float32
    blendshapes: np.ndarray  # (52,) float32
    pose: np.ndarray  # (4, 4) facial transformation matrix, MediaPipe metric space
    image_size: tuple[int, int]  # (width, height)

    @property
    def rotation(self) -> np.ndarray:
        """Head rotation in image axes (x right, y down, z away), orthonormal."""
        r = self.pose[:3, :3].astype(np.float64)
        u, _, vt = np.linalg.svd(r)
        return _FLIP @ (u @ vt) @ _FLIP  # type: ignore[no-any-return]

    def with_rotation(self, rotation: np.ndarray) -> np.ndarray:
        """This face's pose matrix turned to ``rotation`` (image axes, as :attr:`rotation` gives it), its scale and
        translation kept."""
        pose = self.pose.copy()
        pose[:3, :3] = float(np.linalg.norm(self.pose[:3, 0])) * (_FLIP @ rotation @ _FLIP)
        return pose

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the landmarks, in pixels."""
        xy = self.landmarks[:, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def size(self) -> float:
        """Face size in pixels: the shorter side of the landmark box."""
        x0, y0, x1, y1 = self.bbox
        return min(x1 - x0, y1 - y0)

    @property
    def inter_ocular(self) -> float:
        return topology.inter_ocular(self.landmarks)

    def scaled(self, factor: float) -> FaceAnalysis:
        """The same analysis for the image resized by ``factor``."""
        w, h = self.image_size
        return FaceAnalysis(
            landmarks=(self.landmarks * np.float32(factor)).astype(np.float32),
            blendshapes=self.blendshapes,
            pose=self.pose,
            image_size=(round(w * factor), round(h * factor)),
        )


def next_timestamp(last_ms: int, wanted_ms: int | None) -> int:
    """The timestamp for a video's next frame: ``wanted_ms``, or one past ``last_ms`` when that is not later
    (video-mode trackers and their filters need strictly increasing times)."""
    return last_ms + 1 if wanted_ms is None else max(wanted_ms, last_ms + 1)


def _to_analysis(result: Any, index: int, width: int, height: int) -> FaceAnalysis:
    raw = result.face_landmarks[index]
    pts = np.array([(p.x * width, p.y * height, p.z * width) for p in raw], dtype=np.float32)
    shapes = np.array([c.score for c in result.face_blendshapes[index]], dtype=np.float32)
    pose = np.array(result.facial_transformation_matrixes[index], dtype=np.float64)
    return FaceAnalysis(landmarks=pts, blendshapes=shapes, pose=pose, image_size=(width, height))


class FaceAnalyzer:
    """A FaceLandmarker for photos (``video=False``) or for the frames of one video in order (``video=True``).

    Use it as a context manager or call :meth:`close`: MediaPipe holds native resources.
    """

    def __init__(
        self,
        *,
        video: bool = False,
        max_faces: int = 4,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = resolve_model(FACE_LANDMARKER, model_path)
        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=mode,
            num_faces=max_faces,
            min_face_detection_confidence=0.5,
            min_face_presence_confidence=0.5,
            min_tracking_confidence=0.5,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._video = video
        self._landmarker: Any = vision.FaceLandmarker.create_from_options(options)
        self._last_ts = -1

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def detect_all(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> list[FaceAnalysis]:
        """Every face found, largest first."""
        import mediapipe as mp

        if self._landmarker is None:
            raise EngineError("FaceAnalyzer is closed")
        # MediaPipe raises ValueError or RuntimeError on anything else, and an empty picture leaves its graph
        # failing every later call.
        if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
            shape = getattr(rgb, "shape", type(rgb).__name__)
            raise UnreadableImageError(
                f"face analysis needs an H×W×3 RGB uint8 image, got {shape} {getattr(rgb, 'dtype', '')}".rstrip()
            )
        if rgb.size == 0:
            raise UnreadableImageError(f"face analysis needs a picture with pixels, got {rgb.shape[1]}×{rgb.shape[0]}")
        height, width = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self._video:
            self._last_ts = next_timestamp(self._last_ts, timestamp_ms)
            result = self._landmarker.detect_for_video(image, self._last_ts)
        else:
            result = self._landmarker.detect(image)
        faces = [_to_analysis(result, i, width, height) for i in range(len(result.face_landmarks))]
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces

    def analyze_photo(
        self,
        rgb: np.ndarray,
        *,
        allow_multiple: bool = False,
        min_face_px: int = MIN_PHOTO_FACE_PX,
        name: str = "photo",
    ) -> FaceAnalysis:
        """The one face of a portrait photo, with typed errors for no face, several faces, or a tiny face."""
        faces = self.detect_all(rgb)
        if not faces:
            raise NoFaceError(f"no face found in {name}; use a photo where one face is clearly visible")
        if len(faces) > 1 and not allow_multiple:
            raise MultipleFacesError(
                f"{len(faces)} faces found in {name}; crop the photo to one person, or allow the largest "
                "face to be used (allow_multiple_faces=True, --allow-multiple-faces)",
                count=len(faces),
            )
        face = faces[0]
        if face.size < min_face_px:
            raise FaceTooSmallError(
                f"the face in {name} is {face.size:.0f} pixels across; at least {min_face_px} are needed. "
                "Use a larger or tighter photo"
            )
        return face
