"""Video reading and writing against the real clips in the shared faces folder."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import audio_lag_ms, write_shown_clip, write_variable_rate_clip
from xp_sdk.engine.driving import iter_driving
from xp_sdk.engine.video import (
    VideoWriter,
    frame_times,
    is_image_file,
    probe_video,
    read_frames,
    read_frames_where,
)
from xp_sdk.errors import EngineError, UnreadableVideoError, UnsupportedFormatError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def driving(faces: Path) -> Path:
    return faces / "driving"


def _gradient(height: int, width: int, t: int) -> np.ndarray:
    """A smooth moving colour gradient: compresses well, so decoded pixels should stay close."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = (x / width * 200 + t * 2) % 256
    g = y / height * 200 + 20
    b = (x + y) / (width + height) * 150 + 50
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def _write_synthetic(path: Path, *, width: int, height: int, frames: int, fps: float = 30.0) -> None:
    with VideoWriter(path, width=width, height=height, fps=fps) as writer:
        for t in range(frames):
            writer.write(_gradient(height, width, t))


def _transcode(src: Path, dst: Path, codec: str, *, max_frames: int = 16) -> int:
    """Re-encode the first frames of ``src`` with PyAV directly, to get other containers and codecs."""
    written = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=30)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for frame in inp.decode(video=0):
            small = frame.reformat(256, 256, format="yuv420p")
            small.pts = written
            out.mux(stream.encode(small))
            written += 1
            if written == max_frames:
                break
        out.mux(stream.encode(None))
    return written


def _stream_seconds(stream: av.stream.Stream) -> float:
    assert stream.duration is not None and stream.time_base is not None
    return float(stream.duration * stream.time_base)


# --- probing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "width", "height", "fps", "frames", "codec"),
    [
        ("lp_d1_hist.mp4", 512, 512, 30.0, 16, "h264"),
        ("lp_d5_hist.mp4", 480, 480, 30.0, 148, "h264"),
        ("lp_d7_hist.mp4", 480, 480, 30.0, 178, "h264"),
        ("lp_d18.mp4", 480, 480, 30.0, 216, "h264"),
        ("grid_bbaf2n.mpg", 360, 288, 25.0, 75, "mpeg1video"),
    ],
)
def test_probe_shared_clips(
    driving: Path, name: str, width: int, height: int, fps: float, frames: int, codec: str
) -> None:
    info = probe_video(driving / name)
    assert (info.width, info.height) == (width, height)
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.frame_count is not None and abs(info.frame_count - frames) <= 1
    assert info.duration is not None and info.duration == pytest.approx(frames / fps, abs=0.1)
    assert info.has_audio
    assert info.codec == codec
    assert info.path == driving / name


# --- reading --------------------------------------------------------------------------------------------


def test_read_frames_count_shape_and_layout(driving: Path) -> None:
    frames = list(read_frames(driving / "lp_d1_hist.mp4"))
    assert len(frames) == 16
    for frame in frames:
        assert frame.shape == (512, 512, 3)
        assert frame.dtype == np.uint8
        assert frame.flags.c_contiguous
    # A real face clip: neither blank nor identical frames.
    assert frames[0].std() > 10
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])


def test_read_frames_where_gives_the_wanted_frames_as_read_frames_does(driving: Path) -> None:
    every = list(read_frames(driving / "lp_d1_hist.mp4", max_side=256))
    asked: list[int] = []

    def every_third(index: int) -> bool:
        asked.append(index)
        return index % 3 == 0

    some = list(read_frames_where(driving / "lp_d1_hist.mp4", every_third, max_side=256))
    assert asked == list(range(16))  # asked once per frame, in order
    assert [i for i, _ in some] == [0, 3, 6, 9, 12, 15]
    for index, frame in some:
        np.testing.assert_array_equal(frame, every[index])


def test_read_frames_where_still_refuses_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableVideoError):
        read_frames_where(bad, lambda index: False)


