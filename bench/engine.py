"""Engine benchmark: every stage of animate() measured alone and end to end, side by side, in one run.

Run it as ``.venv/bin/python bench/engine.py [--frames N] [--sizes 512,1024] [--json PATH] [--strict]``.

Inputs need no files of their own: the photo is scikit-image's astronaut resized to S×S, and the driving
clip is synthesized per size into a temporary folder, from ``$XP_FACES/driving/lp_d5_hist.mp4`` when present
(default ``<repo>/../shared/faces``), else by animating the astronaut with the built-in "showcase" template.
Its frames are resized to S×S and re-encoded (crf 18), so decoding costs what an S×S input costs.

Rows per size:
  1 decode alone      read_frames() of the driving clip, full size
  2 encode alone      VideoWriter writing N copies of the photo (animate's crf/preset)
  3 floor             decode a frame, encode it, as one pipeline: the I/O cost no engine can avoid
  4 analysis alone    iter_driving() over the clip: motion codes, shading textures (photo layout), mouth interiors
  5 warp alone        WarpGenerator.render() for N precomputed retargeted, shaded targets
  6 animate(driving)  end to end, with the stage_seconds breakdown
  7 animate(template) end to end with "showcase" (no analysis)
  8 animate(driving, window 0)  informational, by default at the target size only: the same run with
                      reference_window_s=0, so warping starts with the first analysed frame
  9 animate(driving, MediaPipe tracking)  informational, at the target size only: row 6 with MediaPipe's own
                      video mode in place of the engine's FaceTracker (xp_sdk/engine/tracking.py), the A/B of it

The end-to-end runs each happen in a fresh subprocess, so their peak RSS is their own. Sizes much below 512
are refused by the engine itself (the astronaut's face becomes smaller than the 64-pixel minimum). The targets
(end-to-end / floor ≤ 2.0 and ≥ 25 fps) are stated for 512²; they are checked for every size, and
``--strict`` exits 1 only when a check at ``--target-size`` fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path, where bench/audit.py would shadow the audit package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from xp_sdk.engine import AnimateOptions, animate  # noqa: E402
from xp_sdk.engine.animate import Progress, prepare_source  # noqa: E402
from xp_sdk.engine.driving import ClipTargets, DrivingFrame, StageClock, iter_driving  # noqa: E402
from xp_sdk.engine.faces import FaceAnalysis  # noqa: E402
from xp_sdk.engine.retarget import Retargeter, RetargetOptions, TargetFace  # noqa: E402
from xp_sdk.engine.shading import FaceLayout  # noqa: E402
from xp_sdk.engine.templates import MotionTemplate, dump_template, load_template  # noqa: E402
from xp_sdk.engine.tracking import TRACKING_ENV  # noqa: E402
from xp_sdk.engine.video import VideoWriter, probe_video, read_frames  # noqa: E402
from xp_sdk.engine.warp import WarpGenerator  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DRIVING_NAME = "lp_d5_hist.mp4"
TEMPLATE = "showcase"
TARGET_RATIO = 2.0
TARGET_FPS = 25.0


def faces_root() -> Path:
    return Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))


# ---------------------------------------------------------------------------------------------- inputs


def astronaut(size: int) -> np.ndarray:
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]
    if photo.shape[:2] == (size, size):
        return photo
    interp = cv2.INTER_AREA if size < photo.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(photo, (size, size), interpolation=interp)


def fit_template(template: MotionTemplate, frames: int) -> MotionTemplate:
    """The template time-scaled to exactly ``frames`` frames, so every motion in it is still played."""
    duration = frames / template.fps
    factor = duration / template.duration
    keys = [k.model_copy(update={"t": k.t * factor}) for k in template.keyframes]
    return MotionTemplate(
        name=f"{template.name}-{frames}f",
        description=template.description,
        fps=template.fps,
        duration=duration,
        keyframes=keys,
    )


def square(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = frame[y0 : y0 + side, x0 : x0 + side]
    interp = cv2.INTER_AREA if size < side else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp))


def ping_pong(frames: list[np.ndarray], n: int) -> Iterator[np.ndarray]:
    # Played back and forth rather than looped, so a clip shorter than N has no jump cut for the tracker.
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    for i in range(n):
        yield frames[order[i % len(order)]]


@dataclass
class DrivingSource:
    frames: list[np.ndarray]
    fps: float
    origin: str


def load_driving_source(work: Path, template_path: Path) -> DrivingSource:
    clip = faces_root() / "driving" / DRIVING_NAME
    if not clip.is_file():
        clip = work / "showcase_512.mp4"
        animate(astronaut(512), clip, template=str(template_path))
        origin = f"astronaut animated with template {TEMPLATE!r} (no {DRIVING_NAME} under {faces_root()})"
    else:
        origin = str(clip)
    return DrivingSource(list(read_frames(clip)), probe_video(clip).fps, origin)


def write_driving(source: DrivingSource, size: int, frames: int, path: Path) -> None:
    resized = [square(f, size) for f in source.frames]
    with VideoWriter(path, width=size, height=size, fps=source.fps, crf=18) as writer:
        for frame in ping_pong(resized, frames):
            writer.write(frame)


# ---------------------------------------------------------------------------------------- measurements


@dataclass
class Stage:
    seconds: float
    frames: int
    cpu_seconds: float
    """Process CPU time (all threads) of the same run: less sensitive than wall time to other load."""
    runs: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / max(self.frames, 1)

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * self.cpu_seconds / max(self.frames, 1)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_of(repeats: int, run: Callable[[], int]) -> Stage:
    runs: list[tuple[float, float]] = []
    frames = 0
    for _ in range(repeats):
        c0, t0 = cpu_seconds(), time.perf_counter()
        frames = run()
        runs.append((time.perf_counter() - t0, cpu_seconds() - c0))
    wall, cpu = min(runs)
    return Stage(wall, frames, cpu, [w for w, _ in runs])


def measure_decode(clip: Path, repeats: int) -> Stage:
    def run() -> int:
        return sum(1 for _ in read_frames(clip))

    return best_of(repeats, run)


def measure_encode(photo: np.ndarray, frames: int, fps: float, out: Path, repeats: int) -> Stage:
    crf = AnimateOptions().crf
    h, w = photo.shape[:2]

    def run() -> int:
        with VideoWriter(out, width=w, height=h, fps=fps, crf=crf) as writer:
            for _ in range(frames):
                writer.write(photo)
        return frames

    return best_of(repeats, run)


def measure_floor(clip: Path, fps: float, out: Path, repeats: int) -> Stage:
    crf = AnimateOptions().crf
    info = probe_video(clip)

    def run() -> int:
        n = 0
        with VideoWriter(out, width=info.width, height=info.height, fps=fps, crf=crf) as writer:
            for frame in read_frames(clip):
                writer.write(frame)
                n += 1
        return n

    return best_of(repeats, run)


def measure_analysis(clip: Path, fps: float, layout: FaceLayout) -> tuple[Stage, list[DrivingFrame]]:
    """Motion codes, shading textures and mouth interiors, as animate() analyses a driving clip."""
    clock = StageClock()
    t0 = time.perf_counter()
    stream = iter_driving(clip, fps, clock=clock, layout=layout, interiors=True)
    codes = [next(stream)]
    # The first code also pays for creating the landmarker; kept apart so ms/frame is the steady rate.
    first = time.perf_counter() - t0
    c1, t1 = cpu_seconds(), time.perf_counter()
    codes.extend(stream)
    wall = time.perf_counter() - t1
    steady = max(len(codes) - 1, 1)
    # The clock counts detection + smoothing only, as animate's stage_seconds["analysis"] does; the wall
    # time adds decoding and the downscale to the analysis size. CPU time covers all of it.
    cpu = (cpu_seconds() - c1) * len(codes) / steady
    stage = Stage(clock.seconds, len(codes), cpu, [clock.seconds])
    stage.extra["wall_ms_per_frame"] = 1000 * wall / steady
    stage.extra["first_code_s"] = first
    stage.extra["faces"] = sum(c.code is not None for c in codes)
    return stage, codes


def prepared_photo(photo: np.ndarray) -> tuple[np.ndarray, FaceAnalysis, FaceLayout]:
    """The photo as animate() prepares it, its face, and the face layout its shading is measured in."""
    image, face = prepare_source(photo, AnimateOptions(max_side=max(photo.shape[:2])))
    return image, face, FaceLayout(face.landmarks)


def video_targets(
    prepared: tuple[np.ndarray, FaceAnalysis, FaceLayout], frames: list[DrivingFrame]
) -> tuple[WarpGenerator, list[TargetFace]]:
    """Targets exactly as animate() retargets and shades them (reference chosen over the whole clip)."""
    image, face, layout = prepared
    options = AnimateOptions()
    retargeter = Retargeter(face, RetargetOptions(options.expression_scale, options.pose_scale))
    if not any(f.code is not None for f in frames):
        raise SystemExit("the driving clip has no face in any frame; cannot benchmark the warp")
    clip = ClipTargets.from_window(retargeter, frames, ClipTargets.best_reference(frames, retargeter), layout)
    targets = [clip(frame) for frame in frames]
    return WarpGenerator(image, face, options.warp), targets


def measure_warp(generator: WarpGenerator, targets: list[TargetFace]) -> Stage:
    generator.render(targets[0])  # first call pays for lazy allocations in OpenCV
    c0, t0 = cpu_seconds(), time.perf_counter()
    for target in targets:
        generator.render(target)
    seconds = time.perf_counter() - t0
    return Stage(seconds, len(targets), cpu_seconds() - c0, [seconds])


# ------------------------------------------------------------------------------- end to end, in a child


def peak_rss_mib() -> float:
    """This process's peak RSS.

    VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over fork and exec, so a child started from
    this (large) benchmark process would report the parent's RSS as its own floor.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_main(spec_json: str) -> None:
    """Runs one animate() in this fresh process and prints its numbers as JSON on the last line."""
    spec = json.loads(spec_json)
    photo = np.load(spec["photo"])
    # FaceAnalyzer imports MediaPipe lazily; that import is a once-per-process cost (≈1 s), kept out of the
    # per-call timing like every other import, and reported on its own.
    t0 = time.perf_counter()
    from mediapipe.tasks.python import vision  # noqa: F401

    import_s = time.perf_counter() - t0
    rss_before = peak_rss_mib()
    if spec.get("tracking"):
        # Row 9, the tracker's A/B: the driving analysis tracks with MediaPipe's video mode instead of FaceTracker.
        os.environ[TRACKING_ENV] = spec["tracking"]
    options = AnimateOptions(max_side=max(photo.shape[:2]), reference_window_s=spec["reference_window_s"])
    kwargs: dict[str, Any] = {"template": spec["template"]} if spec["template"] else {"driving": spec["driving"]}
    first: list[float] = []

    def progress(p: Progress) -> None:
        if p.done == 1:
            first.append(time.perf_counter() - t0)

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    result = animate(photo, spec["out"], options=options, progress=progress, **kwargs)
    wall = time.perf_counter() - t0
    record = {
        "seconds": wall,
        "frames": result.frames,
        "first_frame_s": first[0] if first else None,
        "stage_seconds": result.stage_seconds,
        "reference_frame": result.reference_frame,
        "frames_without_face": result.frames_without_face,
        "cpu_seconds": cpu_seconds() - cpu0,
        "import_s": import_s,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(record))


