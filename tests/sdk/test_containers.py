"""A generated output remuxed (no re-encode) into every container FFmpeg reads, or re-encoded to HEVC, VP9 and AV1,
is still traced by ``verify``: its watermark read, its C2PA state Absent where the container cannot carry one,
and through the Client attributed to its generation. Before, ``verify`` refused Matroska, WebM and MPEG-TS (the
C2PA reader's "not supported" became exit 6 / HTTP 500) and never looked at their watermark."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.bitstream import BitStreamFilterContext

from watermark.reading import ManifestState
from watermark.video_io import iter_frames
from xp_sdk import AnimationResult, Client, init_deployment
from xp_sdk.home import Home
from xp_sdk.provenance import ProvenanceKeys, load_provenance_keys
from xp_sdk.verify import Attribution, verify

SHORT_CLIP = "lp_d1_hist.mp4"


class Made:
    def __init__(self, root: Path, faces: Path) -> None:
        init = init_deployment(root / "home", tenant="acme")
        self.client = Client(init.api_key.secret, home=init.home)
        astronaut = faces / "source" / "skimage_astronaut.png"
        eileen = self.client.subjects.register("Eileen Collins", [astronaut]).id
        self.client.consents.grant(eileen, evidence=b"Eileen Collins consents (test)")
        self.output = root / "out.mp4"
        self.result: AnimationResult = self.client.animate(
            astronaut, subject=eileen, driving=faces / "driving" / SHORT_CLIP, out=self.output
        )
        self.keys: ProvenanceKeys = load_provenance_keys(Home(init.home))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Made]:
    generated = Made(tmp_path_factory.mktemp("containers"), faces)
    yield generated
    generated.client.close()


def remux(src: Path, dst: Path, *, audio: str = "keep") -> None:
    """Copy ``src``'s video packets into ``dst`` (container from its suffix) untouched; ``audio``: ``keep`` its
    audio packets, ``strip`` them, or ``replace`` them with a new AAC tone."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        video_in = source.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        audio_in = source.streams.audio[0] if source.streams.audio and audio == "keep" else None
        audio_out = out.add_stream_from_template(audio_in) if audio_in is not None else None
        tone = out.add_stream("aac", rate=48000) if audio == "replace" else None
        # AVI stores H.264 as Annex B start codes, not MP4's length prefixes (ffmpeg -c copy converts alike).
        annex_b = BitStreamFilterContext("h264_mp4toannexb", video_in, video_out) if dst.suffix == ".avi" else None
        streams = [s for s in (video_in, audio_in) if s is not None]
        for packet in source.demux(streams):
            if packet.dts is None:
                continue
            is_video = packet.stream is video_in
            for copied in annex_b.filter(packet) if annex_b is not None and is_video else [packet]:
                copied.stream = video_out if is_video else audio_out
                out.mux(copied)
        if tone is not None:
            samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
            for chunk in (frame, None):
                out.mux(tone.encode(chunk))


def reencode_to(src: Path, dst: Path, codec: str, options: dict[str, str]) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV's FFmpeg has no {codec} encoder")
    frames = list(iter_frames(src))
    with av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = options
        for pixels in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))


@pytest.mark.parametrize("suffix", [".mkv", ".mov", ".ts", ".avi", ".mp4"])
def test_a_remux_into_any_container_is_traced(made: Made, tmp_path: Path, suffix: str) -> None:
    copy = tmp_path / f"remuxed{suffix}"
    remux(made.output, copy)
    offline = verify(copy, keys=made.keys, trust_anchors=made.keys.trust_anchors)
    assert offline.watermark.detected and offline.watermark.payload == made.result.generation_id
    assert offline.c2pa.state is not ManifestState.TRUSTED  # the manifest does not survive a remux
    report = made.client.verify(copy)
    assert report.attribution is Attribution.ATTRIBUTED and report.generation_id == made.result.generation_id


@pytest.mark.parametrize("audio", ["strip", "replace"])
def test_a_copy_with_its_audio_stripped_or_replaced_is_traced(made: Made, tmp_path: Path, audio: str) -> None:
    copy = tmp_path / f"audio-{audio}.mkv"
    remux(made.output, copy, audio=audio)
    with av.open(str(copy)) as opened:
        assert len(opened.streams.audio) == (1 if audio == "replace" else 0)
    report = made.client.verify(copy)
    assert report.c2pa.state is ManifestState.ABSENT
    assert report.attribution is Attribution.ATTRIBUTED and report.generation_id == made.result.generation_id


@pytest.mark.parametrize(
    ("name", "codec", "options"),
    [
        ("hevc.mp4", "libx265", {"crf": "28", "preset": "veryfast", "x265-params": "log-level=error"}),
        ("vp9.webm", "libvpx-vp9", {"crf": "33", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
        ("av1.mkv", "libsvtav1", {"crf": "35", "preset": "10"}),
    ],
)
def test_a_reencode_to_another_codec_is_traced(
    made: Made, tmp_path: Path, name: str, codec: str, options: dict[str, str]
) -> None:
    copy = tmp_path / name
    reencode_to(made.output, copy, codec, options)
    report = made.client.verify(copy)
    assert report.watermark.detected, report.watermark
    assert report.attribution is Attribution.ATTRIBUTED and report.generation_id == made.result.generation_id


def test_an_mpeg_program_stream_is_verified_not_refused(made: Made, faces: Path) -> None:
    # A real MPEG-PS clip (never generated): C2PA cannot carry a manifest there, so it is Absent; no mark.
    report = made.client.verify(faces / "driving" / "grid_bbaf2n.mpg")
    assert report.c2pa.state is ManifestState.ABSENT
    assert report.watermark.checked and not report.watermark.detected
    assert report.attribution is Attribution.NONE and report.generation is None
