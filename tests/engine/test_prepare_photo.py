"""prepare_photo: the photo analysed once, as the engine animates it, so that the SDK refuses what is wrong with the
photo itself before its face match (two faces are "several faces", exit 3, not a face mismatch, exit 14), and
embed_face: the face matched is the face that moves, whichever face YuNet alone would call the largest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from xp_sdk.engine import AnimateOptions, FaceAnalyzer, MotionTemplate, PreparedPhoto, animate, prepare_photo
from xp_sdk.engine.identity import SFACE_SAME_PERSON_COSINE, IdentityEmbedder
from xp_sdk.engine.images import load_image
from xp_sdk.engine.templates import Keyframe
from xp_sdk.engine.video import read_frames
from xp_sdk.errors import FaceTooSmallError, MultipleFacesError, NoFaceError

ASTRONAUT = "skimage_astronaut.png"


@pytest.fixture(scope="module")
def embedder() -> Iterator[IdentityEmbedder]:
    with IdentityEmbedder() as made:
        yield made


@pytest.fixture(scope="module")
def identities(faces: Path, embedder: IdentityEmbedder) -> dict[str, np.ndarray]:
    """The two people of the ``two_face_photo``, each embedded from their own photo."""
    found = {name: embedder.embed(load_image(faces / "source" / name)) for name in (ASTRONAUT, "lp_d8.jpg")}
    assert all(vector is not None for vector in found.values())
    return found  # type: ignore[return-value]


def _who(vector: np.ndarray, identities: dict[str, np.ndarray]) -> str:
    cosines = {name: IdentityEmbedder.cosine(vector, known) for name, known in identities.items()}
    best = max(cosines, key=lambda name: cosines[name])
    assert cosines[best] >= SFACE_SAME_PERSON_COSINE, cosines
    assert all(c < SFACE_SAME_PERSON_COSINE for name, c in cosines.items() if name != best), cosines
    return best


def test_two_faces_are_several_faces(two_face_photo: np.ndarray) -> None:
    with pytest.raises(MultipleFacesError, match="allow_multiple_faces") as refused:
        prepare_photo(two_face_photo)
    assert refused.value.count == 2
    assert refused.value.exit_code == 3


def test_with_several_allowed_the_largest_face_moves_and_is_the_one_matched(
    two_face_photo: np.ndarray, embedder: IdentityEmbedder, identities: dict[str, np.ndarray]
) -> None:
    prepared = prepare_photo(two_face_photo, allow_multiple_faces=True)
    assert prepared.face_box[2] <= 384  # the astronaut, on the left
    probe = embedder.embed_face(prepared.upright, prepared.face_box, name=prepared.name)
    assert _who(probe, identities) == ASTRONAUT


def test_the_face_matched_is_the_one_at_the_box_not_yunets_largest(
    two_face_photo: np.ndarray, embedder: IdentityEmbedder, identities: dict[str, np.ndarray]
) -> None:
    # Where the animation's detector puts the face (here: the smaller face, on the right) decides which face is
    # matched; YuNet's own choice would have been the larger one on the left.
    largest = embedder.embed(two_face_photo)
    assert largest is not None and _who(largest, identities) == ASTRONAUT
    with FaceAnalyzer() as analyzer:
        smaller = analyzer.detect_all(two_face_photo)[1]
    assert smaller.bbox[0] > 384
    probe = embedder.embed_face(two_face_photo, smaller.bbox, name="the two-face photo")
    assert _who(probe, identities) == "lp_d8.jpg"


def test_no_face_where_the_box_is(faces: Path, embedder: IdentityEmbedder) -> None:
    photo = load_image(faces / "source" / ASTRONAUT)
    with pytest.raises(NoFaceError, match="YuNet"):
        embedder.embed_face(photo, (0.0, 300.0, 150.0, 500.0), name="the astronaut")


@pytest.mark.parametrize("turns", [1, 3])
def test_a_photo_on_its_side_is_prepared_upright(
    faces: Path, embedder: IdentityEmbedder, identities: dict[str, np.ndarray], turns: int
) -> None:
    upright = load_image(faces / "source" / ASTRONAUT)
    lying = np.ascontiguousarray(np.rot90(upright, -turns))
    prepared = prepare_photo(lying)
    assert prepared.turns == turns
    assert prepared.image.shape == upright.shape
    assert prepared.output_size == (lying.shape[1], lying.shape[0])
    np.testing.assert_array_equal(prepared.upright, upright)
    probe = embedder.embed_face(prepared.upright, prepared.face_box, name=prepared.name)
    assert IdentityEmbedder.cosine(probe, identities[ASTRONAUT]) > 0.9


def test_the_face_is_looked_for_at_the_size_it_is_animated(faces: Path) -> None:
    # The astronaut's face is about 90 pixels across at 512; in a 256-pixel photo it is under the 64 needed.
    photo = faces / "source" / ASTRONAUT
    assert prepare_photo(photo, max_side=512).face.size >= 64
    small = cv2.resize(load_image(photo), (256, 256), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError):
        prepare_photo(small)
    # Capped to 256, the 512-pixel photo's face is cut out at the photo's own resolution and animated there
    # (issue 22: a small face in a large photo), then pasted back at 256.
    capped = prepare_photo(photo, max_side=256)
    assert capped.face.size >= 64 and capped.output_size == (256, 256)


def test_a_photo_without_a_face_is_no_face() -> None:
    with pytest.raises(NoFaceError):
        prepare_photo(np.full((300, 300, 3), 128, np.uint8))


def _tiny_template() -> MotionTemplate:
    return MotionTemplate(
        name="tiny", fps=30, duration=0.2, keyframes=[Keyframe(t=0.0), Keyframe(t=0.2, blendshapes={"jawOpen": 0.8})]
    )


def _last_frame(path: Path) -> Any:
    return list(read_frames(path))[-1]


def test_animate_takes_the_prepared_photo_as_it_is(faces: Path, tmp_path: Path) -> None:
    photo = faces / "source" / "lp_s7.jpg"
    options = AnimateOptions(max_side=384, keep_audio=False)
    prepared = prepare_photo(photo, max_side=384)
    assert isinstance(prepared, PreparedPhoto)
    from_prepared = animate(prepared, tmp_path / "prepared.mp4", template=_tiny_template(), options=options)
    from_file = animate(photo, tmp_path / "file.mp4", template=_tiny_template(), options=options)
    assert (from_prepared.width, from_prepared.height) == (from_file.width, from_file.height) == (384, 384)
    np.testing.assert_array_equal(_last_frame(tmp_path / "prepared.mp4"), _last_frame(tmp_path / "file.mp4"))
    # Prepared for other settings, it is prepared again for these.
    other = animate(prepare_photo(photo, max_side=512), tmp_path / "other.mp4", template=_tiny_template(),
                    options=options)  # fmt: skip
    assert (other.width, other.height) == (384, 384)
