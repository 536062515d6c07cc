"""Where the expression is lost: in retargeting, or between the warp and what a landmark detector sees in it.

For each driving clip × photo pair, per region of the expressive landmarks (inner and outer lips, upper and lower
lids, eye corners, brows, jaw line), in the pose-free, inter-ocular units of ``xp eval``:

- ``target``: expression ratio of the retargeted landmarks themselves against the driving video (what the warp is
  asked to show);
- ``output``: expression ratio of MediaPipe's landmarks on the rendered frames against the driving video (what
  ``xp eval`` scores, less the H.264 step);
- ``gain``: how much of the target's motion MediaPipe reads back in the rendered frames (least squares, 1 = all of
  it), and ``resid``: what is left of the output's error once that gain is allowed for.

A low gain with a small residual says the warp moves the right pixels by the right amounts but the frames do not
look like that expression to the detector (no new shading, no wrinkles): a renderer problem, not a motion one.

    .venv/bin/python bench/render_gap.py --pairs lp_d5:lp_s9,lp_d7:lp_d8
    .venv/bin/python bench/render_gap.py --pairs lp_d5:self      # the driver's own first frame as the photo
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where bench/audit.py would shadow the audit package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from xp_sdk.engine import topology  # noqa: E402
from xp_sdk.engine.animate import AnimateOptions, prepare_source  # noqa: E402
from xp_sdk.engine.driving import ClipTargets, iter_driving  # noqa: E402
from xp_sdk.engine.evaluate import canonical_shape  # noqa: E402
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer  # noqa: E402
from xp_sdk.engine.retarget import Retargeter  # noqa: E402
from xp_sdk.engine.shading import FaceLayout  # noqa: E402
from xp_sdk.engine.video import probe_video, read_frames  # noqa: E402
from xp_sdk.engine.warp import WarpGenerator  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXPRESSIVE = list(topology.EXPRESSIVE)
REGIONS = {
    "lips inner": set(topology.LIPS_UPPER_INNER + topology.LIPS_LOWER_INNER),
    "lips outer": set(topology.LIPS_UPPER_OUTER + topology.LIPS_LOWER_OUTER) - set(topology.LIPS_UPPER_INNER),
    "upper lids": set(topology.EYE_A_UPPER[1:-1] + topology.EYE_B_UPPER[1:-1]),
    "lower lids": set(topology.EYE_A_LOWER[1:-1] + topology.EYE_B_LOWER[1:-1]),
    "eye corners": {topology.EYE_A_UPPER[0], topology.EYE_A_UPPER[-1], topology.EYE_B_UPPER[0],
                    topology.EYE_B_UPPER[-1]},
    "brows": set(topology.BROW_A + topology.BROW_B),
    "jaw line": set(EXPRESSIVE) - set(topology.LIPS_UPPER_INNER + topology.LIPS_LOWER_INNER
                                      + topology.LIPS_UPPER_OUTER + topology.LIPS_LOWER_OUTER
                                      + topology.EYE_A_UPPER + topology.EYE_A_LOWER + topology.EYE_B_UPPER
                                      + topology.EYE_B_LOWER + topology.BROW_A + topology.BROW_B),
}  # fmt: skip


def shapes_of(frames: list[np.ndarray], fps: float) -> list[np.ndarray | None]:
    """Pose-free expressive shapes (x, y) of each frame, analysed as ``xp eval`` does (video mode, warmed up)."""
    shapes: list[np.ndarray | None] = []
    anchor: np.ndarray | None = None
    with FaceAnalyzer(video=True, max_faces=1) as analyzer:
        for i, rgb in enumerate(frames):
            ticks = range(i + 10, i + 11) if i else range(11)
            faces: list[FaceAnalysis] = []
            for tick in ticks:
                faces = analyzer.detect_all(rgb, round(tick * 1000.0 / fps))
            shape = canonical_shape(faces[0], anchor) if faces else None
            if shape is not None and anchor is None:
                anchor = shape
            shapes.append(None if shape is None else shape[EXPRESSIVE, :2])
    return shapes


def pair_table(driving: Path, photo: Path) -> list[tuple[str, float, float, float, float]]:
    fps = probe_video(driving).fps
    image, face = prepare_source(photo, AnimateOptions())
    layout = FaceLayout(face.landmarks)
    frames = list(iter_driving(driving, fps, layout=layout, interiors=True))
    retargeter = Retargeter(face)
    clip = ClipTargets.from_window(retargeter, frames, ClipTargets.best_reference(frames, retargeter), layout)
    generator = WarpGenerator(image, face)
    targets, rendered = [], []
    for frame in frames:
        target = clip(frame)
        targets.append(target)
        rendered.append(generator.render(target))
    driven = shapes_of(list(read_frames(driving)), fps)
    seen = shapes_of(rendered, fps)
    keep = [i for i in range(min(len(driven), len(seen))) if driven[i] is not None and seen[i] is not None]
    d = np.stack([driven[i] for i in keep])  # type: ignore[misc]
    o = np.stack([seen[i] for i in keep])  # type: ignore[misc]
    t = np.stack([targets[i].canonical[EXPRESSIVE, :2] for i in keep])  # type: ignore[index]
    d, o, t = d - d.mean(axis=0), o - o.mean(axis=0), t - t.mean(axis=0)

    def ratio(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b, axis=-1).mean() / max(np.linalg.norm(b, axis=-1).mean(), 1e-9))

    rows = [("all", ratio(t, d), ratio(o, d), *_gain(o, t))]
    for name, points in REGIONS.items():
        mask = np.array([p in points for p in EXPRESSIVE])
        gain, resid = _gain(o[:, mask], t[:, mask])
        rows.append((name, ratio(t[:, mask], d[:, mask]), ratio(o[:, mask], d[:, mask]), gain, resid))
    return rows


def _gain(output: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    gain = float((output * target).sum() / max(float((target * target).sum()), 1e-12))
    resid = float(
        np.linalg.norm(output - gain * target, axis=-1).mean() / max(np.linalg.norm(target, axis=-1).mean(), 1e-9)
    )
    return gain, resid


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--pairs",
        default="lp_d5:lp_s9,lp_d7:lp_d8",
        help="driving:photo stems, e.g. lp_d5:lp_s9; photo 'self' is the driving clip's own first frame",
    )
    args = parser.parse_args()
    faces = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))
    if not (faces / "manifest.json").is_file():
        print(f"shared faces not found at {faces}; set XP_FACES", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        for pair in args.pairs.split(","):
            drive_stem, photo_stem = pair.split(":")
            driving = next((faces / "driving").glob(drive_stem + "*"))
            if photo_stem == "self":
                # The driver animating their own first frame: what the detector reads back when the photo is
                # the same person, lit the same way, so only the renderer stands between target and output.
                photo = Path(scratch) / f"{driving.stem}_frame0.png"
                Image.fromarray(next(iter(read_frames(driving)))).save(photo)
            else:
                photo = next((faces / "source").glob(photo_stem + "*"))
            print(f"\n{driving.name} × {photo.name}")
            print(f"  {'region':<12}{'target':>8}{'output':>8}{'gain':>7}{'resid':>7}")
            for name, target, output, gain, resid in pair_table(driving, photo):
                print(f"  {name:<12}{target:>8.2f}{output:>8.2f}{gain:>7.2f}{resid:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
