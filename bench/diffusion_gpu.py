"""The diffusion engine's one benchmark: what a short GPU loan runs, printing one table.

    # random weights of the real architectures (speed and memory do not depend on the values); no download:
    .venv/bin/python bench/diffusion_gpu.py --random-weights
    # the user's real weights, named in models.toml; also scores warp and diffusion with `xp eval` side by side
    # and writes side-by-side MP4s:
    .venv/bin/python bench/diffusion_gpu.py --models models.toml
    # what CI runs (tests/engine/diffusion/test_bench.py): tiny architectures on the CPU, in seconds
    .venv/bin/python bench/diffusion_gpu.py --random-weights --tiny --device cpu --frames 6 --resolution 32

With --random-weights the real SD 1.5 UNet and VAE, the MediaPipe-face ControlNet, the AnimateDiff v1-5-2 motion
adapter and an LCM-LoRA-layout file are written with random values in the published layout to a temporary
folder, pinned in a models.toml there, and loaded through it: the same path as real weights. The real
``animate()`` runs on the shared driving clips (``$XP_FACES/driving``, default ``../shared/faces``; the built-in
``talk`` template when none is there). Reports: model load time, first-window latency (from the start of
``animate`` to its first frame, CUDA warm-up included), steady frames a second (frames after the first window
over their time), peak device memory, per-phase device times (VAE encode, reference, ControlNet, UNet,
scheduler, VAE decode; measured with a device sync around each phase, so a little slower than unmeasured), the
engine's own stage times, versions and the weights' sha256. At real size on one H100 the defaults (48 frames
at 512 px, 4 steps, windows of 16) are sized to finish well inside 8 minutes, writing 3.5 GB of weights included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _faces() -> Path:
    return Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))


def _photo() -> Any:
    import numpy as np

    from xp_sdk.engine.images import load_image

    shared = _faces() / "source" / "skimage_astronaut.png"
    if shared.is_file():
        return load_image(shared)
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]


def _driving(given: Path | None) -> Path | None:
    if given is not None:
        return given
    folder = _faces() / "driving"
    clips = sorted(folder.glob("lp_d*.mp4")) if folder.is_dir() else []
    return clips[0] if clips else None


def _tiny_configs() -> dict[str, dict[str, Any]]:
    """The tests' tiny architectures (tests/engine/diffusion/dummy.py) as configs, for the CPU run in CI."""
    from tests.engine.diffusion.dummy import tiny_controlnet, tiny_motion_adapter, tiny_unet, tiny_vae

    models: dict[str, Any] = {
        "unet": tiny_unet(), "vae": tiny_vae(), "controlnet": tiny_controlnet(), "motion_adapter": tiny_motion_adapter()
    }  # fmt: skip
    return {name: {**dict(model.config), "_class_name": type(model).__name__} for name, model in models.items()}


