"""One animation, streamed: driving frames → motion codes → retargeted frames → H.264, in bounded memory.

Three stages run concurrently (MediaPipe, OpenCV and the encoder release the GIL, so two cores overlap):
decode + analysis in one thread, retarget + shading + warp in the caller's thread, encoding in a third. The
reference frame is chosen from a sample of the reference window (about five frames a second), taken while the
analysis thread runs, and its code is made from the second of the clip before it (``driving.scout_reference``
and ``driving.probe_frames``), so generation starts within about a second instead of after the whole window is
analysed; a window no longer than two seconds is analysed whole, as the sample would cost as much. No frames
are held: a ten-minute video never needs ten minutes of frames in memory. Every check on the inputs happens
before the first frame is generated, and the output file appears only when it is complete.

``engine="diffusion"`` adds a refinement stage after the warp (:mod:`xp_sdk.engine.diffusion`): windows of warp
frames are buffered, refined on the GPU by a diffusers pipeline, and emitted in order, still in bounded memory.
Its weights are checked (models.toml, sha256 pins) before the first frame is generated.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from xp_sdk.engine.driving import DrivingFrame, StageClock, find_reference, iter_driving
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.models import FACE_LANDMARKER
from xp_sdk.engine.options import (
    AnimateOptions,
    Engine,
    Progress,
    ProgressCallback,
)
from xp_sdk.engine.paths import as_file_path
from xp_sdk.engine.photo import (
    PhotoSource,
    PreparedPhoto,
    capped,
    prepare_photo,
    read_photo,
    upright_turns,
)
from xp_sdk.engine.retarget import Retargeter, RetargetOptions, TargetFace
from xp_sdk.engine.shading import FaceLayout
from xp_sdk.engine.templates import MotionTemplate, load_template
from xp_sdk.engine.video import DrivingLimits, VideoWriter, check_driving_limits, frame_times
from xp_sdk.engine.warp import WarpGenerator
from xp_sdk.errors import InvalidInputError

if TYPE_CHECKING:
    from xp_sdk.engine.diffusion.components import DiffusionComponents

FrameFilter = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class UsedModel:
    name: str
    sha256: str


@dataclass(frozen=True)
class AnimationResult:
    output: Path
    frames: int
    fps: float
    width: int
    height: int
    reference_frame: int | None
    frames_without_face: int
    seconds: float
    stage_seconds: dict[str, float]
    engine: Engine = "warp"
    models: tuple[UsedModel, ...] = ()
    """Every model file the engine ran, pinned by sha256: the face landmarker, and with ``engine="diffusion"``
    each diffusion component loaded from models.toml (what the C2PA record names)."""


class _FrameStream(Protocol):
    """Turns retargeted faces into output frames; may hold some back (a window) until ``flush``."""

    def push(self, target: TargetFace) -> list[np.ndarray]: ...

    def flush(self) -> list[np.ndarray]: ...


class _WarpStream:
    def __init__(self, generator: WarpGenerator, timings: dict[str, float]) -> None:
        self._generator = generator
        self._timings = timings

    def push(self, target: TargetFace) -> list[np.ndarray]:
        t0 = time.perf_counter()
        frame = self._generator.render(target)
        self._timings["warp"] += time.perf_counter() - t0
        return [frame]

    def flush(self) -> list[np.ndarray]:
        return []


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def prepare_source(source: PhotoSource, options: AnimateOptions) -> tuple[np.ndarray, FaceAnalysis]:
    """Load (or check) the photo, cap its size, and analyse its face as it lies (not turned upright: see
    :func:`~xp_sdk.engine.photo.prepare_photo` for the photo as it is animated); raises before any generation."""
    image, name = read_photo(source)
    image = capped(image, options.max_side, name)
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze_photo(image, allow_multiple=options.allow_multiple_faces, name=name)
    return image, face


def _prepared(source: PhotoSource | PreparedPhoto, options: AnimateOptions) -> PreparedPhoto:
    """``source`` as :func:`prepare_photo` makes it for ``options``; a photo prepared already with the same settings
    is taken as it is (the SDK prepares it once, for its gate and for the engine)."""
    max_side, several = options.max_side, options.allow_multiple_faces
    if isinstance(source, PreparedPhoto):
        if source.made_for(max_side=max_side, allow_multiple_faces=several):
            return source
        source = source.original
    return prepare_photo(source, max_side=max_side, allow_multiple_faces=several)


def animate(
    source: PhotoSource | PreparedPhoto,
    out: str | os.PathLike[str],
    *,
    driving: str | os.PathLike[str] | None = None,
    template: str | MotionTemplate | None = None,
    options: AnimateOptions | None = None,
    progress: ProgressCallback | None = None,
    frame_filter: FrameFilter | None = None,
    diffusion_components: DiffusionComponents | None = None,
    driving_limits: DrivingLimits | None = None,
) -> AnimationResult:
    """Animate ``source`` with a driving video or a motion template and write an H.264 MP4 to ``out``.

    ``source``: a photo file, an RGB ``uint8`` array, or a :class:`PreparedPhoto` (analysed once already).

    ``frame_filter`` sees every generated frame just before it is encoded, on the encoder thread, and returns the
    frame to encode (the SDK watermarks there); its time is reported as the "filter" stage.
    ``diffusion_components``: with ``engine="diffusion"``, models already built (tests, or a caller who loads
    its own) instead of those named in models.toml.
    ``driving_limits``: the longest motion accepted (default 600 s and 18 000 frames), checked from the driving
    video's header and a template's length before any work, and again as the frames are read (a header can lie).
    """
    opts = options or AnimateOptions()
    if (driving is None) == (template is None):
        raise InvalidInputError("give exactly one of a driving video or a motion template")
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress must be a callable taking a Progress, got {type(progress).__name__}")
    out_path = as_file_path(out, "output")
    if driving is not None:
        driving = as_file_path(driving, "driving video")
    if out_path.suffix.lower() != ".mp4":
        raise InvalidInputError(f"output {out_path} must end in .mp4 (H.264 MP4 is what the engine writes)")
    if not isinstance(opts, AnimateOptions):
        raise InvalidInputError(f"options must be AnimateOptions, got {type(opts).__name__}")
    # The options checked themselves when they were made (AnimateOptions.__post_init__).
    if opts.engine == "diffusion" and diffusion_components is None:
        from xp_sdk.engine.diffusion.registry import require_weights

        require_weights(opts.diffusion.models)
    started = time.perf_counter()
    motion: _MotionSource
    limits = driving_limits or DrivingLimits()
    if driving is not None:
        info = check_driving_limits(driving, max_seconds=limits.max_seconds, max_frames=limits.max_frames)
        motion = _VideoMotion(Path(driving), info.fps, info.frame_count, opts, progress, limits)
    else:
        tpl = template if isinstance(template, MotionTemplate) else load_template(str(template))
        limits.check_length(f"motion template {tpl.name!r}", tpl.duration, tpl.frame_count)
        motion = _TemplateMotion(tpl)
    prepared = _prepared(source, opts)
    image, face, turns = prepared.image, prepared.face, prepared.turns
    retargeter = Retargeter(face, RetargetOptions(opts.expression_scale, opts.pose_scale))
    warp = WarpGenerator(image, face, opts.warp)
    width, height = prepared.output_size_for(crop_to_face=opts.crop_to_face)
    # A square animated around a small face goes back into the whole photo (prepare_photo cut it out).
    place = (lambda frame: frame) if opts.crop_to_face else prepared.compose
    timings = {"analysis": 0.0, "warp": 0.0, "filter": 0.0, "encode": 0.0}
    stream: _FrameStream
    models = [UsedModel(FACE_LANDMARKER.name, FACE_LANDMARKER.sha256)]
    if opts.engine == "diffusion":
        from xp_sdk.engine.diffusion.generator import open_diffusion_generator

        timings["diffusion"] = 0.0
        diffusion = open_diffusion_generator(image, face, warp, opts.diffusion, diffusion_components, timings)
        models += [UsedModel(f"diffusion.{name}", digest) for name, digest in diffusion.models]
        stream = diffusion
    else:
        stream = _WarpStream(warp, timings)
    frames = 0
    audio = driving if (driving is not None and opts.keep_audio) else None
    # One output frame per driving frame, shown when the driving frame was: a phone's variable rate keeps its timing.
    times = frame_times(driving, limits=limits) if driving is not None else None
    with VideoWriter(
        out_path, width=width, height=height, fps=motion.fps, crf=opts.crf, audio_from=audio, frame_times=times
    ) as writer:
        encoder = _EncoderThread(writer, timings, frame_filter)

        def emit(ready: list[np.ndarray]) -> None:
            nonlocal frames
            for animated in ready:
                frame = place(animated)
                # Back to the photo's own orientation: the output has the photo's shape.
                encoder.put(np.ascontiguousarray(np.rot90(frame, -turns)) if turns else frame)
                frames += 1
                if progress is not None:
                    progress(Progress("generate", frames, motion.total))

        try:
            for target in motion.targets(retargeter, face):
                emit(stream.push(target))
            emit(stream.flush())
        except BaseException:
            encoder.cancel()
            raise
        encoder.finish()
        timings["analysis"] = motion.analysis_seconds
        timings["shading"] = motion.shading_seconds
    return AnimationResult(
        output=out_path,
        frames=frames,
        fps=motion.fps,
        width=writer.out_width,
        height=writer.out_height,
        reference_frame=motion.reference,
        frames_without_face=motion.frames_without_face,
        seconds=time.perf_counter() - started,
        stage_seconds=timings,
        engine=opts.engine,
        models=tuple(models),
    )


class _EncoderThread:
    """Encodes frames on its own thread; a bounded queue keeps at most a few frames in flight."""

    def __init__(self, writer: VideoWriter, timings: dict[str, float], frame_filter: FrameFilter | None) -> None:
        self._writer = writer
        self._filter = frame_filter
        self._timings = timings
        self._queue: queue.Queue[object] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xp-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._error is not None:
                if item is _END:
                    return
                continue
            try:
                frame: np.ndarray = item  # type: ignore[assignment]
                if self._filter is not None:
                    t0 = time.perf_counter()
                    frame = self._filter(frame)
                    self._timings["filter"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                self._writer.write(frame)
                self._timings["encode"] += time.perf_counter() - t0
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

    def put(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)

    def finish(self) -> None:
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        self._error = self._error or RuntimeError("cancelled")
        self._queue.put(_END)
        self._thread.join()


class _AnalysisThread:
    """The driving frames analysed on a producer thread, which starts at once; iterate for them in order, and
    :meth:`close` to stop the thread (also when nothing was read)."""

    def __init__(
        self,
        produce: Callable[[queue.Queue[object], threading.Event, FaceLayout | None], None],
        layout: FaceLayout | None,
    ) -> None:
        self._items: queue.Queue[object] = queue.Queue(maxsize=256)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=produce, args=(self._items, self._stop, layout), name="xp-analyse", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> _AnalysisThread:
        return self

    def __next__(self) -> DrivingFrame:
        if self._done:
            raise StopIteration
        item = self._items.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._done = True
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._items.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)


class _MotionSource:
    fps: float
    total: int | None
    reference: int | None = None
    frames_without_face: int = 0
    shading_seconds: float = 0.0

    @property
    def analysis_seconds(self) -> float:
        return 0.0

    def targets(self, retargeter: Retargeter, face: FaceAnalysis) -> Iterator[TargetFace]:
        raise NotImplementedError


class _TemplateMotion(_MotionSource):
    def __init__(self, template: MotionTemplate) -> None:
        self.template = template
        self.fps = template.fps
        self.total = template.frame_count

    def targets(self, retargeter: Retargeter, face: FaceAnalysis) -> Iterator[TargetFace]:
        for code in self.template.codes():
            yield retargeter.from_template(code)


class _VideoMotion(_MotionSource):
    """Motion codes from a driving video, analysed on a producer thread."""

    def __init__(
        self,
        path: Path,
        fps: float,
        frame_count: int | None,
        options: AnimateOptions,
        progress: ProgressCallback | None = None,
        limits: DrivingLimits | None = None,
    ) -> None:
        self.path = path
        self.fps = fps
        self.total = frame_count
        self.options = options
        self.limits = limits
        self.clock = StageClock()
        self._progress = progress

    @property
    def analysis_seconds(self) -> float:
        return self.clock.seconds

    def _produce(self, out: queue.Queue[object], stop: threading.Event, layout: FaceLayout | None) -> None:
        try:
            for frame in iter_driving(
                self.path, self.fps, self.options.smoothing, self.clock, layout, self.options.driver_mouth,
                limits=self.limits,
            ):  # fmt: skip
                if stop.is_set():
                    return
                out.put(frame)
            out.put(_END)
        except BaseException as exc:
            out.put(_Failure(exc))

    def targets(self, retargeter: Retargeter, face: FaceAnalysis) -> Iterator[TargetFace]:
        window = max(1, round(self.options.reference_window_s * self.fps))
        if self.total:
            window = min(window, self.total)
        wanted = self.options.reference_frame
        if wanted is not None and self.total and wanted >= self.total:
            raise InvalidInputError(f"reference frame {wanted} is beyond the driving video's {self.total} frames")
        if wanted is not None and self.limits is not None and wanted >= self.limits.max_frames:
            # A header may not say how long the clip is; the frames before the reference are decoded to reach it.
            raise InvalidInputError(
                f"reference frame {wanted} is beyond the longest driving video accepted ({self.limits.describe()})"
            )
        layout = FaceLayout(face.landmarks, self.options.shading) if self.options.shading.enabled else None

        def analysed(frames: int) -> None:
            # Progress through the reference window; a caller cancels here as between generated frames.
            if self._progress is not None:
                self._progress(Progress("analyse", min(frames, window), window))

        stream = _AnalysisThread(self._produce, layout)
        try:
            found = find_reference(
                self.path, self.fps, stream, retargeter, window, wanted=wanted, layout=layout,
                smoothing=self.options.smoothing, clock=self.clock, on_frame=analysed,
            )  # fmt: skip
            clip, buffered, self.reference = found.targets, found.buffered, found.index
            try:
                for frame in buffered:
                    yield clip(frame)
                for frame in stream:
                    yield clip(frame)
            finally:
                self.frames_without_face = clip.frames_without_face
                self.shading_seconds = clip.shading_seconds
        finally:
            stream.close()


__all__ = [
    "AnimateOptions",
    "AnimationResult",
    "Engine",
    "Progress",
    "ProgressCallback",
    "animate",
    "prepare_source",
    "upright_turns",
]
