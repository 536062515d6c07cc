"""Watermark robustness: does the mark survive what clips go through, is it invisible, and is it never claimed
where there is none?

    .venv/bin/python bench/watermark_robustness.py [--method tiled] [--clips N] [--attacks crf,resize]
        [--fp-variants N] [--engine-outputs] [--workers 2] [--out out/bench] [--json PATH] [--strict]

Every shared driving clip (``$XP_FACES/driving``, default ``<repo>/../shared/faces``) is marked with each method
(``mark_video``, one key per method and one payload per clip), then put through every attack of
``bench.attacks.standard_attacks()`` and read back with ``detect_watermark``. With ``--engine-outputs`` the
clips the engine makes are marked too: each driving clip animates a shared photo (longer side capped at 512).

Tables, per method and clip set:
  attacks     detection rate (p < 1e-9 and the decoded payload is the one embedded), mean bit accuracy of the
              received codeword, median p-value, clips
  marking     PSNR/SSIM of marked vs unmarked frames (before encoding), embed ms/frame, detect time per clip and
              per 10 s of 512² video (scaled by pixels × frames)
  unmarked    false positives (any ``detected``) over ``--fp-variants`` unmarked clips from
              ``bench.attacks.unmarked_variant_specs``, by category, and the smallest p-value seen
Then the spec's targets: ≥ 95 % detection under H.264 CRF ≤ 30, resize 0.71, crop 0.71, brightness/contrast
×0.5/×1.5 and re-encode twice; zero false positives; PSNR ≥ 38 dB on every clip. A contact sheet (unmarked
frame, marked frame, difference ×20) is written to ``--out`` for a human to look at. ``--strict`` exits 1 when a
target fails.

All videos live in a temporary folder. Attacks, detections and unmarked variants run in a process pool
(``--workers``, default 2) whose workers each use one thread, so timings are single-threaded but taken while
the other worker is busy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# First, so that `audit` is the package and not bench/audit.py beside this script (its workers inherit the path).
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.attacks import (  # noqa: E402
    UnmarkedVariant,
    get_attack,
    select_evenly,
    standard_attacks,
    unmarked_variant_specs,
)
from watermark import (  # noqa: E402
    METHOD_NAMES,
    Payload,
    WatermarkKey,
    detect_watermark,
    get_method,
    mark_video,
)

P_THRESHOLD = 1e-9
TARGET_RATE = 0.95
TARGET_PSNR = 38.0
TARGET_ATTACKS = (
    "identity",
    "h264_crf18",
    "h264_crf23",
    "h264_crf28",
    "resize_0.71",
    "crop_0.71",
    "brightness_0.5",
    "brightness_1.5",
    "contrast_0.5",
    "contrast_1.5",
    "reencode_twice",
)
NO_ATTACK = "none"
REFERENCE_PIXEL_FRAMES = 512 * 512 * 300  # 10 s of 512² at 30 fps


def faces_root() -> Path:
    return Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))


def bench_key(seed: int, method: str) -> WatermarkKey:
    # Derived rather than generated so two runs with the same --seed mark the same way.
    return WatermarkKey(hashlib.sha256(f"xp-watermark-bench/{seed}/{method}".encode()).digest())


def bench_payload(seed: int, clip: str) -> Payload:
    return Payload(int.from_bytes(hashlib.sha256(f"xp-watermark-bench/{seed}/{clip}".encode()).digest()[:8], "big"))


# ------------------------------------------------------------------------------------- work done in the pool


def init_worker() -> None:
    cv2.setNumThreads(1)


def video_shape(path: Path) -> tuple[int, int, float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        return stream.codec_context.width, stream.codec_context.height, float(rate)


def detection_record(path: Path, key: WatermarkKey, method: str, payload: Payload | None) -> dict[str, Any]:
    det = detect_watermark(path, key, method=method)
    width, height, _ = video_shape(path)
    record: dict[str, Any] = {
        "detected": bool(det.detected),
        "p_value": float(det.p_value),
        "decoded": det.payload is not None,
        "frames": det.frames,
        "detect_seconds": det.seconds,
        "pixels": width * height,
        "sync": det.sync,
    }
    if payload is not None:
        expected = payload.codeword(key)
        record["correct"] = bool(det.detected and det.p_value < P_THRESHOLD and det.payload == payload)
        record["bit_accuracy"] = float(np.mean(det.received_bits == expected))
    return record


def animate_task(photo: str, driving: str, out: str) -> dict[str, Any]:
    from xp_sdk.engine import AnimateOptions, animate

    started = time.perf_counter()
    try:
        result = animate(photo, out, driving=driving, options=AnimateOptions(max_side=512))
    except Exception as exc:  # one pair the engine refuses should not stop the benchmark
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"frames": result.frames, "seconds": time.perf_counter() - started}


def mark_task(clip: str, marked: str, method: str, key: WatermarkKey, payload: Payload) -> dict[str, Any]:
    try:
        report = mark_video(Path(clip), Path(marked), key, payload, method=method)
        record = detection_record(Path(marked), key, method, payload)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"report": asdict(report), **record}


def attack_task(marked: str, out: str, attack: str, method: str, key: WatermarkKey, payload: Payload) -> dict[str, Any]:
    try:
        get_attack(attack).apply(Path(marked), Path(out), threads=1)
        return detection_record(Path(out), key, method, payload)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        Path(out).unlink(missing_ok=True)


def unmarked_task(variant: UnmarkedVariant, folder: str, keys: dict[str, WatermarkKey]) -> dict[str, Any]:
    path = Path(folder) / variant.filename
    try:
        variant.write(path)
        return {method: detection_record(path, key, method, None) for method, key in keys.items()}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class Clip:
    name: str
    path: Path
    group: str
    """"driving" (a shared clip as it is) or "engine" (an animate() output)."""
    payload: Payload


@dataclass
class Results:
    marks: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(method, clip) → the mark task's record (MarkReport plus detection of the marked file as written)."""
    attacks: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    """(method, clip, attack) → detection record."""
    unmarked: list[tuple[UnmarkedVariant, dict[str, Any]]] = field(default_factory=list)
    engine_errors: list[str] = field(default_factory=list)


