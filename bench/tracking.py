"""Face tracking benchmark: xp-sdk's FaceTracker against MediaPipe's own video mode, side by side, in one run.

Run it as ``.venv/bin/python bench/tracking.py [--rounds 3] [--json PATH]``.

For every driving clip in ``$XP_FACES/driving`` (default ``<repo>/../shared/faces``), frames decoded as the engine
decodes them (longer side at most 720), both analyzers track the whole clip, in alternating order for
``--rounds`` rounds. It prints, per clip:

- agreement: mean and worst landmark distance between the two (x, y; inter-ocular units, mean over the 478 points
  of a frame), depth the same way, the largest blendshape difference, and the mean and worst angle between the
  two head rotations (degrees; MediaPipe solves the pose in a perspective camera, the tracker in the image);
- frames with a face for each;
- the time of one frame's analysis (``detect_all``), wall and process CPU, median over rounds, and their ratio.

A sampled pass (every 6th frame, as the reference scout reads a clip) is timed and compared the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where bench/audit.py would shadow the audit package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from xp_sdk.engine import topology  # noqa: E402
from xp_sdk.engine.driving import ANALYSIS_MAX_SIDE  # noqa: E402
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer  # noqa: E402
from xp_sdk.engine.tracking import FaceTracker, VideoFaceAnalyzer  # noqa: E402
from xp_sdk.engine.video import probe_video, read_frames  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ANALYZERS: dict[str, Callable[[], VideoFaceAnalyzer]] = {
    "mediapipe": lambda: FaceAnalyzer(video=True, max_faces=1),
    "tracker": FaceTracker,
}


@dataclass
class ClipResult:
    clip: str
    stride: int
    frames: int
    faces: dict[str, int]
    xy_mean: float
    xy_max: float
    z_mean: float
    blendshape_max: float
    rotation_mean_deg: float
    rotation_max_deg: float
    wall_ms: dict[str, float]
    cpu_ms: dict[str, float]


def faces_root() -> Path:
    return Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))


def track(
    make: Callable[[], VideoFaceAnalyzer], frames: list[tuple[int, np.ndarray]], fps: float
) -> tuple[list[FaceAnalysis | None], float, float]:
    """Every frame's face, and the wall and CPU seconds of the analysis alone."""
    analyzer = make()
    try:
        found: list[FaceAnalysis | None] = []
        wall = cpu = 0.0
        for index, rgb in frames:
            c0, t0 = time.process_time(), time.perf_counter()
            faces = analyzer.detect_all(rgb, timestamp_ms=round(index * 1000 / fps))
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            found.append(faces[0] if faces else None)
        return found, wall, cpu
    finally:
        analyzer.close()


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a.T @ b) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def compare(clip: Path, stride: int, rounds: int) -> ClipResult:
    fps = probe_video(clip).fps
    frames = [(i, f) for i, f in enumerate(read_frames(clip, max_side=ANALYSIS_MAX_SIDE)) if i % stride == 0]
    wall: dict[str, list[float]] = {name: [] for name in ANALYZERS}
    cpu: dict[str, list[float]] = {name: [] for name in ANALYZERS}
    found: dict[str, list[FaceAnalysis | None]] = {}
    for r in range(rounds):
        names = list(ANALYZERS) if r % 2 == 0 else list(reversed(ANALYZERS))
        for name in names:
            found[name], w, c = track(ANALYZERS[name], frames, fps)
            wall[name].append(1000 * w / len(frames))
            cpu[name].append(1000 * c / len(frames))
    pairs = [(a, b) for a, b in zip(found["mediapipe"], found["tracker"], strict=True) if a and b]
    if not pairs:
        raise SystemExit(f"{clip.name}: no frame where both found a face")
    iod = topology.inter_ocular(pairs[0][0].landmarks)
    xy = [float(np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).mean()) / iod for a, b in pairs]
    z = [float(np.abs(a.landmarks[:, 2] - b.landmarks[:, 2]).mean()) / iod for a, b in pairs]
    angles = [angle_deg(a.rotation, b.rotation) for a, b in pairs]
    return ClipResult(
        clip=clip.name,
        stride=stride,
        frames=len(frames),
        faces={name: sum(f is not None for f in found[name]) for name in ANALYZERS},
        xy_mean=float(np.mean(xy)),
        xy_max=float(np.max(xy)),
        z_mean=float(np.mean(z)),
        blendshape_max=float(max(np.abs(a.blendshapes - b.blendshapes).max() for a, b in pairs)),
        rotation_mean_deg=float(np.mean(angles)),
        rotation_max_deg=float(np.max(angles)),
        wall_ms={name: statistics.median(v) for name, v in wall.items()},
        cpu_ms={name: statistics.median(v) for name, v in cpu.items()},
    )


def print_report(results: list[ClipResult], rounds: int) -> None:
    print(
        f"FaceTracker vs MediaPipe video mode (median of {rounds} alternating rounds; agreement in inter-ocular units)"
    )
    print()
    head = (
        f"{'clip':18s} {'step':>4s} {'frames':>6s} {'faces mp/tr':>11s} {'xy mean':>8s} {'xy max':>7s} "
        f"{'z mean':>7s} {'blend max':>9s} {'rot° mean/max':>13s} {'wall ms mp/tr':>14s} {'ratio':>6s} "
        f"{'cpu ms mp/tr':>13s} {'ratio':>6s}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        mp, tr = "mediapipe", "tracker"
        print(
            f"{r.clip:18s} {r.stride:4d} {r.frames:6d} {r.faces[mp]:5d}/{r.faces[tr]:<5d} {r.xy_mean:8.4f} "
            f"{r.xy_max:7.4f} {r.z_mean:7.4f} {r.blendshape_max:9.3f} "
            f"{r.rotation_mean_deg:6.2f}/{r.rotation_max_deg:<6.2f} "
            f"{r.wall_ms[mp]:6.1f}/{r.wall_ms[tr]:<7.1f} {r.wall_ms[tr] / r.wall_ms[mp]:6.2f} "
            f"{r.cpu_ms[mp]:6.1f}/{r.cpu_ms[tr]:<6.1f} {r.cpu_ms[tr] / r.cpu_ms[mp]:6.2f}"
        )
    print()
    print("step 6: every 6th frame, as the reference scout samples a clip. Times include the first frame's detection.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per clip (default 3)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)
    clips = sorted((faces_root() / "driving").glob("*"))
    if not clips:
        raise SystemExit(f"no driving clips in {faces_root() / 'driving'}; set XP_FACES")
    results = [compare(clip, 1, args.rounds) for clip in clips]
    longest = max(clips, key=lambda clip: probe_video(clip).frame_count or 0)
    results.append(compare(longest, 6, args.rounds))
    print_report(results, args.rounds)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
