"""Quality scoring of an animation against its source photo and driving video.

Every metric is reported next to its *static baseline*: the value the laziest possible output, the source
photo repeated unchanged, would get. A metric only means something relative to that baseline.

Driving frame ``i`` is paired with output frame ``i`` (the longer clip is truncated). Both videos are analysed
with MediaPipe FaceLandmarker in video mode; a pair in which either frame has no face is skipped and counted
in ``frames_without_face``. Each video's first frame is fed to its analyser a few times before it is scored,
so MediaPipe's tracker start-up transient is not mistaken for motion. Identity is judged by a different model
family (YuNet + SFace, see :mod:`xp_sdk.engine.identity`), so the animation model cannot grade its own
mistakes.

Pose-free expression shape (per frame)
    The 478 landmarks ``P`` (pixels, z on the x scale) are centred on the mean ``c`` of the ``RIGID`` points,
    de-rotated with the head rotation ``R`` (row vectors: ``C = (P - c) @ R``) and scaled to inter-ocular
    (IOD) units: the track's first shape is divided by its own inter-ocular distance, measured in 3-D so that
    it does not shrink when the head turns; every later shape is scaled so that its ``SKULL`` points (3-D
    RMS spread) have the first shape's size, and its de-rotation refined on the ``RIGID`` points. The skull
    size, not each frame's iris distance, sets the scale because MediaPipe's iris centres drift inwards when
    the lids close (about 5 % during an eye squeeze on lp_d7): dividing each frame by its own iris distance
    made every blink a zoom of the whole face, scored as chin, mouth and brow motion. Only the ``EXPRESSIVE``
    points' x, y are kept.

expression_error
    Each sequence of shapes is centred on its own temporal mean (over the scored frames), which removes the
    identity (face geometry) and any choice of reference frame. The error is the mean, over scored frames
    and ``EXPRESSIVE`` points, of the Euclidean x, y distance between the output's centred shape and the
    driving's. Static baseline ``expression_error_static``: a static output centres to zero, so it is the
    mean norm of the centred driving shapes.
    ``expression_ratio = expression_error / expression_error_static``: 0 is a perfect transfer, 1 is no better
    than not animating, above 1 is motion that is wrong.

identity
    SFace cosine between the source photo's embedding and each output frame's (every ``identity_stride``-th
    frame). ``identity_mean`` and ``identity_min``; a frame where YuNet finds no face counts as cosine 0 and
    is counted in ``identity_frames_without_face``. ``SFACE_SAME_PERSON_COSINE`` (0.363) is the same-person
    threshold. Static baseline ``identity_static``: the source against itself, 1.0.

pose_error (degrees)
    Head rotation of frame ``t`` relative to the first scored frame, in camera axes: ``R_rel = R_t @ R_0.T``.
    The error is the mean over scored frames of the angle of ``R_out_rel.T @ R_drv_rel``. Static baseline
    ``pose_error_static``: the mean angle of ``R_drv_rel`` alone.

jitter
    Mean, over every run of three consecutive frames with a face and over ``EXPRESSIVE`` points, of the norm
    of the second temporal difference ``S[t+1] - 2 S[t] + S[t-1]`` of the pose-free shapes (IOD units per
    frame²), for the output (``jitter``) and for the driving video (``jitter_driving``);
    ``jitter_ratio = jitter / jitter_driving``, about 1 when the output is as smooth as its driving video.
    Static baseline ``jitter_static``: 0. None when no such run exists.

Ratios are None when their baseline is 0 (a driving video without any motion).
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.identity import SFACE_SAME_PERSON_COSINE, IdentityEmbedder
from xp_sdk.engine.images import check_image_array, load_image
from xp_sdk.engine.motion import kabsch
from xp_sdk.errors import InvalidInputError, NoFaceError, UnreadableVideoError

_RIGID = list(topology.RIGID)
_EXPRESSIVE = list(topology.EXPRESSIVE)
_IRIS_A = topology.IRIS_A[0]
_IRIS_B = topology.IRIS_B[0]
_WARMUP_FRAMES = 10
# SFace is the slowest of the three per-frame models; a second worker pays off only with cores to spare.
_IDENTITY_WORKERS = 2 if (os.cpu_count() or 1) >= 8 else 1
_WINDOW = 8


class QualityReport(BaseModel):
    """Scores of one animation; every metric comes with its static baseline (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    frames_compared: int = Field(description="frame pairs after truncating to the shorter video")
    frames_scored: int = Field(description="pairs in which both the driving and the output frame have a face")
    frames_without_face: int = Field(description="pairs skipped because either frame has no face")
    driving_frames_without_face: int
    output_frames_without_face: int

    expression_error: float = Field(description="mean landmark distance to the driving expression, IOD units")
    expression_error_static: float
    expression_ratio: float | None = Field(description="expression_error / expression_error_static")

    identity_mean: float = Field(description="mean SFace cosine of output frames to the source photo")
    identity_min: float
    identity_static: float = 1.0
    identity_threshold: float = SFACE_SAME_PERSON_COSINE
    identity_frames: int = Field(description="output frames embedded (every identity_stride-th)")
    identity_frames_without_face: int

    pose_error: float = Field(description="mean angle between output and driving relative head rotation, deg")
    pose_error_static: float

    jitter: float | None = Field(description="mean second-difference norm of output shapes, IOD units")
    jitter_driving: float | None
    jitter_ratio: float | None
    jitter_static: float = 0.0

    def to_table(self) -> str:
        """A plain-text table: metric, value, static baseline."""
        rows = [
            ("expression error (IOD)", _fmt(self.expression_error), _fmt(self.expression_error_static)),
            ("expression ratio", _fmt(self.expression_ratio), "1.000"),
            ("identity mean (cos)", _fmt(self.identity_mean), _fmt(self.identity_static)),
            ("identity min (cos)", _fmt(self.identity_min), _fmt(self.identity_static)),
            ("pose error (deg)", _fmt(self.pose_error, 2), _fmt(self.pose_error_static, 2)),
            ("jitter (IOD)", _fmt(self.jitter, 4), _fmt(self.jitter_static, 4)),
            ("jitter driving (IOD)", _fmt(self.jitter_driving, 4), "-"),
            ("jitter ratio", _fmt(self.jitter_ratio), "-"),
        ]
        header = ("metric", "value", "static")
        w0 = max(len(r[0]) for r in [header, *rows])
        w1 = max(len(r[1]) for r in [header, *rows])
        w2 = max(len(r[2]) for r in [header, *rows])
        lines = [f"{header[0]:<{w0}}  {header[1]:>{w1}}  {header[2]:>{w2}}", "-" * (w0 + w1 + w2 + 4)]
        lines += [f"{a:<{w0}}  {b:>{w1}}  {c:>{w2}}" for a, b, c in rows]
        lines.append(
            f"frames scored {self.frames_scored}/{self.frames_compared} "
            f"(without face: {self.frames_without_face}; driving {self.driving_frames_without_face}, "
            f"output {self.output_frames_without_face}); identity on {self.identity_frames} frames, "
            f"{self.identity_frames_without_face} without face; same-person cosine {self.identity_threshold}"
        )
        return "\n".join(lines)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def canonical_shape(face: FaceAnalysis, anchor: np.ndarray | None = None) -> np.ndarray | None:
    """The pose-free shape of one face, (478, 3) in IOD units; None if the eyes coincide.

    With ``anchor`` (the track's first shape) the de-rotation is refined by aligning the skull points to it,
    since MediaPipe's pose matrix alone leaves a few tenths of a degree of noise that mixes depth into x, y.
    """
    points = face.landmarks.astype(np.float64)
    centred = (points - points[_RIGID].mean(axis=0)) @ face.rotation
    if anchor is None:
        size = float(np.linalg.norm(centred[_IRIS_A] - centred[_IRIS_B]))
    else:
        size = topology.skull_size(centred) / topology.skull_size(anchor)
    if not math.isfinite(size) or size <= 1e-6:
        return None
    shape: np.ndarray = centred / size
    if anchor is not None:
        shape = shape @ kabsch(shape[_RIGID], anchor[_RIGID])
    return shape


@dataclass
class _Track:
    shapes: list[np.ndarray | None] = field(default_factory=list)
    rotations: list[np.ndarray | None] = field(default_factory=list)
    _anchor: np.ndarray | None = None

    def add(self, face: FaceAnalysis | None) -> None:
        shape = None if face is None else canonical_shape(face, self._anchor)
        if shape is None or face is None:
            self.shapes.append(None)
            self.rotations.append(None)
            return
        if self._anchor is None:
            self._anchor = shape
        self.shapes.append(shape[_EXPRESSIVE, :2])
        self.rotations.append(face.rotation)

    @property
    def missing(self) -> int:
        return sum(s is None for s in self.shapes)


def evaluate(
    source_rgb: np.ndarray,
    driving_frames: Iterable[np.ndarray],
    output_frames: Iterable[np.ndarray],
    *,
    driving_fps: float,
    identity_stride: int = 1,
) -> QualityReport:
    """Score ``output_frames`` as an animation of ``source_rgb`` driven by ``driving_frames`` (all RGB uint8).

    The output is assumed to run frame for frame with the driving video, at ``driving_fps``.
    """
    source = check_image_array(source_rgb, name="source photo")
    if not (math.isfinite(driving_fps) and driving_fps > 0):
        raise InvalidInputError(f"driving_fps must be a positive number, got {driving_fps}")
    if identity_stride < 1:
        raise InvalidInputError(f"identity_stride must be at least 1, got {identity_stride}")

    driving = _Track()
    output = _Track()
    cosines: list[float] = []
    identity_missing = 0
    source_embedding = np.zeros(0, dtype=np.float32)

    def collect(item: _Pending) -> None:
        nonlocal identity_missing
        driving.add(item.driving.result())
        output.add(item.output.result())
        if item.identity is not None:
            embedding = item.identity.result()
            if embedding is None:
                identity_missing += 1
                cosines.append(0.0)
            else:
                cosines.append(IdentityEmbedder.cosine(source_embedding, embedding))

    drv_iter = iter(driving_frames)
    out_iter = iter(output_frames)
    try:
        # MediaPipe video mode needs its calls in order, so each video gets a one-thread executor (FIFO);
        # identity embeddings are independent per frame and spread over a small pool. The three streams
        # overlap, and at most _WINDOW frame pairs are in flight so memory stays bounded.
        with (
            _IdentityPool(_IDENTITY_WORKERS) as identity,
            FaceAnalyzer(video=True, max_faces=1) as drv_analyzer,
            FaceAnalyzer(video=True, max_faces=1) as out_analyzer,
            ThreadPoolExecutor(1, thread_name_prefix="xp-eval-driving") as drv_exec,
            ThreadPoolExecutor(1, thread_name_prefix="xp-eval-output") as out_exec,
        ):
            found = identity.submit(source).result()
            if found is None:
                raise NoFaceError("no face found in the source photo by the identity detector (YuNet)")
            source_embedding = found
            pending: deque[_Pending] = deque()
            for i, (drv_frame, out_frame) in enumerate(zip(drv_iter, out_iter, strict=False)):
                drv = check_image_array(drv_frame, name=f"driving frame {i}")
                out = check_image_array(out_frame, name=f"output frame {i}")
                # Frame i sits at tick i + _WARMUP_FRAMES; frame 0 also fills the ticks before it (_analyse).
                ticks = range(i + _WARMUP_FRAMES, i + _WARMUP_FRAMES + 1) if i else range(_WARMUP_FRAMES + 1)
                stamps = [round(tick * 1000.0 / driving_fps) for tick in ticks]
                pending.append(
                    _Pending(
                        driving=drv_exec.submit(_analyse, drv_analyzer, drv, stamps),
                        output=out_exec.submit(_analyse, out_analyzer, out, stamps),
                        identity=identity.submit(out) if i % identity_stride == 0 else None,
                    )
                )
                while len(pending) > _WINDOW:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
    finally:
        _close(drv_iter)
        _close(out_iter)

    compared = len(driving.shapes)
    if compared == 0:
        raise UnreadableVideoError("nothing to compare: the driving or the output video has no frames")
    scored = [i for i in range(compared) if driving.shapes[i] is not None and output.shapes[i] is not None]
    if not scored:
        raise NoFaceError(
            f"no frame pair of the {compared} compared has a face in both videos "
            f"(driving without face: {driving.missing}, output without face: {output.missing})"
        )

    drv_shapes = np.stack([_present(driving.shapes[i]) for i in scored])
    out_shapes = np.stack([_present(output.shapes[i]) for i in scored])
    drv_centred = drv_shapes - drv_shapes.mean(axis=0)
    out_centred = out_shapes - out_shapes.mean(axis=0)
    expression_error = float(np.linalg.norm(out_centred - drv_centred, axis=2).mean())
    expression_static = float(np.linalg.norm(drv_centred, axis=2).mean())

    drv_rot = [_present(driving.rotations[i]) for i in scored]
    out_rot = [_present(output.rotations[i]) for i in scored]
    pose_errors: list[float] = []
    pose_static: list[float] = []
    for rd, ro in zip(drv_rot, out_rot, strict=True):
        drv_rel = rd @ drv_rot[0].T
        out_rel = ro @ out_rot[0].T
        pose_errors.append(_angle_deg(out_rel.T @ drv_rel))
        pose_static.append(_angle_deg(drv_rel))

    jitter = _jitter(output.shapes)
    jitter_driving = _jitter(driving.shapes)

    return QualityReport(
        frames_compared=compared,
        frames_scored=len(scored),
        frames_without_face=compared - len(scored),
        driving_frames_without_face=driving.missing,
        output_frames_without_face=output.missing,
        expression_error=expression_error,
        expression_error_static=expression_static,
        expression_ratio=_ratio(expression_error, expression_static),
        identity_mean=float(np.mean(cosines)),
        identity_min=float(np.min(cosines)),
        identity_frames=len(cosines),
        identity_frames_without_face=identity_missing,
        pose_error=float(np.mean(pose_errors)),
        pose_error_static=float(np.mean(pose_static)),
        jitter=jitter,
        jitter_driving=jitter_driving,
        jitter_ratio=None if jitter is None or jitter_driving is None else _ratio(jitter, jitter_driving),
    )


def evaluate_files(
    source_path: str | os.PathLike[str],
    driving_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    identity_stride: int = 1,
) -> QualityReport:
    """:func:`evaluate` on files: a source photo, the driving video and the generated video."""
    from xp_sdk.engine.video import probe_video, read_frames

    source = load_image(source_path)
    fps = probe_video(driving_path).fps
    return evaluate(
        source,
        read_frames(driving_path),
        read_frames(output_path),
        driving_fps=fps,
        identity_stride=identity_stride,
    )


@dataclass(frozen=True)
class _Pending:
    driving: Future[FaceAnalysis | None]
    output: Future[FaceAnalysis | None]
    identity: Future[np.ndarray | None] | None


class _IdentityPool:
    """Identity embeddings on worker threads, one :class:`IdentityEmbedder` per thread (OpenCV nets are not
    shared between threads)."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="xp-eval-identity")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._embedders: list[IdentityEmbedder] = []

    def __enter__(self) -> _IdentityPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _embedder(self) -> IdentityEmbedder:
        embedder: IdentityEmbedder | None = getattr(self._local, "embedder", None)
        if embedder is None:
            embedder = IdentityEmbedder()
            with self._lock:
                self._embedders.append(embedder)
            self._local.embedder = embedder
        return embedder

    def _embed(self, rgb: np.ndarray) -> np.ndarray | None:
        return self._embedder().embed(rgb)

    def submit(self, rgb: np.ndarray) -> Future[np.ndarray | None]:
        return self._executor.submit(self._embed, rgb)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for embedder in self._embedders:
                embedder.close()
            self._embedders.clear()


def _analyse(analyzer: FaceAnalyzer, rgb: np.ndarray, timestamps_ms: list[int]) -> FaceAnalysis | None:
    # On a video's first frame MediaPipe's tracker starts from the detector's box and its temporal filter from
    # that first estimate; both take several frames to settle, which would show up as fake motion (up to ~2°
    # of head rotation and 0.01 IOD of shape on a still photo). Frame 0 is therefore fed several times first,
    # at the video's frame spacing because the filter depends on the timestamps.
    faces: list[FaceAnalysis] = []
    for timestamp in timestamps_ms:
        faces = analyzer.detect_all(rgb, timestamp)
    return faces[0] if faces else None


def _present(value: np.ndarray | None) -> np.ndarray:
    assert value is not None
    return value


def _angle_deg(rotation: np.ndarray) -> float:
    cos = (float(np.trace(rotation)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


def _jitter(shapes: list[np.ndarray | None]) -> float | None:
    values = []
    for t in range(1, len(shapes) - 1):
        prev, cur, nxt = shapes[t - 1], shapes[t], shapes[t + 1]
        if prev is None or cur is None or nxt is None:
            continue
        values.append(float(np.linalg.norm(nxt - 2.0 * cur + prev, axis=1).mean()))
    return float(np.mean(values)) if values else None


def _ratio(value: float, baseline: float) -> float | None:
    return value / baseline if baseline > 0.0 else None


def _close(iterator: Iterator[np.ndarray]) -> None:
    # Generators (e.g. video readers) hold open files until closed; zip() may stop them part-way.
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


__all__ = ["QualityReport", "canonical_shape", "evaluate", "evaluate_files"]
