"""The informed attacker of issue 20: someone who read this repository, holds marked outputs, and has no key.

Three attacks, each swept in strength, each reported as PSNR against the marked clip (what the attacker pays)
and the detection p-value with the real key (what the deployment still sees):

- ``remove``: estimate the mark from one clip and subtract ``alpha`` times the estimate from every frame.
- ``remove_pooled``: the same with the estimate pooled over several outputs of the same key (same size).
- ``transplant``: add ``alpha`` times an estimate taken from marked clips to unrelated, unmarked clips.

Estimators, what the source invites and then some:

- ``fold``: average the high-pass residual over time, find the spatial period from its autocorrelation, fold
  the residual by that period (mean of all whole tiles) and repeat the folded tile over the frame. This is what
  removed the version 1 tiled mark (a pattern that is the same in every frame and repeats in space).
- ``mean``: the time-averaged high-pass residual itself, not folded. This removed version 2 (tile signs, the same
  data in every frame) at 34.6 dB.
- ``pca1`` / ``pca4``: per frame, the part of its high-pass residual along the top 1 (4) temporal principal
  components of the clip's residuals after their mean is taken out: what a data sign that flips from frame to
  frame (version 3) invites, since the flipping part is the clip's largest change over time where the picture
  holds still. ``pca4+mean`` adds the time average back (the static pilot and the picture's fixed detail).
- ``residual``: each frame's whole high-pass residual (no estimate at all: the most a blind subtraction or
  transplant can take along).

Clips are built from the shared real faces (``/work/shared/faces*/source``), each a short clip with small,
smooth motion (sub-pixel pan and a slight zoom), marked and read in memory (no H.264 between: compression would
only weaken the mark further, so this favours the attacker).

    .venv/bin/python -m bench.watermark_attacks_informed --clips 6 --frames 24

``--issue-scale`` runs what issue 20 asks for instead: removal pooled over 20 outputs of one deployment; the
whole per-frame residual (and every estimate) of an output added to 20 unrelated real clips (segments of the
shared driving videos), written as H.264 and judged through the product's ``verify`` with the output's
recorded content fingerprint (``xp_sdk.verify.verify`` then ``attribute``: a transplant must never be
attributed), reporting both the raw payload decode and verify's verdict; and false positives over >= 200
unmarked clips made at run time from the shared real driving clips (segments, crops, flips, rescales and
re-encodes; written to a temporary folder, never kept).

    .venv/bin/python -m bench.watermark_attacks_informed --issue-scale
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from watermark.detection import detect_in_accumulator
from watermark.embedding import FrameMarker
from watermark.methods import get_method
from watermark.methods.base import EmbeddingMethod, Frame
from watermark.payload import CODEWORD_BITS, Payload, WatermarkKey

Float = npt.NDArray[np.float32]
FACES = Path(os.environ.get("XP_FACES", Path(__file__).resolve().parents[2] / "shared" / "faces"))
STRENGTHS = (0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0)


def face_pictures(roots: Sequence[Path] | None = None) -> list[Path]:
    """Every shared face picture (the faces set, then the wide set), sorted, never copied."""
    roots = roots or (FACES / "source", FACES.parent / "faces-wide" / "source")
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += sorted(p for p in root.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    return found


def moving_clip(picture: Path, *, height: int, width: int, frames: int, seed: int) -> list[Frame]:
    """``frames`` RGB frames of ``picture`` covering height×width, with a slow sub-pixel pan and a slight zoom."""
    image = cv2.imread(str(picture), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {picture}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    margin = 1.08
    scale = max(height * margin / image.shape[0], width * margin / image.shape[1])
    big = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * math.pi, 3)
    centre_x, centre_y = big.shape[1] / 2, big.shape[0] / 2
    out: list[Frame] = []
    for t in range(frames):
        dx = 3.0 * math.sin(0.21 * t + phase[0])
        dy = 2.0 * math.sin(0.17 * t + phase[1])
        zoom = 1.0 + 0.01 * math.sin(0.13 * t + phase[2])
        matrix = np.array(
            [[zoom, 0, width / 2 - zoom * (centre_x + dx)], [0, zoom, height / 2 - zoom * (centre_y + dy)]],
            dtype=np.float64,
        )
        out.append(np.ascontiguousarray(cv2.warpAffine(big, matrix, (width, height), flags=cv2.INTER_LINEAR)))
    return out


def mark(frames: Sequence[Frame], key: WatermarkKey, payload: Payload, method: EmbeddingMethod) -> list[Frame]:
    marker = FrameMarker(key, payload, method)
    return [marker(frame) for frame in frames]


def p_value(frames: Sequence[Frame], key: WatermarkKey, method: EmbeddingMethod) -> tuple[float, Payload | None]:
    accumulator = method.accumulator(key, CODEWORD_BITS)
    for frame in frames:
        accumulator.add(frame)
    found = detect_in_accumulator(accumulator, key, method=method.name)
    return found.p_value, found.payload


def psnr(a: Sequence[Frame], b: Sequence[Frame]) -> float:
    mse = float(
        np.mean([np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2) for x, y in zip(a, b, strict=True)])
    )
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


# --- the estimators -----------------------------------------------------------------------------------------


def mean_residual(frames: Sequence[Frame]) -> Float:
    """The time-averaged high-pass residual of luma (what a static pattern leaves when the picture moves)."""
    total: npt.NDArray[np.float64] | None = None
    for frame in frames:
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        high = luma - cv2.GaussianBlur(luma, (0, 0), 2.0)
        total = high.astype(np.float64) if total is None else total + high
    assert total is not None
    return (total / len(frames)).astype(np.float32)


def estimate_period(residual: Float, low: int = 24) -> tuple[int, int]:
    """The lag of the strongest autocorrelation peak along each axis beyond ``low`` px (the repeat of a tile)."""
    height, width = residual.shape
    centred = residual - residual.mean()
    spectrum = np.fft.rfft2(centred, s=(2 * height, 2 * width))
    auto = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * height, 2 * width))
    along_x = auto[0, :width] / np.maximum(width - np.arange(width), 1)
    along_y = auto[:height, 0] / np.maximum(height - np.arange(height), 1)
    period_x = low + int(np.argmax(along_x[low : int(width / 1.5)]))
    period_y = low + int(np.argmax(along_y[low : int(height / 1.5)]))
    return period_x, period_y


def fold(residual: Float, period: tuple[int, int]) -> Float:
    """Mean of every whole (period_y × period_x) tile of ``residual``."""
    period_x, period_y = period
    rows, cols = residual.shape[0] // period_y, residual.shape[1] // period_x
    tiles = residual[: rows * period_y, : cols * period_x].reshape(rows, period_y, cols, period_x)
    return np.asarray(tiles.mean(axis=(0, 2)), dtype=np.float32)


def unfold(tile: Float, height: int, width: int) -> Float:
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]))
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def estimate(clips: Sequence[Sequence[Frame]], estimator: str, *, period: tuple[int, int] | None = None) -> Float:
    """The attacker's estimate of the mark (luma levels per pixel) from one or more marked clips of one size.

    ``period``: the tile period in pixels (x, y) when the attacker computes it from the source rather than
    measuring it (the default)."""
    residuals = [mean_residual(frames) for frames in clips]
    pooled = np.asarray(np.mean(residuals, axis=0), dtype=np.float32)
    if estimator == "mean":
        return pooled
    if estimator != "fold":
        raise ValueError(f"unknown estimator {estimator!r}")
    period = period or estimate_period(pooled)
    height, width = pooled.shape
    return unfold(fold(pooled, period), height, width)


def highpass(frame: Frame) -> Float:
    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.asarray(luma - cv2.GaussianBlur(luma, (0, 0), 2.0), dtype=np.float32)


STATIC_ESTIMATORS = ("fold", "mean")
FRAME_ESTIMATORS = ("pca1", "pca4", "pca4+mean", "residual")


def estimate_frames(frames: Sequence[Frame], estimator: str) -> list[Float]:
    """The attacker's estimate of the mark in each frame (luma levels per pixel): for the static estimators the
    same pattern every frame, else one per frame (see the module's docstring)."""
    if estimator in STATIC_ESTIMATORS:
        return [estimate([frames], estimator)] * len(frames)
    residuals = np.stack([highpass(frame) for frame in frames])
    if estimator == "residual":
        return list(residuals)
    count, height, width = residuals.shape
    mean = residuals.mean(axis=0)
    centred = (residuals - mean).reshape(count, -1)
    components = {"pca1": 1, "pca4": 4, "pca4+mean": 4}.get(estimator)
    if components is None:
        raise ValueError(f"unknown estimator {estimator!r}")
    # The temporal principal components from the frames' Gram matrix (frames × frames, small).
    _, vectors = np.linalg.eigh(centred @ centred.T)
    top = vectors[:, -min(components, count) :]
    along = (top @ (top.T @ centred)).reshape(count, height, width).astype(np.float32)
    if estimator.endswith("+mean"):
        along += mean
    return list(along)


def add_pattern(frames: Sequence[Frame], pattern: Float, alpha: float) -> list[Frame]:
    """Each frame plus ``alpha`` × ``pattern`` on R, G and B alike, rounded and clipped (luma only, as marked)."""
    return add_patterns(frames, [pattern] * len(frames), alpha)


def add_patterns(frames: Sequence[Frame], patterns: Sequence[Float], alpha: float) -> list[Frame]:
    """Frame t plus ``alpha`` × ``patterns[t]`` (cycling when there are fewer patterns than frames)."""
    out = []
    for t, frame in enumerate(frames):
        delta = (alpha * patterns[t % len(patterns)])[..., None]
        out.append(np.clip(np.rint(frame.astype(np.float32) + delta), 0, 255).astype(np.uint8))
    return out


# --- the sweep ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    attack: str
    estimator: str
    alpha: float
    psnr_db: float
    """Against the marked clip (removal) or the unrelated clip (transplant)."""
    p_value: float
    attributed: bool
    """The deployment's detector named the generation (removal: the right one; transplant: any)."""


def run(
    method_name: str = "tiled",
    *,
    clips: int = 6,
    frames: int = 24,
    height: int = 448,
    width: int = 512,
    strengths: Sequence[float] = STRENGTHS,
    estimators: Sequence[str] = ("fold", "mean", "pca1", "pca4", "pca4+mean", "residual"),
    pictures: Sequence[Path] | None = None,
    seed: int = 20,
) -> list[Row]:
    method = get_method(method_name)
    key = WatermarkKey(np.random.default_rng(seed).bytes(32))
    pictures = list(pictures) if pictures is not None else face_pictures()
    if len(pictures) < clips + 2:
        raise SystemExit(f"need {clips + 2} face pictures, found {len(pictures)} (set XP_FACES)")
    payloads = [Payload(int(v)) for v in np.random.default_rng(seed + 1).integers(1, 2**62, clips)]
    sources = [
        moving_clip(p, height=height, width=width, frames=frames, seed=i) for i, p in enumerate(pictures[:clips])
    ]
    marked = [mark(src, key, payload, method) for src, payload in zip(sources, payloads, strict=True)]
    unrelated = [
        moving_clip(p, height=height, width=width, frames=frames, seed=100 + i)
        for i, p in enumerate(pictures[clips : clips + 2])
    ]
    rows: list[Row] = []
    target, target_payload = marked[0], payloads[0]
    p_marked, found = p_value(target, key, method)
    rows.append(Row("none (marked)", "-", 0.0, psnr(target, sources[0]), p_marked, found == target_payload))
    for other in unrelated:
        p_clean, found = p_value(other, key, method)
        rows.append(Row("none (unrelated)", "-", 0.0, float("inf"), p_clean, found is not None))
    for estimator in estimators:
        single = estimate_frames(target, estimator)
        attacks = [("remove", single)]
        if estimator in STATIC_ESTIMATORS and clips > 1:
            attacks.append((f"remove_pooled{clips}", [estimate(marked, estimator)]))
        for attack, patterns in attacks:
            for alpha in strengths:
                attacked = add_patterns(target, patterns, -alpha)
                p, found = p_value(attacked, key, method)
                rows.append(Row(attack, estimator, alpha, psnr(attacked, target), p, found == target_payload))
        # Transplant: one clip's estimate forges that clip's generation; the pooled one carries what all share.
        transplants = [("transplant", single)]
        if estimator in STATIC_ESTIMATORS and clips > 1:
            transplants.append((f"transplant_pooled{clips}", [estimate(marked, estimator)]))
        for attack, patterns in transplants:
            for alpha in strengths:
                for other in unrelated:
                    forged = add_patterns(other, patterns, alpha)
                    p, found = p_value(forged, key, method)
                    rows.append(Row(attack, estimator, alpha, psnr(forged, other), p, found is not None))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = ["| attack | estimator | alpha | PSNR dB | p-value | attributed |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.attack} | {row.estimator} | {row.alpha:g} | {row.psnr_db:.1f} | {row.p_value:.1e} | "
            f"{'yes' if row.attributed else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="tiled")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--height", type=int, default=448)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--estimators", default="fold,mean,pca1,pca4,pca4+mean,residual")
    parser.add_argument("--issue-scale", action="store_true", help="issue 20's scale, judged through verify")
    parser.add_argument("--unmarked", type=int, default=204, help="--issue-scale: unmarked clips (>= 200)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.issue_scale:
        from bench.watermark_attacks_issue import run_issue_scale

        run_issue_scale(args.method, frames=args.frames, height=args.height, width=args.width, unmarked=args.unmarked)
    else:
        rows = run(
            args.method,
            clips=args.clips,
            frames=args.frames,
            height=args.height,
            width=args.width,
            estimators=args.estimators.split(","),
        )
        print(f"method {args.method}, {args.clips} clips of {args.frames} frames at {args.width}×{args.height}")
        print(table(rows))
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
