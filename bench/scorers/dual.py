"""One animation scored twice: by the engine's own evaluator (MediaPipe FaceLandmarker shapes + SFace identity,
:mod:`xp_sdk.engine.evaluate`) and by the independent dlib scorer (:mod:`bench.scorers.dlib68`), plus a
driving clip's noise floor by both (the clip re-encoded and scored against itself)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.scorers.dlib68 import Dlib68Scorer, IdentityScore, MotionScore, Track, compare, pose_free
from xp_sdk.engine.evaluate import QualityReport, evaluate
from xp_sdk.engine.identity import SFACE_SAME_PERSON_COSINE
from xp_sdk.engine.images import load_image
from xp_sdk.engine.video import probe_video, read_frames
from xp_sdk.errors import NoFaceError


@dataclass(frozen=True)
class NoiseFloor:
    """A clip scored against its own re-encoding: the smallest expression and jitter ratio each scorer can
    tell apart from a perfect copy."""

    mediapipe_expression_ratio: float | None
    mediapipe_jitter_ratio: float | None
    dlib_expression_ratio: float | None
    dlib_jitter_ratio: float | None


@dataclass(frozen=True)
class DualScore:
    """Both scorers' verdicts; a scorer that finds no face where it needs one gives None and its reason, and
    the other still scores."""

    mediapipe: QualityReport | None
    dlib_motion: MotionScore | None
    dlib_identity: IdentityScore | None
    errors: tuple[str, ...] = ()

    @property
    def mediapipe_identity_kept(self) -> bool:
        return self.mediapipe is not None and self.mediapipe.identity_min >= SFACE_SAME_PERSON_COSINE

    def as_dict(self) -> dict[str, Any]:
        return {
            "mediapipe": None if self.mediapipe is None else self.mediapipe.model_dump(),
            "mediapipe_identity_kept": self.mediapipe_identity_kept,
            "dlib": None if self.dlib_motion is None else asdict(self.dlib_motion),
            "dlib_identity": None if self.dlib_identity is None else asdict(self.dlib_identity),
            "errors": list(self.errors),
        }


class DualScorer:
    """Scores outputs of many photos against the same driving clips; each clip's dlib track is computed once."""

    def __init__(self, identity_stride: int = 5) -> None:
        self.dlib = Dlib68Scorer()
        self.identity_stride = identity_stride
        self._tracks: dict[Path, Track] = {}

    def driving_track(self, clip: Path) -> Track:
        if clip not in self._tracks:
            self._tracks[clip] = self.dlib.track(read_frames(clip))
        return self._tracks[clip]

    def score(self, photo: Path, driving: Path, output: Path) -> DualScore:
        fps = probe_video(driving).fps
        source = load_image(photo)
        output_frames = list(read_frames(output))
        errors: list[str] = []
        mediapipe: QualityReport | None = None
        motion: MotionScore | None = None
        identity: IdentityScore | None = None
        try:
            mediapipe = evaluate(
                source, read_frames(driving), output_frames, driving_fps=fps, identity_stride=self.identity_stride
            )
        except NoFaceError as exc:
            errors.append(f"mediapipe: {exc}")
        found = self.dlib.landmark_track(output_frames)
        stride = self.identity_stride
        try:
            motion = compare(self.driving_track(driving), pose_free(found))
            identity = self.dlib.identity(source, output_frames[::stride], found[::stride])
        except NoFaceError as exc:
            errors.append(f"dlib: {exc}")
        return DualScore(mediapipe=mediapipe, dlib_motion=motion, dlib_identity=identity, errors=tuple(errors))

    def noise_floor(self, clip: Path, reencoded: Path) -> NoiseFloor:
        frames = list(read_frames(clip))
        again = list(read_frames(reencoded))
        report = evaluate(
            frames[0], frames, again, driving_fps=probe_video(clip).fps, identity_stride=max(1, len(frames))
        )
        motion = compare(self.driving_track(clip), self.dlib.track(again))
        return NoiseFloor(
            mediapipe_expression_ratio=report.expression_ratio,
            mediapipe_jitter_ratio=report.jitter_ratio,
            dlib_expression_ratio=motion.expression_ratio,
            dlib_jitter_ratio=motion.jitter_ratio,
        )


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None with fewer than three pairs."""
    from scipy.stats import spearmanr

    if len(a) < 3:
        return None
    rho = spearmanr(np.asarray(a), np.asarray(b)).statistic
    return float(rho)
