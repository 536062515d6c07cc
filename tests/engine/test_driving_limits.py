"""A driving video's length is capped, in seconds and in frames: from its header before any work, and again while
its frames are read, for a header that says nothing or lies. Before, a 1 MB clip of 72 000 frames was accepted
and ran for minutes."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from xp_sdk.engine import AnimateOptions, animate, load_template
from xp_sdk.engine.video import (
    DEFAULT_MAX_DRIVING_FRAMES,
    DEFAULT_MAX_DRIVING_SECONDS,
    DrivingLimits,
    check_driving_limits,
    frame_times,
    read_frames,
    read_frames_where,
)
from xp_sdk.errors import InvalidInputError, VideoTooLongError

ASTRONAUT = "skimage_astronaut.png"


def write_repeated_clip(path: Path, frames: int, *, rate: Fraction | int = 30, fmt: str | None = None) -> Path:
    """A 16×16 black H.264 clip of ``frames`` frames at ``rate``, made without encoding each one: the first
    picture, then one skip picture muxed again and again (72 000 frames in under a second, under 1 MB)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        black = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        first, skip = [p for f in (black, black) for p in stream.encode(f)] + list(stream.encode(None))
        assert first.time_base is not None
        for index in range(frames):
            packet = av.Packet(bytes(first if index == 0 else skip))
            packet.stream, packet.time_base = stream, first.time_base
            packet.pts = packet.dts = round(Fraction(index) / Fraction(rate) / first.time_base)
            packet.is_keyframe = index == 0
            container.mux(packet)
    return path


