"""Animation quality on every driving clip × every photo of the shared faces set.

Prints one row per pair: expression error as a ratio of the static-photo baseline (target ≤ 0.35), SFace
identity mean/min (target ≥ 0.7), jitter relative to the driving video's own (target ≤ 1.2), pose error next to
its static baseline. Writes a contact sheet per pair (driving frames above, output frames below) to look at.

    .venv/bin/python bench/quality.py [--out out/quality] [--json results.json] [--pairs lp_d5:astronaut,...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where bench/audit.py would shadow the audit package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from xp_sdk.engine import animate  # noqa: E402
from xp_sdk.engine.evaluate import QualityReport, evaluate_files  # noqa: E402
from xp_sdk.engine.video import read_frames  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"expression_ratio": 0.35, "identity_min": 0.7, "jitter_ratio": 1.2}


def sheet(driving: Path, output: Path, out: Path, tiles: int = 8, height: int = 200) -> None:
    rows = []
    for video in (driving, output):
        frames = list(read_frames(video, max_side=2 * height))
        picks = np.linspace(0, len(frames) - 1, tiles).astype(int)
        cells = [cv2.resize(frames[i], (round(frames[i].shape[1] * height / frames[i].shape[0]), height))
                 for i in picks]  # fmt: skip
        rows.append(np.hstack(cells))
    width = min(r.shape[1] for r in rows)
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack([r[:, :width] for r in rows]), cv2.COLOR_RGB2BGR))


def verdict(report: QualityReport) -> list[str]:
    failed = []
    if report.expression_ratio is None or report.expression_ratio > TARGETS["expression_ratio"]:
        failed.append("expression")
    if report.identity_min < TARGETS["identity_min"]:
        failed.append("identity")
    if report.jitter_ratio is not None and report.jitter_ratio > TARGETS["jitter_ratio"]:
        failed.append("jitter")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "out" / "quality")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pairs", help="comma-separated driving:photo stem prefixes to run, e.g. lp_d5:skimage")
    args = parser.parse_args()
    faces = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))
    if not (faces / "manifest.json").is_file():
        print(f"shared faces not found at {faces}; set XP_FACES", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    drivings = sorted((faces / "driving").iterdir())
    photos = sorted((faces / "source").iterdir())
    wanted = [tuple(p.split(":")) for p in args.pairs.split(",")] if args.pairs else None
    header = (
        f"{'driving':<16}{'photo':<20}{'expr':>7}{'idmean':>8}{'idmin':>7}{'jitter':>8}"
        f"{'pose°':>7}{'pose0°':>7}{'fps':>6}  verdict"
    )
    print(header)
    print("-" * len(header))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for driving in drivings:
            for photo in photos:
                if wanted and not any(driving.stem.startswith(d) and photo.stem.startswith(p) for d, p in wanted):
                    continue
                out = Path(tmp) / f"{driving.stem}__{photo.stem}.mp4"
                t0 = time.perf_counter()
                result = animate(photo, out, driving=driving)
                fps = result.frames / (time.perf_counter() - t0)
                report = evaluate_files(photo, driving, out, identity_stride=2)
                sheet(driving, out, args.out / f"{driving.stem}__{photo.stem}.png")
                failed = verdict(report)
                print(
                    f"{driving.stem:<16}{photo.stem:<20}{report.expression_ratio or float('nan'):>7.3f}"
                    f"{report.identity_mean:>8.3f}{report.identity_min:>7.3f}"
                    f"{report.jitter_ratio or float('nan'):>8.2f}"
                    f"{report.pose_error:>7.2f}{report.pose_error_static:>7.2f}{fps:>6.1f}  "
                    f"{'ok' if not failed else 'FAIL ' + ','.join(failed)}",
                    flush=True,
                )
                results.append({"driving": driving.name, "photo": photo.name, "fps": fps,
                                "failed": failed, **report.model_dump()})  # fmt: skip
    passed = sum(not r["failed"] for r in results)
    print(f"\n{passed}/{len(results)} pairs meet every target; contact sheets in {args.out}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