def test_read_frames_is_lazy(driving: Path) -> None:
    frames = read_frames(driving / "lp_d18.mp4")
    assert isinstance(frames, Iterator)
    first = next(frames)
    assert first.shape == (480, 480, 3)
    frames.close()  # type: ignore[attr-defined]


def test_read_frames_max_side_downscales_keeping_aspect(driving: Path) -> None:
    small = list(read_frames(driving / "grid_bbaf2n.mpg", max_side=180))
    assert {f.shape for f in small} == {(144, 180, 3)}
    full = next(read_frames(driving / "grid_bbaf2n.mpg"))
    # The downscaled frame is the same picture: compare with a block-averaged full frame.
    reference = full.reshape(144, 2, 180, 2, 3).mean(axis=(1, 3))
    assert np.abs(small[0].astype(np.float32) - reference).mean() < 4


def test_read_frames_max_side_larger_than_frame_is_a_no_op(driving: Path) -> None:
    frame = next(read_frames(driving / "lp_d1_hist.mp4", max_side=4096))
    assert frame.shape == (512, 512, 3)


def test_read_mpeg_program_stream(driving: Path) -> None:
    frames = list(read_frames(driving / "grid_bbaf2n.mpg"))
    assert abs(len(frames) - 75) <= 1
    assert frames[0].shape == (288, 360, 3)


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mov", "libx264"), (".webm", "libvpx"), (".webm", "libvpx-vp9")]
)
def test_read_other_containers(driving: Path, tmp_path: Path, suffix: str, codec: str) -> None:
    target = tmp_path / f"clip{suffix}"
    written = _transcode(driving / "lp_d1_hist.mp4", target, codec)
    info = probe_video(target)
    assert (info.width, info.height) == (256, 256)
    assert info.codec == {"libx264": "h264", "libvpx": "vp8", "libvpx-vp9": "vp9"}[codec]
    frames = list(read_frames(target))
    assert len(frames) == written == 16
    assert frames[0].shape == (256, 256, 3)


def _upright_clip(driving: Path, frames: int = 12) -> list[np.ndarray]:
    """The first frames of a real face clip, cropped to landscape 480×360 so that a turn changes the shape."""
    return [f[60:420] for _, f in zip(range(frames), read_frames(driving / "lp_d5_hist.mp4"), strict=False)]


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_a_turned_video_is_read_upright(driving: Path, tmp_path: Path, rotation: int) -> None:
    upright = _upright_clip(driving)
    clip = write_shown_clip(tmp_path / f"phone{rotation}.mp4", upright, rotation=rotation)
    with av.open(str(clip)) as raw:  # the file really is stored turned
        first = next(raw.decode(video=0))
        assert first.rotation % 360 == rotation % 360
        assert (first.width, first.height) == ((360, 480) if rotation % 180 else (480, 360))
    info = probe_video(clip)
    assert (info.width, info.height, info.rotation) == (480, 360, rotation % 360)
    frames = list(read_frames(clip))
    assert len(frames) == len(upright)
    for got, want in zip(frames, upright, strict=True):
        assert got.shape == (360, 480, 3) and got.flags.c_contiguous
        assert np.abs(got.astype(np.float32) - want).mean() < 4  # H.264 at its default quality
    small = next(read_frames(clip, max_side=240))
    assert small.shape == (180, 240, 3)


def test_a_turned_driving_video_gives_the_motion_of_the_upright_one(driving: Path, tmp_path: Path) -> None:
    upright = _upright_clip(driving, frames=20)
    plain = write_shown_clip(tmp_path / "plain.mp4", upright)
    turned = write_shown_clip(tmp_path / "turned.mp4", upright, rotation=-90)
    codes = [[f.code for f in iter_driving(path, 30.0)] for path in (plain, turned)]
    assert all(c is not None for c in codes[0] + codes[1])
    for a, b in zip(*codes, strict=True):
        assert a is not None and b is not None
        assert np.abs(a.rotation - b.rotation).max() < np.radians(1.5)
        assert np.abs(a.blendshapes - b.blendshapes).max() < 0.1


