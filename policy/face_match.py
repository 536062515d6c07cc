"""Whether a photo's face embedding matches a subject's reference embeddings (cosine similarity)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# SFace cosine at or above which a photo is taken to show the subject. Calibrated by bench/face_match.py on the
# shared real faces: impostors reach at most 0.39 (0.41 over every frame), the same person at least 0.60 (0.57), so
# 0.50 errs towards refusing; the OpenCV zoo's 0.363 let two different men through. Operators may tune it.
DEFAULT_FACE_MATCH_THRESHOLD = 0.50


@dataclass(frozen=True)
class FaceMatch:
    similarity: float
    threshold: float
    matched: bool

    def __post_init__(self) -> None:
        # A NaN similarity would compare false against every threshold and read as neither match nor mismatch.
        if not (math.isfinite(self.similarity) and math.isfinite(self.threshold)):
            raise ValueError(f"face similarity {self.similarity} and threshold {self.threshold} must be finite")


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    flat = np.asarray(vector, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(flat))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(f"{what} embedding has no direction (norm {norm})")
    return flat / norm


def match_face(
    probe: np.ndarray, references: Sequence[np.ndarray], threshold: float = DEFAULT_FACE_MATCH_THRESHOLD
) -> FaceMatch:
    """Best cosine similarity of ``probe`` over ``references``; matched when it reaches ``threshold``."""
    if not references:
        return FaceMatch(similarity=-1.0, threshold=threshold, matched=False)
    probe_shape = np.shape(probe)
    unit_probe = _unit(probe, "probe")
    best = -1.0
    for index, reference in enumerate(references):
        if np.shape(reference) != probe_shape:
            raise ValueError(f"reference {index} has shape {np.shape(reference)}, probe has {probe_shape}")
        best = max(best, float(np.dot(unit_probe, _unit(reference, f"reference {index}"))))
    # Rounding can push a self-match a hair past 1.
    best = min(1.0, max(-1.0, best))
    return FaceMatch(similarity=best, threshold=threshold, matched=best >= threshold)
