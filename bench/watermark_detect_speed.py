"""Detection time per clip, before and after, side by side in one run (issue 20, item 3).

    .venv/bin/python -m bench.watermark_detect_speed [--clips N] [--repeat 2]

Each shared driving clip is marked twice (version 2 with ``tiled-v2``, version 3 with ``tiled``, one key) and
read back, alternately, with:

- before: version 2's reader with every candidate Chase-decoded (256 BCH decodes each), as ``detect_watermark``
  read the default method before version 3;
- after: ``detect_watermark`` as it is (version 3: per-frame data; plain decode first, Chase only when no
  candidate decodes plainly).

Both marked and unmarked clips are read (an unmarked clip is the worst case: every candidate is searched).
Times are wall-clock and CPU seconds of this process (single-threaded work; CPU time is the steadier one on a
shared machine), the median over ``--repeat`` reads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.watermark_attacks_issue import driving_videos
from watermark import Payload, WatermarkKey, detect_watermark, get_method, mark_video
from watermark.detection import _chase_decode
from watermark.payload import CODEWORD_BITS, false_decode_probability
from watermark.video_io import iter_frames

KEY = WatermarkKey(bytes(range(32)))
PAYLOAD = Payload(0x0123456789ABCDEF)


def detect_before(path: Path) -> tuple[bool, float]:
    """Version 2's reader, every candidate Chase-decoded (the detector before version 3)."""
    method = get_method("tiled-v2")
    accumulator = method.accumulator(KEY, CODEWORD_BITS)
    for frame in iter_frames(path, gray=True):
        accumulator.add(frame)
    best = 1.0
    for candidate in accumulator.candidates():
        hard = (candidate.soft_bits > 0).astype(np.uint8)
        decoded = _chase_decode(hard, np.abs(candidate.soft_bits), KEY)
        if decoded is not None:
            distance = int(np.count_nonzero(decoded.codeword != hard))
            best = min(best, false_decode_probability(distance) * accumulator.hypotheses)
    return best < 1e-9, best


def detect_after(path: Path) -> tuple[bool, float]:
    found = detect_watermark(path, KEY)
    return found.detected, found.p_value


def timed(read: Callable[[Path], tuple[bool, float]], path: Path, repeat: int) -> tuple[float, float, bool, float]:
    walls, cpus = [], []
    detected, p = False, 1.0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        detected, p = read(path)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), detected, p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, help="the first N shared driving clips (default: all)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    videos = driving_videos()[: args.clips]
    print("| clip | frames | marked | before: wall s | before: CPU s | after: wall s | after: CPU s | found b/a |")
    print("|---|---|---|---|---|---|---|---|")
    totals = {"before": [0.0, 0.0], "after": [0.0, 0.0]}
    with tempfile.TemporaryDirectory(prefix="xp-detect-speed-") as folder:
        for video in videos:
            v2 = Path(folder) / f"{video.stem}.v2.mp4"
            v3 = Path(folder) / f"{video.stem}.v3.mp4"
            report = mark_video(video, v2, KEY, PAYLOAD, method="tiled-v2")
            mark_video(video, v3, KEY, PAYLOAD)
            for marked, before_path, after_path in (("yes", v2, v3), ("no", video, video)):
                before = timed(detect_before, before_path, args.repeat)
                after = timed(detect_after, after_path, args.repeat)
                totals["before"][0] += before[0]
                totals["before"][1] += before[1]
                totals["after"][0] += after[0]
                totals["after"][1] += after[1]
                print(
                    f"| {video.name} | {report.frames} | {marked} | {before[0]:.2f} | {before[1]:.2f} | "
                    f"{after[0]:.2f} | {after[1]:.2f} | {before[2]}/{after[2]} |"
                )
    reads = 2 * len(videos)
    print(
        f"\nmean per clip: before {totals['before'][0] / reads:.2f} s wall, {totals['before'][1] / reads:.2f} s CPU; "
        f"after {totals['after'][0] / reads:.2f} s wall, {totals['after'][1] / reads:.2f} s CPU"
    )


if __name__ == "__main__":
    main()