class Progress:
    def __init__(self, started: float) -> None:
        self.started = started
        self.done: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)
        self.last = 0.0

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def tick(self, kind: str) -> None:
        self.done[kind] += 1
        now = time.perf_counter()
        if now - self.last > 10 or all(self.done[k] == self.total[k] for k in self.total):
            self.last = now
            self.log("  ".join(f"{k} {self.done[k]}/{self.total[k]}" for k in self.total))


def run(args: argparse.Namespace, clips: list[Clip], work: Path, progress: Progress) -> Results:
    methods: list[str] = args.methods
    keys = {m: bench_key(args.seed, m) for m in methods}
    attacks = [a.name for a in standard_attacks() if not args.attacks or any(t in a.name for t in args.attacks)]
    variants = select_evenly(unmarked_variant_specs(faces_root(), seed=args.seed, threads=1), args.fp_variants)
    results = Results()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker) as pool:
        pending: dict[Future[dict[str, Any]], Callable[[dict[str, Any]], None]] = {}

        def submit(kind: str, done: Callable[[dict[str, Any]], None], fn: Any, *fn_args: Any) -> None:
            progress.total[kind] += 1

            def finish(record: dict[str, Any]) -> None:
                done(record)
                progress.tick(kind)

            pending[pool.submit(fn, *fn_args)] = finish

        def marked(method: str, clip: Clip, path: Path) -> Callable[[dict[str, Any]], None]:
            def done(record: dict[str, Any]) -> None:
                results.marks[(method, clip.name)] = record
                if "error" in record:
                    progress.log(f"marking {clip.name} with {method} failed: {record['error']}")
                    return
                for attack in attacks:
                    out = work / f"{method}__{clip.name}__{attack}.mp4"
                    submit("attacked", store_attack(method, clip, attack), attack_task, str(path), str(out), attack,
                           method, keys[method], clip.payload)  # fmt: skip

            return done

        def store_attack(method: str, clip: Clip, attack: str) -> Callable[[dict[str, Any]], None]:
            def done(record: dict[str, Any]) -> None:
                results.attacks[(method, clip.name, attack)] = record

            return done

        def store_unmarked(variant: UnmarkedVariant) -> Callable[[dict[str, Any]], None]:
            def done(record: dict[str, Any]) -> None:
                results.unmarked.append((variant, record))

            return done

        for method in methods:
            for clip in clips:
                path = work / f"marked__{method}__{clip.name}.mp4"
                submit("marked", marked(method, clip, path), mark_task, str(clip.path), str(path), method,
                       keys[method], clip.payload)  # fmt: skip
        variants_dir = work / "unmarked"
        variants_dir.mkdir()
        for variant in variants:
            submit("unmarked", store_unmarked(variant), unmarked_task, variant, str(variants_dir), keys)
        while pending:
            finished, _ = wait(list(pending), return_when="FIRST_COMPLETED")
            for future in finished:
                pending.pop(future)(future.result())
    return results


