"""Animation quality over photos × driving clips, scored by two independent landmark families.

Scorers (see bench/scorers/):
  mediapipe  the engine's own evaluator (xp_sdk/engine/evaluate.py, what `xp eval` prints): MediaPipe
             FaceLandmarker shapes, SFace identity (kept: every sampled frame's cosine >= 0.363).
  dlib       dlib's 68 points and its ResNet face encoder, no model shared with the engine (identity kept:
             every sampled frame's descriptor within 0.6 of the photo's, dlib's convention).
Both report the expression ratio (error / static-photo baseline, 0 perfect, 1 no better than not animating)
and the jitter ratio (output jitter / driving jitter). Each driving clip's noise floor is the clip re-encoded
(H.264 crf 23) and scored against itself: an expression ratio below it cannot be resolved.

Targets (issue 22): expression ratio <= 0.5 on >= 80 % of the pairs whose clip noise floor is <= 0.3, identity
kept on every pair, jitter ratio <= 1.2 on >= 90 %, by both scorers. Driving clips are cut to their first
--seconds and the CPU engine runs at --max-side, so the run fits a shared CPU.

    .venv/bin/python bench/quality.py [--out /tmp/xp/eval] [--sets wide,faces] [--pairs clip:photo,...]
    .venv/bin/python bench/quality.py --summarise /tmp/xp/eval/quality.json   # tables from a saved run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path, where bench/audit.py would shadow the audit package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.scorers.clips import head_of_clip, reencoded  # noqa: E402
from bench.scorers.dual import DualScorer, NoiseFloor, spearman  # noqa: E402
from xp_sdk.engine import animate  # noqa: E402
from xp_sdk.engine.options import AnimateOptions  # noqa: E402
from xp_sdk.engine.video import read_frames  # noqa: E402

EXPRESSION_TARGET = 0.5
NOISE_FLOOR_LIMIT = 0.3
EXPRESSION_SHARE = 0.8
JITTER_TARGET = 1.2
JITTER_SHARE = 0.9
SCORERS = ("mediapipe", "dlib")
# Speech, a big smile, a head turn (faces-wide); a grin and pucker, blinks and brows, a wide-open jaw (faces).
DEFAULT_CLIPS = {
    "wide": ["sadtalker_wda_aoc", "dreamtalk_mead_w009_happy", "tpsmm_driving"],
    "faces": ["lp_d5_hist", "lp_d7_hist", "lp_d18"],
}


def sheet(driving: Path, output: Path, out: Path, tiles: int = 8, height: int = 200) -> None:
    rows = []
    for video in (driving, output):
        frames = list(read_frames(video, max_side=2 * height))
        picks = np.linspace(0, len(frames) - 1, tiles).astype(int)
        cells = [cv2.resize(frames[i], (round(frames[i].shape[1] * height / frames[i].shape[0]), height))
                 for i in picks]  # fmt: skip
        rows.append(np.hstack(cells))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


def set_roots() -> dict[str, Path]:
    faces = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))
    wide = Path(os.environ.get("XP_FACES_WIDE", faces.parent / "faces-wide"))
    return {"wide": wide, "faces": faces}


def find_clip(root: Path, stem: str) -> Path:
    matches = [p for p in (root / "driving").iterdir() if p.stem == stem]
    if not matches:
        raise SystemExit(f"driving clip {stem} not found in {root / 'driving'}")
    return matches[0]


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """The numbers the tables use, from one saved pair (None where a scorer found no face)."""
    scores = row.get("scores") or {}
    mp = scores.get("mediapipe") or {}
    dl = scores.get("dlib") or {}
    di = scores.get("dlib_identity") or {}
    nf = row.get("noise_floor") or {}
    return {
        "pair": f"{row['driving']}:{row['photo']}",
        "mediapipe_expression": mp.get("expression_ratio"),
        "dlib_expression": dl.get("expression_ratio"),
        "mediapipe_jitter": mp.get("jitter_ratio"),
        "dlib_jitter": dl.get("jitter_ratio"),
        "mediapipe_identity_min": mp.get("identity_min"),
        "dlib_identity_max": di.get("distance_max"),
        "mediapipe_identity_kept": scores.get("mediapipe_identity_kept", False),
        "dlib_identity_kept": di.get("kept", False),
        "mediapipe_noise_floor": nf.get("mediapipe_expression_ratio"),
        "dlib_noise_floor": nf.get("dlib_expression_ratio"),
    }


def verdicts(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scorer: the share of pairs meeting each target and whether the issue's bar is met."""
    flat = [flat_row(r) for r in rows]
    out: dict[str, dict[str, Any]] = {}
    for scorer in SCORERS:
        resolvable = [f for f in flat if (f[f"{scorer}_noise_floor"] or 1.0) <= NOISE_FLOOR_LIMIT]
        expressive = [f for f in resolvable if (f[f"{scorer}_expression"] or 9.0) <= EXPRESSION_TARGET]
        smooth = [f for f in flat if (f[f"{scorer}_jitter"] or 9.0) <= JITTER_TARGET]
        kept = [f for f in flat if f[f"{scorer}_identity_kept"]]
        out[scorer] = {
            "pairs": len(flat),
            "resolvable": len(resolvable),
            "expression_ok": len(expressive),
            "expression_met": bool(resolvable) and len(expressive) >= EXPRESSION_SHARE * len(resolvable),
            "identity_kept": len(kept),
            "identity_met": len(kept) == len(flat),
            "jitter_ok": len(smooth),
            "jitter_met": bool(flat) and len(smooth) >= JITTER_SHARE * len(flat),
        }
    both = [f for f in flat if f["mediapipe_expression"] is not None and f["dlib_expression"] is not None]
    jit = [f for f in flat if f["mediapipe_jitter"] is not None and f["dlib_jitter"] is not None]
    out["agreement"] = {
        "spearman_expression": spearman(
            [f["mediapipe_expression"] for f in both], [f["dlib_expression"] for f in both]
        ),
        "spearman_jitter": spearman([f["mediapipe_jitter"] for f in jit], [f["dlib_jitter"] for f in jit]),
        "pairs": len(both),
    }
    return out


