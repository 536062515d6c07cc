"""Driving video → motion codes (and shading textures) → the photo's targets, measured against a reference frame
chosen for the photo (:func:`find_reference`); recording a motion template."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xp_sdk.engine.faces import MIN_VIDEO_FACE_PX, FaceAnalysis
from xp_sdk.engine.interior import sample_interior
from xp_sdk.engine.motion import MotionCode, MotionEncoder, MotionSmoother, SmoothingConfig
from xp_sdk.engine.retarget import (
    Retargeter,
    TargetFace,
    choose_reference,
    most_faithful,
    open_eye_openings,
    reference_scores,
    rest_level,
    typical_expression,
)
from xp_sdk.engine.shading import FaceLayout
from xp_sdk.engine.templates import MotionTemplate, template_from_codes
from xp_sdk.engine.tracking import VideoFaceAnalyzer, open_video_analyzer
from xp_sdk.engine.video import DrivingLimits, frame_times, probe_video, read_frames_where
from xp_sdk.errors import InvalidInputError, NoFaceError

ANALYSIS_MAX_SIDE = 720
# The reference window's sample (scout_reference): frames a second, and the fewest for a short window.
SCOUT_RATE_HZ = 5.0
SCOUT_MIN_SAMPLES = 24
# Context analysed before a probed frame (probe_frames): the tracker and the filters settle within it.
PROBE_LEAD_S = 1.0


class StageClock:
    """Seconds spent inside a stage, summed over calls (read from another thread when the stage is done)."""

    def __init__(self) -> None:
        self.seconds = 0.0


@dataclass(frozen=True)
class DrivingFrame:
    """One driving frame as the generator needs it: its smoothed motion code (None: no usable face), the
    driver's face brightness in the photo's layout (None without a layout, or before any face was seen), and
    its mouth interior (None when not asked for, or the mouth is closed)."""

    code: MotionCode | None
    texture: np.ndarray | None = None
    interior: np.ndarray | None = None


def iter_driving(
    path: str | os.PathLike[str],
    fps: float,
    smoothing: SmoothingConfig | None = None,
    clock: StageClock | None = None,
    layout: FaceLayout | None = None,
    interiors: bool = False,
    span: tuple[int, int] | None = None,
    limits: DrivingLimits | None = None,
) -> Iterator[DrivingFrame]:
    """One :class:`DrivingFrame` per driving frame, in order.

    With a smoothing look-ahead, frames come out a few frames behind the decoding. With a ``layout`` each frame
    also carries its face texture, and with ``interiors`` its mouth interior, both smoothed over a few frames; a
    frame without a face repeats the last of them, as the generator repeats the last code.

    ``span=(start, stop)`` yields only the frames ``start`` to ``stop - 1``, as if the clip began at ``start``,
    except that codes are still measured from the clip's first face (which is analysed for that alone).
    ``limits``: a clip whose frames go on past them raises :class:`~xp_sdk.errors.VideoTooLongError` there.
    """
    encoder = MotionEncoder()
    smoother = MotionSmoother(fps, smoothing)
    textures = _TextureWindow()
    mouths = _TextureWindow()
    last_texture: np.ndarray | None = None
    last_interior: np.ndarray | None = None
    start, stop = span if span is not None else (0, None)

    def ready(codes: list[MotionCode | None]) -> Iterator[DrivingFrame]:
        for code in codes:
            yield DrivingFrame(
                code,
                textures.pop() if layout is not None else None,
                mouths.pop() if interiors else None,
            )

    def wanted(index: int) -> bool:
        # Before the span, only the frames up to the clip's first face are needed (to measure codes from it).
        return index >= start or not encoder.origin_set

    with closing(open_video_analyzer()) as analyzer:
        frames = read_frames_where(path, wanted if start > 0 else None, max_side=ANALYSIS_MAX_SIDE, limits=limits)
        for index, rgb in frames:
            if stop is not None and index >= stop:
                break
            t0 = time.perf_counter()
            face, code = _analyse(analyzer, encoder, rgb, round(index * 1000 / fps))
            if index < start:
                if clock is not None:
                    clock.seconds += time.perf_counter() - t0
                continue
            if face is not None:
                if layout is not None:
                    last_texture = layout.texture(rgb, face.landmarks)
                if interiors:
                    last_interior = sample_interior(rgb, face.landmarks)
            if layout is not None:
                textures.push(last_texture)
            if interiors:
                mouths.push(last_interior)
            codes = smoother.push(code)
            if clock is not None:
                clock.seconds += time.perf_counter() - t0
            yield from ready(codes)
        yield from ready(smoother.flush())


def _analyse(
    analyzer: VideoFaceAnalyzer, encoder: MotionEncoder, rgb: np.ndarray, timestamp_ms: int
) -> tuple[FaceAnalysis | None, MotionCode | None]:
    """The frame's face and motion code, or (None, None) without a usable face."""
    faces = analyzer.detect_all(rgb, timestamp_ms=timestamp_ms)
    # The minimum face size is stated for 480-pixel frames and scales with the frame.
    if not faces or faces[0].size < MIN_VIDEO_FACE_PX * min(rgb.shape[:2]) / 480:
        return None, None
    return faces[0], encoder.encode(faces[0])


