"""Which facial actions a consent video performs, in which order, and whether its face moves as a living one does.

Each action is read against the video's own calm (the median over its frames), so a face that rests turned a
little, or smiling a little, still has to move to perform. Thresholds were set on engine-animated challenges
(a 25° turn reads as 20-22°, a full smile as +0.5) and are well inside what a person's deliberate action makes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xp_sdk.consent.challenge import FacialAction
from xp_sdk.consent.observe import FrameObservation, VideoObservation

TURN_DEGREES = 12.0
LOOK_UP_DEGREES = 9.0
SMILE_RISE = 0.3
BROWS_RISE = 0.25
JAW_RISE = 0.3
BLINK_RISE = 0.3
BLINK_PAIR_SECONDS = 1.0
MIN_ACTION_SECONDS = 0.06
# A frame counts as still when no landmark moved by more than this (inter-ocular units) since the last frame;
# a camera's own noise moves a living face's landmarks more than ten times as much.
STILL_LANDMARKS = 0.002
MAX_STILL_FRACTION = 0.5
# A loop: a stretch of LOOP_WINDOW_SECONDS whose every picture is within LOOP_MAE grey levels (mean, on a
# 24 x 24 thumbnail) of the picture LOOP_GAP_SECONDS or more before it, and which moves (its pictures differ from
# its first by LOOP_MOTION or more somewhere).
LOOP_MAE = 0.6
LOOP_GAP_SECONDS = 0.5
LOOP_WINDOW_SECONDS = 1.0
LOOP_MOTION = 2.0
MAX_LOOP_FRACTION = 0.2
MIN_TRACKED_FRACTION = 0.8


@dataclass(frozen=True)
class ActionEvent:
    action: FacialAction
    start: float
    end: float


@dataclass(frozen=True)
class Liveness:
    passed: bool
    performed: tuple[ActionEvent, ...]
    problems: tuple[str, ...]

    @property
    def detail(self) -> dict[str, object]:
        return {
            "performed": [{"action": e.action.value, "start": round(e.start, 2), "end": round(e.end, 2)}
                          for e in self.performed],
            "problems": list(self.problems),
        }  # fmt: skip


def detect_actions(frames: Sequence[FrameObservation]) -> list[ActionEvent]:
    """Every action the frames show, by start time; blinks only as pairs (one blink is not a request answered)."""
    tracked = [f for f in frames if f.yaw is not None and f.pitch is not None]
    if len(tracked) < 3:
        return []
    times = np.array([f.t for f in tracked])
    yaw = np.array([f.yaw for f in tracked], dtype=np.float64)
    pitch = np.array([f.pitch for f in tracked], dtype=np.float64)

    def rise(name: str) -> np.ndarray:
        values = np.array([f.signals[name] for f in tracked])
        return values - float(np.median(values))

    yaw -= float(np.median(yaw))
    pitch -= float(np.median(pitch))
    masks = {
        FacialAction.TURN_LEFT: yaw >= TURN_DEGREES,
        FacialAction.TURN_RIGHT: yaw <= -TURN_DEGREES,
        FacialAction.LOOK_UP: pitch <= -LOOK_UP_DEGREES,
        FacialAction.SMILE: rise("smile") >= SMILE_RISE,
        FacialAction.RAISE_BROWS: rise("brows") >= BROWS_RISE,
        FacialAction.OPEN_MOUTH: rise("jaw") >= JAW_RISE,
    }
    events = [
        ActionEvent(action, start, end)
        for action, mask in masks.items()
        for start, end in _runs(times, mask)
        if end - start >= MIN_ACTION_SECONDS or _frames_in(times, start, end) >= 2
    ]
    blinks = _runs(times, rise("blink") >= BLINK_RISE)
    used = -1
    for i in range(len(blinks) - 1):
        if i > used and blinks[i + 1][0] - blinks[i][0] <= BLINK_PAIR_SECONDS:
            events.append(ActionEvent(FacialAction.BLINK_TWICE, blinks[i][0], blinks[i + 1][1]))
            used = i + 1
    return sorted(events, key=lambda e: e.start)


def _runs(times: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    runs: list[tuple[float, float]] = []
    start: int | None = None
    for i, on in enumerate(mask):
        if on and start is None:
            start = i
        if not on and start is not None:
            runs.append((float(times[start]), float(times[i - 1])))
            start = None
    if start is not None:
        runs.append((float(times[start]), float(times[-1])))
    return runs


def _frames_in(times: np.ndarray, start: float, end: float) -> int:
    return int(np.count_nonzero((times >= start) & (times <= end)))


def in_order(requested: Sequence[FacialAction], performed: Sequence[ActionEvent]) -> bool:
    """The requested actions, and only those of them, in the requested order: among the performed actions of the
    requested kinds (others, a passing smile, are let be), each follows the one before without going back."""
    wanted = set(requested)
    seen: list[FacialAction] = []
    for event in performed:
        if event.action in wanted and (not seen or seen[-1] is not event.action):
            seen.append(event.action)
    return seen == list(requested)


def judge_liveness(
    video: VideoObservation, requested: Sequence[FacialAction], *, actions_until: float | None
) -> Liveness:
    """Whether the requested actions are performed in order (before ``actions_until``, when the sentence begins:
    speaking opens the mouth), with a face that moves as a living one does throughout."""
    frames = video.frames
    problems: list[str] = []
    tracked = [f for f in frames if f.landmarks is not None]
    if not frames or len(tracked) < MIN_TRACKED_FRACTION * len(frames):
        problems.append(f"a face is tracked in {len(tracked)} of {len(frames)} frames; keep the face in view")
    still = sum(
        1
        for a, b in itertools.pairwise(tracked)
        if a.landmarks is not None and b.landmarks is not None
        and float(np.max(np.abs(a.landmarks - b.landmarks))) < STILL_LANDMARKS
    )  # fmt: skip
    if len(tracked) > 1 and still > MAX_STILL_FRACTION * (len(tracked) - 1):
        problems.append(f"the face is frozen in {still} of {len(tracked) - 1} frame steps (a still picture)")
    repeats = _repeated_pictures(frames)
    if frames and repeats > MAX_LOOP_FRACTION * len(frames):
        problems.append(f"{repeats} of {len(frames)} frames repeat an earlier picture (a looped clip)")
    window = [f for f in frames if actions_until is None or f.t < actions_until]
    performed = detect_actions(window)
    if not in_order(requested, performed):
        done = ", ".join(e.action.value for e in performed) or "none"
        wanted = ", ".join(a.value for a in requested)
        problems.append(f"the actions asked were {wanted}, in that order; the video shows {done}")
    return Liveness(passed=not problems, performed=tuple(performed), problems=tuple(problems))


def _repeated_pictures(frames: Sequence[FrameObservation]) -> int:
    """Frames that belong to a stretch of at least ``LOOP_WINDOW_SECONDS`` of moving pictures shown before, picture
    for picture: a clip played again. A still stretch repeats itself trivially and is the frozen check's business;
    a person who performs the same motion twice never matches it frame for frame."""
    if len(frames) < 2:
        return 0
    thumbs = np.stack([f.thumbnail.ravel() for f in frames])
    distance = np.mean(np.abs(thumbs[:, None, :] - thumbs[None, :, :]), axis=2)
    times = np.array([f.t for f in frames])
    step = max(float(np.median(np.diff(times))), 1e-3)
    window = max(2, round(LOOP_WINDOW_SECONDS / step))
    gap = max(1, round(LOOP_GAP_SECONDS / step))
    looped = np.zeros(len(frames), dtype=bool)
    for offset in range(gap, len(frames)):
        same = np.diagonal(distance, offset=-offset) < LOOP_MAE  # frame j + offset against frame j
        for start, end in _true_runs(same):
            if end - start < window:
                continue
            later = np.arange(start, end) + offset
            if float(distance[later[0], later].max()) >= LOOP_MOTION:
                looped[later] = True
    return int(np.count_nonzero(looped))


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, on in enumerate(mask):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs
