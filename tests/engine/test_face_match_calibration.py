"""The face-match threshold holds on the real faces: different people stay below it, the same person above it.

A small, fast slice of ``bench/face_match.py`` (which scores 90 samples, 3456 impostor and 405 genuine
pairs): one embedding per photo and per clip's first frame for the impostor check, first/middle/last frame
of every clip, and each photo against its JPEG-40 and 50 % copies.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from policy import DEFAULT_FACE_MATCH_THRESHOLD
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.engine.images import load_image
from xp_sdk.engine.video import read_frames

# The consent gate's threshold, measured and justified by bench/face_match.py (highest impostor 0.39-0.41,
# lowest same-person frame 0.57-0.60 on this set).
FACE_MATCH_THRESHOLD = DEFAULT_FACE_MATCH_THRESHOLD

CLIPS = ("lp_d1_hist.mp4", "lp_d5_hist.mp4", "lp_d7_hist.mp4", "lp_d18.mp4", "grid_bbaf2n.mpg")
PHOTOS = ("skimage_astronaut.png", "lp_s9.jpg", "lp_s7.jpg", "lp_d8.jpg", "lp_d30.jpg")
# Every file shows a different person, except that lp_d5 and lp_d18 (two dark-haired men in the same studio)
# could not be told apart with certainty by eye: the bench scores that pair in neither set, and so does this.
UNCERTAIN = frozenset({frozenset({"lp_d5_hist.mp4", "lp_d18.mp4"})})


@pytest.fixture(scope="module")
def embedder() -> Iterator[IdentityEmbedder]:
    with IdentityEmbedder() as emb:
        yield emb


def _embed(embedder: IdentityEmbedder, rgb: np.ndarray, what: str) -> np.ndarray:
    vec = embedder.embed(rgb)
    assert vec is not None, f"no face found in {what}"
    return vec


def _first_middle_last(path: Path) -> list[np.ndarray]:
    total = sum(1 for _ in read_frames(path))
    wanted = (0, total // 2, total - 1)
    return [frame for index, frame in enumerate(read_frames(path)) if index in wanted]


@pytest.fixture(scope="module")
def clip_embeddings(faces: Path, embedder: IdentityEmbedder) -> dict[str, list[np.ndarray]]:
    """Clip name → embeddings of its first, middle and last frame."""
    return {
        clip: [_embed(embedder, frame, f"{clip} frame") for frame in _first_middle_last(faces / "driving" / clip)]
        for clip in CLIPS
    }


@pytest.fixture(scope="module")
def photos(faces: Path) -> dict[str, np.ndarray]:
    return {name: load_image(faces / "source" / name) for name in PHOTOS}


@pytest.fixture(scope="module")
def photo_embeddings(photos: dict[str, np.ndarray], embedder: IdentityEmbedder) -> dict[str, np.ndarray]:
    return {name: _embed(embedder, image, name) for name, image in photos.items()}


def test_different_people_are_below_threshold(
    clip_embeddings: dict[str, list[np.ndarray]], photo_embeddings: dict[str, np.ndarray]
) -> None:
    samples = {**{clip: vecs[0] for clip, vecs in clip_embeddings.items()}, **photo_embeddings}
    pairs = [(a, b) for a, b in itertools.combinations(samples, 2) if frozenset({a, b}) not in UNCERTAIN]
    assert len(pairs) == 44
    scores = {(a, b): IdentityEmbedder.cosine(samples[a], samples[b]) for a, b in pairs}
    accepted = {pair: round(s, 3) for pair, s in scores.items() if s >= FACE_MATCH_THRESHOLD}
    assert not accepted, f"different people accepted at {FACE_MATCH_THRESHOLD}: {accepted}"
    # Measured 0.334 at most (lp_d1 vs lp_d5 first frames): keep a visible margin, not just a pass.
    assert max(scores.values()) < FACE_MATCH_THRESHOLD - 0.05


@pytest.mark.parametrize("clip", CLIPS)
def test_frames_far_apart_in_one_clip_match(clip_embeddings: dict[str, list[np.ndarray]], clip: str) -> None:
    first, middle, last = clip_embeddings[clip]
    for (na, a), (nb, b) in itertools.combinations((("first", first), ("middle", middle), ("last", last)), 2):
        score = IdentityEmbedder.cosine(a, b)
        assert score >= FACE_MATCH_THRESHOLD, f"{clip}: {na} vs {nb} frame scored {score:.3f}"


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_matches_its_recompressed_and_downscaled_copies(
    photos: dict[str, np.ndarray],
    photo_embeddings: dict[str, np.ndarray],
    embedder: IdentityEmbedder,
    name: str,
) -> None:
    photo = photos[name]
    height, width = photo.shape[:2]
    copies = {
        "jpeg40": _jpeg(photo, 40),
        "down50": cv2.resize(photo, (width // 2, height // 2), interpolation=cv2.INTER_AREA),
    }
    for label, copy in copies.items():
        score = IdentityEmbedder.cosine(photo_embeddings[name], _embed(embedder, copy, f"{name} {label}"))
        assert score >= FACE_MATCH_THRESHOLD, f"{name} vs its {label} copy scored {score:.3f}"
