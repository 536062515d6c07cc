"""Reading driving videos and writing generated clips with PyAV (the ffmpeg libraries, no ffmpeg CLI needed).

Reading streams one RGB frame at a time, as a player shows it: turned upright when the file says it was
recorded turned (a phone held upright records landscape pixels and a display rotation), and with square
pixels when the file says its pixels are not square (DV, broadcast MPEG-2). Writing produces H.264/yuv420p
MP4 with ``+faststart``, optionally carrying over the audio of another file, and publishes the result
atomically: the final path appears only after a successful ``close()``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np

from xp_sdk.engine.paths import as_file_path
from xp_sdk.errors import (
    EngineError,
    InvalidInputError,
    UnreadableVideoError,
    UnsupportedFormatError,
    VideoTooLongError,
)

DEFAULT_FPS = 25.0
# Demuxers ffmpeg picks for still pictures; the "<codec>_pipe" family (png_pipe, jpeg_pipe, ...) is
# matched by suffix.
_IMAGE_DEMUXERS = frozenset({"image2", "image2pipe", "webp", "apng"})
# What an input may be opened as. FFmpeg otherwise guesses the demuxer from the bytes, and several read other
# files or URLs named inside the input: an uploaded HLS playlist or ffconcat script made the server open a file of
# its own choosing as the "driving video"; the tty demuxer took a text file for a 5-frame video.
INPUT_OPTIONS = {
    "format_whitelist": "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,flv,asf,ogg,mxf,ivf,h264,hevc",
    "protocol_whitelist": "file",
}
# Leading bytes of the still-image formats a user is likely to pass by mistake.
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"BM",  # BMP
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    """Of the frames as :func:`read_frames` yields them: upright, square pixels."""
    height: int
    fps: float
    frame_count: int | None
    """From the container index, or estimated from duration × fps when the container has none (MPEG-PS)."""
    duration: float | None
    """Seconds."""
    has_audio: bool
    codec: str
    container: str
    rotation: int = 0
    """Degrees counter-clockwise (0, 90, 180 or 270) the stored pictures are turned to show them upright."""


DEFAULT_MAX_DRIVING_SECONDS = 600.0
DEFAULT_MAX_DRIVING_FRAMES = 18_000
"""Ten minutes at 30 frames a second. Each driving frame is decoded, analysed and generated (about 10 ms of CPU
each at least), so the length a caller may send is the work a caller may cause."""


@dataclass(frozen=True)
class DrivingLimits:
    """The longest driving video accepted: in seconds of pictures, and in frames (a header can be honest about
    one and not the other: 72 000 frames in 2 400 s, or in 0.1 s at a rate that lies)."""

    max_seconds: float = DEFAULT_MAX_DRIVING_SECONDS
    max_frames: int = DEFAULT_MAX_DRIVING_FRAMES

    def __post_init__(self) -> None:
        if not (isinstance(self.max_seconds, int | float) and math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise InvalidInputError(f"max_seconds must be a positive number of seconds, got {self.max_seconds!r}")
        if isinstance(self.max_frames, bool) or not (isinstance(self.max_frames, int) and self.max_frames > 0):
            raise InvalidInputError(f"max_frames must be a positive whole number, got {self.max_frames!r}")

    def describe(self) -> str:
        return f"{self.max_seconds:g} s and {self.max_frames} frames"

    def check_length(self, what: str, seconds: float | None, frames: int | None) -> None:
        """:class:`VideoTooLongError` naming ``what`` when ``seconds`` or ``frames`` (each None when unknown) is
        over the limit."""
        over = []
        if seconds is not None and seconds > self.max_seconds:
            over.append(f"{seconds:.1f} s")
        if frames is not None and frames > self.max_frames:
            over.append(f"{frames} frames")
        if over:
            raise VideoTooLongError(
                f"{what} is {' and '.join(over)} long; the limit is {self.describe()}. Send a shorter clip"
            )

    def check_count(self, file: Path, frames: int) -> None:
        if frames > self.max_frames:
            raise VideoTooLongError(
                f"driving video {file} goes on past {self.max_frames} frames; the limit is {self.describe()}. "
                "Send a shorter clip"
            )

    def check_seconds(self, file: Path, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise VideoTooLongError(
                f"driving video {file} goes on past {self.max_seconds:g} s; the limit is {self.describe()}. "
                "Send a shorter clip"
            )


def check_driving_limits(path: str | os.PathLike[str], *, max_seconds: float, max_frames: int) -> VideoInfo:
    """The video's :class:`VideoInfo` when its header says it is no longer than ``max_seconds`` and ``max_frames``;
    else :class:`VideoTooLongError`, before any frame is decoded (the header is read, and one frame for its
    rotation). A header that says neither passes here: :func:`read_frames_where` with a :class:`DrivingLimits`
    stops such a video when its frames pass the limit."""
    limits = DrivingLimits(max_seconds, max_frames)
    info = probe_video(path)
    limits.check_length(f"driving video {info.path}", info.duration, info.frame_count)
    return info


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with the signature of a still image (PNG, JPEG, WebP, BMP, TIFF)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head.startswith(_IMAGE_MAGIC)


def _image_error(file: Path) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{file} is a still image, not a video; pass a photo with --source and a video as the driving input"
    )


def _open_container(file: Path, what: str) -> av.container.InputContainer:
    if not file.is_file():
        raise UnreadableVideoError(f"{what} {file} does not exist or is not a file")
    if file.stat().st_size == 0:
        raise UnreadableVideoError(f"{what} {file} is empty (0 bytes)")
    if is_image_file(file):
        raise _image_error(file)
    try:
        container = av.open(str(file), mode="r", options=INPUT_OPTIONS)
    except (av.error.FFmpegError, OSError) as exc:
        raise UnreadableVideoError(
            f"{what} {file} could not be opened (corrupt, truncated, or not a video in MP4, MOV, MKV, WebM, AVI, "
            f"MPEG or MPEG-TS): {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    fmt = container.format.name
    if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
        container.close()
        raise _image_error(file)
    return container


def _open_input(file: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    container = _open_container(file, "video")
    # Cover art in audio files shows up as a one-picture "video" stream; it is not a video.
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        container.close()
        raise UnreadableVideoError(f"{file} contains no video stream; pass a video file with moving pictures")
    # PyAV leaves codec_context unset when the bundled ffmpeg has no decoder for the stream.
    if streams[0].codec_context is None:
        container.close()
        raise UnsupportedFormatError(
            f"video {file} uses a video codec this ffmpeg build cannot decode; convert it to H.264 MP4 first"
        )
    return container, streams[0]


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return DEFAULT_FPS


def _frame_rate(fps: float) -> Fraction:
    # 29.97 and friends are conventionally the NTSC rates n×1000/1001, which a plain limit_denominator
    # would turn into 2997/100.
    for nominal in (24, 30, 48, 60, 120):
        ntsc = Fraction(nominal * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.005:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video without decoding it; raises a typed error for anything that is not a usable video."""
    file = as_file_path(path, "video")
    container, stream = _open_input(file)
    with container:
        ctx = stream.codec_context
        if ctx.width <= 0 or ctx.height <= 0:
            raise UnreadableVideoError(
                f"video {file} has no picture size in its header (corrupt or truncated)"
            )
        fps = _stream_fps(stream)
        turns = _first_frame_turns(container, stream)
        width, height = _display_size(ctx.width, ctx.height, stream, turns)
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frame_count: int | None = stream.frames or None
        if frame_count is None and duration is not None:
            frame_count = math.floor(duration * fps + 0.5)
        if frame_count == 0:
            raise UnreadableVideoError(f"video {file} contains no frames")
        return VideoInfo(
            path=file,
            width=width,
            height=height,
            fps=fps,
            frame_count=frame_count,
            duration=duration,
            has_audio=bool(container.streams.audio),
            codec=ctx.name,
            container=container.format.name,
            rotation=90 * turns,
        )


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show ``frame`` upright, from its display matrix (ffmpeg's sense:
    a phone held upright typically records landscape pixels with -90, one clockwise turn)."""
    return round(frame.rotation / 90.0) % 4


def _first_frame_turns(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    # The display matrix reaches PyAV on decoded frames, not on the stream, so probing decodes one frame.
    # A stream that cannot decode one is reported by read_frames with its own message; here it is upright.
    try:
        for frame in container.decode(stream):
            return _quarter_turns(frame)
    except av.error.FFmpegError:
        pass
    return 0


def _display_size(width: int, height: int, stream: av.video.stream.VideoStream, turns: int) -> tuple[int, int]:
    """(width, height) of a coded ``width`` × ``height`` picture as shown: square pixels, then turned."""
    aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if aspect is not None and aspect > 0 and aspect != 1:
        # As players do: the height stays, the width takes the pixel shape.
        width = max(1, round(width * aspect))
    return (height, width) if turns % 2 else (width, height)


def read_frames(path: str | os.PathLike[str], *, max_side: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video in order as contiguous RGB ``uint8`` arrays (H, W, 3).

    With ``max_side``, frames whose longer side exceeds it are downscaled (aspect kept, area filter) in the
    same swscale pass as the colour conversion, so no full-size RGB copy is made. A missing, corrupt or
    non-video file raises here, before the first frame is requested.
    """
    return (rgb for _, rgb in read_frames_where(path, None, max_side=max_side))