def write_faces_without_header(driving: Path, path: Path, frames: int) -> Path:
    """``frames`` frames of a real face (lp_d5, looped) as a raw H.264 stream: no container, so no length, no
    frame count and no timestamps for anyone to check before decoding."""
    pictures = list(itertools.islice(read_frames(driving / "lp_d5_hist.mp4", max_side=160), 45))
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = pictures[0].shape[1], pictures[0].shape[0], "yuv420p"
        for picture in itertools.islice(itertools.cycle(pictures + pictures[::-1]), frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("long_clips")
    return {
        "72 000 frames at 30 fps": write_repeated_clip(folder / "long.mp4", 72_000),
        "20 frames a minute apart": write_repeated_clip(folder / "slow.mp4", 20, rate=Fraction(1, 60)),
        "20 000 frames in 20 s": write_repeated_clip(folder / "fast.mp4", 20_000, rate=1000),
        "300 frames at 30 fps": write_repeated_clip(folder / "short.mp4", 300),
        "500 frames, no header": write_repeated_clip(folder / "raw.h264", 500, fmt="h264"),
    }


def test_the_defaults_are_ten_minutes_and_18000_frames() -> None:
    assert (DEFAULT_MAX_DRIVING_SECONDS, DEFAULT_MAX_DRIVING_FRAMES) == (600.0, 18_000)
    assert DrivingLimits() == DrivingLimits(600.0, 18_000)
    assert issubclass(VideoTooLongError, InvalidInputError)
    assert (VideoTooLongError.code, VideoTooLongError.exit_code) == ("video_too_long", 2)


@pytest.mark.parametrize(
    ("clip", "said"),
    [
        ("72 000 frames at 30 fps", "2400.0 s and 72000 frames"),
        ("20 frames a minute apart", "1200.0 s"),
        ("20 000 frames in 20 s", "20000 frames"),
    ],
)
def test_a_long_header_is_refused_before_decoding(clips: dict[str, Path], clip: str, said: str) -> None:
    limits = DrivingLimits()
    with pytest.raises(VideoTooLongError) as refused:
        check_driving_limits(clips[clip], max_seconds=limits.max_seconds, max_frames=limits.max_frames)
    assert said in refused.value.message
    assert "600 s and 18000 frames" in refused.value.message


def test_a_clip_within_the_limits_is_described(clips: dict[str, Path]) -> None:
    info = check_driving_limits(clips["300 frames at 30 fps"], max_seconds=10.0, max_frames=300)
    assert (info.frame_count, info.duration, info.fps) == (300, 10.0, 30.0)
    with pytest.raises(VideoTooLongError, match="300 frames"):
        check_driving_limits(clips["300 frames at 30 fps"], max_seconds=600.0, max_frames=299)
    with pytest.raises(VideoTooLongError, match=r"10\.0 s"):
        check_driving_limits(clips["300 frames at 30 fps"], max_seconds=9.5, max_frames=18_000)


def test_a_header_that_says_nothing_is_stopped_at_the_limit_while_decoding(clips: dict[str, Path]) -> None:
    raw = clips["500 frames, no header"]
    info = check_driving_limits(raw, max_seconds=600.0, max_frames=100)
    assert info.frame_count is None and info.duration is None  # nothing to refuse it by
    read = []
    with pytest.raises(VideoTooLongError, match="past 100 frames"):
        for index, _ in read_frames_where(raw, None, limits=DrivingLimits(600.0, 100)):
            read.append(index)
    assert len(read) == 100


def test_frames_past_the_seconds_are_stopped_while_decoding(clips: dict[str, Path]) -> None:
    read = []
    with pytest.raises(VideoTooLongError, match=r"past 2 s"):
        for index, _ in read_frames_where(clips["300 frames at 30 fps"], None, limits=DrivingLimits(2.0, 18_000)):
            read.append(index)
    assert len(read) == 61  # frame 60 is shown at 2.0 s, frame 61 after


def test_frame_times_stop_at_the_limit(clips: dict[str, Path]) -> None:
    with pytest.raises(VideoTooLongError, match="past 100 frames"):
        frame_times(clips["300 frames at 30 fps"], limits=DrivingLimits(600.0, 100))
    assert len(frame_times(clips["300 frames at 30 fps"], limits=DrivingLimits(600.0, 300)) or []) == 300


def test_animate_refuses_a_long_clip_before_any_work(faces: Path, clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[object] = []
    with pytest.raises(VideoTooLongError, match="72000 frames"):
        animate(faces / "source" / ASTRONAUT, tmp_path / "out.mp4", driving=clips["72 000 frames at 30 fps"],
                progress=seen.append)  # fmt: skip
    assert seen == [] and list(tmp_path.iterdir()) == []


def test_animate_refuses_a_template_longer_than_the_limits(faces: Path, tmp_path: Path) -> None:
    blink = load_template("blink")
    with pytest.raises(VideoTooLongError, match="blink"):
        animate(faces / "source" / ASTRONAUT, tmp_path / "out.mp4", template=blink,
                driving_limits=DrivingLimits(max_seconds=blink.duration / 2, max_frames=18_000))  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def faces_without_header(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_faces_without_header(faces / "driving", tmp_path_factory.mktemp("raw") / "face.h264", 90)


def test_animate_stops_a_clip_whose_frames_go_past_the_limit(
    faces: Path, faces_without_header: Path, tmp_path: Path
) -> None:
    generated: list[object] = []
    options = AnimateOptions(keep_audio=False, reference_window_s=0.5)
    with pytest.raises(VideoTooLongError, match="past 60 frames"):
        animate(faces / "source" / ASTRONAUT, tmp_path / "out.mp4", driving=faces_without_header, options=options,
                driving_limits=DrivingLimits(600.0, 60), progress=generated.append)  # fmt: skip
    assert generated  # it was under way: only the frames themselves told
    assert list(tmp_path.iterdir()) == []


def test_a_reference_frame_past_the_limit_is_refused(faces: Path, faces_without_header: Path, tmp_path: Path) -> None:
    options = AnimateOptions(keep_audio=False, reference_frame=70)
    with pytest.raises(InvalidInputError, match="reference frame 70"):
        animate(faces / "source" / ASTRONAUT, tmp_path / "out.mp4", driving=faces_without_header, options=options,
                driving_limits=DrivingLimits(600.0, 60))  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments", [{"max_seconds": 0.0}, {"max_seconds": math.nan}, {"max_frames": 0}, {"max_frames": 1.5}], ids=str
)
def test_limits_themselves_must_be_positive(arguments: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        DrivingLimits(**arguments)  # type: ignore[arg-type]