def _versions() -> dict[str, str]:
    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for package in ("diffusers", "accelerate", "safetensors", "xp-sdk"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    out["cuda"] = str(torch.version.cuda) if torch.cuda.is_available() else "none"
    return out


def _peak_memory(device: Any) -> dict[str, float]:
    import torch

    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    out = {"peak_host_rss_gib": round(host, 2)}
    if device.type == "cuda":
        out["peak_cuda_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        out["peak_cuda_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 2)
    return out


def _side_by_side(left: Path, right: Path, out: Path, fps: float) -> None:
    import numpy as np

    from xp_sdk.engine.video import VideoWriter, read_frames

    a, b = read_frames(left), read_frames(right)
    first = np.hstack([next(iter(a)), next(iter(b))])
    with VideoWriter(out, width=first.shape[1], height=first.shape[0], fps=fps) as writer:
        writer.write(first)
        for x, y in zip(a, b, strict=False):
            writer.write(np.hstack([x, y]))


def _motion(driving: Path | None, frames: int, out: Path) -> tuple[dict[str, Any], str]:
    """animate()'s motion arguments: the clip's first ``frames`` frames (a copy; animate refuses a clip over its
    limits rather than cut it), else the built-in ``talk`` template cut to as many frames."""
    import itertools

    from xp_sdk.engine import MotionTemplate
    from xp_sdk.engine.templates import load_template
    from xp_sdk.engine.video import VideoWriter, probe_video, read_frames

    if driving is not None:
        info = probe_video(driving)
        cut = out / f"driving_{frames}.mp4"
        with VideoWriter(cut, width=info.width, height=info.height, fps=info.fps) as writer:
            for frame in itertools.islice(read_frames(driving), frames):
                writer.write(frame)
        return {"driving": cut}, f"{driving.name} (first {frames} frames)"
    talk = load_template("talk")
    duration = min(talk.duration, frames / talk.fps)
    keyframes = [k for k in talk.keyframes if k.t <= duration]
    cut_template = MotionTemplate(name="talk", fps=talk.fps, duration=duration, keyframes=keyframes)
    return {"template": cut_template}, f"template talk ({cut_template.frame_count} frames)"


def _table(rows: dict[str, Any]) -> str:
    width = max(len(k) for k in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--models", default=None, help="models.toml with real weights (default: XP_MODELS_TOML)")
    source.add_argument("--random-weights", action="store_true", help="random weights of the real architectures")
    parser.add_argument("--tiny", action="store_true", help="with --random-weights: the tests' tiny architectures")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cuda, cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--driving", type=Path, default=None, help="driving clip (default: the first shared one)")
    parser.add_argument("--frames", type=int, default=48, help="frames animated (the clip is cut to this)")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--scheduler", default="lcm", choices=["lcm", "tcd"])
    parser.add_argument("--cpu-offload", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "diffusion")
    parser.add_argument("--json", type=Path, default=None, help="also write the table's values as JSON")
    args = parser.parse_args(argv)

    import torch

    from xp_sdk.engine import AnimateOptions, animate
    from xp_sdk.engine.diffusion import DiffusionConfig, check_weights
    from xp_sdk.engine.diffusion.components import resolve_device
    from xp_sdk.engine.diffusion.loading import load_from_models_toml
    from xp_sdk.errors import XPError

    if args.tiny and not args.random_weights:
        parser.error("--tiny goes with --random-weights")
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="xp-bench-weights-") if args.random_weights else None
    try:
        write_s = 0.0
        if scratch is not None:
            from tests.engine.diffusion.published import write_published_layout

            t0 = time.perf_counter()
            models = write_published_layout(Path(scratch.name), configs=_tiny_configs() if args.tiny else None)
            write_s = time.perf_counter() - t0
        else:
            report = check_weights(args.models)
            if not report.ok:
                print(report.describe())
                print("refusing: the weights above are not all present and pinned; nothing was downloaded or run")
                return 2
            assert report.toml is not None
            models = report.toml
        config = DiffusionConfig(
            models=str(models), device=args.device, dtype=args.dtype, resolution=args.resolution, steps=args.steps,
            strength=args.strength, window=args.window, overlap=args.overlap, scheduler=args.scheduler,
            cpu_offload=args.cpu_offload,
        ).validate()  # fmt: skip
        device, dtype = resolve_device(config)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        t0 = time.perf_counter()
        components = load_from_models_toml(config)  # animate() below gets these from the process's cache
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        load_s = time.perf_counter() - t0
        components.phase_seconds = {}

        motion, motion_name = _motion(_driving(args.driving), args.frames, args.out)
        photo = _photo()
        ticks: list[float] = []
        options = AnimateOptions(engine="diffusion", diffusion=config, keep_audio=False)
        started = time.perf_counter()
        result = animate(
            photo, args.out / "diffusion.mp4", options=options, progress=lambda p: ticks.append(time.perf_counter()),
            **motion,
        )
        total_s = time.perf_counter() - started
    except XPError as exc:
        print(f"refusing: {exc.message}")
        return 2
    finally:
        if scratch is not None:
            scratch.cleanup()

    first_window = min(args.window, result.frames)
    first_s = ticks[0] - started if ticks else total_s
    steady_frames = result.frames - first_window
    steady_s = ticks[-1] - ticks[first_window - 1] if steady_frames > 0 else 0.0
    phases = {k: round(v, 2) for k, v in sorted(components.phase_seconds.items())}
    rows: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({dtype})",
        "weights": ("random, tiny architectures" if args.tiny else "random, real architectures")
        if args.random_weights else f"real ({models})",
        "motion": motion_name,
        "frames": result.frames,
        "size": f"{result.width}x{result.height}, crop {args.resolution}px, {args.steps} steps, window "
                f"{args.window}/{args.overlap}",
        "temporal": components.temporal,
        "weights_write_s": round(write_s, 1),
        "load_s": round(load_s, 2),
        "first_window_latency_s": round(first_s, 2),
        "steady_fps": round(steady_frames / steady_s, 2) if steady_s > 0 else "n/a (one window)",
        "overall_fps": round(result.frames / total_s, 2),
        "stage_seconds": {k: round(v, 2) for k, v in result.stage_seconds.items()},
        "phase_seconds": phases,
        **_peak_memory(device),
        "versions": _versions(),
        "weights_sha256": {name: digest[:16] for name, digest in components.weights},
    }
    if not args.random_weights:
        rows.update(_compare_engines(photo, motion, result.fps, args.out))
    print(_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return 0


def _compare_engines(photo: Any, motion: dict[str, Any], fps: float, out: Path) -> dict[str, Any]:
    """With real weights: the warp engine on the same motion, both scored by `xp eval`, side-by-side MP4."""
    from xp_sdk.engine import AnimateOptions, animate

    animate(photo, out / "warp.mp4", options=AnimateOptions(keep_audio=False), **motion)
    _side_by_side(out / "warp.mp4", out / "diffusion.mp4", out / "warp_vs_diffusion.mp4", fps)
    rows: dict[str, Any] = {"side_by_side": str(out / "warp_vs_diffusion.mp4")}
    driving = motion.get("driving")
    source = _faces() / "source" / "skimage_astronaut.png"
    if driving is None or not source.is_file():
        rows["eval"] = "skipped (xp eval needs a driving clip and the photo's file)"
        return rows
    from xp_sdk.engine.evaluate import evaluate_files

    for engine in ("warp", "diffusion"):
        report = evaluate_files(source, driving, out / f"{engine}.mp4")
        rows[f"eval_{engine}"] = report.model_dump()
    return rows


if __name__ == "__main__":
    sys.exit(main())
