"""The quality bench's two scorers (bench/scorers) on one short real pair of ../shared/faces."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("dlib", reason="the independent scorer needs dlib-bin (dev extras)")

from bench.scorers.clips import head_of_clip, reencoded
from bench.scorers.dlib68 import SHAPE_PREDICTOR_68, Dlib68Scorer
from bench.scorers.dual import DualScorer
from xp_sdk.engine import animate
from xp_sdk.engine.options import AnimateOptions
from xp_sdk.errors import ModelHashMismatchError


@pytest.fixture(scope="module")
def scorer() -> DualScorer:
    return DualScorer(identity_stride=4)


@pytest.fixture(scope="module")
def clip(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The first second of a jaw-opening clip: short, but with real mouth motion (on a still first second, as
    # lp_d5_hist's, the static baseline is so small that compression noise alone reads 0.87).
    return head_of_clip(faces / "driving" / "lp_d18.mp4", 1.0, tmp_path_factory.mktemp("clip") / "d18.mp4")


def test_both_scorers_give_finite_numbers_on_a_real_animation(
    faces: Path, clip: Path, scorer: DualScorer, tmp_path: Path
) -> None:
    photo = faces / "source" / "skimage_astronaut.png"
    output = tmp_path / "out.mp4"
    animate(photo, output, driving=clip, options=AnimateOptions(max_side=256))

    score = scorer.score(photo, clip, output)

    mp, dl, identity = score.mediapipe, score.dlib_motion, score.dlib_identity
    assert mp is not None and dl is not None and identity is not None, score.errors
    assert mp.frames_scored > 0 and dl.frames_scored > 0
    for value in (mp.expression_ratio, mp.jitter_ratio, dl.expression_ratio, dl.jitter_ratio):
        assert value is not None and math.isfinite(value) and value >= 0.0
    assert identity.frames > 0 and math.isfinite(identity.distance_max)
    assert score.mediapipe_identity_kept and identity.kept  # the astronaut stays herself on a one-second clip


def test_a_clip_scored_against_its_own_re_encoding_is_near_zero(clip: Path, scorer: DualScorer, tmp_path: Path) -> None:
    floor = scorer.noise_floor(clip, reencoded(clip, tmp_path / "again.mp4"))

    # A perfect copy of the motion, up to compression noise: below the bench's 0.5 expression target (measured:
    # 0.05 MediaPipe, 0.30 dlib, whose 68 points move with the pixel noise of a re-encode).
    assert floor.mediapipe_expression_ratio is not None and floor.mediapipe_expression_ratio < 0.15
    assert floor.dlib_expression_ratio is not None and floor.dlib_expression_ratio < 0.4
    assert floor.mediapipe_jitter_ratio is not None and 0.5 < floor.mediapipe_jitter_ratio < 1.5
    assert floor.dlib_jitter_ratio is not None and 0.5 < floor.dlib_jitter_ratio < 1.5


def test_the_independent_scorer_refuses_a_model_file_that_is_not_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swapped = tmp_path / "shape_predictor_68_face_landmarks.dat"
    swapped.write_bytes(b"a file put where the pinned model should be")
    monkeypatch.setenv(SHAPE_PREDICTOR_68.env_override, str(swapped))

    with pytest.raises(ModelHashMismatchError, match="pinned"):
        Dlib68Scorer()
