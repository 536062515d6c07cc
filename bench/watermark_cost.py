"""What provenance costs a generation: watermark CPU per frame against the engine's, and the time to verify.

    .venv/bin/python bench/watermark_cost.py [--repeats 2] [--driving CLIP] [--source PHOTO]

Animates one shared photo with one shared driving clip at 512 px, alternately without and with the watermark
filter (the same engine run otherwise), and compares process CPU time per frame: the target is a watermark cost
of at most 20 % of the engine's, counting the read-back ``generate`` does after encoding. Then signs and verifies
the marked clip (C2PA read plus watermark detection) and scales the verify time to 10 s of 512² video (target ≤ 1 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    faces = Path(os.environ.get("XP_FACES", REPO.parent / "shared" / "faces"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--driving", type=Path, default=faces / "driving" / "lp_d5_hist.mp4")
    parser.add_argument("--source", type=Path, default=faces / "source" / "skimage_astronaut.png")
    args = parser.parse_args()

    from watermark import FrameMarker, Payload, get_method
    from xp_sdk.engine import AnimateOptions, animate
    from xp_sdk.generate import generate, mark_reads_back
    from xp_sdk.home import Home
    from xp_sdk.provenance import init_provenance_keys
    from xp_sdk.verify import verify

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = init_provenance_keys(Home(folder / "home"))
        options = AnimateOptions(max_side=512)
        cpu: dict[str, list[float]] = {"engine": [], "engine + watermark": [], "  + read-back": []}
        frames = 0
        for _ in range(args.repeats):
            for label in ("engine", "engine + watermark"):
                payload = Payload.new()
                marker = FrameMarker(keys.watermark_key, payload, get_method()) if label != "engine" else None
                started = _cpu()
                result = animate(
                    args.source, folder / "clip.mp4", driving=args.driving, options=options, frame_filter=marker
                )
                frames = result.frames
                cpu[label].append((_cpu() - started) / frames * 1000)
                if marker is not None:
                    # What generate() adds after encoding: the check that the mark reads back.
                    started = _cpu()
                    if not mark_reads_back(folder / "clip.mp4", keys.watermark_key, payload):
                        raise SystemExit("the mark did not read back from the engine output")
                    cpu["  + read-back"].append((_cpu() - started) / frames * 1000)
        made = generate(args.source, folder / "signed.mp4", keys=keys, driving=args.driving, options=options)
        started_wall = time.perf_counter()
        verdict = verify(made.output, keys=keys)
        verify_s = time.perf_counter() - started_wall
        width, height = made.animation.width, made.animation.height

    engine_ms, marked_ms = min(cpu["engine"]), min(cpu["engine + watermark"])
    cost = marked_ms - engine_ms + min(cpu["  + read-back"])
    per_10s = verify_s * (512 * 512 * 300) / (width * height * frames)
    print(f"{args.source.name} × {args.driving.name}: {frames} frames at {width}×{height}, best of {args.repeats}")
    print(f"{'run':<22}{'CPU ms/frame':>14}")
    for label, values in cpu.items():
        print(f"{label:<22}{min(values):>14.1f}   (runs: {', '.join(f'{v:.1f}' for v in values)})")
    share = cost / engine_ms
    print(f"watermark cost         {cost:>14.1f}   = {share:.0%} of the engine, read-back included (target ≤ 20 %)")
    print(
        f"verify                 {verify_s:>13.2f}s   → {per_10s:.2f} s per 10 s of 512² (target ≤ 1 s); "
        f"c2pa {verdict.c2pa.state.value}, watermark {'detected' if verdict.watermark.detected else 'MISSING'}"
    )


if __name__ == "__main__":
    main()