def test_non_square_pixels_are_read_square(driving: Path, tmp_path: Path) -> None:
    # An anamorphic file (DV, broadcast MPEG-2): 240 coded columns, each pixel twice as wide as high.
    upright = _upright_clip(driving, frames=6)
    squeezed = [np.ascontiguousarray(f.reshape(360, 240, 2, 3).mean(axis=2).astype(np.uint8)) for f in upright]
    clip = write_shown_clip(tmp_path / "anamorphic.mp4", squeezed, sample_aspect_ratio=Fraction(2, 1))
    info = probe_video(clip)
    assert (info.width, info.height, info.rotation) == (480, 360, 0)
    frames = list(read_frames(clip))
    assert {f.shape for f in frames} == {(360, 480, 3)}
    # The width comes back by interpolation: close to the original, not equal to it.
    assert np.abs(frames[0].astype(np.float32) - upright[0]).mean() < 8


# --- bad inputs -----------------------------------------------------------------------------------------


def test_random_bytes_are_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableVideoError, match=r"noise\.mp4"):
        probe_video(bad)
    with pytest.raises(UnreadableVideoError):
        read_frames(bad)


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(UnreadableVideoError, match="empty"):
        probe_video(empty)
    with pytest.raises(UnreadableVideoError, match="empty"):
        read_frames(empty)


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableVideoError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(UnreadableVideoError, match="does not exist"):
        read_frames(tmp_path / "nope.mp4")


