"""Quality evaluation on the real faces in ../shared/faces: the metrics must tell a faithful output, a static
one and a wrong one apart."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydantic
import pytest

from tests.conftest import first_frames
from xp_sdk.engine.evaluate import QualityReport, canonical_shape, evaluate, evaluate_files
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.identity import SFACE_SAME_PERSON_COSINE
from xp_sdk.engine.images import load_image
from xp_sdk.errors import InvalidInputError, NoFaceError, UnreadableVideoError

FPS = 30.0
N = 40
_FLIP = np.diag([1.0, -1.0, -1.0])


@pytest.fixture(scope="module")
def d18(faces: Path) -> list[np.ndarray]:
    """A man opening his jaw wide: clear expression motion within the first 40 frames."""
    return first_frames(faces / "driving" / "lp_d18.mp4", N)


@pytest.fixture(scope="module")
def d7(faces: Path) -> list[np.ndarray]:
    """A young woman blinking and raising her brows: a different person from d18."""
    return first_frames(faces / "driving" / "lp_d7_hist.mp4", N)


@pytest.fixture(scope="module")
def astronaut(faces: Path) -> np.ndarray:
    return load_image(faces / "source" / "skimage_astronaut.png")


@pytest.fixture(scope="module")
def self_report(d18: list[np.ndarray]) -> QualityReport:
    """Output = the driving video itself, the 'source' one of its frames: a perfect transfer."""
    return evaluate(d18[20], d18, d18, driving_fps=FPS)


@pytest.fixture(scope="module")
def static_report(d18: list[np.ndarray], astronaut: np.ndarray) -> QualityReport:
    """Output = the source photo repeated: no animation at all."""
    return evaluate(astronaut, d18, [astronaut] * len(d18), driving_fps=FPS)


@pytest.fixture(scope="module")
def other_person_report(d18: list[np.ndarray], d7: list[np.ndarray], astronaut: np.ndarray) -> QualityReport:
    """Output = another person's unrelated clip."""
    return evaluate(astronaut, d18, d7, driving_fps=FPS, identity_stride=2)


def test_perfect_transfer_scores_zero_error(self_report: QualityReport) -> None:
    r = self_report
    assert r.frames_compared == r.frames_scored == N
    assert r.frames_without_face == 0
    assert r.expression_error_static > 0.02  # the clip really moves (measured 0.042 IOD)
    assert r.expression_ratio is not None and r.expression_ratio < 0.05
    assert r.jitter_ratio == pytest.approx(1.0, abs=0.05)
    assert r.pose_error < 0.1
    assert r.pose_error_static > 0.5  # measured 1.2°
    assert r.identity_frames == N
    assert r.identity_mean > SFACE_SAME_PERSON_COSINE  # measured 0.93 mean, 0.82 min
    assert r.identity_min > SFACE_SAME_PERSON_COSINE


def test_static_output_scores_like_the_baseline(static_report: QualityReport) -> None:
    r = static_report
    assert r.expression_ratio is not None
    assert r.expression_ratio == pytest.approx(1.0, abs=0.1)  # measured 0.999
    assert r.pose_error == pytest.approx(r.pose_error_static, abs=0.3)
    assert r.jitter_ratio is not None and r.jitter_ratio < 0.2  # measured 0.008
    assert r.identity_mean == pytest.approx(1.0, abs=1e-3)
    assert r.identity_min == pytest.approx(1.0, abs=1e-3)
    assert r.identity_static == 1.0
    assert r.jitter_static == 0.0


def test_another_persons_motion_is_wrong_and_not_the_source(other_person_report: QualityReport) -> None:
    r = other_person_report
    assert r.frames_scored == N
    assert r.expression_ratio is not None and r.expression_ratio > 0.6  # measured 1.15
    assert r.identity_frames == N // 2
    assert r.identity_mean < SFACE_SAME_PERSON_COSINE  # measured 0.10
    assert r.identity_min < r.identity_mean


