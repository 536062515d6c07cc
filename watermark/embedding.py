"""Putting a mark into frames as they stream past, or into an existing video file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watermark.methods.base import EmbeddingMethod, Frame, FrameEmbedder
from watermark.payload import Payload, WatermarkKey
from watermark.video_io import Mp4Writer, even, iter_timed_frames, presentation, video_rate


class FrameMarker:
    """Marks a stream of frames with one payload; the pattern is prepared on the first frame's size."""

    def __init__(self, key: WatermarkKey, payload: Payload, method: EmbeddingMethod) -> None:
        self._key = key
        self._codeword = payload.codeword(key)
        self._method = method
        self._embedder: FrameEmbedder | None = None
        self._shape: tuple[int, ...] | None = None
        self.payload = payload

    @property
    def method(self) -> str:
        return self._method.name

    def __call__(self, frame: Frame) -> Frame:
        if self._embedder is None:
            height, width = frame.shape[:2]
            self._embedder = self._method.embedder(self._key, self._codeword, width=width, height=height)
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"frame size changed mid-stream ({self._shape} → {frame.shape})")
        return self._embedder.embed(frame)


@dataclass(frozen=True)
class MarkReport:
    frames: int
    embed_seconds: float
    psnr_db: float
    """Of the marked frames against the unmarked ones, before encoding."""
    ssim: float
    """Mean luma SSIM over a sample of frames, before encoding."""


def mark_file(src: Path, dst: Path, marker: FrameMarker, *, crf: int = 18) -> MarkReport:
    """Re-encode ``src`` with every frame marked; ``dst`` appears only when complete. It is shown as ``src`` is
    (turned, with its pixel shape), each frame at its own time, with ``src``'s sound."""
    rate = video_rate(src)
    shown = presentation(src)
    writer: Mp4Writer | None = None
    frames = 0
    embed_seconds = 0.0
    squared_error = 0.0
    ssim_sum = 0.0
    ssim_count = 0
    try:
        for frame, at in iter_timed_frames(src):
            height, width = even(frame.shape[0]), even(frame.shape[1])
            frame = np.ascontiguousarray(frame[:height, :width])
            if writer is None:
                writer = Mp4Writer(dst, width=width, height=height, rate=rate, crf=crf, shown=shown, sound_from=src)
            started = time.perf_counter()
            marked = marker(frame)
            embed_seconds += time.perf_counter() - started
            squared_error += float(np.mean((marked.astype(np.float32) - frame) ** 2))
            if frames % 10 == 0:
                ssim_sum += luma_ssim(frame, marked)
                ssim_count += 1
            writer.write(marked, at)
            frames += 1
        if writer is None:
            raise ValueError(f"{src} has no frames")
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    mse = squared_error / max(frames, 1)
    psnr = float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))
    return MarkReport(frames, embed_seconds, psnr, ssim_sum / max(ssim_count, 1))


def luma_ssim(a: Frame, b: Frame) -> float:
    import cv2

    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(ssim_map.mean())
