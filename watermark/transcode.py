"""Re-encoding a video as a platform would: a new mark is read back from such a copy before it is published
(``xp_sdk.generate``), and the robustness bench (``bench/attacks.py``) builds its attacks on these passes.

Every pass writes an H.264 (or H.265) yuv420p MP4 that keeps the source's frame rate unless ``retime`` changes it;
odd sizes lose their last row/column. A pass that changes no pixels hands the decoded YUV pictures straight to the
encoder, as ``ffmpeg -i in.mp4 -crf N out.mp4`` would, so a pure re-encode adds no RGB round trip of its own.
Pure PyAV + numpy: no ffmpeg command line, and nothing from the engine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from watermark.video_io import INPUT_OPTIONS

Frame = npt.NDArray[np.uint8]
"""An RGB frame, H×W×3 uint8."""

DEFAULT_FPS = 25.0

TimedPictures = Iterator[tuple[float, Any]]
"""Decoded pictures with the second each is shown at, the first at 0."""
Retime = Callable[[TimedPictures, float], tuple[TimedPictures, float]]
"""Chooses which pictures are shown when: (pictures, fps) in, (pictures, the output fps) out."""


@dataclass(frozen=True)
class Encoding:
    """One encoding pass: constant-quality H.264 (libx264) or H.265 (libx265), yuv420p MP4."""

    crf: int = 18
    codec: str = "libx264"
    preset: str = "veryfast"
    x264_params: str = ""
    """Extra libx264 settings, ``key=value:key=value`` as in ``ffmpeg -x264-params``."""

    def __str__(self) -> str:
        name = {"libx264": "H.264", "libx265": "H.265"}.get(self.codec, self.codec)
        extra = f" {self.x264_params}" if self.x264_params else ""
        return f"{name} crf {self.crf} {self.preset}{extra}"

    def reproducible(self) -> Encoding:
        """The same pass made bit-exact from run to run.

        This libx264 build (PyAV's wheel) is not: with its SIMD code, macroblock-tree rate control reads memory it
        never wrote, so one input can encode to slightly different streams from one run to the next (pixel
        differences of tens of levels in places). Without mbtree every run gives the same bytes.
        """
        if self.codec != "libx264":
            return self
        return replace(self, x264_params=":".join(p for p in (self.x264_params, "mbtree=0") if p))


def frame_rate(fps: float) -> Fraction:
    # 29.97 and friends are the NTSC rates n×1000/1001, which a plain limit_denominator would turn into 2997/100.
    for nominal in (24, 30, 48, 60, 120):
        ntsc = Fraction(nominal * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.005:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


class VideoEncoder:
    """Writes frames to ``path``, opened at the first frame (whose size it takes)."""

    def __init__(self, path: Path, encoding: Encoding, fps: float, threads: int) -> None:
        self.path, self.encoding, self.threads = path, encoding, threads
        self.rate = frame_rate(fps)
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None

    def _open(self, width: int, height: int) -> None:
        options = {"crf": str(self.encoding.crf), "preset": self.encoding.preset}
        if self.encoding.codec == "libx265":
            options["x265-params"] = "log-level=error"
        elif self.encoding.x264_params:
            options["x264-params"] = self.encoding.x264_params
        self._container = av.open(str(self.path), mode="w", format="mp4")
        stream = self._container.add_stream(self.encoding.codec, rate=self.rate, options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = self.threads
        self._stream = stream

    def write_rgb(self, frame: Frame) -> None:
        h, w = frame.shape[0] - frame.shape[0] % 2, frame.shape[1] - frame.shape[1] % 2
        pixels = np.ascontiguousarray(frame[:h, :w])
        self.write_picture(av.VideoFrame.from_ndarray(pixels, format="rgb24"))

    def write_picture(self, picture: Any) -> None:
        if self._stream is None:
            self._open(picture.width, picture.height)
        picture.pts = self.frames
        picture.time_base = 1 / self.rate
        # A decoded keyframe keeps its picture type, which the encoder would obey; the encoder chooses its own.
        picture.pict_type = 0
        self._container.mux(self._stream.encode(picture))
        self.frames += 1

    def close(self) -> None:
        if self._stream is None:
            raise ValueError(f"no frames to write to {self.path}")
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def abort(self) -> None:
        if self._container is not None:
            self._container.close()


def source_fps(stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return DEFAULT_FPS


def timed_pictures(container: Any, stream: Any, fps: float) -> Iterator[tuple[float, Any]]:
    first: float | None = None
    for i, picture in enumerate(container.decode(stream)):
        t = picture.time if picture.time is not None else i / fps
        if first is None:
            first = t
        yield t - first, picture


def transcode(
    src: Path,
    dst: Path,
    encoding: Encoding,
    *,
    retime: Retime | None = None,
    transform: Callable[[Frame], Frame] | None = None,
    threads: int = 0,
) -> int:
    """Decode ``src``, ``retime`` its pictures and ``transform`` each one's RGB pixels (either may be None),
    encode ``dst`` in one pass; returns the frames written. ``dst`` is removed if the pass fails."""
    with av.open(str(src), options=INPUT_OPTIONS) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = source_fps(stream)
        timed: TimedPictures = timed_pictures(container, stream, fps)
        if retime is not None:
            timed, fps = retime(timed, fps)
        encoder = VideoEncoder(dst, encoding, fps, threads)
        try:
            for _, picture in timed:
                if transform is not None or picture.width % 2 or picture.height % 2:
                    rgb: Frame = picture.to_ndarray(format="rgb24")
                    encoder.write_rgb(transform(rgb) if transform is not None else rgb)
                else:
                    encoder.write_picture(picture.reformat(format="yuv420p"))
            encoder.close()
        except BaseException:
            encoder.abort()
            dst.unlink(missing_ok=True)
            raise
    return encoder.frames


def reencode(
    src: Path, dst: Path, crf: int, *, codec: str = "libx264", preset: str = "veryfast", threads: int = 0
) -> None:
    """Re-encode ``src`` to ``dst`` at ``crf``, pixels and frame rate unchanged; ``dst`` appears whole or not at
    all (written beside it, then renamed)."""
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix=".reencode-", dir=dst.parent) as tmp:
        out = Path(tmp) / "pass0.mp4"
        transcode(Path(src), out, Encoding(crf, codec, preset), threads=threads)
        os.replace(out, dst)
