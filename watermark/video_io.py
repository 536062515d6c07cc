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


def iter_frames(path: Path, *, gray: bool = False, max_frames: int | None = None) -> Iterator[Frame]:
    """Decoded frames in order, RGB (H×W×3) or luma (H×W) uint8, as stored: not turned by a display rotation nor
    stretched to square pixels, since a mark lives in the stored pictures (see :class:`Presentation`)."""
    try:
        container = av.open(str(path))
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
                yield _luma(frame) if gray else np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            if count == 0:
                raise UnreadableVideoError(f"cannot decode {path}: {exc}") from exc
            # A damaged tail still leaves the frames before it to read a mark from.


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
        with av.open(str(path)) as container:
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
        with av.open(str(path)) as container:
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
    """H.264 yuv420p MP4 written to a hidden temp file and renamed into place only by ``commit``."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        rate: Fraction,
        crf: int = 18,
        shown: Presentation | None = None,
    ) -> None:
        self._path = path
        self._temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        self._container = av.open(str(self._temp), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        # Colour said, not guessed: untagged H.264 is decoded as BT.601 by some players and BT.709 by others.
        context = self._stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = _BT709
        context.color_range = _LIMITED_RANGE
        self._reformatter = av.video.reformatter.VideoReformatter()
        if shown is not None and shown.rotation:
            self._stream.set_display_rotation(shown.rotation)
        if shown is not None and shown.sample_aspect_ratio is not None:
            self._stream.codec_context.sample_aspect_ratio = shown.sample_aspect_ratio

    def write(self, frame: Frame) -> None:
        yuv = self._reformatter.reformat(
            av.VideoFrame.from_ndarray(frame, format="rgb24"),
            format="yuv420p",
            dst_colorspace=_BT709,
            dst_color_range=_LIMITED_RANGE,
            dst_color_trc=_BT709,
            dst_color_primaries=_BT709,
        )
        for packet in self._stream.encode(yuv):
            self._container.mux(packet)

    def commit(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._temp, self._path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
        self._temp.unlink(missing_ok=True)


def even(value: int) -> int:
    return value - value % 2


__all__ = ["Mp4Writer", "Presentation", "even", "iter_frames", "presentation", "video_rate"]