def read_frames_where(
    path: str | os.PathLike[str],
    wanted: Callable[[int], bool] | None,
    *,
    max_side: int | None = None,
    limits: DrivingLimits | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB frame)`` for the frames ``wanted(index)`` accepts (all without it), in order, as
    :func:`read_frames` makes them. The others are decoded, as a video's later frames need them, but not
    converted, which at 1080p is 3 of the 5 ms a frame costs. ``wanted`` is asked as each frame is reached.

    With ``limits``, a frame past its count or its seconds raises :class:`VideoTooLongError` when it is
    reached: the header may say the video is short (or say nothing) while its frames keep coming.
    """
    if max_side is not None and max_side < 2:
        raise ValueError(f"max_side must be at least 2, got {max_side}")
    file = as_file_path(path, "video")
    _open_input(file)[0].close()
    return _decode_frames(file, max_side, wanted, limits)


def frame_times(path: str | os.PathLike[str], *, limits: DrivingLimits | None = None) -> list[float] | None:
    """When each frame of a video is shown, in seconds, in display order, from its container's timestamps (the
    packets are read, not decoded); None when the container leaves some frames without a time (MPEG-PS).

    Phones record at a variable rate (fewer frames a second in dim light), so the average rate alone misplaces
    frames by up to a large fraction of a second mid-clip; :class:`VideoWriter` takes these times for that.
    With ``limits``, more packets than its frames raise :class:`VideoTooLongError` as soon as they are read.
    """
    file = as_file_path(path, "video")
    container, stream = _open_input(file)
    times: list[float] = []
    with container:
        try:
            for packet in container.demux(stream):
                if packet.dts is None and packet.pts is None:  # the demuxer's end-of-stream marker
                    continue
                if packet.pts is None:
                    return None
                if not packet.is_discard:  # a cut's edit list hides frames before its start
                    times.append(float(packet.pts * packet.time_base))
                    if limits is not None:
                        limits.check_count(file, len(times))
        except av.error.FFmpegError:
            return None  # a damaged file: reading its frames reports that, with the frame it stopped at
    times.sort()
    return times or None


def shown_rgb(
    frame: av.VideoFrame, stream: av.video.stream.VideoStream, *, max_side: int | None = None
) -> np.ndarray:
    """``frame`` of ``stream`` as a player shows it, as contiguous RGB ``uint8``: square pixels, turned upright by
    its display rotation, its longer side at most ``max_side``."""
    # Square pixels and the size cap in the same swscale pass as the colour conversion; the turn after it, on the
    # smaller picture.
    width, height = _display_size(frame.width, frame.height, stream, 0)
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width = max(1, round(width * scale))
        height = max(1, round(height * scale))
    rgb = frame.reformat(width, height, format="rgb24", interpolation="AREA").to_ndarray()
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def _decode_frames(
    file: Path, max_side: int | None, wanted: Callable[[int], bool] | None, limits: DrivingLimits | None
) -> Iterator[tuple[int, np.ndarray]]:
    count = 0
    start: float | None = None
    container, stream = _open_input(file)
    with container:
        # Frame threading would hide decode errors of a truncated file (the decoder just stops early),
        # so the default slice threading is kept; the frame-count check below catches the rest.
        expected = stream.frames
        try:
            for frame in container.decode(stream):
                count += 1
                if limits is not None:
                    limits.check_count(file, count)
                    if frame.time is not None:
                        start = frame.time if start is None else start
                        limits.check_seconds(file, frame.time - start)
                if wanted is not None and not wanted(count - 1):
                    continue
                yield count - 1, shown_rgb(frame, stream, max_side=max_side)
        except av.error.FFmpegError as exc:
            raise UnreadableVideoError(
                f"video {file} failed to decode after {count} frames (corrupt or truncated): {exc.strerror}"
            ) from exc
    if count == 0:
        raise UnreadableVideoError(f"video {file} contains no decodable frames")
    # A few frames may legitimately be dropped by edit lists; a large shortfall means the file was cut off.
    if expected > 0 and count < expected - max(2, expected // 50):
        raise UnreadableVideoError(
            f"video {file} stopped after {count} of its {expected} frames; the file is truncated or corrupt"
        )


class VideoWriter:
    """Encode RGB frames to an H.264 MP4, published atomically on ``close()``.

    yuv420p needs even dimensions, so an odd ``width``/``height`` is accepted and the last column/row of
    every frame is cropped away; frames must still be passed at the size given here.

    Use as a context manager: leaving the block normally closes (publishes) the file, leaving it with an
    exception aborts and no file is left behind.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        crf: int = 18,
        preset: str = "veryfast",
        audio_from: str | os.PathLike[str] | None = None,
        threads: int = 0,
        frame_times: Sequence[float] | None = None,
    ) -> None:
        if width < 2 or height < 2:
            raise ValueError(f"video size must be at least 2×2, got {width}×{height}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.path = Path(path)
        self.width, self.height = width, height
        self.out_width, self.out_height = width - width % 2, height - height % 2
        self.rate = _frame_rate(fps)
        self.frames_written = 0
        # Frames go out at the times given when those are not a constant rate (a phone's variable rate), else
        # one tick of 1/fps apart, as before.
        self._times = _variable_times(frame_times, self.rate)
        self._audio_from = Path(audio_from) if audio_from is not None else None
        self._finished = False
        if not self.path.parent.is_dir():
            raise InvalidInputError(f"output folder {self.path.parent} does not exist; create it first")

        # Not tempfile.mkstemp: it creates the file with mode 0600, which the published file would keep.
        self._tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial.mp4")
        try:
            self._container = av.open(
                str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"}
            )
            self._video = self._container.add_stream(
                "libx264", rate=self.rate, options={"crf": str(crf), "preset": preset}
            )
            self._video.width, self._video.height = self.out_width, self.out_height
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.thread_count = threads
            _tag_bt709(self._video.codec_context)
            self._reformatter = av.video.reformatter.VideoReformatter()
            if self._times is not None:
                self._video.codec_context.time_base = _VARIABLE_TIME_BASE
            # Streams must all exist before the first packet is muxed, so the audio stream is set up now
            # even though its packets are only copied in close().
            self._audio_src: av.container.InputContainer | None = None
            self._audio: av.audio.stream.AudioStream | None = None
            self._copy_audio = False
            self._audio_origin = Fraction(0)
            if self._audio_from is not None:
                self._setup_audio(self._audio_from)
        except BaseException:
            self._discard()
            raise

    def _setup_audio(self, source: Path) -> None:
        src = _open_container(source, "audio source")
        self._audio_src = src
        if not src.streams.audio:
            return
        # The output's first frame is the source's first video frame, which need not be at time 0: a capture
        # (MPEG-TS), a cut made without re-encoding, or a recorder that starts the sound first. The audio keeps
        # its place relative to that frame, or lips and voice drift apart by the difference.
        pictures = [s for s in src.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        self._audio_origin = _start_seconds(pictures[0]) if pictures else Fraction(0)
        in_audio = src.streams.audio[0]
        self._copy_audio = in_audio.codec_context.name == "aac"
        if self._copy_audio:
            self._audio = self._container.add_stream_from_template(in_audio)
        else:
            in_ctx = in_audio.codec_context
            self._audio = self._container.add_stream("aac", rate=in_ctx.sample_rate or 44100)
            self._audio.layout = in_ctx.layout.name if in_ctx.layout.nb_channels <= 2 else "stereo"

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB ``uint8`` frame of shape (height, width, 3)."""
        if self._finished:
            raise EngineError(f"cannot write to {self.path}: the writer is already closed")
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"frame must be uint8 of shape {(self.height, self.width, 3)}, "
                f"got {frame.dtype} of shape {frame.shape}"
            )
        pixels = np.ascontiguousarray(frame[: self.out_height, : self.out_width])
        video_frame = _bt709_yuv(av.VideoFrame.from_ndarray(pixels, format="rgb24"), self._reformatter)
        if self._times is None:
            video_frame.pts = self.frames_written
            video_frame.time_base = 1 / self.rate
        else:
            video_frame.pts = self._tick(self.frames_written)
            video_frame.time_base = _VARIABLE_TIME_BASE
        try:
            self._container.mux(self._video.encode(video_frame))
        except av.error.FFmpegError as exc:
            self.abort()
            raise EngineError(f"encoding frame {self.frames_written} of {self.path} failed: {exc}") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, mux the audio, and move the finished file to its final path."""
        if self._finished:
            return
        if self.frames_written == 0:
            self.abort()
            raise EngineError(f"no frames were generated, so {self.path} was not written")
        try:
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._mux_audio(self._duration())
            self._container.close()
            self._close_audio_source()
            os.replace(self._tmp, self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, av.error.FFmpegError):
                raise EngineError(f"finishing {self.path} failed: {exc}") from exc
            raise
        self._finished = True

    def _duration(self) -> Fraction:
        """Seconds from the first frame's start to the last one's end."""
        if self._times is None:
            return self.frames_written / self.rate
        return self._tick(self.frames_written) * _VARIABLE_TIME_BASE

    def _tick(self, index: int) -> int:
        """Frame ``index``'s time in ``_VARIABLE_TIME_BASE`` ticks, from the first frame's; past the end of the
        times given (or for the end of the last frame), one average frame apart."""
        assert self._times is not None
        last = len(self._times) - 1
        seconds = self._times[min(index, last)] - self._times[0] + max(0, index - last) / float(self.rate)
        return round(seconds / _VARIABLE_TIME_BASE)

    def abort(self) -> None:
        """Stop writing and remove the temporary file; the final path is never created."""
        if self._finished:
            return
        self._finished = True
        self._discard()

    def _discard(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._close_audio_source()
        self._tmp.unlink(missing_ok=True)

    def _close_audio_source(self) -> None:
        src = getattr(self, "_audio_src", None)
        if src is not None:
            src.close()
            self._audio_src = None

    def _mux_audio(self, video_duration: Fraction) -> None:
        src, out = self._audio_src, self._audio
        assert src is not None and out is not None
        in_audio = src.streams.audio[0]
        time_base = in_audio.time_base or Fraction(1, in_audio.codec_context.sample_rate or 1)
        origin = self._audio_origin
        if self._copy_audio:
            shift = round(origin / time_base)
            for packet in src.demux(in_audio):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                if packet.pts is not None:
                    if (packet.pts + (packet.duration or 0)) * time_base < origin:
                        continue  # sound from before the first picture
                    if (packet.pts - shift) * time_base >= video_duration:
                        break
                    packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = out
                self._container.mux(packet)
            return
        # Re-encoded audio is timed by its sample count, so the offset from the first picture is made in samples:
        # silence before sound that starts later, the head cut off sound that starts earlier.
        placed = False
        written = 0  # samples: explicit times let the encoder's own delay be signalled and undone on playback
        for frame in src.decode(in_audio):
            start = None if frame.pts is None else frame.pts * time_base
            if start is not None and start - origin >= video_duration:
                break
            if not placed and start is not None:
                lead = round((start - origin) * frame.sample_rate)
                if lead + frame.samples <= 0:
                    continue
                if lead > 0:
                    written = self._encode_audio(_silence_like(frame, lead), written)
                elif lead < 0:
                    frame = _without_head(frame, -lead)
                placed = True
            written = self._encode_audio(frame, written)
        self._container.mux(out.encode(None))

    def _encode_audio(self, frame: av.AudioFrame, written: int) -> int:
        assert self._audio is not None
        frame.pts = written
        frame.time_base = Fraction(1, frame.sample_rate)
        self._container.mux(self._audio.encode(frame))
        return written + frame.samples


# The colour of the output is said, not left to each player to guess: an untagged H.264 file is decoded with the
# BT.601 matrix by some players and with BT.709 by others (by picture size), and the one file then shows two
# colours, up to 35 levels apart on saturated red. Photos are sRGB, whose primaries are BT.709's.
_BT709 = 1  # AVCOL_SPC_BT709, AVCOL_PRI_BT709 and AVCOL_TRC_BT709 alike
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG: 16-235, what every player expects of H.264


def _tag_bt709(context: av.video.codeccontext.VideoCodecContext) -> None:
    context.colorspace = context.color_primaries = context.color_trc = _BT709
    context.color_range = _LIMITED_RANGE


def _bt709_yuv(frame: av.VideoFrame, reformatter: av.video.reformatter.VideoReformatter) -> av.VideoFrame:
    """``frame`` (RGB) as yuv420p made with the BT.709 matrix in limited range, and tagged so. One reformatter per
    stream keeps its scaler set up between frames (a new one per frame cost a millisecond at 512²)."""
    return reformatter.reformat(
        frame,
        format="yuv420p",
        dst_colorspace=_BT709,
        dst_color_range=_LIMITED_RANGE,
        dst_color_trc=_BT709,
        dst_color_primaries=_BT709,
    )


_VARIABLE_TIME_BASE = Fraction(1, 90000)  # the MPEG clock: exact for every common frame rate


def _variable_times(times: Sequence[float] | None, rate: Fraction) -> list[float] | None:
    """``times`` when they stray from a constant ``rate`` by more than half a frame somewhere, else None."""
    if times is None or len(times) < 2 or any(b <= a for a, b in itertools.pairwise(times)):
        return None
    period = 1.0 / float(rate)
    drift = max(abs(t - times[0] - k * period) for k, t in enumerate(times))
    return list(times) if drift > period / 2 else None


def _start_seconds(stream: av.stream.Stream) -> Fraction:
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return Fraction(stream.start_time * stream.time_base)


def _silence_like(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    silence = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=samples)
    silence.sample_rate = frame.sample_rate
    for plane in silence.planes:
        plane.update(bytes(plane.buffer_size))
    return silence


def _without_head(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    data = frame.to_ndarray()
    # Planar formats hold one row per channel; packed ones interleave the channels in a single row.
    per_sample = 1 if frame.format.is_planar else len(frame.layout.channels)
    rest = np.ascontiguousarray(data[:, samples * per_sample :])
    # The samples keep the frame's own dtype (s16, s32, flt, dbl), one of those from_ndarray takes.
    cut = av.AudioFrame.from_ndarray(rest, format=frame.format.name, layout=frame.layout.name)  # type: ignore[arg-type]
    cut.sample_rate = frame.sample_rate
    return cut
