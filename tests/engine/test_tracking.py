"""FaceTracker: the FaceLandmarker's models run on the previous frame's crop must find what MediaPipe's video
mode finds, on every shared clip, so that motion codes do not change with the faster tracker."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from xp_sdk.engine import topology
from xp_sdk.engine.driving import ANALYSIS_MAX_SIDE, iter_driving
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.tracking import (
    TRACKING_ENV,
    FaceTracker,
    VideoFaceAnalyzer,
    open_video_analyzer,
    tracker_available,
)
from xp_sdk.engine.video import probe_video, read_frames
from xp_sdk.errors import EngineError, ModelHashMismatchError

pytestmark = pytest.mark.skipif(not tracker_available(), reason="ai-edge-litert is not installed on this platform")

FRAMES = 60


def clip_frames(path: Path, count: int = FRAMES, stride: int = 1) -> list[tuple[int, np.ndarray]]:
    frames = read_frames(path, max_side=ANALYSIS_MAX_SIDE)
    return [(i, f) for i, f in itertools.islice(enumerate(frames), count) if i % stride == 0]


def track(analyzer: VideoFaceAnalyzer, frames: list[tuple[int, np.ndarray]], fps: float) -> list[FaceAnalysis | None]:
    try:
        found = []
        for index, rgb in frames:
            faces = analyzer.detect_all(rgb, timestamp_ms=round(index * 1000 / fps))
            assert len(faces) <= 1
            found.append(faces[0] if faces else None)
        return found
    finally:
        analyzer.close()


def both(
    path: Path, frames: list[tuple[int, np.ndarray]]
) -> tuple[list[FaceAnalysis | None], list[FaceAnalysis | None]]:
    fps = probe_video(path).fps
    return track(FaceAnalyzer(video=True, max_faces=1), frames, fps), track(FaceTracker(), frames, fps)


def assert_agree(reference: list[FaceAnalysis | None], tracked: list[FaceAnalysis | None]) -> None:
    assert [f is None for f in tracked] == [f is None for f in reference]
    pairs = [(a, b) for a, b in zip(reference, tracked, strict=True) if a is not None and b is not None]
    assert pairs
    iod = topology.inter_ocular(pairs[0][0].landmarks)
    for a, b in pairs:
        assert b.image_size == a.image_size
        # A frame of speech moves the lips by about 0.007 inter-ocular units; without MediaPipe's landmark
        # smoothing the two differ by 0.005, with a crop off by a pixel by 0.002.
        assert np.abs(a.landmarks - b.landmarks).mean() / iod < 0.001
        assert np.abs(a.blendshapes - b.blendshapes).max() < 0.03
        cos = (np.trace(a.rotation.T @ b.rotation) - 1) / 2
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 2.0


def test_tracker_finds_what_mediapipe_video_mode_finds_on_every_clip(driving_videos: list[Path]) -> None:
    for path in driving_videos:
        reference, tracked = both(path, clip_frames(path))
        assert all(f is not None for f in reference), path.name
        assert_agree(reference, tracked)


def test_tracker_agrees_on_sampled_frames(faces: Path) -> None:
    # The reference scout reads every 6th frame: bigger steps between crops, uneven timestamps for the filter.
    path = faces / "driving" / "lp_d18.mp4"
    assert_agree(*both(path, clip_frames(path, 200, stride=6)))


def test_a_lost_face_is_searched_for_again_as_mediapipe_does(faces: Path) -> None:
    path = faces / "driving" / "lp_d5_hist.mp4"
    frames = clip_frames(path, 30)
    blank = np.full_like(frames[0][1], 128)
    sequence = frames[:12] + [(12, blank), (13, blank)] + [(i + 2, f) for i, f in frames[12:]]
    reference, tracked = both(path, sequence)
    assert tracked[12] is None and tracked[13] is None
    assert all(f is not None for f in tracked[14:])
    assert_agree(reference, tracked)


def test_a_clip_without_a_face_gives_no_faces(faces: Path) -> None:
    frames = clip_frames(faces / "driving" / "lp_d1_hist.mp4", 3)
    with FaceTracker() as tracker:
        assert [tracker.detect_all(np.full_like(f, 40), timestamp_ms=i * 40) for i, f in frames] == [[], [], []]


def test_motion_codes_do_not_change_with_the_tracker(faces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = faces / "driving" / "lp_d7_hist.mp4"
    fps = probe_video(path).fps
    tracked = list(iter_driving(path, fps, span=(0, 60)))
    monkeypatch.setenv(TRACKING_ENV, "mediapipe")
    reference = list(iter_driving(path, fps, span=(0, 60)))
    assert len(tracked) == len(reference) == 60
    for a, b in zip(reference, tracked, strict=True):
        assert a.code is not None and b.code is not None
        # The encoder fits each frame's rotation to its first frame's skull, so the two trackers' different
        # pose solvers (perspective, image plane) cancel out; what is left is the landmarks' difference.
        assert np.abs(a.code.shape - b.code.shape).max() < 0.01
        assert np.abs(a.code.rotation - b.code.rotation).max() < 0.002
        assert np.abs(a.code.translation - b.code.translation).max() < 0.002
        assert np.abs(a.code.blendshapes - b.code.blendshapes).max() < 0.03


def opened(kind: type) -> bool:
    analyzer = open_video_analyzer()
    try:
        return isinstance(analyzer, kind)
    finally:
        analyzer.close()


def test_driving_videos_are_tracked_as_xp_face_tracking_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    assert opened(FaceTracker)
    for value, kind in (("litert", FaceTracker), ("mediapipe", FaceAnalyzer), (" MediaPipe ", FaceAnalyzer)):
        monkeypatch.setenv(TRACKING_ENV, value)
        assert opened(kind), value
    monkeypatch.setenv(TRACKING_ENV, "tflite")
    with pytest.raises(EngineError, match="auto, litert or mediapipe"):
        open_video_analyzer()


def test_without_litert_mediapipe_tracks_unless_litert_is_demanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("xp_sdk.engine.tracking.tracker_available", lambda: False)
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    assert opened(FaceAnalyzer)
    monkeypatch.setenv(TRACKING_ENV, "litert")
    with pytest.raises(EngineError, match="pip install"):
        open_video_analyzer()


def test_a_closed_tracker_refuses_frames(faces: Path) -> None:
    ((_, rgb),) = clip_frames(faces / "driving" / "lp_d1_hist.mp4", 1)
    tracker = FaceTracker()
    tracker.close()
    with pytest.raises(EngineError, match="closed"):
        tracker.detect_all(rgb)


def test_tracker_models_come_from_the_pinned_bundle(tmp_path: Path) -> None:
    impostor = tmp_path / "face_landmarker.task"
    impostor.write_bytes(b"not the pinned model")
    with pytest.raises(ModelHashMismatchError):
        FaceTracker(model_path=impostor)