def engine_clips(args: argparse.Namespace, drivings: list[Path], work: Path, progress: Progress) -> list[Clip]:
    """One animate() output per driving clip, with the shared photos taken in turn."""
    photos = sorted(p for p in (faces_root() / "source").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    jobs = []
    for i, driving in enumerate(drivings):
        photo = photos[i % len(photos)]
        name = f"engine:{driving.stem}×{photo.stem}"
        jobs.append((name, photo, driving, work / f"engine__{driving.stem}__{photo.stem}.mp4"))
    progress.log(f"animating {len(jobs)} engine outputs (512 px)")
    clips = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker) as pool:
        futures = [pool.submit(animate_task, str(photo), str(driving), str(out)) for _, photo, driving, out in jobs]
        for (name, _, _, out), future in zip(jobs, futures, strict=True):
            record = future.result()
            if "error" in record:
                progress.log(f"  {name}: skipped, {record['error']}")
                continue
            progress.log(f"  {name}: {record['frames']} frames in {record['seconds']:.1f} s")
            clips.append(Clip(name, out, "engine", bench_payload(args.seed, name)))
    return clips


# --------------------------------------------------------------------------------------------- contact sheet


def middle_frame(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    frame = frames[len(frames) // 2]
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])


def contact_sheet(clip: Clip, methods: list[str], seed: int, out: Path) -> None:
    """Per method: unmarked frame, marked frame (before encoding), 128 + 20 × (marked − unmarked)."""
    frame = middle_frame(clip.path)
    h, w = frame.shape[:2]
    rows = []
    for method in methods:
        key = bench_key(seed, method)
        embedder = get_method(method).embedder(key, clip.payload.codeword(key), width=w, height=h)
        marked = embedder.embed(frame)
        diff = np.clip(128 + 20 * (marked.astype(np.int16) - frame.astype(np.int16)), 0, 255).astype(np.uint8)
        cells = []
        for label, image in (("unmarked", frame), (f"marked: {method}", marked), ("difference x20", diff)):
            cell = image.copy()
            cv2.putText(cell, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
            cells.append(cell)
        rows.append(np.hstack(cells))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


# ------------------------------------------------------------------------------------------------- reporting


def pct(k: int, n: int) -> str:
    return f"{100 * k / n:5.1f}%" if n else "    -"


def fmt_p(p: float) -> str:
    return f"{p:8.1e}" if p > 0 else "       0"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class AttackRow:
    attack: str
    n: int
    correct: int
    bit_accuracy: float
    median_p: float
    errors: int

    @property
    def rate(self) -> float:
        return self.correct / self.n if self.n else 0.0


def attack_rows(results: Results, method: str, clips: list[Clip], attacks: list[str]) -> list[AttackRow]:
    rows = []
    for attack in attacks:
        if attack == NO_ATTACK:
            records = [results.marks.get((method, c.name), {}) for c in clips]
        else:
            records = [results.attacks.get((method, c.name, attack), {}) for c in clips]
        ok = [r for r in records if "detected" in r]
        rows.append(
            AttackRow(
                attack,
                len(ok),
                sum(r["correct"] for r in ok),
                float(np.mean([r["bit_accuracy"] for r in ok])) if ok else math.nan,
                statistics.median(r["p_value"] for r in ok) if ok else math.nan,
                len(records) - len(ok),
            )
        )
    return rows


def print_attacks(method: str, group: str, rows: list[AttackRow], describe: dict[str, str]) -> None:
    print(f"\n{method} — {group}: detection = p < {P_THRESHOLD:g} and the embedded payload decoded")
    header = f"{'attack':<29}{'detected':>9}{'rate':>8}{'bit acc':>9}{'median p':>10}  target  what"
    print(header)
    print("-" * (len(header) + 40))
    for r in rows:
        target = f"{verdict(r.rate >= TARGET_RATE):>6}" if r.attack in TARGET_ATTACKS else "      "
        errors = f"  ({r.errors} failed to run)" if r.errors else ""
        print(
            f"{r.attack:<29}{r.correct:>4}/{r.n:<4}{pct(r.correct, r.n):>8}{r.bit_accuracy:9.3f}{fmt_p(r.median_p):>10}"
            f"  {target}  {describe.get(r.attack, '')}{errors}"
        )


def marking_summary(results: Results, method: str, clips: list[Clip]) -> dict[str, float]:
    records = [results.marks[(method, c.name)] for c in clips if "report" in results.marks.get((method, c.name), {})]
    if not records:
        return {}
    reports = [r["report"] for r in records]
    frames = sum(r["frames"] for r in reports)
    embed = sum(r["embed_seconds"] for r in reports)
    detect = sum(r["detect_seconds"] for r in records)
    pixel_frames = sum(r["frames"] * r["pixels"] for r in records)
    embed_pixel_frames = sum(rep["frames"] * rec["pixels"] for rep, rec in zip(reports, records, strict=True))
    return {
        "clips": len(records),
        "psnr_mean": float(np.mean([r["psnr_db"] for r in reports])),
        "psnr_min": float(min(r["psnr_db"] for r in reports)),
        "ssim_mean": float(np.mean([r["ssim"] for r in reports])),
        "ssim_min": float(min(r["ssim"] for r in reports)),
        "embed_ms_per_frame": 1000 * embed / frames,
        "embed_s_per_10s_512": embed / embed_pixel_frames * REFERENCE_PIXEL_FRAMES,
        "detect_s_per_clip": detect / len(records),
        "detect_ms_per_frame": 1000 * detect / max(sum(r["frames"] for r in records), 1),
        "detect_s_per_10s_512": detect / pixel_frames * REFERENCE_PIXEL_FRAMES,
    }


def print_marking(summaries: dict[tuple[str, str], dict[str, float]]) -> None:
    print("\nmarking: PSNR/SSIM of marked vs unmarked frames before encoding; times single-threaded, per clip")
    header = (
        f"{'method':<11}{'clips':<9}{'n':>3}{'PSNR mean':>10}{'min':>7}{'SSIM mean':>10}{'min':>7}"
        f"{'embed ms/f':>11}{'detect s/clip':>14}{'ms/f':>6}{'per 10 s 512²: embed':>22}{'detect':>8}"
    )
    print(header)
    print("-" * len(header))
    for (method, group), s in summaries.items():
        if not s:
            continue
        print(
            f"{method:<11}{group:<9}{s['clips']:>3.0f}{s['psnr_mean']:10.2f}{s['psnr_min']:7.2f}{s['ssim_mean']:10.4f}"
            f"{s['ssim_min']:7.4f}{s['embed_ms_per_frame']:11.1f}{s['detect_s_per_clip']:14.2f}"
            f"{s['detect_ms_per_frame']:6.1f}{s['embed_s_per_10s_512']:20.1f} s{s['detect_s_per_10s_512']:6.1f} s"
        )
    print("  detect ms/f counts the frames the detector read; per 10 s of 512² scales by pixels × frames (300 frames)")


def unmarked_summary(results: Results, method: str) -> dict[str, Any]:
    by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    ps, positives, errors = [], [], 0
    for variant, record in results.unmarked:
        if method not in record:
            errors += 1
            continue
        r = record[method]
        counts = by_category[variant.category]
        counts[0] += 1
        counts[1] += r["detected"]
        counts[2] += r["decoded"]
        ps.append(r["p_value"])
        if r["detected"]:
            positives.append(f"{variant.name} (p {r['p_value']:.1e})")
    return {
        "variants": sum(c[0] for c in by_category.values()),
        "false_positives": sum(c[1] for c in by_category.values()),
        "decoded": sum(c[2] for c in by_category.values()),
        "min_p": min(ps) if ps else math.nan,
        "by_category": dict(by_category),
        "positives": positives,
        "errors": errors,
    }


def print_unmarked(summaries: dict[str, dict[str, Any]]) -> None:
    print("\nunmarked clips: false positive = detect_watermark says detected (decoded = a payload came out at all)")
    categories = sorted({c for s in summaries.values() for c in s["by_category"]})
    header = f"{'category':<17}{'clips':>6}" + "".join(f"{m + ' FP':>15}{'decoded':>9}" for m in summaries)
    print(header)
    print("-" * len(header))
    for category in categories:
        counts = [s["by_category"].get(category, [0, 0, 0]) for s in summaries.values()]
        line = f"{category:<17}{counts[0][0]:>6}" + "".join(f"{c[1]:>15}{c[2]:>9}" for c in counts)
        print(line)
    first = next(iter(summaries.values()))
    print(
        f"{'all':<17}{first['variants']:>6}"
        + "".join(f"{s['false_positives']:>15}{s['decoded']:>9}" for s in summaries.values())
    )
    for method, s in summaries.items():
        print(f"  {method}: smallest p-value on an unmarked clip {s['min_p']:.2e}", end="")
        print(f"; {s['errors']} variants failed to run" if s["errors"] else "")
        for name in s["positives"]:
            print(f"    false positive: {name}")


def print_targets(
    methods: list[str],
    rows: dict[tuple[str, str], list[AttackRow]],
    marking: dict[tuple[str, str], dict[str, float]],
    unmarked: dict[str, dict[str, Any]],
) -> bool:
    print("\ntargets (every clip set)")
    all_ok = True
    for method in methods:
        target_rows = [r for (m, _), rs in rows.items() if m == method for r in rs if r.attack in TARGET_ATTACKS]
        worst = min(target_rows, key=lambda r: r.rate, default=None)
        ok_rate = worst is not None and worst.rate >= TARGET_RATE and not any(r.errors for r in target_rows)
        worst_text = f"lowest {worst.attack} {100 * worst.rate:.1f}%" if worst else "no data"
        psnrs = [s["psnr_min"] for (m, _), s in marking.items() if m == method and s]
        ok_psnr = bool(psnrs) and min(psnrs) >= TARGET_PSNR
        fp = unmarked.get(method)
        ok_fp = fp is not None and fp["false_positives"] == 0 and fp["variants"] > 0 and not fp["errors"]
        print(
            f"  {method:<10} ≥{100 * TARGET_RATE:.0f}% detection under H.264 CRF ≤30, resize 0.71, crop 0.71, "
            f"brightness/contrast ×0.5/×1.5, re-encode twice: {verdict(ok_rate)} ({worst_text})"
        )
        fp_text = f"{fp['false_positives']} of {fp['variants']}" if fp else "not run"
        print(f"  {method:<10} zero false positives over unmarked variants: {verdict(ok_fp)} ({fp_text})")
        psnr_text = f"min {min(psnrs):.2f} dB" if psnrs else "no data"
        print(f"  {method:<10} PSNR ≥ {TARGET_PSNR:.0f} dB on every clip: {verdict(ok_psnr)} ({psnr_text})")
        all_ok = all_ok and ok_rate and ok_fp and ok_psnr
    return all_ok


# ------------------------------------------------------------------------------------------------------ main


def parse_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--method", dest="methods", action="append", choices=METHOD_NAMES, help="repeatable (default: all)"
    )
    parser.add_argument("--clips", type=int, help="the first N shared driving clips (default: all)")
    parser.add_argument("--attacks", type=parse_list, help="comma-separated substrings of attack names to run")
    parser.add_argument("--fp-variants", type=int, default=200, help="unmarked clips for false positives (200)")
    parser.add_argument("--engine-outputs", action="store_true", help="also mark animate() outputs (512 px)")
    parser.add_argument("--workers", type=int, default=2, help="process pool size (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="derives the keys, payloads and synthetic clips")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench", help="contact sheet folder")
    parser.add_argument("--json", type=Path, help="write the raw records here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)
    args.methods = list(dict.fromkeys(args.methods or METHOD_NAMES))
    faces = faces_root()
    if not (faces / "manifest.json").is_file():
        print(f"shared faces not found at {faces}; set XP_FACES", file=sys.stderr)
        return 2
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # inherited by the spawned workers: one thread each

    started = time.perf_counter()
    progress = Progress(started)
    drivings = sorted(p for p in (faces / "driving").iterdir() if p.is_file())[: args.clips]
    attack_list = [a for a in standard_attacks() if not args.attacks or any(t in a.name for t in args.attacks)]
    if not attack_list:
        parser.error(f"no attack matches {args.attacks}")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="xp-wm-bench-") as tmp:
        work = Path(tmp)
        clips = [Clip(p.stem, p, "driving", bench_payload(args.seed, p.stem)) for p in drivings]
        if args.engine_outputs:
            clips += engine_clips(args, drivings, work, progress)
        progress.log(
            f"{len(args.methods)} methods × {len(clips)} clips × {len(attack_list)} attacks, "
            f"{args.fp_variants} unmarked variants, {args.workers} workers"
        )
        results = run(args, clips, work, progress)
        sheet = args.out / "watermark_contact_sheet.png"
        contact_sheet(clips[0], args.methods, args.seed, sheet)
    seconds = time.perf_counter() - started

    describe = {a.name: a.describe() for a in attack_list} | {NO_ATTACK: "the marked file as mark_video wrote it"}
    attack_names = [NO_ATTACK] + [a.name for a in attack_list]
    groups = [g for g in ("driving", "engine") if any(c.group == g for c in clips)]
    print(f"clips: {', '.join(f'{c.name} ({c.group})' for c in clips)}")
    rows: dict[tuple[str, str], list[AttackRow]] = {}
    marking: dict[tuple[str, str], dict[str, float]] = {}
    for method in args.methods:
        for group in groups:
            members = [c for c in clips if c.group == group]
            rows[(method, group)] = attack_rows(results, method, members, attack_names)
            marking[(method, group)] = marking_summary(results, method, members)
            print_attacks(method, f"{group} clips", rows[(method, group)], describe)
    print_marking(marking)
    unmarked = {m: unmarked_summary(results, m) for m in args.methods}
    print_unmarked(unmarked)
    for (method, clip), record in results.marks.items():
        if "error" in record:
            print(f"  marking {clip} with {method} failed: {record['error']}")
    all_ok = print_targets(args.methods, rows, marking, unmarked)
    print(f"\ncontact sheet: {sheet}")
    print(
        f"benchmark wall time {seconds:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers; load avg "
        f"{' '.join(f'{x:.2f}' for x in load_start)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        raw = {
            "seconds": seconds,
            "clips": [{"name": c.name, "group": c.group, "payload": c.payload.hex} for c in clips],
            "marks": [{"method": m, "clip": c, **r} for (m, c), r in results.marks.items()],
            "attacks": [{"method": m, "clip": c, "attack": a, **r} for (m, c, a), r in results.attacks.items()],
            "unmarked": [{"variant": v.name, "category": v.category, **r} for v, r in results.unmarked],
            "summary": {
                "attacks": {f"{m}/{g}": [asdict(r) for r in rs] for (m, g), rs in rows.items()},
                "marking": {f"{m}/{g}": s for (m, g), s in marking.items()},
                "unmarked": unmarked,
            },
        }
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    return 1 if args.strict and not all_ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
