"""How visible is the mark where the picture is smooth? PSNR and SSIM on smooth regions, and 2× crops to look at.

Hosts: a flat-shaded cartoon drawn with OpenCV (flat fills, soft gradients, dark outlines) and the smooth shared
portraits (paintings and retouched photos from ``faces-wide``, when present). Each is made into a short clip
with small motion (``bench.watermark_attacks_informed.moving_clip``) and marked in memory. "Smooth" pixels are
those whose local luma standard deviation (Gaussian σ = 3 px) is under ``SMOOTH_STD`` levels; PSNR is over those
pixels only, SSIM is the mean of the luma SSIM map over them. A contact sheet per host (unmarked, marked,
difference × 20, each a 2× crop of its smoothest 128² window) is written to ``--out``.

    .venv/bin/python -m bench.watermark_smooth [--out /tmp/wm_smooth]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from bench.watermark_attacks_informed import FACES, mark, moving_clip
from watermark import Payload, WatermarkKey, get_method
from watermark.methods.base import EmbeddingMethod, Frame
from watermark.methods.tiled import TiledMethod

SMOOTH_STD = 2.0
"""Local luma standard deviation (levels) under which a pixel counts as smooth."""
SMOOTH_PORTRAITS = (
    "sadtalker_art_8.png",
    "sadtalker_art_14.png",
    "sadtalker_art_15.png",
    "gfpgan_adele_crop.png",
    "codeformer_0478.png",
    "echomimic_e.png",
)
KEY = WatermarkKey(bytes(range(32)))
PAYLOAD = Payload(0x0123456789ABCDEF)
Float = npt.NDArray[np.float64]


def cartoon(height: int = 512, width: int = 512) -> Frame:
    """A flat-shaded cartoon face: flat fills, a soft sky gradient, dark outlines (RGB)."""
    sky = np.linspace(200, 235, height, dtype=np.float32)[:, None, None] * np.array([0.75, 0.85, 1.0])
    image = np.ascontiguousarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8))
    cx, cy = width // 2, height // 2
    cv2.rectangle(image, (0, int(height * 0.8)), (width, height), (120, 180, 90), -1)
    cv2.ellipse(image, (cx, cy), (int(width * 0.28), int(height * 0.34)), 0, 0, 360, (250, 205, 170), -1)
    cv2.ellipse(image, (cx, cy), (int(width * 0.28), int(height * 0.34)), 0, 0, 360, (60, 40, 30), 3)
    for side in (-1, 1):
        eye = (cx + side * int(width * 0.1), cy - int(height * 0.06))
        cv2.ellipse(image, eye, (18, 24), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(image, eye, 9, (40, 60, 120), -1)
        cv2.circle(image, (cx + side * int(width * 0.16), cy + int(height * 0.1)), 20, (245, 170, 160), -1)
    cv2.ellipse(image, (cx, cy + int(height * 0.14)), (50, 22), 0, 10, 170, (150, 50, 50), 4)
    cv2.ellipse(image, (cx, cy - int(height * 0.3)), (int(width * 0.3), 60), 0, 180, 360, (90, 60, 40), -1)
    return image


def clip_of(picture: Frame, frames: int, seed: int) -> list[Frame]:
    """A moving clip of an in-memory picture (written to a temporary PNG for ``moving_clip``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "picture.png"
        cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        return moving_clip(path, height=picture.shape[0], width=picture.shape[1], frames=frames, seed=seed)


def smooth_mask(luma: Float) -> npt.NDArray[np.bool_]:
    mean = cv2.GaussianBlur(luma, (0, 0), 3.0)
    std = np.sqrt(np.maximum(cv2.GaussianBlur(luma * luma, (0, 0), 3.0) - mean * mean, 0))
    return np.asarray(std < SMOOTH_STD)


def ssim_map(x: Float, y: Float) -> Float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: Float) -> Float:
        return np.asarray(cv2.GaussianBlur(z, (11, 11), 1.5), dtype=np.float64)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return np.asarray(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))