@dataclass
class EndToEnd:
    seconds: float
    frames: int
    first_frame_s: float | None
    stage_seconds: dict[str, float]
    cpu_seconds: float
    import_s: float
    rss_before_mib: float
    peak_rss_mib: float
    reference_frame: int | None
    frames_without_face: int
    runs: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / max(self.frames, 1)

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * self.cpu_seconds / max(self.frames, 1)


def run_child(spec: dict[str, Any], repeats: int = 1) -> EndToEnd:
    """The fastest of ``repeats`` runs, each in its own fresh process."""
    runs = [_run_child_once(spec) for _ in range(max(repeats, 1))]
    best = min(runs, key=lambda r: r.seconds)
    best.runs = [r.seconds for r in runs]
    return best


def _run_child_once(spec: dict[str, Any]) -> EndToEnd:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"end-to-end run failed ({spec}):\n{proc.stderr[-4000:]}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    return EndToEnd(
        seconds=raw["seconds"],
        frames=raw["frames"],
        first_frame_s=raw["first_frame_s"],
        stage_seconds=raw["stage_seconds"],
        cpu_seconds=raw["cpu_seconds"],
        import_s=raw["import_s"],
        rss_before_mib=raw["rss_before_mib"],
        peak_rss_mib=raw["peak_rss_mib"],
        reference_frame=raw["reference_frame"],
        frames_without_face=raw["frames_without_face"],
    )


