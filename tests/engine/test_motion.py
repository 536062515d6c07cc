"""Motion codes: pose-free canonical shapes, Euler angles, One Euro smoothing and the video encoder."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from xp_sdk.engine import topology
from xp_sdk.engine.faces import FaceAnalyzer
from xp_sdk.engine.motion import (
    MotionCode,
    MotionEncoder,
    MotionSmoother,
    OneEuroFilter,
    SmoothingConfig,
    canonical_shape,
    euler_to_matrix,
    matrix_to_euler,
    rigid_centre,
    smooth,
)
from xp_sdk.engine.video import read_frames
from xp_sdk.errors import InvalidInputError

RIGID = list(topology.RIGID)
EXPRESSIVE = list(topology.EXPRESSIVE)


def _naive_shape(landmarks: np.ndarray) -> np.ndarray:
    """Centred and scaled like the canonical shape, but with the head rotation left in."""
    pts = landmarks.astype(np.float64)
    pts = pts - rigid_centre(pts)
    return pts / topology.inter_ocular(pts)


# --- canonical shapes ---------------------------------------------------------------------------------------


def test_canonical_shape_is_centred_and_in_inter_ocular_units(photo_faces: dict[str, Any]) -> None:
    for _, face in photo_faces.values():
        canon = canonical_shape(face)
        assert canon.shape == (topology.NUM_LANDMARKS, 3)
        assert np.allclose(rigid_centre(canon), 0.0, atol=1e-9)
        assert topology.inter_ocular(canon) == pytest.approx(1.0, abs=1e-9)
        # De-rotated: the eyes lie on a horizontal line, the chin below the forehead (within the pose error).
        a, b = topology.iris_centers(canon)
        assert abs(a[1] - b[1]) < 0.1
        assert abs(canon[topology.CHIN, 0] - canon[topology.FOREHEAD, 0]) < 0.1


def test_canonical_shape_levels_a_tilted_head(photo_faces: dict[str, Any]) -> None:
    _, face = photo_faces["lp_d30.jpg"]  # head tilted towards the hand on her cheek
    raw_a, raw_b = topology.iris_centers(_naive_shape(face.landmarks))
    a, b = topology.iris_centers(canonical_shape(face))
    assert abs(raw_a[1] - raw_b[1]) > 0.1
    assert abs(a[1] - b[1]) < 0.05


def test_rigid_landmarks_hold_still_in_canonical_space_over_a_clip(
    driving_codes: Callable[[str], list[MotionCode | None]],
) -> None:
    # lp_d18: jaw opens wide, grimace, some head motion.
    shapes = np.array([c.shape for c in driving_codes("lp_d18.mp4") if c is not None])
    assert len(shapes) > 200
    spread = np.linalg.norm(shapes - np.median(shapes, axis=0), axis=2).mean(axis=0)  # per landmark
    rigid, expressive = float(spread[RIGID].mean()), float(spread[EXPRESSIVE].mean())
    assert expressive > 0.03  # the clip really moves the expression
    assert rigid < 0.3 * expressive


@pytest.mark.parametrize("degrees", [-25, 25])
def test_canonical_shape_removes_in_plane_head_rotation(photo_faces: dict[str, Any], degrees: int) -> None:
    image, face = photo_faces["skimage_astronaut.png"]
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    tilted = cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    with FaceAnalyzer() as analyzer:
        tilted_face = analyzer.analyze_photo(tilted)

    relative = face.rotation.T @ tilted_face.rotation
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(relative)) - 1) / 2))))
    assert angle == pytest.approx(abs(degrees), abs=5)

    naive = np.linalg.norm(_naive_shape(face.landmarks) - _naive_shape(tilted_face.landmarks), axis=1).mean()
    canon = np.linalg.norm(canonical_shape(face) - canonical_shape(tilted_face), axis=1).mean()
    assert naive > 0.2  # the head really turned in the image
    assert canon < 0.05  # but not in canonical space


# --- Euler angles -------------------------------------------------------------------------------------------


def test_euler_round_trip() -> None:
    rng = np.random.default_rng(3)
    for _ in range(500):
        angles = np.array(
            [rng.uniform(-3.1, 3.1), rng.uniform(-1.5, 1.5), rng.uniform(-3.1, 3.1)]
        )  # pitch, yaw, roll; yaw within ±86° where the decomposition is unique
        r = euler_to_matrix(angles)
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        assert np.allclose(matrix_to_euler(r), angles, atol=1e-9)


def test_matrix_euler_matrix_round_trip_for_random_rotations() -> None:
    from scipy.spatial.transform import Rotation

    for r in Rotation.random(200, random_state=5).as_matrix():
        assert np.allclose(euler_to_matrix(matrix_to_euler(r)), r, atol=1e-9)


def test_euler_axes_follow_the_image_convention() -> None:
    assert np.allclose(euler_to_matrix(np.zeros(3)), np.eye(3))
    pitch, yaw, roll = np.radians(20.0), np.radians(-30.0), np.radians(10.0)
    assert np.allclose(matrix_to_euler(euler_to_matrix(np.array([0.0, yaw, 0.0]))), [0.0, yaw, 0.0])
    # Yaw turns about the vertical (y) axis: y is untouched; pitch about x; roll about the camera axis z.
    assert np.allclose(euler_to_matrix(np.array([0.0, yaw, 0.0]))[:, 1], [0, 1, 0])
    assert np.allclose(euler_to_matrix(np.array([pitch, 0.0, 0.0]))[:, 0], [1, 0, 0])
    assert np.allclose(euler_to_matrix(np.array([0.0, 0.0, roll]))[:, 2], [0, 0, 1])


def test_photo_pose_angles_are_small_for_frontal_portraits(photo_faces: dict[str, Any]) -> None:
    for name in ("skimage_astronaut.png", "lp_s7.jpg", "lp_d8.jpg"):
        pitch, yaw, roll = np.degrees(matrix_to_euler(photo_faces[name][1].rotation))
        assert abs(yaw) < 25 and abs(roll) < 25 and abs(pitch) < 30, name


# --- One Euro smoothing -------------------------------------------------------------------------------------

SHAPE = SmoothingConfig()

# (min_cutoff, beta, least reduction of jitter variance). The engine's own shape parameters, and the
# heavier 2.0 / 6.0 setting the jitter requirement (> 4×) was written for; both must follow fast motion.
FILTERS = {
    "shape config": (SHAPE.shape_min_cutoff, SHAPE.shape_beta, 2.0),
    "cutoff 2 beta 6": (2.0, 6.0, 4.0),
}


def _shape_filter(fps: float = 30.0) -> OneEuroFilter:
    return OneEuroFilter(fps, SHAPE.shape_min_cutoff, SHAPE.shape_beta)


def test_first_sample_passes_through() -> None:
    x = np.array([0.3, -1.0, 2.0])
    assert np.array_equal(_shape_filter()(x), x)


@pytest.mark.parametrize("setting", list(FILTERS))
def test_one_euro_removes_jitter_at_rest(setting: str) -> None:
    min_cutoff, beta, reduction = FILTERS[setting]
    rng = np.random.default_rng(11)
    # 0.5 % of the eye distance: the size of landmark jitter on a still face.
    noisy = 0.5 + rng.normal(0.0, 0.005, size=(300, 64))
    f = OneEuroFilter(30.0, min_cutoff, beta)
    smoothed = np.array([f(x) for x in noisy])
    settled = slice(30, None)
    assert noisy[settled].var() / smoothed[settled].var() > reduction
    assert abs(smoothed[settled].mean() - 0.5) < 0.002  # no bias


@pytest.mark.parametrize("setting", list(FILTERS))
def test_one_euro_follows_a_fast_step_within_three_frames(setting: str) -> None:
    min_cutoff, beta, _ = FILTERS[setting]
    step = 0.3  # a mouth opening by 0.3 eye distances between two frames at 30 fps
    f = OneEuroFilter(30.0, min_cutoff, beta)
    for _ in range(10):
        assert np.allclose(f(np.zeros(4)), 0.0)
    after = [float(f(np.full(4, step))[0]) for _ in range(3)]
    assert after[-1] >= 0.9 * step
    assert after == sorted(after)  # monotone approach, no overshoot
    assert max(after) <= step + 1e-12


def test_one_euro_filter_is_per_element_and_fps_aware() -> None:
    # The same motion sampled at twice the rate is smoothed with half the time step: after the same
    # wall-clock time (100 ms) both filters have covered a similar share of a step.
    at30, at60 = OneEuroFilter(30.0, 2.0, 0.0), OneEuroFilter(60.0, 2.0, 0.0)
    at30(np.zeros(2))
    at60(np.zeros(2))
    y30 = [at30(np.array([1.0, 0.0])) for _ in range(3)][-1]
    y60 = [at60(np.array([1.0, 0.0])) for _ in range(6)][-1]
    assert y30[1] == 0.0 and y60[1] == 0.0  # an untouched element stays put
    assert abs(float(y30[0]) - float(y60[0])) < 0.1
    assert 0.3 < float(y30[0]) < 1.0


def test_one_euro_lags_more_for_slow_parameters() -> None:
    # Sanity of the parameters' meaning: a lower cutoff and no speed term smooth a step much more.
    slow = OneEuroFilter(30.0, 0.2, 0.0)
    fast = _shape_filter(30.0)
    for f in (slow, fast):
        f(np.zeros(1))
    assert float(slow(np.ones(1))[0]) < 0.1 < float(fast(np.ones(1))[0])


def test_smoother_keeps_template_codes_without_shape() -> None:
    smoother = MotionSmoother(30.0, SmoothingConfig(lookahead_frames=0))
    code = MotionCode(rotation=np.zeros(3), translation=np.zeros(2), log_scale=0.0, blendshapes=np.zeros(52))
    (out,) = smoother.push(code)
    assert out is not None
    assert out.shape is None
    assert out.log_scale == 0.0


def _code(value: float, shape: bool = True) -> MotionCode:
    return MotionCode(
        rotation=np.full(3, value),
        translation=np.full(2, value),
        log_scale=value,
        blendshapes=np.full(52, value),
        shape=np.full((478, 3), value) if shape else None,
    )


def _smoothed(values: list[float | None], config: SmoothingConfig) -> list[float | None]:
    codes = [None if v is None else _code(v) for v in values]
    out = list(smooth(codes, 30.0, config))
    return [None if c is None else float(c.shape[0, 0]) for c in out]  # type: ignore[index]


def test_lookahead_removes_the_lag_on_fast_motion() -> None:
    # A lid closing at constant speed over 8 frames (0.05 IOD a frame): the causal filter trails it, the
    # look-ahead follows it (a ramp is symmetric, so forward and backward lags cancel).
    ramp = [0.0] * 10 + [0.05 * i for i in range(1, 9)] + [0.4] * 10
    causal = _smoothed(ramp, SmoothingConfig(lookahead_frames=0))
    ahead = _smoothed(ramp, SmoothingConfig(lookahead_frames=3))
    middle = range(11, 17)
    causal_lag = np.mean([ramp[i] - causal[i] for i in middle])  # type: ignore[operator]
    ahead_lag = np.mean([abs(ramp[i] - ahead[i]) for i in middle])  # type: ignore[operator]
    assert causal_lag > 0.01  # a third of a frame's motion behind, every frame of the ramp
    assert ahead_lag < 0.25 * causal_lag
    assert ahead[0] == pytest.approx(0.0) and ahead[-1] == pytest.approx(0.4)


def test_lookahead_smooths_jitter_at_rest_at_least_as_well() -> None:
    rng = np.random.default_rng(5)
    noisy = list(0.5 + rng.normal(0.0, 0.005, size=300))
    causal = np.array(_smoothed(noisy, SmoothingConfig(lookahead_frames=0))[30:])
    ahead = np.array(_smoothed(noisy, SmoothingConfig(lookahead_frames=3))[30:])
    assert np.var(ahead) <= np.var(causal)
    assert abs(ahead.mean() - 0.5) < 0.002


def test_lookahead_keeps_one_code_per_frame_and_frames_without_face_in_place() -> None:
    values: list[float | None] = [0.1, 0.1, None, 0.2, 0.2, 0.2, 0.2, 0.2, None, None, 0.3]
    out = _smoothed(values, SmoothingConfig(lookahead_frames=3))
    assert [v is None for v in out] == [v is None for v in values]
    # A frame without a face ends a run: the filters restart, so nothing leaks across the gap.
    assert out[0] == pytest.approx(0.1) and out[1] == pytest.approx(0.1)
    assert out[3:8] == pytest.approx([0.2] * 5)
    assert out[10] == pytest.approx(0.3)


def test_lookahead_smoother_returns_codes_when_it_has_seen_enough_of_the_future() -> None:
    smoother = MotionSmoother(30.0, SmoothingConfig(lookahead_frames=2))
    assert smoother.push(_code(0.0)) == []
    assert smoother.push(_code(0.0)) == []
    assert len(smoother.push(_code(0.0))) == 1
    assert len(smoother.flush()) == 2
    # Template codes (no landmark shape) go through too.
    assert [c.shape for c in smooth([_code(0.0, shape=False)] * 3, 30.0) if c is not None] == [None] * 3


def test_without_lookahead_the_smoother_is_the_causal_one_euro_filter() -> None:
    rng = np.random.default_rng(3)
    values = list(rng.normal(0.0, 0.1, size=40))
    config = SmoothingConfig(lookahead_frames=0)
    reference = OneEuroFilter(30.0, config.shape_min_cutoff, config.shape_beta)
    expected = [float(reference(np.full((478, 3), v))[0, 0]) for v in values]
    assert _smoothed(values, config) == pytest.approx(expected)  # type: ignore[arg-type]


def test_negative_lookahead_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="lookahead_frames"):
        SmoothingConfig(lookahead_frames=-1)


# --- encoder ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def d1_faces(faces: Path) -> list[Any]:
    found = []
    with FaceAnalyzer(video=True, max_faces=1) as analyzer:
        for i, rgb in enumerate(read_frames(faces / "driving" / "lp_d1_hist.mp4")):
            detected = analyzer.detect_all(rgb, timestamp_ms=round(i * 1000 / 30))
            assert detected, f"no face in frame {i} of lp_d1_hist.mp4"
            found.append(detected[0])
    return found


def test_encoder_codes_are_relative_to_the_first_frame(d1_faces: list[Any]) -> None:
    assert len(d1_faces) == 16
    encoder = MotionEncoder()
    codes = [encoder.encode(face) for face in d1_faces]
    first = codes[0]
    assert np.array_equal(first.translation, [0.0, 0.0])
    assert first.log_scale == 0.0
    # Later frames are measured against the first: small, but not all zero.
    moves = np.array([np.hypot(*c.translation) for c in codes[1:]])
    scales = np.array([abs(c.log_scale) for c in codes[1:]])
    assert moves.max() > 0 and scales.max() > 0
    assert moves.max() < 0.5 and scales.max() < 0.2
    assert np.allclose(first.rotation, matrix_to_euler(d1_faces[0].rotation))
    assert first.shape is not None and np.allclose(first.shape, canonical_shape(d1_faces[0]))
    for code, face in zip(codes, d1_faces, strict=True):
        # Rotation and shape are the face's own (up to a refinement of a degree or so).
        measured = euler_to_matrix(code.rotation)
        cos = (float(np.trace(measured.T @ face.rotation)) - 1) / 2
        assert math.degrees(math.acos(max(-1.0, min(1.0, cos)))) < 2.0
        assert np.allclose(code.blendshapes, face.blendshapes)
        assert code.shape is not None
        # Up to scale: codes keep the first frame's skull size, canonical_shape uses each frame's iris distance.
        own = canonical_shape(face)
        own *= topology.skull_size(code.shape) / topology.skull_size(own)
        assert np.abs(code.shape - own).mean() < 0.02


def test_a_blink_does_not_rescale_the_face(d1_faces: list[Any]) -> None:
    # MediaPipe's iris centres drift inwards while the lids are closed; scaling each frame by its own iris
    # distance made the whole face zoom at every blink (the chin moved 0.1 inter-ocular units on this clip).
    encoder = MotionEncoder()
    codes = [encoder.encode(face) for face in d1_faces]
    shapes = [c.shape for c in codes]
    assert all(s is not None for s in shapes)
    opening = [topology.eye_opening(s, 0) for s in shapes]  # type: ignore[arg-type]
    closed = [i for i, o in enumerate(opening) if o < 0.3 * opening[0]]
    assert closed, "lp_d1 blinks"
    iris = [d1_faces[i].inter_ocular / d1_faces[0].inter_ocular for i in closed]
    assert min(iris) < 0.97  # the drift is there ...
    chin = [s[topology.CHIN, 1] for s in shapes]  # type: ignore[index]
    assert max(abs(chin[i] - chin[0]) for i in closed) < 0.04  # ... and does not move the chin
    assert max(abs(c.log_scale) for c in codes) < 0.02  # nor zoom the head


def test_encoder_translation_and_scale_track_the_head(d1_faces: list[Any]) -> None:
    base = d1_faces[0]
    encoder = MotionEncoder()
    encoder.encode(base)
    # The same face moved right by one eye distance and enlarged by 10 %: exactly what the code must say.
    iod = base.inter_ocular
    centre = rigid_centre(base.landmarks.astype(np.float64))
    moved = (base.landmarks - centre) * np.float32(1.1) + centre + np.array([iod, 0.0, 0.0], np.float32)
    code = encoder.encode(type(base)(moved.astype(np.float32), base.blendshapes, base.pose, base.image_size))
    assert np.allclose(code.translation, [1.0, 0.0], atol=1e-4)
    assert code.log_scale == pytest.approx(math.log(1.1), abs=1e-4)


def test_smoothed_clip_codes_start_near_zero(driving_codes: Callable[[str], list[MotionCode | None]]) -> None:
    # Codes are relative to the first frame; the look-ahead averages in a few later frames, so the first
    # smoothed code is near zero, not exactly zero.
    codes = driving_codes("lp_d1_hist.mp4")
    assert len(codes) == 16 and all(c is not None for c in codes)
    first = codes[0]
    assert first is not None
    assert np.abs(first.translation).max() < 0.02
    assert abs(first.log_scale) < 0.01