@dataclass(frozen=True)
class SmoothReport:
    host: str
    smooth_share: float
    psnr_smooth_db: float
    ssim_smooth: float
    psnr_all_db: float


def measure(name: str, source: list[Frame], marked: list[Frame]) -> SmoothReport:
    squared, count, ssim_sum, all_squared, all_count, smooth_pixels = 0.0, 0, 0.0, 0.0, 0, 0
    for before, after in zip(source, marked, strict=True):
        x = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY).astype(np.float64)
        y = cv2.cvtColor(after, cv2.COLOR_RGB2GRAY).astype(np.float64)
        smooth = smooth_mask(x)
        error = (after.astype(np.float64) - before) ** 2
        squared += float(error[smooth].sum())
        count += int(smooth.sum()) * 3
        ssim_sum += float(ssim_map(x, y)[smooth].sum())
        smooth_pixels += int(smooth.sum())
        all_squared += float(error.sum())
        all_count += error.size

    def db(total: float, n: int) -> float:
        return float("inf") if total == 0 or n == 0 else 10 * math.log10(255.0**2 * n / total)

    share = smooth_pixels / (len(source) * source[0].shape[0] * source[0].shape[1])
    return SmoothReport(name, share, db(squared, count), ssim_sum / max(smooth_pixels, 1), db(all_squared, all_count))


def contact_sheet(source: Frame, marked: Frame, out: Path) -> None:
    """Unmarked | marked | difference × 20 (grey = 0), each a 2× crop of the smoothest 128² window."""
    luma = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY).astype(np.float64)
    smooth = cv2.blur(smooth_mask(luma).astype(np.float32), (128, 128))
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    top = int(np.clip(y - 64, 0, source.shape[0] - 128))
    left = int(np.clip(x - 64, 0, source.shape[1] - 128))

    def crop(image: Frame) -> Frame:
        window = image[top : top + 128, left : left + 128]
        return np.asarray(cv2.resize(window, (256, 256), interpolation=cv2.INTER_NEAREST))

    difference = np.clip(128 + 20 * (marked.astype(np.float32) - source), 0, 255).astype(np.uint8)
    gap = np.full((256, 8, 3), 255, np.uint8)
    sheet = np.hstack([crop(source), gap, crop(marked), gap, crop(difference)])
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def hosts(frames: int) -> list[tuple[str, list[Frame]]]:
    found = [("cartoon", clip_of(cartoon(), frames, seed=1))]
    wide = FACES.parent / "faces-wide" / "source"
    for i, name in enumerate(SMOOTH_PORTRAITS):
        if (wide / name).is_file():
            found.append((name, moving_clip(wide / name, height=512, width=512, frames=frames, seed=10 + i)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/wm_smooth"))
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--method", default="tiled")
    parser.add_argument("--texture-window", type=int, help="tiled: TiledConfig.texture_window (default: its own)")
    parser.add_argument("--flat-floor", type=float, help="tiled: TiledConfig.flat_floor (default: its own)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    method: EmbeddingMethod = get_method(args.method)
    if isinstance(method, TiledMethod):
        changes = {"texture_window": args.texture_window, "flat_floor": args.flat_floor}
        method = TiledMethod(replace(method.config, **{k: v for k, v in changes.items() if v is not None}))
    print("| host | smooth share | PSNR smooth dB | SSIM smooth | PSNR all dB |")
    print("|---|---|---|---|---|")
    for name, source in hosts(args.frames):
        marked = mark(source, KEY, PAYLOAD, method)
        report = measure(name, source, marked)
        contact_sheet(source[0], marked[0], args.out / f"{Path(name).stem}.png")
        print(
            f"| {report.host} | {report.smooth_share:.0%} | {report.psnr_smooth_db:.1f} | "
            f"{report.ssim_smooth:.4f} | {report.psnr_all_db:.1f} |"
        )


if __name__ == "__main__":
    main()
