from __future__ import annotations

import math

import numpy as np
import pytest

from policy import DEFAULT_FACE_MATCH_THRESHOLD, match_face


def test_takes_best_reference() -> None:
    probe = np.array([1.0, 0.0, 0.0])
    references = [np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0]), np.array([-1.0, 0.0, 0.0])]
    result = match_face(probe, references, 0.5)
    assert result.similarity == pytest.approx(1 / math.sqrt(2))
    assert result.matched
    assert result.threshold == 0.5


def test_scale_does_not_matter_and_self_match_is_one() -> None:
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(1, 128)).astype(np.float32)
    result = match_face(probe, [probe * 7.5], DEFAULT_FACE_MATCH_THRESHOLD)
    assert result.similarity == pytest.approx(1.0)
    assert result.similarity <= 1.0


def test_threshold_boundary_is_inclusive() -> None:
    probe, reference = np.array([3.0, 4.0]), np.array([4.0, 3.0])
    similarity = match_face(probe, [reference], 0.0).similarity
    assert match_face(probe, [reference], similarity).matched
    assert not match_face(probe, [reference], math.nextafter(similarity, 2.0)).matched


def test_below_threshold_does_not_match() -> None:
    result = match_face(np.array([1.0, 0.0]), [np.array([0.0, 1.0])], DEFAULT_FACE_MATCH_THRESHOLD)
    assert result.similarity == pytest.approx(0.0)
    assert not result.matched


def test_no_references_never_matches() -> None:
    result = match_face(np.array([1.0, 0.0]), [], -1.0)
    assert (result.similarity, result.matched) == (-1.0, False)


def test_shape_mismatch_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        match_face(np.ones(128), [np.ones(128), np.ones(64)], DEFAULT_FACE_MATCH_THRESHOLD)


def test_zero_embedding_rejected() -> None:
    with pytest.raises(ValueError, match="no direction"):
        match_face(np.zeros(4), [np.ones(4)], DEFAULT_FACE_MATCH_THRESHOLD)
