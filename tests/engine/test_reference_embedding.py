"""A reference photo registers a person only where both detectors, YuNet and MediaPipe's FaceLandmarker, find the
face. YuNet alone found one in scikit-image's coffee cup and cat, and they were registered as subjects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.engine.images import load_image
from xp_sdk.errors import NoFaceError

NOT_FACES: dict[str, Callable[[], np.ndarray]] = {
    "coffee cup, 1200×800": lambda: cv2.resize(data.coffee(), (1200, 800), interpolation=cv2.INTER_LINEAR),  # type: ignore[no-untyped-call]
    "cat": lambda: np.ascontiguousarray(data.chelsea()),  # type: ignore[no-untyped-call]
    "blank grey": lambda: np.full((480, 640, 3), 128, np.uint8),
    "noise": lambda: np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8),
}


@pytest.fixture(scope="module")
def embedder() -> Iterator[IdentityEmbedder]:
    with IdentityEmbedder() as made:
        yield made


@pytest.mark.parametrize("case", list(NOT_FACES))
def test_a_picture_without_a_face_is_no_reference(case: str, embedder: IdentityEmbedder) -> None:
    with pytest.raises(NoFaceError, match="no face found in the photo"):
        embedder.reference_embedding(NOT_FACES[case](), name="the photo")


def test_yunet_alone_takes_the_coffee_cup_for_a_face(embedder: IdentityEmbedder) -> None:
    # Why the check exists: the embedding the SDK registered references from until now.
    assert embedder.embed(NOT_FACES["coffee cup, 1200×800"](), any_orientation=True) is not None


def test_the_real_faces_are_references_as_before(source_photos: list[Path], embedder: IdentityEmbedder) -> None:
    for path in source_photos:
        photo = load_image(path)
        before = embedder.embed(photo, any_orientation=True)
        assert before is not None
        now = embedder.reference_embedding(photo, name=path.name)
        assert IdentityEmbedder.cosine(now, before) > 0.999, path.name


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_reference_on_its_side_or_upside_down_is_the_same_person(
    source_photos: list[Path], embedder: IdentityEmbedder, turns: int
) -> None:
    for path in source_photos:
        photo = load_image(path)
        upright = embedder.reference_embedding(photo, name=path.name)
        turned = embedder.reference_embedding(np.ascontiguousarray(np.rot90(photo, turns)), name=path.name)
        assert IdentityEmbedder.cosine(turned, upright) > 0.9, (path.name, turns)


def test_a_face_beside_a_cup_is_the_face(faces: Path, embedder: IdentityEmbedder) -> None:
    astronaut = load_image(faces / "source" / "skimage_astronaut.png")
    cup = cv2.resize(NOT_FACES["coffee cup, 1200×800"](), (768, 512), interpolation=cv2.INTER_AREA)
    both = np.ascontiguousarray(np.hstack([cup, astronaut]))
    found = embedder.reference_embedding(both, name="cup and astronaut")
    alone = embedder.reference_embedding(astronaut, name="astronaut")
    assert IdentityEmbedder.cosine(found, alone) > 0.9
