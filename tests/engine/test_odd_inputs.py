"""The engine's public entry points given what is not a photo, or not a file path: a typed input error, never a
raw cv2.error, ValueError, TypeError, AttributeError or ZeroDivisionError, and nothing written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xp_sdk.engine import AnimateOptions, FaceAnalyzer, animate, prepare_photo
from xp_sdk.engine.identity import IdentityEmbedder
from xp_sdk.engine.images import check_image_array, load_image
from xp_sdk.engine.video import check_driving_limits, frame_times, probe_video, read_frames
from xp_sdk.errors import ImageTooSmallError, InvalidInputError, UnreadableImageError


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]


# Each case: what is passed as the photo, and the error every entry point must raise for it.
ODD: dict[str, tuple[Callable[[], Any], type[InvalidInputError]]] = {
    "0×0×3": (lambda: np.zeros((0, 0, 3), np.uint8), InvalidInputError),
    "0×100×3": (lambda: np.zeros((0, 100, 3), np.uint8), InvalidInputError),
    "float 0-255": (lambda: _astronaut().astype(np.float64), UnreadableImageError),
    "float 0-1": (lambda: _astronaut().astype(np.float32) / 255, UnreadableImageError),
    "int16": (lambda: _astronaut().astype(np.int16), UnreadableImageError),
    "bool": (lambda: _astronaut() > 0, UnreadableImageError),
    "object": (lambda: _astronaut().astype(object), UnreadableImageError),
    "1 channel": (lambda: _astronaut()[:, :, :1].copy(), UnreadableImageError),
    "2 channels": (lambda: _astronaut()[:, :, :2].copy(), UnreadableImageError),
    "5 channels": (lambda: np.dstack([_astronaut(), _astronaut()[:, :, :2]]), UnreadableImageError),
    "4 dimensions": (lambda: _astronaut()[None], UnreadableImageError),
    "1 dimension": (lambda: _astronaut().ravel(), UnreadableImageError),
    "a scalar": (lambda: np.array(5, np.uint8), UnreadableImageError),
    "a nested list": (lambda: _astronaut().tolist(), InvalidInputError),
    "None": (lambda: None, InvalidInputError),
    "bytes": (lambda: b"\x89PNG\r\n\x1a\n", InvalidInputError),
    "an int": (lambda: 5, InvalidInputError),
}


@pytest.fixture(scope="module")
def embedder() -> Iterator[IdentityEmbedder]:
    with IdentityEmbedder() as made:
        yield made


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer() as made:
        yield made


@pytest.mark.parametrize("case", list(ODD))
def test_odd_photo_is_an_input_error_everywhere(
    case: str, embedder: IdentityEmbedder, analyzer: FaceAnalyzer, tmp_path: Path
) -> None:
    make, error = ODD[case]
    calls: dict[str, Callable[[], object]] = {
        "check_image_array": lambda: check_image_array(make(), name="photo"),
        "IdentityEmbedder.embed": lambda: embedder.embed(make(), any_orientation=True),
        "FaceAnalyzer.analyze_photo": lambda: analyzer.analyze_photo(make()),
        "animate": lambda: animate(make(), tmp_path / "out.mp4", template="blink"),
    }
    for name, call in calls.items():
        with pytest.raises(error):
            call()
        assert list(tmp_path.iterdir()) == [], name


def test_the_analyzer_still_works_after_an_empty_picture(analyzer: FaceAnalyzer) -> None:
    # MediaPipe's graph fails every later call once it has been given an empty picture.
    with pytest.raises(UnreadableImageError):
        analyzer.analyze_photo(np.zeros((0, 0, 3), np.uint8))
    assert analyzer.analyze_photo(_astronaut()).size > 64


def test_a_photo_too_thin_for_max_side_is_too_small(tmp_path: Path) -> None:
    # 64 pixels high is enough, but capped to 128 pixels wide the photo would be under a pixel high.
    thin = np.zeros((64, 20000, 3), np.uint8)
    with pytest.raises(ImageTooSmallError, match="max_side"):
        animate(thin, tmp_path / "out.mp4", template="blink", options=AnimateOptions(max_side=128))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"out": None},
        {"out": 123},
        {"out": b"/tmp/out.mp4"},
        {"driving": 123, "template": None},
        {"progress": "every frame"},
        {"options": {"max_side": 512}},
    ],
    ids=str,
)
def test_odd_arguments_to_animate_are_input_errors(arguments: dict[str, Any], tmp_path: Path) -> None:
    given: dict[str, Any] = {"out": tmp_path / "out.mp4", "template": "blink", **arguments}
    with pytest.raises(InvalidInputError):
        animate(_astronaut(), given.pop("out"), **given)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [None, 123, b"/tmp/clip.mp4", ["clip.mp4"], "clip\0.mp4"], ids=repr)
def test_what_is_not_a_path_is_an_input_error_for_every_file_reader(value: object) -> None:
    # Path() raised TypeError for each of these.
    readers: dict[str, Callable[[], object]] = {
        "probe_video": lambda: probe_video(value),  # type: ignore[arg-type]
        "read_frames": lambda: next(iter(read_frames(value))),  # type: ignore[arg-type]
        "frame_times": lambda: frame_times(value),  # type: ignore[arg-type]
        "check_driving_limits": lambda: check_driving_limits(value, max_seconds=600.0, max_frames=18_000),  # type: ignore[arg-type]
        "load_image": lambda: load_image(value),  # type: ignore[arg-type]
        "prepare_photo": lambda: prepare_photo(value),  # type: ignore[arg-type]
    }
    for read in readers.values():
        with pytest.raises(InvalidInputError, match="path"):
            read()


@pytest.mark.parametrize("arguments", [{"max_side": "512"}, {"max_side": 0}, {"allow_multiple_faces": "yes"}], ids=str)
def test_prepare_photo_checks_its_settings(arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(arguments))):
        prepare_photo(_astronaut(), **arguments)
