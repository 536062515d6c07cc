"""Frames per second and peak GPU memory of the diffusion engine, with real weights, on a CUDA GPU.

    .venv/bin/python bench/diffusion_gpu.py --models models.toml
    .venv/bin/python bench/diffusion_gpu.py --models models.toml --frames 96 --steps 4 --resolution 512 \
        --json out/bench/diffusion.json --sheet out/bench/diffusion_sheet.png

Refuses (exit 2, with the reason) without a CUDA GPU or without every required weight pinned in models.toml; it
never downloads anything. The photo is the shared astronaut (``$XP_FACES/source``, default ``../shared/faces``),
or scikit-image's copy; the motion is the built-in ``showcase`` template, so no video decoding is timed.

Prints: model load time, first-window latency (includes CUDA warm-up), steady frames/s over the later windows
(diffusion only, and with the warp), per-frame milliseconds, and peak allocated / reserved CUDA memory. Writes a
contact sheet (warp frame above, refined frame below) so the pictures can be looked at, not just timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _photo() -> np.ndarray:
    from xp_sdk.engine.images import load_image

    shared = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces")) / "source" / "skimage_astronaut.png"
    if shared.is_file():
        return load_image(shared)
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="models.toml (default: XP_MODELS_TOML, then the home's)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--scheduler", default="lcm", choices=["lcm", "tcd"])
    parser.add_argument("--cpu-offload", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, default=Path("out/bench/diffusion_sheet.png"))
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("refusing: this benchmark needs a CUDA GPU and PyTorch sees none (torch " + torch.__version__ + ")")
        return 2
    from xp_sdk.engine.diffusion import DiffusionConfig, check_weights

    report = check_weights(args.models)
    print(report.describe())
    if not report.ok:
        print("refusing: the weights above are not all present and pinned; nothing was downloaded or run")
        return 2

    from xp_sdk.engine.animate import AnimateOptions, prepare_source
    from xp_sdk.engine.diffusion.generator import DiffusionGenerator
    from xp_sdk.engine.diffusion.loading import load_from_models_toml
    from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline
    from xp_sdk.engine.retarget import Retargeter
    from xp_sdk.engine.templates import load_template
    from xp_sdk.engine.warp import WarpGenerator

    config = DiffusionConfig(
        models=str(report.toml),
        device="cuda",
        dtype=args.dtype,
        resolution=args.resolution,
        steps=args.steps,
        strength=args.strength,
        window=args.window,
        overlap=args.overlap,
        scheduler=args.scheduler,
        cpu_offload=args.cpu_offload,
    ).validate()
    image, face = prepare_source(_photo(), AnimateOptions(max_side=1024))
    codes = list(load_template("showcase").codes())
    targets = [Retargeter(face).from_template(codes[i % len(codes)]) for i in range(args.frames)]

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    components = load_from_models_toml(config)
    pipeline = PortraitDiffusionPipeline(components, config)
    torch.cuda.synchronize()
    load_s = time.perf_counter() - t0

    warp = WarpGenerator(image, face)
    generator = DiffusionGenerator(image, face, pipeline, warp)
    emitted: list[tuple[float, int]] = []  # (time, frames so far) after each window
    count = 0
    sheet: list[tuple[np.ndarray, np.ndarray]] = []
    started = time.perf_counter()
    for target in targets:
        ready = generator.push(target)
        if ready:
            torch.cuda.synchronize()
            count += len(ready)
            emitted.append((time.perf_counter(), count))
            if len(sheet) < 6:
                sheet.append((warp.render(targets[count - 1]), ready[-1]))
    rest = generator.flush()
    torch.cuda.synchronize()
    count += len(rest)
    emitted.append((time.perf_counter(), count))
    total_s = time.perf_counter() - started

    first_s = emitted[0][0] - started
    if len(emitted) > 2:
        steady_frames = emitted[-2][1] - emitted[0][1]  # full windows after the first
        steady_s = emitted[-2][0] - emitted[0][0]
    else:
        steady_frames, steady_s = count, total_s
    results = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "frames": count,
        "photo_size": list(image.shape[:2]),
        "config": {k: getattr(config, k) for k in ("resolution", "steps", "strength", "window", "overlap",
                                                    "dtype", "scheduler", "cpu_offload")},
        "temporal": pipeline.temporal,
        "load_s": round(load_s, 2),
        "first_window_s": round(first_s, 2),
        "steady_fps": round(steady_frames / steady_s, 2) if steady_s > 0 else None,
        "overall_fps": round(count / total_s, 2),
        "ms_per_frame_diffusion": round(1000 * generator.timings["diffusion"] / count, 1),
        "ms_per_frame_warp": round(1000 * generator.timings["warp"] / count, 1),
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
    }
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if sheet:
        import cv2

        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        tiles = [np.vstack(pair) for pair in sheet]
        scale = 256 / tiles[0].shape[1]
        row = np.hstack([cv2.resize(t, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for t in tiles])
        cv2.imwrite(str(args.sheet), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        print(f"contact sheet (warp above, diffusion below): {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
