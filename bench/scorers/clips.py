"""Driving clips for the quality bench: the first seconds of a clip, and the same clip re-encoded, whose score
against the original is the metric's noise floor (what a perfect copy of the motion would score)."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import numpy as np

from xp_sdk.engine.video import probe_video, read_frames


def write_h264(frames: list[np.ndarray], fps: float, out: Path, crf: int) -> Path:
    """``frames`` (RGB uint8, even sides enforced by cropping) as an H.264 MP4 at ``crf``."""
    height, width = (frames[0].shape[0] // 2) * 2, (frames[0].shape[1] // 2) * 2
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def head_of_clip(clip: Path, seconds: float, out: Path, crf: int = 10) -> Path:
    """The first ``seconds`` of ``clip`` re-encoded nearly losslessly (the bench's driving video)."""
    fps = probe_video(clip).fps
    wanted = max(3, round(seconds * fps))
    frames = list(islice(read_frames(clip), wanted))
    return write_h264(frames, fps, out, crf)


def reencoded(clip: Path, out: Path, crf: int = 23) -> Path:
    """``clip`` decoded and encoded again at ``crf``: the same motion, different compression noise."""
    return write_h264(list(read_frames(clip)), probe_video(clip).fps, out, crf)