def test_first_2kb_of_an_mp4_is_unreadable(driving: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((driving / "lp_d5_hist.mp4").read_bytes()[:2048])
    with pytest.raises(UnreadableVideoError, match=r"cut\.mp4"):
        probe_video(cut)


def test_video_truncated_midway_reports_frames_read(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    # Random noise defeats compression, so the frames are spread evenly through the file.
    rng = np.random.default_rng(1)
    with VideoWriter(whole, width=128, height=96, fps=30) as writer:
        for _ in range(40):
            writer.write(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    data = whole.read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    frames_read = 0
    with pytest.raises(UnreadableVideoError, match=r"after \d+ ") as err:
        for _ in read_frames(cut):
            frames_read += 1
    assert 0 < frames_read < 40
    assert str(frames_read) in err.value.message


def test_video_stream_without_frames_is_unreadable(tmp_path: Path) -> None:
    hollow = tmp_path / "hollow.avi"
    with av.open(str(hollow), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()
    with pytest.raises(UnreadableVideoError, match="no frames"):
        probe_video(hollow)
    with pytest.raises(UnreadableVideoError, match="no decodable frames"):
        list(read_frames(hollow))


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    audio_only = tmp_path / "voice.mp4"
    with av.open(str(audio_only), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 44100, dtype=np.float32))[None, :]
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2, axis=0), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 44100, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(UnreadableVideoError, match="no video stream"):
        probe_video(audio_only)


@pytest.mark.parametrize("name", ["skimage_astronaut.png", "lp_s7.jpg"])
def test_photo_passed_as_video_is_unsupported(faces: Path, tmp_path: Path, name: str) -> None:
    photo = faces / "source" / name
    assert is_image_file(photo)
    with pytest.raises(UnsupportedFormatError, match="--source") as err:
        probe_video(photo)
    assert "image" in err.value.message and name in err.value.message
    with pytest.raises(UnsupportedFormatError):
        read_frames(photo)
    # The extension does not matter: a photo renamed to .mp4 is still a photo.
    disguised = tmp_path / "clip.mp4"
    disguised.write_bytes(photo.read_bytes())
    with pytest.raises(UnsupportedFormatError, match="still image"):
        probe_video(disguised)


def test_is_image_file_is_false_for_videos(driving: Path) -> None:
    assert not is_image_file(driving / "lp_d1_hist.mp4")
    assert not is_image_file(driving / "grid_bbaf2n.mpg")


def test_max_side_must_be_positive(driving: Path) -> None:
    with pytest.raises(ValueError, match="max_side"):
        read_frames(driving / "lp_d1_hist.mp4", max_side=0)


# --- writing --------------------------------------------------------------------------------------------


def test_write_and_read_back_two_seconds(tmp_path: Path) -> None:
    out = tmp_path / "gradient.mp4"
    _write_synthetic(out, width=160, height=120, frames=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradient.mp4"]

    info = probe_video(out)
    assert (info.width, info.height, info.frame_count) == (160, 120, 60)
    assert info.fps == pytest.approx(30.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.codec == "h264" and not info.has_audio
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    # +faststart puts the index (moov) before the media data, right after ftyp.
    head = out.read_bytes()[:64]
    assert head[4:8] == b"ftyp" and b"moov" in head

    errors = [
        np.abs(frame.astype(np.int16) - _gradient(120, 160, t).astype(np.int16)).mean()
        for t, frame in enumerate(read_frames(out))
    ]
    assert len(errors) == 60
    assert max(errors) < 6


def test_output_colour_is_bt709_and_says_so(faces: Path, tmp_path: Path) -> None:
    # A real photo's skin and saturated colours, written and read back as a player that honours the tags does.
    photo = np.ascontiguousarray(np.asarray(Image.open(faces / "source" / "lp_s7.jpg").convert("RGB"))[:640, :640])
    out = tmp_path / "colour.mp4"
    with VideoWriter(out, width=640, height=640, fps=25) as writer:
        for _ in range(3):
            writer.write(photo)
    with av.open(str(out)) as container:
        context = container.streams.video[0].codec_context
        assert (context.colorspace, context.color_primaries, context.color_trc, context.color_range) == (1, 1, 1, 1)
        frame = next(container.decode(video=0))
        error = {
            matrix: np.abs(frame.reformat(format="rgb24", src_colorspace=matrix).to_ndarray() - photo.astype(float))
            for matrix in ("ITU709", "ITU601")
        }
    assert error["ITU709"].mean() < 2.5  # what H.264 at CRF 18 loses
    assert error["ITU601"][..., 0].mean() > error["ITU709"][..., 0].mean() + 0.8  # the wrong matrix shifts red
    as_709 = frame.reformat(format="rgb24", src_colorspace="ITU709").to_ndarray()
    np.testing.assert_array_equal(next(read_frames(out)), as_709)  # reading honours the tag


def test_ntsc_frame_rate_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "ntsc.mp4"
    _write_synthetic(out, width=64, height=64, frames=30, fps=29.97)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    assert probe_video(out).fps == pytest.approx(29.97, abs=1e-3)


def test_odd_dimensions_are_cropped_to_even(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    _write_synthetic(out, width=101, height=75, frames=5)
    info = probe_video(out)
    assert (info.width, info.height) == (100, 74)
    first = next(read_frames(out))
    expected = _gradient(75, 101, 0)[:74, :100]
    assert np.abs(first.astype(np.int16) - expected.astype(np.int16)).mean() < 6


def test_write_rejects_wrong_shape_and_dtype(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "x.mp4", width=64, height=48, fps=25)
    try:
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((64, 48, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((48, 64, 3), np.float32))
        with pytest.raises(ValueError):
            writer.write(np.zeros((48, 64, 4), np.uint8))
        assert writer.frames_written == 0
        writer.write(np.zeros((48, 64, 3), np.uint8))
        assert writer.frames_written == 1
    finally:
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_partial_file_is_hidden_until_close(tmp_path: Path) -> None:
    final = tmp_path / "result.mp4"
    final.write_bytes(b"old output")
    with VideoWriter(final, width=64, height=64, fps=25) as writer:
        # Enough frames to get past the encoder's lookahead, so packets (and the file) exist.
        for t in range(50):
            writer.write(_gradient(64, 64, t))
        partials = [p.name for p in tmp_path.iterdir() if p != final]
        assert len(partials) == 1
        assert partials[0].startswith(".") and partials[0].endswith(".partial.mp4")
        assert final.read_bytes() == b"old output"
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"]
    assert probe_video(final).frame_count == 50
    # The published file gets the usual permissions for a new file, not a private temp file's 0600.
    reference = tmp_path / "reference.txt"
    reference.write_bytes(b"")
    assert final.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_exception_inside_with_block_leaves_no_file(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        VideoWriter(tmp_path / "out.mp4", width=64, height=64, fps=25) as writer,
    ):
        for t in range(50):
            writer.write(_gradient(64, 64, t))
        assert any(p.name.endswith(".partial.mp4") for p in tmp_path.iterdir())
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_closing_with_zero_frames_raises_and_leaves_no_file(tmp_path: Path) -> None:
    with (
        pytest.raises(EngineError, match="no frames were generated"),
        VideoWriter(tmp_path / "out.mp4", width=64, height=64, fps=25),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_explicit_abort_leaves_no_file(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", width=64, height=64, fps=25)
    writer.write(_gradient(64, 64, 0))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EngineError, match="closed"):
        writer.write(_gradient(64, 64, 1))


def test_audio_is_stream_copied_from_aac_source(driving: Path, tmp_path: Path) -> None:
    source = driving / "lp_d5_hist.mp4"  # 4.9 s of AAC; the output is 2 s, so the audio must be cut
    out = tmp_path / "with_audio.mp4"
    with VideoWriter(out, width=96, height=96, fps=30, audio_from=source) as writer:
        for t in range(60):
            writer.write(_gradient(96, 96, t))
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert _stream_seconds(audio) == pytest.approx(_stream_seconds(video), abs=0.1)
        copied = [bytes(p) for p in container.demux(audio) if p.size]
    with av.open(str(source)) as container:
        original = [bytes(p) for p in container.demux(audio=0) if p.size][: len(copied)]
    assert copied == original  # stream copy: packets are byte-identical, not re-encoded
    assert len(list(read_frames(out))) == 60


def test_audio_is_transcoded_from_mpeg_audio(driving: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid_audio.mp4"
    with VideoWriter(out, width=90, height=72, fps=25, audio_from=driving / "grid_bbaf2n.mpg") as writer:
        for t in range(50):
            writer.write(_gradient(72, 90, t))
    info = probe_video(out)
    assert info.has_audio and info.frame_count == 50
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 44100
        assert _stream_seconds(audio) == pytest.approx(2.0, abs=0.1)
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio)])
    assert np.abs(samples).max() > 0.01  # real speech came through, not silence


def _offset_copy(driving: Path, path: Path, *, picture_at: float, sound_at: float, aac: bool) -> Path:
    """lp_d5's pictures and GRID's speech (the only shared clip with sound), placed at the given times: a capture or
    a cut whose first picture is not at 0, with its sound starting before or after that picture."""
    with (
        av.open(str(driving / "lp_d5_hist.mp4")) as pictures,
        av.open(str(driving / "grid_bbaf2n.mpg")) as sound,
        av.open(str(path), "w") as out,
    ):
        video = out.add_stream_from_template(pictures.streams.video[0])
        if aac:  # every stream exists before the first packet is muxed
            audio = out.add_stream("aac", rate=sound.streams.audio[0].codec_context.sample_rate)
        else:
            audio = out.add_stream_from_template(sound.streams.audio[0])
        for packet in pictures.demux(video=0):
            if packet.dts is not None:
                shift = round(picture_at / packet.time_base)
                packet.pts, packet.dts, packet.stream = packet.pts + shift, packet.dts + shift, video
                out.mux(packet)
        if aac:
            for frame in sound.decode(audio=0):
                frame.pts = round((frame.pts * frame.time_base + Fraction(sound_at)) * frame.sample_rate)
                frame.time_base = Fraction(1, frame.sample_rate)
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
        else:
            for packet in sound.demux(audio=0):
                if packet.dts is not None:
                    shift = round(sound_at / packet.time_base)
                    packet.pts, packet.dts, packet.stream = packet.pts + shift, packet.dts + shift, audio
                    out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("picture_at", "sound_at", "aac"),
    [
        (0.0, 0.0, False),  # GRID's own timing; re-encoding must not add the AAC encoder's delay (23 ms)
        (2.0, 1.6, True),  # sound first, everything 2 s in: stream copy
        (2.0, 2.3, False),  # sound after the first picture: re-encoded, with silence before it
        (2.0, 1.6, False),  # sound first, re-encoded: its head is cut
    ],
)
def test_kept_audio_stays_in_sync_with_the_pictures(
    driving: Path, tmp_path: Path, picture_at: float, sound_at: float, aac: bool
) -> None:
    if picture_at == 0.0:
        source = driving / "grid_bbaf2n.mpg"
    else:
        suffix = ".mp4" if aac else ".mkv"
        source = _offset_copy(
            driving, tmp_path / f"offset{suffix}", picture_at=picture_at, sound_at=sound_at, aac=aac
        )
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=96, height=96, fps=30, audio_from=source) as writer:
        for t in range(75):
            writer.write(_gradient(96, 96, t))
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert _stream_seconds(container.streams.audio[0]) == pytest.approx(2.5, abs=0.1)
    assert abs(audio_lag_ms(source, out)) <= 1.0


def test_frame_times_of_a_constant_rate_clip(driving: Path) -> None:
    times = frame_times(driving / "lp_d5_hist.mp4")
    assert times is not None and len(times) == 148
    np.testing.assert_allclose(np.array(times) - times[0], np.arange(148) / 30.0, atol=1e-6)
    assert frame_times(driving / "grid_bbaf2n.mpg") is not None


def test_constant_rate_times_change_nothing(driving: Path, tmp_path: Path) -> None:
    # Times a tick off a constant rate (as containers round them) still give one tick of 1/fps per frame.
    times = [k / 30.0 + (0.004 if k % 2 else 0.0) for k in range(30)]
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=64, height=64, fps=30, frame_times=times) as writer:
        for t in range(30):
            writer.write(_gradient(64, 64, t))
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.time_base == Fraction(1, 15360)  # x264's own for 30 fps, not the variable-rate clock
        assert video.average_rate == 30


def test_a_variable_rate_video_keeps_its_timing(driving: Path, tmp_path: Path) -> None:
    source = tmp_path / "phone.mp4"
    times = write_variable_rate_clip(driving, source)
    assert frame_times(source) == pytest.approx(times, abs=1e-4)
    fps = probe_video(source).fps  # the average: 90 frames in 4 s
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=96, height=96, fps=fps, audio_from=source, frame_times=frame_times(source)) as writer:
        for t in range(len(times)):
            writer.write(_gradient(96, 96, t))
    assert frame_times(out) == pytest.approx(times, abs=1e-4)  # frame 30 at 2.0 s, not at 30 / 22.5 = 1.33 s
    assert len(list(read_frames(out))) == len(times)
    assert abs(audio_lag_ms(source, out)) <= 1.0


def test_audio_source_without_audio_gives_silent_output(tmp_path: Path) -> None:
    silent_source = tmp_path / "silent.mp4"
    _write_synthetic(silent_source, width=64, height=64, frames=10)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=64, height=64, fps=25, audio_from=silent_source) as writer:
        writer.write(_gradient(64, 64, 0))
    assert not probe_video(out).has_audio


def test_unreadable_audio_source_fails_early_and_leaves_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(UnreadableVideoError, match=r"bad\.mp4"):
        VideoWriter(out_dir / "out.mp4", width=64, height=64, fps=25, audio_from=bad)
    assert list(out_dir.iterdir()) == []


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "a.mp4", width=64, height=64, fps=0)
    with pytest.raises(ValueError, match="size"):
        VideoWriter(tmp_path / "a.mp4", width=1, height=64, fps=25)
    assert list(tmp_path.iterdir()) == []