# ------------------------------------------------------------------------------------------- reporting


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    import av

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = av.library_versions
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "av": version("av"),
        "libavcodec": ".".join(map(str, libs.get("libavcodec", ()))),
        "mediapipe": version("mediapipe"),
        "scikit-image": version("scikit-image"),
        "loadavg_start": os.getloadavg(),
    }


def fmt_load(load: tuple[float, float, float] | list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class SizeResult:
    size: int
    frames: int
    fps: float
    decode: Stage
    encode: Stage
    floor: Stage
    analysis: Stage
    warp: Stage
    e2e_driving: EndToEnd
    e2e_template: EndToEnd
    e2e_pipelined: EndToEnd | None
    e2e_mediapipe: EndToEnd | None
    loadavg: tuple[float, float, float]

    def checks(self) -> list[tuple[str, EndToEnd, float, bool, bool]]:
        rows = [("animate(driving)", self.e2e_driving), (f"animate({TEMPLATE})", self.e2e_template)]
        if self.e2e_pipelined is not None:
            rows.append(("animate(driving, window 0)", self.e2e_pipelined))
        out = []
        for name, run in rows:
            # Per frame, since the template run and the clip need not have the same frame count.
            ratio = run.ms_per_frame / self.floor.ms_per_frame
            out.append((name, run, ratio, ratio <= TARGET_RATIO, run.fps >= TARGET_FPS))
        return out


def breakdown(run: EndToEnd) -> str:
    per_frame = {k: 1000 * v / max(run.frames, 1) for k, v in run.stage_seconds.items()}
    first = f"{run.first_frame_s:.2f}s" if run.first_frame_s is not None else "-"
    return (
        f"an {per_frame['analysis']:.1f} + shade {per_frame.get('shading', 0.0):.1f} + warp {per_frame['warp']:.1f}"
        f" + enc {per_frame['encode']:.1f} ms/f;"
        f" 1st frame {first}"
    )


def print_report(info: dict[str, Any], results: list[SizeResult], target_size: int) -> None:
    print("machine")
    print(f"  cpu        {info['cpu_count']} logical ({info['cpu_affinity']} usable), {info['cpu_model']}")
    print(f"  platform   {info['platform']}")
    print(f"  python     {info['python']}   numpy {info['numpy']}   scikit-image {info['scikit-image']}")
    print(
        f"  opencv     {info['opencv']} ({info['opencv_threads']} threads)   av {info['av']} "
        f"(libavcodec {info['libavcodec']})   mediapipe {info['mediapipe']}"
    )
    print(
        f"  load avg   start {fmt_load(info['loadavg_start'])}   end {fmt_load(info['loadavg_end'])}"
        "  (1/5/15 min; other work on the machine inflates every row)"
    )
    print(f"  driving    {info['driving_origin']}, resized to S×S, crf 18, ping-ponged to N frames")
    print(f"  photo      skimage astronaut resized to S×S; template {TEMPLATE!r} time-scaled to N frames")
    print()
    header = f"{'size':>5} {'#':>2} {'measurement':<27} {'ms/frame':>9} {'fps':>7} {'sec':>6} {'cpu ms/f':>8}  notes"
    print(header)
    print("-" * len(header) + "-" * 60)
    for r in results:
        sz = f"{r.size}²"

        def row(num: str, name: str, run: Stage | EndToEnd, note: str, sz: str = sz) -> None:
            print(
                f"{sz:>5} {num:>2} {name:<27} {run.ms_per_frame:9.1f} {run.fps:7.1f} {run.seconds:6.2f} "
                f"{run.cpu_ms_per_frame:8.1f}  {note}"
            )

        d, e, f, a, w = r.decode, r.encode, r.floor, r.analysis, r.warp
        row("1", "decode alone", d, f"read_frames, best of {len(d.runs)}")
        row("2", "encode alone", e, f"still photo, crf {AnimateOptions().crf} veryfast, best of {len(e.runs)}")
        row(
            "3",
            "floor = decode→encode",
            f,
            f"one pipeline, best of {len(f.runs)}; encoding these frames ≈ {f.ms_per_frame - d.ms_per_frame:.1f} ms/f",
        )
        row(
            "4",
            "analysis alone",
            a,
            f"detect+smooth; {a.extra['wall_ms_per_frame']:.1f} with decode+resize (cpu includes them); "
            f"1st code {a.extra['first_code_s']:.2f}s; face {int(a.extra['faces'])}/{a.frames}",
        )
        row("5", "warp alone", w, "render() of precomputed targets")
        for num, name, run in (
            ("6", "animate(driving)", r.e2e_driving),
            ("7", f"animate({TEMPLATE})", r.e2e_template),
            ("8", "animate(driving, window 0)", r.e2e_pipelined),
            ("9", "animate(driving, mediapipe)", r.e2e_mediapipe),
        ):
            if run is not None:
                row(num, name, run, breakdown(run))
        print(f"{'':>5}    load avg during this size: {fmt_load(r.loadavg)}")
        print()
    imports = [run.import_s for r in results for run in (r.e2e_driving, r.e2e_template)]
    repeats = len(results[0].e2e_driving.runs) if results else 1
    print(
        "rows 6-9: wall of one animate() call in a fresh process"
        + (f" (best of {repeats})" if repeats > 1 else "")
        + f", MediaPipe already imported (that import, {min(imports):.1f}-{max(imports):.1f} s,\n"
        "  is left out like every other import); an/shade/warp/enc = stage_seconds per frame, busy time of stages "
        "that overlap;\n  1st frame = seconds until the first frame is queued for encoding. cpu ms/f = process "
        "CPU time (all threads)\n  per frame: the work, less sensitive to other load than wall time; rows 6-9 "
        "include their setup.\n  Row 4's 1st code includes creating the landmarker (and, at the first size, "
        "importing MediaPipe)."
    )
    print()

    print(
        f"targets: end-to-end/floor ≤ {TARGET_RATIO:.1f} and ≥ {TARGET_FPS:.0f} fps "
        f"(stated for {target_size}²; other sizes informational)"
    )
    header = (
        f"{'size':>5} {'run':<27} {'fps':>6} {'e2e/floor':>9} {'≤2.0':>5} {'≥25fps':>6} "
        f"{'peak RSS':>9} {'(base)':>8} {'cpu e2e/floor':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for name, run, ratio, ok_ratio, ok_fps in r.checks():
            print(
                f"{r.size:>4}² {name:<27} {run.fps:6.1f} {ratio:9.2f} {verdict(ok_ratio):>5} "
                f"{verdict(ok_fps):>6} {run.peak_rss_mib:6.0f} MiB {run.rss_before_mib:4.0f} MiB "
                f"{run.cpu_ms_per_frame / r.floor.cpu_ms_per_frame:13.2f}"
            )
    print(
        "peak RSS: VmHWM of a fresh subprocess running only that animate() (ru_maxrss would include this "
        "process's RSS,\n  inherited across fork/exec); (base) is its peak after imports, before animate(). "
        "cpu e2e/floor: the same ratio\n  on CPU time per frame, informational (no target), steadier under load."
    )


# ------------------------------------------------------------------------------------------------ main


def parse_sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or any(s < 64 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be a comma-separated list of integers ≥ 64")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=150, help="frames per measurement (default 150)")
    parser.add_argument("--sizes", type=parse_sizes, default=[512, 1024], help="S×S sizes (default 512,1024)")
    parser.add_argument("--repeats", type=int, default=2, help="best-of for decode/encode/floor (default 2)")
    parser.add_argument(
        "--pipelined",
        choices=("none", "target", "all"),
        default="target",
        help="sizes for row 8, animate with reference_window_s=0 (default: the target size)",
    )
    parser.add_argument("--e2e-repeats", type=int, default=1, help="best-of for the end-to-end runs (default 1)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a check at --target-size fails")
    parser.add_argument("--target-size", type=int, default=512, help="size the targets apply to (default 512)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    if args.frames < 2:
        parser.error("--frames must be at least 2")

    started = time.perf_counter()
    info = machine_info()
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="xp-bench-") as tmp:
        work = Path(tmp)
        template_path = work / f"{TEMPLATE}_{args.frames}f.json"
        template_path.write_text(dump_template(fit_template(load_template(TEMPLATE), args.frames)))
        source = load_driving_source(work, template_path)
        info["driving_origin"] = source.origin
        for size in args.sizes:
            print(f"[{time.perf_counter() - started:6.1f}s] size {size}²: preparing inputs", file=sys.stderr)
            clip = work / f"driving_{size}.mp4"
            write_driving(source, size, args.frames, clip)
            photo = astronaut(size)
            photo_path = work / f"photo_{size}.npy"
            np.save(photo_path, photo)
            scratch = work / "scratch.mp4"

            print(f"[{time.perf_counter() - started:6.1f}s] size {size}²: decode/encode/floor", file=sys.stderr)
            decode = measure_decode(clip, args.repeats)
            encode = measure_encode(photo, args.frames, source.fps, scratch, args.repeats)
            floor = measure_floor(clip, source.fps, scratch, args.repeats)
            print(f"[{time.perf_counter() - started:6.1f}s] size {size}²: analysis/warp", file=sys.stderr)
            prepared = prepared_photo(photo)
            analysis, codes = measure_analysis(clip, source.fps, prepared[2])
            generator, targets = video_targets(prepared, codes)
            warp = measure_warp(generator, targets)
            del generator, targets, codes, prepared

            print(f"[{time.perf_counter() - started:6.1f}s] size {size}²: end to end", file=sys.stderr)
            base = {"photo": str(photo_path), "out": str(work / "e2e.mp4"), "reference_window_s": 10.0}
            # Row 9 right after row 6, so the A/B of the tracker sees the same machine.
            driving = run_child({**base, "driving": str(clip), "template": None}, args.e2e_repeats)
            mediapipe = None
            if size == args.target_size:
                with_mediapipe = {**base, "driving": str(clip), "template": None, "tracking": "mediapipe"}
                mediapipe = run_child(with_mediapipe, args.e2e_repeats)
            templ = run_child({**base, "driving": None, "template": str(template_path)}, args.e2e_repeats)
            pipelined = None
            if args.pipelined == "all" or (args.pipelined == "target" and size == args.target_size):
                no_window = {**base, "driving": str(clip), "template": None, "reference_window_s": 0.0}
                pipelined = run_child(no_window, args.e2e_repeats)
            results.append(
                SizeResult(
                    size,
                    args.frames,
                    source.fps,
                    decode,
                    encode,
                    floor,
                    analysis,
                    warp,
                    driving,
                    templ,
                    pipelined,
                    mediapipe,
                    os.getloadavg(),
                )
            )
    info["loadavg_end"] = os.getloadavg()
    info["bench_seconds"] = time.perf_counter() - started
    print(f"[{info['bench_seconds']:6.1f}s] done", file=sys.stderr)

    print_report(info, results, args.target_size)
    print(f"\nbenchmark wall time {info['bench_seconds']:.0f} s, N = {args.frames} frames per row")

    if args.json is not None:
        raw = {
            "machine": info,
            "frames": args.frames,
            "targets": {"ratio": TARGET_RATIO, "fps": TARGET_FPS, "size": args.target_size},
            "sizes": [
                {
                    **asdict(r),
                    "per_frame_ms": {
                        name: stage.ms_per_frame
                        for name, stage in (
                            ("decode", r.decode),
                            ("encode", r.encode),
                            ("floor", r.floor),
                            ("analysis", r.analysis),
                            ("warp", r.warp),
                            ("e2e_driving", r.e2e_driving),
                            ("e2e_template", r.e2e_template),
                            ("e2e_pipelined", r.e2e_pipelined),
                            ("e2e_mediapipe", r.e2e_mediapipe),
                        )
                        if stage is not None
                    },
                    "checks": [
                        {"run": name, "fps": run.fps, "ratio": ratio, "ratio_ok": a, "fps_ok": b}
                        for name, run, ratio, a, b in r.checks()
                    ],
                }
                for r in results
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=1))
        print(f"raw numbers written to {args.json}")

    if args.strict:
        failed = [
            (r.size, name)
            for r in results
            if r.size == args.target_size
            for name, _, _, ok_ratio, ok_fps in r.checks()
            if not (ok_ratio and ok_fps) and name != "animate(driving, window 0)"
        ]
        if failed:
            print(f"--strict: failed checks {failed}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
