"""IdentityEmbedder (YuNet + SFace) on the real faces in ../shared/faces."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import first_frames
from xp_sdk.engine.identity import SFACE_SAME_PERSON_COSINE, IdentityEmbedder
from xp_sdk.engine.images import load_image
from xp_sdk.errors import EngineError


@pytest.fixture(scope="module")
def embedder() -> Iterator[IdentityEmbedder]:
    with IdentityEmbedder() as emb:
        yield emb


def _embed(embedder: IdentityEmbedder, rgb: np.ndarray) -> np.ndarray:
    vec = embedder.embed(rgb)
    assert vec is not None, "a face was expected"
    return vec


def test_embedding_is_unit_128d_float32(faces: Path, embedder: IdentityEmbedder) -> None:
    vec = _embed(embedder, load_image(faces / "source" / "skimage_astronaut.png"))
    assert vec.shape == (128,)
    assert vec.dtype == np.float32
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5


@pytest.mark.parametrize("clip", ["lp_d5_hist.mp4", "lp_d7_hist.mp4", "lp_d18.mp4"])
def test_same_person_in_different_frames_matches(faces: Path, embedder: IdentityEmbedder, clip: str) -> None:
    frames = first_frames(faces / "driving" / clip, 40)
    vecs = [_embed(embedder, frames[i]) for i in (0, 20, 39)]
    for a, b in itertools.combinations(vecs, 2):
        # Measured 0.81-0.99 on these clips.
        assert IdentityEmbedder.cosine(a, b) > SFACE_SAME_PERSON_COSINE


def test_different_people_do_not_match(faces: Path, embedder: IdentityEmbedder) -> None:
    astronaut = _embed(embedder, load_image(faces / "source" / "skimage_astronaut.png"))
    man = _embed(embedder, load_image(faces / "source" / "lp_d8.jpg"))
    assert IdentityEmbedder.cosine(man, astronaut) < SFACE_SAME_PERSON_COSINE
    for clip in ("lp_d5_hist.mp4", "lp_d7_hist.mp4", "lp_d18.mp4", "lp_d1_hist.mp4", "grid_bbaf2n.mpg"):
        person = _embed(embedder, first_frames(faces / "driving" / clip, 1)[0])
        # Measured below 0.2 for every clip.
        assert IdentityEmbedder.cosine(person, astronaut) < SFACE_SAME_PERSON_COSINE, clip


def test_large_photo_is_detected_and_matches_its_downscale(faces: Path, embedder: IdentityEmbedder) -> None:
    import cv2

    photo = load_image(faces / "source" / "lp_s9.jpg")
    assert max(photo.shape[:2]) > 640
    small = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cos = IdentityEmbedder.cosine(_embed(embedder, photo), _embed(embedder, small))
    assert cos > 0.8


def test_no_face_gives_none(embedder: IdentityEmbedder) -> None:
    assert embedder.embed(np.full((480, 480, 3), 128, dtype=np.uint8)) is None
    assert embedder.detect(np.zeros((240, 320, 3), dtype=np.uint8)) is None


def test_cosine() -> None:
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 2.0, 0.0], dtype=np.float32)
    assert IdentityEmbedder.cosine(a, a * 3) == pytest.approx(1.0)
    assert IdentityEmbedder.cosine(a, b) == pytest.approx(0.0)
    assert IdentityEmbedder.cosine(a, -a) == pytest.approx(-1.0)
    assert IdentityEmbedder.cosine(a, np.zeros(3)) == 0.0


def test_closed_embedder_refuses() -> None:
    emb = IdentityEmbedder()
    emb.close()
    with pytest.raises(EngineError):
        emb.embed(np.zeros((64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", ["lp_d30.jpg", "lp_d8.jpg", "lp_s7.jpg", "lp_s9.jpg", "skimage_astronaut.png"])
def test_a_photo_in_any_orientation_gives_its_upright_embedding(
    faces: Path, embedder: IdentityEmbedder, name: str
) -> None:
    photo = load_image(faces / "source" / name)
    upright = _embed(embedder, photo)
    assert embedder.embed(photo, any_orientation=True) is not None
    on_its_side = np.ascontiguousarray(np.rot90(photo, 1))
    plain = embedder.embed(on_its_side)
    # Alone, YuNet finds nobody on its side, or someone who is not this person.
    assert plain is None or IdentityEmbedder.cosine(upright, plain) < SFACE_SAME_PERSON_COSINE
    for turns in (1, 2, 3):
        found = embedder.embed(np.ascontiguousarray(np.rot90(photo, turns)), any_orientation=True)
        assert found is not None and IdentityEmbedder.cosine(upright, found) > 0.99, turns
