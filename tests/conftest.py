"""Shared fixtures: real faces from XP_FACES (default ../shared/faces), never copied into the project."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def faces_root() -> Path:
    return Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))


def write_shown_clip(
    path: Path,
    pictures: Sequence[np.ndarray],
    *,
    rotation: int = 0,
    sample_aspect_ratio: Fraction | None = None,
    rate: int = 30,
) -> Path:
    """An H.264 MP4 that a player shows as ``pictures``, turned by ``rotation`` degrees counter-clockwise (ffmpeg's
    display matrix): the pictures are stored turned back, as a phone held upright stores them. With
    ``sample_aspect_ratio`` the stream says its pixels are that much wider than high (the pictures are stored as
    given: squeeze them first for a picture that should look right)."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        stored = [np.ascontiguousarray(np.rot90(p, -rotation // 90)) for p in pictures]
        stream.width, stream.height, stream.pix_fmt = stored[0].shape[1], stored[0].shape[0], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        for picture in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_variable_rate_clip(driving: Path, path: Path) -> list[float]:
    """lp_d5's first 90 frames as a phone in dim light records them: 2 s at 15 frames a second, then 2 s at 30;
    with GRID's speech. Returns the frame times."""
    import av

    from xp_sdk.engine.video import read_frames

    times = [k / 15 for k in range(30)] + [2.0 + k / 30 for k in range(60)]
    pictures = itertools.islice(read_frames(driving / "lp_d5_hist.mp4"), len(times))
    tick = Fraction(1, 90000)
    with av.open(str(path), "w") as out, av.open(str(driving / "grid_bbaf2n.mpg")) as sound:
        video = out.add_stream("libx264", rate=30)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = 480, 480, "yuv420p"
        video.codec_context.time_base = tick
        audio = out.add_stream("aac", rate=sound.streams.audio[0].codec_context.sample_rate)
        for picture, t in zip(pictures, times, strict=True):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = round(t / tick), tick
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for sample in sound.decode(audio=0):
            out.mux(audio.encode(sample))
        out.mux(audio.encode(None))
    return times


def _speech(path: Path) -> tuple[np.ndarray, int, float]:
    """(mono samples, sample rate, when the first sample plays in seconds after the first picture)."""
    import av

    with av.open(str(path)) as container:
        first_picture = next(container.decode(video=0))
        picture_time = float(first_picture.pts * first_picture.time_base)
    with av.open(str(path)) as container:
        mono = av.AudioResampler(format="flt", layout="mono")
        chunks, start, rate = [], None, 0
        for frame in container.decode(audio=0):
            if start is None:
                start, rate = float(frame.pts * frame.time_base), frame.sample_rate
            chunks += [f.to_ndarray().ravel() for f in mono.resample(frame)]
    assert start is not None
    return np.concatenate(chunks), rate, start - picture_time


def audio_lag_ms(source: Path, output: Path) -> float:
    """How late the output's sound plays against its pictures, compared with the source's (0 = in sync)."""
    from scipy.signal import correlate

    src, rate, src_start = _speech(source)
    out, out_rate, out_start = _speech(output)
    assert out_rate == rate
    # One second of speech, 0.8 s after the first picture, found in the output within ±0.7 s of where it belongs.
    ref = src[round((0.8 - src_start) * rate) :][:rate]
    lo = round((0.8 - 0.7 - out_start) * rate)
    hits = correlate(out[lo : lo + rate + round(1.4 * rate)], ref, mode="valid", method="fft")
    return (int(np.argmax(hits)) - round(0.7 * rate)) * 1000.0 / rate


def first_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a video, without decoding the rest."""
    from xp_sdk.engine.video import read_frames

    reader = read_frames(path)
    try:
        return list(itertools.islice(reader, count))
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()


@pytest.fixture(scope="session")
def faces() -> Path:
    root = faces_root()
    if not (root / "manifest.json").is_file():
        pytest.skip(f"real face data not found at {root}; set XP_FACES to the shared faces folder")
    return root


@pytest.fixture(scope="session")
def source_photos(faces: Path) -> list[Path]:
    return sorted((faces / "source").iterdir())


@pytest.fixture(scope="session")
def driving_videos(faces: Path) -> list[Path]:
    return sorted((faces / "driving").iterdir())



# --- analysed real data, computed once per session (shared by tests/engine) --------------------------------


def face_crop(image: Any, face: Any, side: int, margin: float) -> Any:
    """A square crop of ``image`` around ``face`` (face box × ``margin``), resized to ``side`` pixels."""
    import cv2

    x0, y0, x1, y1 = face.bbox
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) * margin / 2
    h, w = image.shape[:2]
    top, bottom = int(max(cy - half, 0)), int(min(cy + half, h))
    left, right = int(max(cx - half, 0)), int(min(cx + half, w))
    return cv2.resize(image[top:bottom, left:right], (side, side), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def photo_faces(source_photos: list[Path]) -> dict[str, Any]:
    """File name → (RGB image, FaceAnalysis) for every shared source photo, analysed once per session."""
    from xp_sdk.engine.faces import FaceAnalyzer
    from xp_sdk.engine.images import load_image

    analysed = {}
    with FaceAnalyzer() as analyzer:
        for path in source_photos:
            image = load_image(path)
            analysed[path.name] = (image, analyzer.analyze_photo(image, name=path.name))
    return analysed


@pytest.fixture(scope="session")
def two_face_photo(photo_faces: dict[str, Any]) -> Any:
    """Two real portraits side by side: the astronaut (left, larger face) and lp_d8 (right, smaller face)."""
    import numpy as np

    left = face_crop(*photo_faces["skimage_astronaut.png"], side=384, margin=1.8)
    right = face_crop(*photo_faces["lp_d8.jpg"], side=384, margin=2.6)
    return np.ascontiguousarray(np.hstack([left, right]))


@pytest.fixture(scope="session")
def driving_codes(faces: Path) -> Callable[[str], list[Any]]:
    """Driving clip file name → its smoothed motion codes (None where no face), computed once per session."""
    from xp_sdk.engine.driving import iter_motion_codes
    from xp_sdk.engine.video import probe_video

    cache: dict[str, list[Any]] = {}

    def codes(name: str) -> list[Any]:
        if name not in cache:
            path = faces / "driving" / name
            cache[name] = list(iter_motion_codes(path, probe_video(path).fps))
        return cache[name]

    return codes


# --- a deployment home with provenance keys, made once per session ------------------------------------------


@pytest.fixture(scope="session")
def provenance_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a watermark key and a development C2PA CA and signer (as `xp init` makes)."""
    from xp_sdk.home import Home
    from xp_sdk.provenance import init_provenance_keys

    root = tmp_path_factory.mktemp("xp-home")
    init_provenance_keys(Home(root), organization="xp-sdk tests")
    return root
