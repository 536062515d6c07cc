"""Face identity embeddings with OpenCV's YuNet detector and SFace recogniser.

This is deliberately a different model family from the MediaPipe FaceLandmarker that drives the animation, so
it can judge whether an output still shows the source person without sharing that model's blind spots.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from xp_sdk.engine.faces import FaceAnalyzer
from xp_sdk.engine.models import FACE_DETECTOR_YUNET, FACE_RECOGNIZER_SFACE, resolve_model
from xp_sdk.errors import EngineError, NoFaceError, UnreadableImageError

# Cosine similarity of two SFace embeddings at or above which they are taken to show the same person: the
# threshold published with the model in the OpenCV model zoo (face_recognition_sface, cosine metric).
SFACE_SAME_PERSON_COSINE = 0.363
EMBEDDING_SIZE = 128
DETECTION_SCORE_THRESHOLD = 0.6
# SFace's ONNX input. ``FaceRecognizerSF.feature`` feeds the net by an empty name, which OpenCV 5's graph
# engine refuses for this file (it lists more than one graph input), so the feature is computed here by name;
# the preprocessing is the one ``feature`` uses (112×112, BGR→RGB, no scaling or mean).
_SFACE_INPUT = "data"
_SFACE_SIZE = (112, 112)
# The two detectors' boxes of one face (YuNet's box, the FaceLandmarker's landmark box) overlap by 0.77-0.90
# (intersection over union) on the shared photos upright and by 0.42-0.72 on their side; two people's by nothing.
DETECTORS_AGREE_IOU = 0.3
# A reference's face is shown to the FaceLandmarker in a square this many times YuNet's box: the whole head and
# some context, as its detector expects (on crops of the shared photos the two boxes overlapped by 0.47-0.96).
_AGREEMENT_CROP = 2.5
# YuNet's cost grows with the pixel count while its accuracy on a portrait does not; large photos are
# detected on a downscaled copy and the five landmarks mapped back, so alignment still uses full resolution.
_MAX_DETECT_SIDE = 640


class IdentityEmbedder:
    """Turns the largest face of an RGB image into an L2-normalised 128-d SFace embedding.

    Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        detector_path: str | os.PathLike[str] | None = None,
        recognizer_path: str | os.PathLike[str] | None = None,
        score_threshold: float = DETECTION_SCORE_THRESHOLD,
    ) -> None:
        yunet = resolve_model(FACE_DETECTOR_YUNET, detector_path)
        sface = resolve_model(FACE_RECOGNIZER_SFACE, recognizer_path)
        self._input_size = (320, 320)
        self._detector: Any = cv2.FaceDetectorYN.create(
            str(yunet), "", self._input_size, score_threshold=score_threshold
        )
        self._recognizer: Any = cv2.FaceRecognizerSF.create(str(sface), "")
        self._net: Any = cv2.dnn.readNetFromONNX(str(sface))
        self._analyzer: FaceAnalyzer | None = None  # made on first use (reference photos)

    def __enter__(self) -> IdentityEmbedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._detector = None
        self._recognizer = None
        self._net = None
        if self._analyzer is not None:
            self._analyzer.close()
            self._analyzer = None

    def detect_all(self, rgb: np.ndarray) -> np.ndarray:
        """Every face YuNet finds, largest first, as rows (x, y, w, h, five landmark x/y pairs, score) in pixels;
        shape (0, 15) when there is none."""
        if self._detector is None:
            raise EngineError("IdentityEmbedder is closed")
        bgr = _to_bgr(rgb)
        height, width = bgr.shape[:2]
        scale = min(1.0, _MAX_DETECT_SIDE / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._input_size:
            self._detector.setInputSize(size)
            self._input_size = size
        _, found = self._detector.detect(bgr)
        if found is None or len(found) == 0:
            return np.zeros((0, 15), np.float32)
        faces = np.asarray(found, dtype=np.float32).copy()
        if scale < 1.0:
            faces[:, 0:14:2] *= width / size[0]
            faces[:, 1:14:2] *= height / size[1]
        return faces[np.argsort(-(faces[:, 2] * faces[:, 3]), kind="stable")]

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """The largest face as YuNet's row (x, y, w, h, five landmark x/y pairs, score), in pixels."""
        faces = self.detect_all(rgb)
        return faces[0] if len(faces) else None

    def embed(self, rgb: np.ndarray, *, any_orientation: bool = False) -> np.ndarray | None:
        """The embedding of the largest face in ``rgb`` (RGB ``uint8``), or None when no face is found.

        ``any_orientation``: for a photo whose orientation may have been lost (apps that strip EXIF), the face
        is looked for in all four quarter turns of the picture and embedded from the turn YuNet is surest of.
        Without it, YuNet finds no face lying on its side, or finds one with its landmarks placed as if upright
        and an embedding of nobody (cosine 0.01-0.29 to the same photo upright). On the shared photos the
        upright turn scored 0.92-0.95 and the others at most 0.90.

        YuNet alone also finds faces in a coffee cup and a cat (scores 0.6-0.62): a reference photo is embedded
        by :meth:`reference_embedding`, and the face of a photo to animate by :meth:`embed_face`.
        """
        face = self.detect(rgb)
        if any_orientation:
            as_given = rgb
            for turns in (1, 2, 3):
                turned = np.ascontiguousarray(np.rot90(as_given, turns))
                found = self.detect(turned)
                if found is not None and (face is None or found[14] > face[14]):  # column 14: YuNet's score
                    rgb, face = turned, found
        if face is None:
            return None
        return self._embedding(rgb, face)

    def embed_face(self, rgb: np.ndarray, box: tuple[float, float, float, float], *, name: str) -> np.ndarray:
        """The embedding of the face at ``box`` (x0, y0, x1, y1 in ``rgb``'s pixels: where another detector, the
        animation's FaceLandmarker, found the face that moves); ``NoFaceError`` when YuNet finds no face there.

        YuNet's own largest face need not be that one: in a photo of several people the two detectors may each
        take a different person as the largest, and the face matched must be the face animated.
        """
        faces = self.detect_all(rgb)
        overlaps = [_overlap(_yunet_box(face), box) for face in faces]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best < 0 or overlaps[best] < DETECTORS_AGREE_IOU:
            raise NoFaceError(
                f"the identity detector (YuNet) finds no face where the face to animate is in {name}; use a photo "
                "where the face is clearly visible, seen from the front"
            )
        return self._embedding(rgb, faces[best])

    def reference_embedding(self, rgb: np.ndarray, *, name: str = "the reference photo") -> np.ndarray:
        """The embedding of a reference photo's face, in whichever quarter turn it stands upright; ``NoFaceError``
        unless both detectors, YuNet and MediaPipe's FaceLandmarker, find that face.

        YuNet alone found a face in scikit-image's coffee cup (at 1200×800, score 0.62) and its cat (0.62), and
        they were registered as people; MediaPipe finds none there. Each face YuNet finds (the turns in the order
        of YuNet's surest face, then the faces largest first) is shown to MediaPipe in a crop around it: on the
        whole picture MediaPipe's detector misses faces that are small in it (the astronaut beside a cup, 90
        pixels of 1280), which YuNet finds. The first face both find is embedded.
        """
        if self._analyzer is None:
            self._analyzer = FaceAnalyzer()
        rgb = _checked_rgb(rgb)
        candidates = []
        for turns in range(4):
            turned = np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
            faces = self.detect_all(turned)
            if len(faces):
                candidates.append((float(faces[:, 14].max()), turns, turned, faces))
        for _, _, turned, faces in sorted(candidates, key=lambda c: (-c[0], c[1])):
            for face in faces:  # largest first
                if self._landmarker_agrees(turned, face):
                    return self._embedding(turned, face)
        raise NoFaceError(f"no face found in {name}; use a photo where one face is clearly visible")

    def _landmarker_agrees(self, rgb: np.ndarray, face: np.ndarray) -> bool:
        """Whether MediaPipe's FaceLandmarker finds a face where YuNet's ``face`` is, looking at a crop around it."""
        assert self._analyzer is not None
        x0, y0, x1, y1 = _yunet_box(face)
        half = max(x1 - x0, y1 - y0) * _AGREEMENT_CROP / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        height, width = rgb.shape[:2]
        left, top = max(0, int(cx - half)), max(0, int(cy - half))
        right, bottom = min(width, int(cx + half) + 1), min(height, int(cy + half) + 1)
        if right - left < 2 or bottom - top < 2:
            return False
        crop = np.ascontiguousarray(rgb[top:bottom, left:right])
        shifted = (x0 - left, y0 - top, x1 - left, y1 - top)
        return any(_overlap(shifted, found.bbox) >= DETECTORS_AGREE_IOU for found in self._analyzer.detect_all(crop))

    def _embedding(self, rgb: np.ndarray, face: np.ndarray) -> np.ndarray:
        if self._recognizer is None or self._net is None:
            raise EngineError("IdentityEmbedder is closed")
        aligned = self._recognizer.alignCrop(_to_bgr(rgb), face)
        blob = cv2.dnn.blobFromImage(aligned, 1.0, _SFACE_SIZE, (0, 0, 0), True, False)
        self._net.setInput(blob, _SFACE_INPUT)
        feature = np.asarray(self._net.forward(), dtype=np.float32).reshape(-1)
        if feature.shape != (EMBEDDING_SIZE,):
            raise EngineError(f"SFace returned a {feature.shape} feature; expected ({EMBEDDING_SIZE},)")
        norm = float(np.linalg.norm(feature))
        if not np.isfinite(norm) or norm == 0.0:
            raise EngineError("SFace returned a zero or non-finite feature")
        return (feature / np.float32(norm)).astype(np.float32)

    @staticmethod
    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two embeddings; ``>= SFACE_SAME_PERSON_COSINE`` means the same person."""
        va = np.asarray(a, dtype=np.float64).reshape(-1)
        vb = np.asarray(b, dtype=np.float64).reshape(-1)
        denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
        if denom == 0.0:
            return 0.0
        return float(np.dot(va, vb) / denom)


def _yunet_box(face: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in face[:4])
    return x, y, x + w, y + h


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _checked_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as three contiguous RGB channels (a fourth, alpha, dropped), after the checks of :func:`_to_bgr`."""
    _to_bgr(rgb)
    return np.ascontiguousarray(rgb[:, :, :3])


def _to_bgr(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise UnreadableImageError(f"expected an H×W×3 RGB uint8 image, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise UnreadableImageError(f"expected an H×W×3 RGB uint8 image, got shape {rgb.shape} {rgb.dtype}")
    if rgb.size == 0:
        raise UnreadableImageError(f"expected a picture with pixels, got {rgb.shape[1]}×{rgb.shape[0]}")
    return np.ascontiguousarray(rgb[:, :, 2::-1])


__all__ = ["DETECTORS_AGREE_IOU", "EMBEDDING_SIZE", "SFACE_SAME_PERSON_COSINE", "IdentityEmbedder"]