def badness(row: dict[str, Any]) -> tuple[int, float]:
    """Worst first: identity lost by either scorer, then the larger expression ratio of the two."""
    f = flat_row(row)
    lost = int(not f["mediapipe_identity_kept"]) + int(not f["dlib_identity_kept"])
    ratios = [v for v in (f["mediapipe_expression"], f["dlib_expression"]) if v is not None]
    return (lost, max(ratios) if ratios else 9.0)


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(rows: Sequence[dict[str, Any]], title: str) -> str:
    lines = [
        f"#### {title}",
        "",
        "| clip | photo | expr MP | expr dlib | floor MP | floor dlib | jitter MP | jitter dlib "
        "| SFace min | dlib dist max | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        f = flat_row(row)
        lines.append(
            f"| {row['driving']} | {row['photo']} | {_num(f['mediapipe_expression'])} | {_num(f['dlib_expression'])}"
            f" | {_num(f['mediapipe_noise_floor'])} | {_num(f['dlib_noise_floor'])}"
            f" | {_num(f['mediapipe_jitter'])} | {_num(f['dlib_jitter'])}"
            f" | {_num(f['mediapipe_identity_min'])} | {_num(f['dlib_identity_max'])} | {row.get('error') or ''} |"
        )
    v = verdicts(rows)
    lines += ["", "| scorer | expression ≤ 0.5 (floor ≤ 0.3) | identity kept | jitter ≤ 1.2 |", "|---|---|---|---|"]
    for scorer in SCORERS:
        s = v[scorer]
        lines.append(
            f"| {scorer} | {s['expression_ok']}/{s['resolvable']} {'met' if s['expression_met'] else 'NOT met'}"
            f" | {s['identity_kept']}/{s['pairs']} {'met' if s['identity_met'] else 'NOT met'}"
            f" | {s['jitter_ok']}/{s['pairs']} {'met' if s['jitter_met'] else 'NOT met'} |"
        )
    a = v["agreement"]
    lines += [
        "",
        f"Spearman MediaPipe vs dlib over {a['pairs']} pairs: expression {_num(a['spearman_expression'])}, "
        f"jitter {_num(a['spearman_jitter'])}.",
        "",
    ]
    return "\n".join(lines)


def summarise(results: dict[str, Any]) -> str:
    parts = []
    for name in results["sets"]:
        rows = [r for r in results["pairs"] if r["set"] == name]
        if rows:
            parts.append(markdown(rows, f"{name} (commit {results['commit']})"))
    return "\n".join(parts)


def run_pair(scorer: DualScorer, photo: Path, clip: Path, out_dir: Path, options: AnimateOptions) -> dict[str, Any]:
    output = out_dir / "videos" / f"{clip.stem}__{photo.stem}.mp4"
    row: dict[str, Any] = {"driving": clip.stem, "photo": photo.name}
    t0 = time.perf_counter()
    try:
        result = animate(photo, output, driving=clip, options=options)
    except Exception as exc:  # the bench records a refused pair and goes on; the table shows why
        row["error"] = f"engine: {type(exc).__name__}: {exc}"[:200]
        return row
    row["fps"] = result.frames / (time.perf_counter() - t0)
    try:
        row["scores"] = scorer.score(photo, clip, output).as_dict()
        if row["scores"]["errors"]:
            row["error"] = "; ".join(row["scores"]["errors"])[:200]
    except Exception as exc:
        row["error"] = f"scorer: {type(exc).__name__}: {exc}"[:200]
    sheet(clip, output, out_dir / "sheets" / f"{clip.stem}__{photo.stem}.png")
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/xp/eval"))
    parser.add_argument("--json", type=Path, help="default: OUT/quality.json")
    parser.add_argument("--sets", default="wide,faces")
    parser.add_argument("--clips", help="set:clip_stem,... (default: three per set, see DEFAULT_CLIPS)")
    parser.add_argument("--pairs", help="comma-separated clip_stem:photo_stem pairs to run alone")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-side", type=int, default=384)
    parser.add_argument("--worst", type=int, default=10, help="contact sheets of the worst N pairs")
    parser.add_argument("--summarise", type=Path, help="print the markdown tables of a saved run and stop")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(json.loads(args.summarise.read_text())))
        return 0

    roots = set_roots()
    sets = args.sets.split(",")
    clips = {name: list(DEFAULT_CLIPS[name]) for name in sets}
    if args.clips:
        clips = {name: [] for name in sets}
        for item in args.clips.split(","):
            name, stem = item.split(":")
            clips[name].append(stem)
    wanted = {tuple(p.split(":")) for p in args.pairs.split(",")} if args.pairs else None
    for sub in ("clips", "videos", "sheets"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    json_path = args.json or args.out / "quality.json"
    options = AnimateOptions(max_side=args.max_side, allow_multiple_faces=True)  # the largest face, as the issue asks
    scorer = DualScorer(identity_stride=8)
    results: dict[str, Any] = {
        "commit": head_commit(), "seconds": args.seconds, "max_side": args.max_side,
        "sets": sets, "noise_floors": {}, "pairs": [],
    }  # fmt: skip
    for name in sets:
        root = roots[name]
        if not (root / "manifest.json").is_file():
            print(f"{name}: face set not found at {root}; skipped", file=sys.stderr)
            continue
        photos = sorted((root / "source").iterdir())
        for stem in clips[name]:
            if wanted and not any(stem == c for c, _ in wanted):
                continue
            clip = head_of_clip(find_clip(root, stem), args.seconds, args.out / "clips" / f"{stem}.mp4")
            floor: NoiseFloor = scorer.noise_floor(clip, reencoded(clip, args.out / "clips" / f"{stem}_crf23.mp4"))
            results["noise_floors"][stem] = floor.__dict__
            print(f"{name} {stem}: noise floor {floor}", flush=True)
            for photo in photos:
                if wanted and (stem, photo.stem) not in wanted:
                    continue
                row = run_pair(scorer, photo, clip, args.out, options)
                row |= {"set": name, "noise_floor": floor.__dict__}
                results["pairs"].append(row)
                f = flat_row(row)
                print(
                    f"{stem:<28}{photo.stem:<34} expr {_num(f['mediapipe_expression'])}/"
                    f"{_num(f['dlib_expression'])} jitter {_num(f['mediapipe_jitter'])}/{_num(f['dlib_jitter'])}"
                    f" id {_num(f['mediapipe_identity_min'])}/{_num(f['dlib_identity_max'])} "
                    f"{row.get('error') or ''}",
                    flush=True,
                )
                json_path.write_text(json.dumps(results, indent=1))
    worst = sorted(results["pairs"], key=badness, reverse=True)[: args.worst]
    for i, row in enumerate(worst):
        src = args.out / "sheets" / f"{row['driving']}__{Path(row['photo']).stem}.png"
        if src.is_file():
            shutil.copy(src, args.out / f"worst_{i:02d}_{row['driving']}__{Path(row['photo']).stem}.png")
    results["worst"] = [f"{r['driving']}:{Path(r['photo']).stem}" for r in worst]
    json_path.write_text(json.dumps(results, indent=1))
    print()
    print(summarise(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