@dataclass(frozen=True)
class ReferenceChoice:
    """The driving frame a clip's motion is measured against, as :func:`scout_reference` found it in a sample:
    ``index``, give or take ``radius`` frames the sample skipped, which :meth:`refine` settles; the driver's
    usual open eyes (:func:`open_eye_openings`); and the sample's codes, which stand for the clip."""

    index: int
    open_eyes: tuple[float, float]
    radius: int = 0
    sample: tuple[MotionCode, ...] = ()

    def refine(self, frames: Mapping[int, DrivingFrame], retargeter: Retargeter) -> int:
        """The best reference among ``frames`` (index → frame) within ``radius`` of ``index``, chosen as
        :func:`choose_reference` chooses over the whole clip, with the sample standing for the clip.

        Neighbouring frames can differ a lot as references: on lp_d18, frame 156 instead of 157 (a mouth
        still closing) took lp_d8's expression ratio from 0.29 to 0.38.
        """
        near = [(i, f.code) for i, f in frames.items() if abs(i - self.index) <= self.radius and f.code is not None]
        if self.radius == 0 or not near or not self.sample:
            return self.index
        codes = [code for _, code in near]
        scores = reference_scores(
            codes, retargeter.source, typical=typical_expression(self.sample), rest=rest_level(self.sample)
        )
        return near[most_faithful(codes, scores, self.sample, retargeter, self.open_eyes)][0]


def scout_frames(fps: float) -> int:
    """Frames of context :func:`probe_frames` analyses before the first frame asked for; a reference window no
    longer than twice this is cheaper to analyse whole than to scout."""
    return max(1, round(PROBE_LEAD_S * fps))


