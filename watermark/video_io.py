"""Minimal PyAV reading and writing for marking and checking existing files (the engine has its own writer)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from watermark.errors import UnreadableVideoError
from watermark.methods.base import Frame

# What an input may be opened as: FFmpeg otherwise guesses the demuxer from the bytes, and some (HLS, ffconcat)
# open other files or URLs named inside the input. The engine keeps the same list (xp_sdk/engine/video.py); the two
# packages import nothing of each other.
INPUT_OPTIONS = {
    "format_whitelist": "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,flv,asf,ogg,mxf,ivf,h264,hevc",
    "protocol_whitelist": "file",
}


def iter_frames(path: Path, *, gray: bool = False, max_frames: int | None = None) -> Iterator[Frame]:
    """Decoded frames in order, RGB (H×W×3) or luma (H×W) uint8, as stored: not turned by a display rotation nor
    stretched to square pixels, since a mark lives in the stored pictures (see :class:`Presentation`)."""
    for frame in _decoded(path, max_frames):
        yield _luma(frame) if gray else _rgb(frame)


def iter_timed_frames(path: Path) -> Iterator[tuple[Frame, float | None]]:
    """RGB frames as :func:`iter_frames` gives them, each with the second it is shown at (None where the
    container gives no time): a re-encode that keeps these keeps a variable frame rate and its sound in step."""
    for frame in _decoded(path, None):
        yield _rgb(frame), None if frame.pts is None else float(frame.time)


def _decoded(path: Path, max_frames: int | None) -> Iterator[av.VideoFrame]:
    try:
        container = av.open(str(path), options=INPUT_OPTIONS)
    except (av.error.FFmpegError, OSError) as exc:
        raise UnreadableVideoError(f"cannot open {path} as a video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise UnreadableVideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = 0
        try:
            for frame in container.decode(stream):
                yield frame
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            if count == 0:
                raise UnreadableVideoError(f"cannot decode {path}: {exc}") from exc
            # A damaged tail still leaves the frames before it to read a mark from.


def _rgb(frame: av.VideoFrame) -> Frame:
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


_PLANAR_LUMA = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray", "nv12"})


def _luma(frame: av.VideoFrame) -> Frame:
    # The Y plane as it is, without a swscale pass: ten times faster, and a mark is indifferent to the range.
    if frame.format.name in _PLANAR_LUMA:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
        return np.ascontiguousarray(rows[:, : frame.width])
    return np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)


def video_rate(path: Path) -> Fraction:
    try:
        with av.open(str(path), options=INPUT_OPTIONS) as container:
            rate = container.streams.video[0].average_rate
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise UnreadableVideoError(f"cannot open {path} as a video: {exc}") from exc
    return Fraction(rate) if rate else Fraction(25)


_BT709 = 1  # AVCOL_SPC_BT709, AVCOL_PRI_BT709 and AVCOL_TRC_BT709 alike
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


@dataclass(frozen=True)
class Presentation:
    """How a player shows a file's stored pictures: turned by ``rotation`` degrees counter-clockwise (the display
    matrix a phone writes when held upright) and with pixels ``sample_aspect_ratio`` times as wide as high.

    Marking re-encodes the stored pictures unchanged but for the mark, so the copy must carry both, or a phone
    video comes out sideways and an anamorphic one squeezed.
    """

    rotation: float = 0.0
    sample_aspect_ratio: Fraction | None = None


def presentation(path: Path) -> Presentation:
    """The display rotation (read from the first frame, where PyAV exposes it) and pixel shape of ``path``."""
    try:
        with av.open(str(path), options=INPUT_OPTIONS) as container:
            stream = container.streams.video[0]
            aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
            rotation = 0.0
            for frame in container.decode(stream):
                rotation = float(frame.rotation)
                break
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise UnreadableVideoError(f"cannot open {path} as a video: {exc}") from exc
    if aspect is None or aspect <= 0 or aspect == 1:
        return Presentation(rotation)
    return Presentation(rotation, Fraction(aspect))


class Mp4Writer:
    """H.264 yuv420p MP4 written to a hidden temp file and renamed into place only by ``commit``.

    Frames keep the times they are given (from the first one's), so a variable frame rate survives; with
    ``sound_from`` the first audio stream of that file comes along, kept where it was against the first frame:
    copied where MP4 carries its codec, else re-encoded to AAC."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        rate: Fraction,
        crf: int = 18,
        shown: Presentation | None = None,
        sound_from: Path | None = None,
    ) -> None:
        self._path = path
        self._temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        self._rate = rate
        self._container = av.open(str(self._temp), mode="w", format="mp4")
        try:
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
            # Colour said, not guessed: untagged H.264 is decoded as BT.601 by some players and BT.709 by others.
            context = self._stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = _BT709
            context.color_range = _LIMITED_RANGE
            context.time_base = _TICK
            self._reformatter = av.video.reformatter.VideoReformatter()
            if shown is not None and shown.rotation:
                self._stream.set_display_rotation(shown.rotation)
            if shown is not None and shown.sample_aspect_ratio is not None:
                context.sample_aspect_ratio = shown.sample_aspect_ratio
            # Every stream exists before the first packet is muxed; the sound's packets follow in commit().
            self._sound = _Sound(sound_from, self._container) if sound_from is not None else None
        except BaseException:
            self.abort()
            raise
        self._frames = 0
        self._origin: float | None = None
        self._last_tick = -1

    def write(self, frame: Frame, at: float | None = None) -> None:
        """Encode ``frame``, shown ``at`` that second of the source (None: one frame after the last)."""
        yuv = self._reformatter.reformat(
            av.VideoFrame.from_ndarray(frame, format="rgb24"),
            format="yuv420p",
            dst_colorspace=_BT709,
            dst_color_range=_LIMITED_RANGE,
            dst_color_trc=_BT709,
            dst_color_primaries=_BT709,
        )
        if self._origin is None:
            self._origin = at if at is not None else 0.0
        seconds = at - self._origin if at is not None else self._frames / self._rate
        # Times must rise: a frame whose container time repeats or goes back takes the next tick.
        tick = max(round(seconds / _TICK), self._last_tick + 1)
        yuv.pts, yuv.time_base = tick, _TICK
        self._last_tick = tick
        self._frames += 1
        for packet in self._stream.encode(yuv):
            self._container.mux(packet)

    def commit(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._sound is not None:
            self._sound.mux(self._origin or 0.0)
        self._container.close()
        os.replace(self._temp, self._path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
        sound = getattr(self, "_sound", None)
        if sound is not None:
            sound.close()
        self._temp.unlink(missing_ok=True)


_TICK = Fraction(1, 90000)  # the MPEG clock: exact for every common frame rate
# Audio codecs the MP4 muxer carries and players play from MP4, copied as they are; others are re-encoded.
_MP4_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3"})


class _Sound:
    """The first audio stream of a source file, carried into a re-encoded copy."""

    def __init__(self, source: Path, out: av.container.OutputContainer) -> None:
        self._out = out
        self._src = av.open(str(source), options=INPUT_OPTIONS)
        self._in = self._src.streams.audio[0] if self._src.streams.audio else None
        self._stream: av.audio.stream.AudioStream | None = None
        if self._in is None:
            return
        if self._in.codec_context.name in _MP4_AUDIO:
            self._stream = out.add_stream_from_template(self._in)
        else:
            rate = self._in.codec_context.sample_rate or 44100
            self._stream = out.add_stream("aac", rate=rate)
            layout = self._in.codec_context.layout
            self._stream.layout = "stereo" if layout.nb_channels > 2 else layout.name

    def mux(self, origin: float) -> None:
        """Everything from ``origin`` (the source second of the copy's first frame) on, that much earlier."""
        if self._in is None or self._stream is None:
            self.close()
            return
        base = self._in.time_base or Fraction(1, self._in.codec_context.sample_rate or 1)
        if self._in.codec_context.name in _MP4_AUDIO:
            shift = round(Fraction(origin) / base)
            for packet in self._src.demux(self._in):
                if packet.dts is None:
                    continue
                if packet.pts is not None and (packet.pts + (packet.duration or 0)) * base < origin:
                    continue
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts -= shift
                packet.stream = self._stream
                self._out.mux(packet)
        else:
            written: int | None = None
            for frame in self._src.decode(self._in):
                if written is None:
                    start = 0.0 if frame.pts is None else float(frame.pts * base) - origin
                    if start < 0:
                        continue  # sound from before the first picture
                    written = round(start * frame.sample_rate)
                frame.pts, frame.time_base = written, Fraction(1, frame.sample_rate)
                written += frame.samples
                self._out.mux(self._stream.encode(frame))
            self._out.mux(self._stream.encode(None))
        self.close()

    def close(self) -> None:
        self._src.close()


def even(value: int) -> int:
    return value - value % 2


__all__ = ["Mp4Writer", "Presentation", "even", "iter_frames", "iter_timed_frames", "presentation", "video_rate"]
