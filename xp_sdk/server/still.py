"""A still of a video's middle frame, as a JPEG data URL, for the verification page."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import av
from PIL import Image

from xp_sdk.engine.video import INPUT_OPTIONS, shown_rgb

MAX_SIDE = 640


def middle_frame_jpeg(path: Path, *, max_side: int = MAX_SIDE) -> str | None:
    """``data:image/jpeg;base64,…`` of the frame nearest the middle; None when the file has no decodable video.

    Seeks to the keyframe before the middle and decodes forward from it, so a long video costs one GOP, not half
    its frames."""
    try:
        with av.open(str(path), options=INPUT_OPTIONS) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            middle = _middle_pts(container, stream)
            if middle is not None:
                container.seek(middle, stream=stream, backward=True, any_frame=False)
            image = None
            for frame in container.decode(stream):
                image = Image.fromarray(shown_rgb(frame, stream))
                if middle is None or frame.pts is None or frame.pts >= middle:
                    break
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    if image is None:
        return None
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _middle_pts(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int | None:
    if stream.duration is not None and stream.time_base is not None:
        return int((stream.start_time or 0) + stream.duration // 2)
    if container.duration is not None and stream.time_base is not None:
        seconds = container.duration / av.time_base / 2
        return int(seconds / stream.time_base)
    return None