def test_moved_scaled_rotated_copy_still_scores_as_faithful(d18: list[np.ndarray]) -> None:
    # The shape is pose-free and in IOD units, so the same motion framed differently must still score well
    # below a wrong motion; MediaPipe itself is not exactly rotation-equivariant (measured 0.17).
    h, w = d18[0].shape[:2]
    m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 0.75), dtype=np.float64)
    m[:, 2] += (-15.0, 20.0)
    moved = [cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in d18]
    r = evaluate(d18[0], d18, moved, driving_fps=FPS, identity_stride=8)
    assert r.expression_ratio is not None and r.expression_ratio < 0.35
    assert r.pose_error < 0.5 < r.pose_error_static
    assert r.jitter_ratio == pytest.approx(1.0, abs=0.25)


def test_frames_without_face_are_skipped_and_counted(d18: list[np.ndarray]) -> None:
    gray = np.full_like(d18[0], 128)
    output = [gray if 18 <= i < 21 else f for i, f in enumerate(d18[:36])]
    r = evaluate(d18[0], d18, output, driving_fps=FPS, identity_stride=3)
    assert r.frames_compared == 36  # truncated to the shorter clip
    assert r.frames_scored == 33
    assert r.frames_without_face == 3
    assert r.output_frames_without_face == 3
    assert r.driving_frames_without_face == 0
    assert r.identity_frames == 12
    assert r.identity_frames_without_face == 1  # frame 18
    assert r.identity_min == 0.0
    # MediaPipe re-acquires the face after the gap with a few frames of transient (measured 0.06).
    assert r.expression_ratio is not None and r.expression_ratio < 0.2
    assert r.jitter is not None and r.jitter_driving is not None


def test_evaluate_files(faces: Path) -> None:
    clip = faces / "driving" / "lp_d1_hist.mp4"  # 16 frames
    r = evaluate_files(faces / "source" / "lp_d30.jpg", clip, clip, identity_stride=4)
    assert r.frames_compared == r.frames_scored == 16
    assert r.expression_ratio is not None and r.expression_ratio < 0.05
    assert r.identity_frames == 4
    assert r.identity_mean < SFACE_SAME_PERSON_COSINE  # lp_d30 is someone else


def test_report_is_frozen_and_serialisable(static_report: QualityReport) -> None:
    with pytest.raises(pydantic.ValidationError):
        setattr(static_report, "expression_error", 0.0)  # noqa: B010
    again = QualityReport.model_validate_json(static_report.model_dump_json())
    assert again == static_report
    table = static_report.to_table()
    for label in ("expression ratio", "identity mean", "pose error", "jitter ratio", "static"):
        assert label in table
    assert f"frames scored {static_report.frames_scored}/{static_report.frames_compared}" in table


def test_canonical_shape_ignores_pose_position_and_scale(astronaut: np.ndarray) -> None:
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze_photo(astronaut)
    angle = np.radians(25.0)
    q = np.array(
        [[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0], [-np.sin(angle), 0.0, np.cos(angle)]]
    ) @ np.array([[np.cos(0.3), -np.sin(0.3), 0.0], [np.sin(0.3), np.cos(0.3), 0.0], [0.0, 0.0, 1.0]])
    pose = face.pose.copy()
    # ``rotation`` is FLIP @ pose_rotation @ FLIP; rotating the head by q in image axes is this in pose space.
    pose[:3, :3] = _FLIP @ q @ _FLIP @ face.pose[:3, :3]
    points = face.landmarks.astype(np.float64)
    moved = FaceAnalysis(
        landmarks=((points @ q.T) * 1.7 + np.array([40.0, -25.0, 3.0])).astype(np.float32),
        blendshapes=face.blendshapes,
        pose=pose,
        image_size=face.image_size,
    )
    a, b = canonical_shape(face), canonical_shape(moved)
    assert a is not None and b is not None
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_rejects_unusable_inputs(d18: list[np.ndarray], astronaut: np.ndarray) -> None:
    gray = np.full((256, 256, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError):
        evaluate(gray, d18[:3], d18[:3], driving_fps=FPS)
    with pytest.raises(NoFaceError):
        evaluate(astronaut, d18[:3], [gray] * 3, driving_fps=FPS)
    with pytest.raises(UnreadableVideoError):
        evaluate(astronaut, [], d18[:3], driving_fps=FPS)
    with pytest.raises(InvalidInputError):
        evaluate(astronaut, d18[:3], d18[:3], driving_fps=0.0)
    with pytest.raises(InvalidInputError):
        evaluate(astronaut, d18[:3], d18[:3], driving_fps=FPS, identity_stride=0)
