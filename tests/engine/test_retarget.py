"""Retargeting real driving motion (and template codes) onto real photos."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from xp_sdk.engine import topology
from xp_sdk.engine.motion import (
    BLENDSHAPE_INDEX,
    MotionCode,
    MotionEncoder,
    canonical_shape,
    euler_to_matrix,
    matrix_to_euler,
    rigid_centre,
)
from xp_sdk.engine.retarget import (
    REFERENCE_SLACK,
    Retargeter,
    RetargetOptions,
    TargetFace,
    choose_reference,
    held_expression,
    most_faithful,
    open_eye_openings,
    reference_distance,
    reference_scores,
    rest_level,
    typical_expression,
)

PHOTOS = ["lp_d30.jpg", "lp_d8.jpg", "lp_s7.jpg", "lp_s9.jpg", "skimage_astronaut.png"]
CLOSED_MOUTH_PHOTOS = ["lp_d30.jpg", "lp_d8.jpg", "lp_s9.jpg"]
ASTRONAUT = "skimage_astronaut.png"
RIGID = list(topology.RIGID)

Codes = Callable[[str], list[MotionCode | None]]


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    rel = a @ b.T
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(rel)) - 1) / 2))))


def _valid(codes: list[MotionCode | None]) -> list[MotionCode]:
    return [c for c in codes if c is not None]


def _eye_ratios(target: TargetFace, source: Any) -> list[float]:
    return [
        topology.eye_opening(target.landmarks, e) / topology.eye_opening(source.landmarks, e) for e in (0, 1)
    ]


def _template_code(yaw: float = 0.0, pitch: float = 0.0, **blendshapes: float) -> MotionCode:
    values = np.zeros(len(BLENDSHAPE_INDEX))
    for name, value in blendshapes.items():
        values[BLENDSHAPE_INDEX[name]] = value
    return MotionCode(
        rotation=np.radians([pitch, yaw, 0.0]), translation=np.zeros(2), log_scale=0.0, blendshapes=values
    )


@pytest.fixture(scope="module")
def astronaut(photo_faces: dict[str, Any]) -> Any:
    return photo_faces[ASTRONAUT][1]


@pytest.fixture(scope="module")
def d18(driving_codes: Codes) -> list[MotionCode]:
    codes = _valid(driving_codes("lp_d18.mp4"))
    assert len(codes) == 216
    return codes


@pytest.fixture(scope="module")
def d18_widest(d18: list[MotionCode]) -> MotionCode:
    return max(d18, key=lambda c: topology.mouth_opening(c.shape))


# --- reference frame ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", ["lp_d18.mp4", "lp_d7_hist.mp4"])
@pytest.mark.parametrize("photo", [ASTRONAUT, "lp_s9.jpg"])
def test_choose_reference_picks_the_closest_frame_among_typical_ones(
    driving_codes: Codes, photo_faces: dict[str, Any], clip: str, photo: str
) -> None:
    codes = _valid(driving_codes(clip))
    face = photo_faces[photo][1]
    distances = np.array([reference_distance(c, face) for c in codes])
    assert distances.max() - distances.min() > 0.3  # the clips really differ from frame to frame
    # Without the typicality term: the single closest frame.
    assert distances[choose_reference(codes, face, typicality=0.0)] == distances.min()
    # With it: a frame at least as typical of the clip (near its median expression) as the closest one, and
    # nearer the photo than most of the clip.
    from xp_sdk.engine.retarget import _MATCH_BLENDSHAPES

    expressions = np.stack([c.blendshapes[_MATCH_BLENDSHAPES] for c in codes])
    atypical = np.linalg.norm(expressions - np.median(expressions, axis=0), axis=1)
    index = choose_reference(codes, face)
    closest = int(np.argmin(distances))
    assert atypical[index] <= atypical[closest]
    assert distances[index] <= np.percentile(distances, 50)


def test_a_rare_wide_eyed_frame_does_not_become_the_reference(
    driving_codes: Codes, photo_faces: dict[str, Any]
) -> None:
    # lp_d30's wide-open eyes and raised brows match lp_d7's one wide-eyed moment best. Taken as the reference,
    # it made every ordinary frame of the driver lower the photo's brows and lids for the whole clip (SFace
    # identity down to 0.59). The photo should spend most of the clip near its own face.
    from xp_sdk.engine.retarget import open_eye_openings

    codes = _valid(driving_codes("lp_d7_hist.mp4"))
    face = photo_faces["lp_d30.jpg"][1]
    retargeter = Retargeter(face, RetargetOptions(pose_scale=0.0))
    open_eyes = open_eye_openings(codes)
    expressive = list(topology.EXPRESSIVE)

    def typical_offset(reference: MotionCode) -> float:
        offsets = [
            np.linalg.norm(
                retargeter.from_video(c, reference, open_eyes).landmarks[expressive]
                - face.landmarks[expressive, :2],
                axis=1,
            ).mean()
            for c in codes
        ]
        return float(np.median(offsets)) / face.inter_ocular

    closest = typical_offset(codes[choose_reference(codes, face, typicality=0.0)])
    chosen = typical_offset(codes[choose_reference(codes, face)])
    assert chosen < 0.75 * closest  # (0.028 against 0.046 eye distances)


def test_reference_distance_is_zero_for_the_photo_itself(photo_faces: dict[str, Any]) -> None:
    for _, face in photo_faces.values():
        own = MotionEncoder().encode(face)
        assert reference_distance(own, face) == pytest.approx(0.0, abs=1e-6)


def test_choose_reference_finds_the_photo_among_other_codes(driving_codes: Codes, astronaut: Any) -> None:
    codes = _valid(driving_codes("lp_d7_hist.mp4"))[:40]
    own = MotionEncoder().encode(astronaut)
    with_own = [*codes[:17], own, *codes[17:]]
    assert choose_reference(with_own, astronaut, typicality=0.0) == 17
    # The photo smiles more than this driver at rest: its own code is the closest match, but taken as the
    # reference it would play the driver's rest as less than a smile (issue 22, item 5). The chosen frame holds
    # no more expression than the photo.
    rest = rest_level(with_own)
    chosen = choose_reference(with_own, astronaut)
    assert held_expression([with_own[chosen]], rest)[0] < held_expression([own], rest)[0]


def test_choose_reference_needs_codes(astronaut: Any) -> None:
    with pytest.raises(ValueError, match="no motion codes"):
        choose_reference([], astronaut)


# --- identity -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("photo", PHOTOS)
def test_reference_against_itself_reproduces_the_photo_without_eye_ratios(
    photo_faces: dict[str, Any], photo: str
) -> None:
    face = photo_faces[photo][1]
    own = MotionEncoder().encode(face)
    target = Retargeter(face, RetargetOptions(relative_eyes=False)).from_video(own, own)
    assert np.allclose(target.landmarks, face.landmarks[:, :2], atol=1e-3)
    assert np.allclose(target.rotation, face.rotation)


@pytest.mark.parametrize("photo", [ASTRONAUT, "lp_d8.jpg"])
def test_reference_against_itself_reproduces_the_photo(photo_faces: dict[str, Any], photo: str) -> None:
    face = photo_faces[photo][1]
    own = MotionEncoder().encode(face)
    target = Retargeter(face).from_video(own, own)  # default options: relative eyes
    assert np.allclose(target.landmarks, face.landmarks[:, :2], atol=1e-3)
    # The target carries its pose-free shape too: here the photo's own (what bench/render_gap.py scores).
    assert target.canonical is not None
    assert np.allclose(target.canonical, canonical_shape(face), atol=1e-6)


def test_neutral_template_code_reproduces_the_photo(astronaut: Any) -> None:
    target = Retargeter(astronaut).from_template(_template_code())
    assert np.allclose(_eye_ratios(target, astronaut), 1.0, atol=0.05)
    assert np.allclose(target.landmarks, astronaut.landmarks[:, :2], atol=1e-3)


# --- driving video ------------------------------------------------------------------------------------------


def test_wide_jaw_opening_opens_the_target_mouth(
    d18: list[MotionCode], d18_widest: MotionCode, astronaut: Any
) -> None:
    reference = d18[choose_reference(d18, astronaut)]
    target = Retargeter(astronaut).from_video(d18_widest, reference)
    iod = astronaut.inter_ocular
    grown = topology.mouth_opening(target.landmarks) - topology.mouth_opening(astronaut.landmarks)
    assert grown > 0.1 * iod

    # The jaw drops with it, away from the nose; the forehead keeps its distance to the nose.
    def below_nose(points: np.ndarray, index: int) -> float:
        return float(points[index, 1] - points[topology.NOSE_TIP, 1])

    src, out = astronaut.landmarks, target.landmarks
    assert below_nose(out, topology.CHIN) - below_nose(src, topology.CHIN) > 0.1 * iod
    assert abs(below_nose(out, topology.FOREHEAD) - below_nose(src, topology.FOREHEAD)) < 0.05 * iod


@pytest.mark.parametrize("photo", CLOSED_MOUTH_PHOTOS)
def test_wide_jaw_opening_opens_closed_mouths(
    d18: list[MotionCode], d18_widest: MotionCode, photo_faces: dict[str, Any], photo: str
) -> None:
    face = photo_faces[photo][1]
    reference = d18[choose_reference(d18, face)]
    target = Retargeter(face).from_video(d18_widest, reference)
    assert topology.mouth_opening(face.landmarks) < 0.02 * face.inter_ocular
    assert topology.mouth_opening(target.landmarks) > 0.2 * face.inter_ocular


def test_driver_blink_closes_the_target_eyes(driving_codes: Codes, astronaut: Any) -> None:
    codes = _valid(driving_codes("lp_d7_hist.mp4"))
    reference = codes[choose_reference(codes, astronaut)]
    blink = min(codes, key=lambda c: np.mean([topology.eye_opening(c.shape, e) for e in (0, 1)]))
    retargeter = Retargeter(astronaut)
    closed = _eye_ratios(retargeter.from_video(blink, reference), astronaut)
    assert max(closed) < 0.4
    # And the eyes open again where the driver's are open.
    opened = _eye_ratios(retargeter.from_video(reference, reference), astronaut)
    assert min(opened) > 0.8


def test_expression_scale_zero_keeps_expression_and_follows_pose(
    d18: list[MotionCode], d18_widest: MotionCode, astronaut: Any
) -> None:
    reference = d18[choose_reference(d18, astronaut)]
    still_face = Retargeter(astronaut, RetargetOptions(expression_scale=0.0))
    full = Retargeter(astronaut)
    iod = astronaut.inter_ocular

    target = still_face.from_video(d18_widest, reference)
    unchanged = topology.mouth_opening(target.landmarks) - topology.mouth_opening(astronaut.landmarks)
    assert abs(unchanged) < 0.03 * iod
    # Pose-only motion: the driving frame with the reference's expression gives the same landmarks.
    pose_only = replace(d18_widest, shape=reference.shape, blendshapes=reference.blendshapes)
    assert np.allclose(target.landmarks, full.from_video(pose_only, reference).landmarks, atol=1e-6)

    # The head still follows the driver: the biggest head turn of the clip is applied in full.
    turned = max(d18, key=lambda c: _angle_deg(c.rotation_matrix(), reference.rotation_matrix()))
    moved = still_face.from_video(turned, reference)
    expected = turned.rotation_matrix() @ reference.rotation_matrix().T @ astronaut.rotation
    assert np.allclose(moved.rotation, expected, atol=1e-9)
    assert _angle_deg(moved.rotation, astronaut.rotation) > 2.0
    assert np.allclose(moved.rotation, full.from_video(turned, reference).rotation)


def test_expression_scale_amplifies_the_mouth(
    d18: list[MotionCode], d18_widest: MotionCode, astronaut: Any
) -> None:
    reference = d18[choose_reference(d18, astronaut)]
    openings = []
    for scale in (0.5, 1.0, 1.5):
        retargeter = Retargeter(astronaut, RetargetOptions(expression_scale=scale))
        openings.append(topology.mouth_opening(retargeter.from_video(d18_widest, reference).landmarks))
    assert openings[0] < openings[1] < openings[2]


def test_pose_scale_zero_keeps_the_head_still(d18: list[MotionCode], astronaut: Any) -> None:
    reference = d18[choose_reference(d18, astronaut)]
    still = Retargeter(astronaut, RetargetOptions(pose_scale=0.0))
    moving = Retargeter(astronaut)
    source_centre = rigid_centre(astronaut.landmarks.astype(np.float64))[:2]
    turns, shifts = [], []
    for code in d18[::4]:
        target = still.from_video(code, reference)
        assert np.allclose(target.rotation, astronaut.rotation, atol=1e-12)
        assert np.allclose(target.centre, source_centre)
        # (smoothed codes keep their rigid centre at 0 only to within the filter lag)
        assert np.allclose(target.landmarks[RIGID].mean(axis=0), source_centre, atol=0.05)
        free = moving.from_video(code, reference)
        turns.append(_angle_deg(free.rotation, astronaut.rotation))
        shifts.append(float(np.linalg.norm(free.landmarks[RIGID].mean(axis=0) - source_centre)))
    # Without pose_scale=0 the same frames do move the head.
    assert max(turns) > 2.0
    assert max(shifts) > 0.01 * astronaut.inter_ocular


def test_pose_scale_zero_still_animates_the_mouth(
    d18: list[MotionCode], d18_widest: MotionCode, astronaut: Any
) -> None:
    reference = d18[choose_reference(d18, astronaut)]
    target = Retargeter(astronaut, RetargetOptions(pose_scale=0.0)).from_video(d18_widest, reference)
    grown = topology.mouth_opening(target.landmarks) - topology.mouth_opening(astronaut.landmarks)
    assert grown > 0.1 * astronaut.inter_ocular


def test_pose_scale_scales_a_head_turn(astronaut: Any) -> None:
    own = MotionEncoder().encode(astronaut)
    turn = euler_to_matrix(np.radians([0.0, 20.0, 0.0])) @ own.rotation_matrix()
    turned = replace(own, rotation=matrix_to_euler(turn))
    angles = {}
    for scale in (0.0, 0.5, 1.0):
        target = Retargeter(astronaut, RetargetOptions(pose_scale=scale)).from_video(turned, own)
        angles[scale] = _angle_deg(target.rotation, astronaut.rotation)
    assert angles[0.0] == pytest.approx(0.0, abs=1e-6)
    assert angles[0.5] == pytest.approx(10.0, abs=1e-3)
    assert angles[1.0] == pytest.approx(20.0, abs=1e-3)


def test_video_retargeting_needs_shapes(astronaut: Any) -> None:
    with pytest.raises(ValueError, match="canonical shapes"):
        Retargeter(astronaut).from_video(_template_code(), _template_code())


# --- templates ----------------------------------------------------------------------------------------------


def test_template_jaw_open_opens_the_mouth(astronaut: Any) -> None:
    target = Retargeter(astronaut).from_template(_template_code(jawOpen=1.0))
    iod = astronaut.inter_ocular
    grown = topology.mouth_opening(target.landmarks) - topology.mouth_opening(astronaut.landmarks)
    assert grown > 0.15 * iod
    assert target.landmarks[topology.CHIN, 1] - astronaut.landmarks[topology.CHIN, 1] > 0.2 * iod


@pytest.mark.parametrize("photo", CLOSED_MOUTH_PHOTOS)
def test_template_jaw_open_opens_a_closed_mouth(photo_faces: dict[str, Any], photo: str) -> None:
    face = photo_faces[photo][1]
    target = Retargeter(face).from_template(_template_code(jawOpen=1.0))
    grown = topology.mouth_opening(target.landmarks) - topology.mouth_opening(face.landmarks)
    assert grown > 0.15 * face.inter_ocular


@pytest.mark.parametrize("photo", PHOTOS)
def test_template_blink_closes_the_eyes(photo_faces: dict[str, Any], photo: str) -> None:
    face = photo_faces[photo][1]
    target = Retargeter(face).from_template(_template_code(eyeBlinkLeft=1.0, eyeBlinkRight=1.0))
    assert max(_eye_ratios(target, face)) < 0.4
    # Only the eyes: the mouth stays where it was.
    assert np.allclose(
        target.landmarks[list(topology.LIPS_UPPER_OUTER)], face.landmarks[list(topology.LIPS_UPPER_OUTER), :2]
    )


@pytest.mark.parametrize("photo", PHOTOS)
def test_eyes_opening_wider_raise_the_lids_not_the_iris(photo_faces: dict[str, Any], photo: str) -> None:
    # The eyeball does not move when the lids open: the iris stays where it was. (Kept at its share of the
    # opening, the iris rose with the upper lid.)
    face = photo_faces[photo][1]
    target = Retargeter(face).from_template(_template_code(eyeWideLeft=1.0, eyeWideRight=1.0))
    assert min(_eye_ratios(target, face)) > 1.25
    for eye, iris in enumerate((topology.IRIS_A, topology.IRIS_B)):
        upper = list(topology.EYES[eye][0][2:-2])
        rise = face.landmarks[upper, 1].mean() - target.landmarks[upper, 1].mean()
        moved = abs(float(target.landmarks[iris[0], 1] - face.landmarks[iris[0], 1]))
        assert rise > 0.025 * face.inter_ocular
        assert moved < 0.1 * rise


def test_template_one_eye_blink_closes_one_eye(astronaut: Any) -> None:
    # eyeBlinkRight is the subject's right eye: eye A, on the image's left.
    target = Retargeter(astronaut).from_template(_template_code(eyeBlinkRight=1.0))
    a, b = _eye_ratios(target, astronaut)
    assert a < 0.4
    assert b > 0.8


@pytest.mark.parametrize("photo", [ASTRONAUT, "lp_s7.jpg"])
def test_template_yaw_moves_the_nose_sideways(photo_faces: dict[str, Any], photo: str) -> None:
    face = photo_faces[photo][1]
    retargeter = Retargeter(face)
    iod = face.inter_ocular
    nose = face.landmarks[topology.NOSE_TIP, :2]
    left = retargeter.from_template(_template_code(yaw=15.0)).landmarks[topology.NOSE_TIP] - nose
    right = retargeter.from_template(_template_code(yaw=-15.0)).landmarks[topology.NOSE_TIP] - nose
    assert abs(left[0]) > 0.08 * iod and abs(right[0]) > 0.08 * iod
    assert np.sign(left[0]) == -np.sign(right[0])
    assert abs(left[1]) < 0.03 * iod and abs(right[1]) < 0.03 * iod


def test_template_pitch_moves_the_nose_vertically(astronaut: Any) -> None:
    target = Retargeter(astronaut).from_template(_template_code(pitch=15.0))
    shift = target.landmarks[topology.NOSE_TIP] - astronaut.landmarks[topology.NOSE_TIP, :2]
    assert abs(shift[1]) > 0.05 * astronaut.inter_ocular
    assert abs(shift[1]) > abs(shift[0])


def test_lips_closing_from_an_open_reference_meet_and_never_cross(d18: list[MotionCode], astronaut: Any) -> None:
    # The astronaut smiles with parted lips, so the chosen reference is an open-mouthed driving frame; when
    # the driver shuts the mouth, the plain difference closes the photo's lips further than they are open.
    reference = d18[choose_reference(d18, astronaut, typicality=0.0)]  # the closest match: mouth open
    closed = min(d18, key=lambda c: topology.mouth_opening(c.shape))
    plain = canonical_shape(astronaut) + (closed.shape - reference.shape)  # type: ignore[operator]
    assert topology.mouth_opening(plain) < -0.05  # the lips would pass through each other
    retargeter = Retargeter(astronaut)
    upper, lower = list(topology.LIPS_UPPER_INNER), list(topology.LIPS_LOWER_INNER)
    for code in d18:
        points = retargeter.from_video(code, reference).landmarks
        # In the photo's own (nearly upright) frame the lower inner lip never rises above the upper one.
        assert (points[lower, 1] >= points[upper, 1] - 0.01 * astronaut.inter_ocular).all()
    pressed = retargeter.from_video(closed, reference).landmarks
    assert abs(topology.mouth_opening(pressed)) < 0.02 * astronaut.inter_ocular  # shut, not crossed
    # Everything but the inner lips still follows the driver: the chin rises with the closing jaw.
    rest = retargeter.from_video(reference, reference).landmarks
    assert pressed[topology.CHIN, 1] < rest[topology.CHIN, 1] - 0.05 * astronaut.inter_ocular


def test_open_eye_openings_ignore_the_frames_with_closed_eyes(driving_codes: Codes) -> None:
    from xp_sdk.engine.retarget import open_eye_openings

    codes = _valid(driving_codes("lp_d1_hist.mp4"))  # 16 frames, the eyes shut in most of them
    usual = open_eye_openings(codes)
    for eye in (0, 1):
        openings = np.array([topology.eye_opening(c.shape, eye) for c in codes])
        assert np.median(openings) < 0.7 * usual[eye]  # the plain median is a half-closed eye
        assert usual[eye] == pytest.approx(float(np.median(openings[:4])), rel=0.15)  # the open start
    with pytest.raises(ValueError, match="shapes"):
        open_eye_openings([_template_code()])


def test_a_reference_caught_mid_blink_does_not_blow_the_eyes_open(driving_codes: Codes, astronaut: Any) -> None:
    from xp_sdk.engine.retarget import open_eye_openings

    codes = _valid(driving_codes("lp_d1_hist.mp4"))
    mid_blink = min(codes, key=lambda c: np.mean([topology.eye_opening(c.shape, e) for e in (0, 1)]))
    retargeter = Retargeter(astronaut)
    first = codes[0]  # eyes open
    own = _eye_ratios(retargeter.from_video(first, first), astronaut)
    assert np.allclose(own, 1.0, atol=0.02)
    # Measured against the closed reference, the open frame is several times "more open": the eyes bulged to
    # the ratio's cap. Against the driver's usual open eye they are the photo's own.
    blown = _eye_ratios(retargeter.from_video(first, mid_blink), astronaut)
    usual = _eye_ratios(retargeter.from_video(first, mid_blink, open_eye_openings(codes)), astronaut)
    assert min(blown) > 1.4
    assert all(0.8 < r < 1.25 for r in usual)  # (the driver's usual open eye is a little less open)


def test_a_reference_caught_as_the_mouth_closes_loses_motion(
    d18: list[MotionCode], photo_faces: dict[str, Any]
) -> None:
    """lp_d18 closes a wide-open mouth over frames 150-159. Against frame 156 (lips still apart) every closed
    frame presses the photo's lips together, where they stop: motion is lost; against 159 (closed) it is not."""
    retargeter = Retargeter(photo_faces["lp_d8.jpg"][1])
    eyes = open_eye_openings(d18)
    mid_closure = retargeter.expression_loss(d18, d18[156], eyes)
    closed = retargeter.expression_loss(d18, d18[159], eyes)
    assert mid_closure > 0.05 and closed < 0.015
    # A reference against itself loses nothing of a clip that is only itself.
    assert retargeter.expression_loss([d18[20]], d18[20], eyes) == 0.0


def test_among_near_equal_matches_the_reference_loses_least(
    d18: list[MotionCode], photo_faces: dict[str, Any]
) -> None:
    """Frames 150-165 of lp_d18 (the mouth closing, then closed) as candidates: by score alone a frame still
    closing can win; weighed with what it loses of the clip's motion, a closed one does."""
    retargeter = Retargeter(photo_faces["lp_d8.jpg"][1])
    eyes = open_eye_openings(d18)
    candidates = d18[150:166]
    scores = reference_scores(candidates, retargeter.source, typical=typical_expression(d18))
    chosen = most_faithful(candidates, scores, d18, retargeter, eyes)
    assert scores[chosen] <= scores.min() + REFERENCE_SLACK
    losses = [retargeter.expression_loss(d18, c, eyes) for c in candidates]
    assert losses[chosen] < 0.015 < max(losses)
    whole = choose_reference(d18, retargeter.source, retargeter=retargeter, open_eyes=eyes)
    assert retargeter.expression_loss(d18, d18[whole], eyes) < 0.015