def scout_reference(
    path: str | os.PathLike[str],
    fps: float,
    retargeter: Retargeter,
    window_frames: int,
    *,
    wanted: int | None = None,
    clock: StageClock | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> ReferenceChoice | None:
    """Choose the reference frame for ``retargeter``'s photo (:func:`choose_reference`) from a sample of the
    clip's first ``window_frames`` frames, about ``SCOUT_RATE_HZ`` a second and at least ``SCOUT_MIN_SAMPLES`` of them.

    Choosing from every frame of the window meant analysing all of it before the first frame could be made,
    which on a clip shorter than the window ran analysis and generation one after the other instead of side
    by side. The sample's codes are unsmoothed; the reference's own code comes from :func:`probe_frames`.
    ``wanted`` fixes the index and only the open eyes are measured. ``on_frame`` is told how many frames of the
    window have been read after each sampled one (an exception from it ends the scouting). None when no sampled
    frame has a face.
    """
    stride = max(1, min(round(fps / SCOUT_RATE_HZ), window_frames // SCOUT_MIN_SAMPLES))
    indices: list[int] = []
    codes: list[MotionCode] = []
    encoder = MotionEncoder()
    with closing(open_video_analyzer()) as analyzer:
        # The window's last frame too: a clip that settles to rest at its end has its best reference there.
        last = window_frames - 1
        sampled = read_frames_where(
            path, lambda index: index % stride == 0 or index == last, max_side=ANALYSIS_MAX_SIDE
        )
        for index, rgb in sampled:
            if index >= window_frames:
                break
            t0 = time.perf_counter()
            _, code = _analyse(analyzer, encoder, rgb, round(index * 1000 / fps))
            if clock is not None:
                clock.seconds += time.perf_counter() - t0
            if code is not None:
                indices.append(index)
                codes.append(code)
            if on_frame is not None:
                on_frame(index + 1)
    if not codes:
        return None
    open_eyes = open_eye_openings(codes)
    if wanted is not None:
        return ReferenceChoice(wanted, open_eyes)
    chosen = indices[choose_reference(codes, retargeter.source, retargeter=retargeter, open_eyes=open_eyes)]
    return ReferenceChoice(chosen, open_eyes, stride // 2, tuple(codes))


def probe_frames(
    path: str | os.PathLike[str],
    fps: float,
    first: int,
    last: int,
    smoothing: SmoothingConfig | None = None,
    layout: FaceLayout | None = None,
    clock: StageClock | None = None,
) -> dict[int, DrivingFrame]:
    """Frames ``first`` to ``last`` (those in the clip) as :func:`iter_driving` yields them, made from the
    second of the clip before ``first``.

    The tracker and the smoothing filters forget where they started within that second: on the shared clips
    a code differs from the whole clip's by at most 0.0013 inter-ocular units (a frame of motion is about
    0.007), and not at all within the first second. Raises :class:`InvalidInputError` when ``first`` is
    beyond the clip.
    """
    config = smoothing or SmoothingConfig()
    start = max(0, first - scout_frames(fps))
    stop = last + max(config.lookahead_frames, 2) + 1
    frames = list(iter_driving(path, fps, config, clock, layout, span=(start, stop)))
    if first - start >= len(frames):
        # Nothing came out of a span that starts past the end; the container says how long the clip is.
        total = start + len(frames) if frames else probe_video(path).frame_count
        length = f"{total} frames" if total else "end"
        raise InvalidInputError(f"reference frame {first} is beyond the driving video's {length}")
    return {start + i: frame for i, frame in enumerate(frames) if first <= start + i <= last}


class _TextureWindow:
    """Textures of the frames read but not yet returned; each comes out averaged with up to two neighbours on
    either side (binomial weights), so the shading taken from it does not flicker with compression noise and
    the detector's jitter."""

    _WEIGHTS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

    def __init__(self) -> None:
        self._pending: deque[np.ndarray | None] = deque()
        self._previous: deque[np.ndarray | None] = deque([None, None], maxlen=2)

    def push(self, texture: np.ndarray | None) -> None:
        self._pending.append(texture)

    def pop(self) -> np.ndarray | None:
        current = self._pending.popleft()
        window = [*self._previous, current, *list(self._pending)[:2]]
        window += [None] * (5 - len(window))
        self._previous.append(current)
        if current is None:
            return None
        total = np.zeros_like(current, dtype=np.float32)
        for weight, texture in zip(self._WEIGHTS, window, strict=True):
            total += weight * (current if texture is None else texture)
        # float16 halves what a reference window of textures holds; shading needs no more precision.
        return total.astype(np.float16)


class ClipTargets:
    """The photo's target for each frame of a driving clip, relative to one reference frame of it.

    ``reference``: the reference frame, which must have a face; ``open_eyes``: the driver's usual open eyes
    (:func:`open_eye_openings`); ``hold``: the code shown for frames without a face before the first one with
    a face (default: the reference's). A frame without a face repeats the last code (counted in
    ``frames_without_face``). With a ``layout``, each target carries the driver's shading relative to the
    reference (time spent in ``shading_seconds``). :meth:`from_window` makes one from a run of frames.
    """

    def __init__(
        self,
        retargeter: Retargeter,
        reference: DrivingFrame,
        open_eyes: tuple[float, float],
        layout: FaceLayout | None = None,
        hold: MotionCode | None = None,
    ) -> None:
        if reference.code is None:
            raise ValueError("the reference frame must have a face")
        self.frames_without_face = 0
        self.shading_seconds = 0.0
        self._retargeter = retargeter
        self._reference = reference.code
        self._reference_texture = reference.texture
        self._layout = layout
        self._open_eyes = open_eyes
        self._last = hold or reference.code

    @classmethod
    def from_window(
        cls,
        retargeter: Retargeter,
        window: Sequence[DrivingFrame],
        reference: int,
        layout: FaceLayout | None = None,
    ) -> ClipTargets:
        """Targets measured against ``window[reference]``, with the open eyes of every frame of ``window``
        (the clip's first frames, or all of them); faceless frames before the first face hold its code."""
        codes = [f.code for f in window if f.code is not None]
        if not codes:
            raise ValueError("the reference frame must have a face")
        return cls(retargeter, window[reference], open_eye_openings(codes), layout, hold=codes[0])

    @staticmethod
    def best_reference(window: Sequence[DrivingFrame], retargeter: Retargeter) -> int:
        """Index in ``window`` of the best reference for ``retargeter``'s photo (:func:`choose_reference`)."""
        valid = [(i, f.code) for i, f in enumerate(window) if f.code is not None]
        if not valid:
            raise ValueError("no frame with a face to choose a reference from")
        codes = [c for _, c in valid]
        chosen = choose_reference(codes, retargeter.source, retargeter=retargeter, open_eyes=open_eye_openings(codes))
        return valid[chosen][0]

    def __call__(self, frame: DrivingFrame) -> TargetFace:
        if frame.code is None:
            self.frames_without_face += 1
        else:
            self._last = frame.code
        target = self._retargeter.from_video(self._last, self._reference, self._open_eyes)
        if frame.interior is not None:
            target = replace(target, mouth_interior=frame.interior)
        if self._layout is None or frame.texture is None or self._reference_texture is None:
            return target
        t0 = time.perf_counter()
        shading = self._layout.ratio(frame.texture, self._reference_texture)
        self.shading_seconds += time.perf_counter() - t0
        return replace(target, shading=shading)


@dataclass(frozen=True)
class FoundReference:
    """A clip's reference, as :func:`find_reference` found it: the targets measured against it, the frames read
    from the stream meanwhile (to be retargeted first), and the reference's index in the clip."""

    targets: ClipTargets
    buffered: list[DrivingFrame]
    index: int


def find_reference(
    path: str | os.PathLike[str],
    fps: float,
    stream: Iterator[DrivingFrame],
    retargeter: Retargeter,
    window: int,
    *,
    wanted: int | None = None,
    layout: FaceLayout | None = None,
    smoothing: SmoothingConfig | None = None,
    clock: StageClock | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> FoundReference:
    """Choose the reference of the clip at ``path`` (``wanted``, or the best in its first ``window`` frames),
    reading ``stream`` (its frames as :func:`iter_driving` makes them, being analysed elsewhere) no further
    than needed.

    A window longer than twice :func:`scout_frames` is scouted (:func:`scout_reference`, :func:`probe_frames`)
    while the stream is analysed; a shorter one is read whole from the stream. ``on_frame`` hears how many frames
    of the window have been read. Raises :class:`NoFaceError` when the clip, or a wanted frame, has no face and
    :class:`InvalidInputError` for a wanted frame beyond the clip.
    """
    buffered: list[DrivingFrame] = []
    if window > 2 * scout_frames(fps):
        choice = scout_reference(path, fps, retargeter, window, wanted=wanted, clock=clock, on_frame=on_frame)
        if choice is not None:
            found = _from_choice(path, fps, stream, buffered, retargeter, choice, layout, smoothing, clock, wanted)
            if found is not None:
                if on_frame is not None:
                    on_frame(window)
                return found
    return _from_window(path, stream, buffered, retargeter, window, wanted, layout, on_frame)


def _from_window(
    path: str | os.PathLike[str],
    stream: Iterator[DrivingFrame],
    buffered: list[DrivingFrame],
    retargeter: Retargeter,
    window: int,
    wanted: int | None,
    layout: FaceLayout | None,
    on_frame: Callable[[int], None] | None,
) -> FoundReference:
    """Every frame of the window read before the first is generated: a window of two seconds or less, where a
    sample would cost as much, or a scouted reference that came to nothing. Reads ``stream`` on into
    ``buffered``."""

    def enough() -> bool:
        have_face = any(f.code is not None for f in buffered)
        return len(buffered) >= window and have_face and (wanted is None or len(buffered) > wanted)

    while not enough():
        frame = next(stream, None)
        if frame is None:
            break
        buffered.append(frame)
        if on_frame is not None:
            on_frame(len(buffered))
    if not any(f.code is not None for f in buffered):
        raise NoFaceError(f"no face found in any frame of the driving video {path}")
    if wanted is not None:
        if wanted >= len(buffered):
            raise InvalidInputError(f"reference frame {wanted} is beyond the driving video's {len(buffered)} frames")
        if buffered[wanted].code is None:
            raise NoFaceError(f"driving frame {wanted}, chosen as reference, has no face")
    index = ClipTargets.best_reference(buffered, retargeter) if wanted is None else wanted
    return FoundReference(ClipTargets.from_window(retargeter, buffered, index, layout), buffered, index)


def _from_choice(
    path: str | os.PathLike[str],
    fps: float,
    stream: Iterator[DrivingFrame],
    buffered: list[DrivingFrame],
    retargeter: Retargeter,
    choice: ReferenceChoice,
    layout: FaceLayout | None,
    smoothing: SmoothingConfig | None,
    clock: StageClock | None,
    wanted: int | None,
) -> FoundReference | None:
    """Targets against a scouted reference (or the ``wanted`` one). ``stream`` is read into ``buffered`` up to
    its first face (whose code the faceless frames before it hold) or, when the probe would start at the clip's
    first frame anyway, through the frames around the reference; otherwise those are probed. None when no frame
    around a scouted (not wanted) reference has a face."""
    first, last = max(0, choice.index - choice.radius), choice.index + choice.radius
    near = first <= scout_frames(fps)
    held: DrivingFrame | None = None
    for frame in stream:
        buffered.append(frame)
        held = held or (frame if frame.code is not None else None)
        if held is not None and (not near or len(buffered) > last):
            break
    if held is None:
        raise NoFaceError(f"no face found in any frame of the driving video {path}")
    if near:
        if first >= len(buffered):
            raise InvalidInputError(f"reference frame {first} is beyond the driving video's {len(buffered)} frames")
        around = {i: buffered[i] for i in range(first, min(last + 1, len(buffered)))}
    else:
        # The frames the stream will reach later, made now from the second of the clip before them.
        around = probe_frames(path, fps, first, last, smoothing, layout, clock)
    index = choice.refine(around, retargeter)
    reference = around.get(index)
    if reference is None or reference.code is None:
        if wanted is None:
            return None  # the sample saw a face the stream's tracker did not: choose from the whole window
        raise NoFaceError(f"driving frame {index}, chosen as reference, has no face")
    targets = ClipTargets(retargeter, reference, choice.open_eyes, layout, hold=held.code)
    return FoundReference(targets, buffered, index)


def iter_motion_codes(
    path: str | os.PathLike[str],
    fps: float,
    smoothing: SmoothingConfig | None = None,
    clock: StageClock | None = None,
) -> Iterator[MotionCode | None]:
    """One smoothed motion code per driving frame, or None where no usable face was found (see
    :func:`iter_driving`)."""
    for frame in iter_driving(path, fps, smoothing, clock):
        yield frame.code


def record_template(path: str | os.PathLike[str], *, name: str, stride: int = 2) -> MotionTemplate:
    """A motion template capturing a driving video's expressions and head motion."""
    info = probe_video(path)
    shown = frame_times(path)
    timed = [(i, c) for i, c in enumerate(iter_motion_codes(path, info.fps)) if c is not None]
    # Each code at its frame's own second: a variable frame rate keeps its timing, and frames without a face
    # leave their time out instead of pulling the rest earlier.
    times = [shown[i] - shown[0] if shown and i < len(shown) else i / info.fps for i, _ in timed]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.lower()) or "recorded"
    return template_from_codes(
        [c for _, c in timed],
        fps=info.fps,
        name=safe[:64],
        description=f"Recorded from {Path(path).name}",
        stride=stride,
        times=times,
    )
