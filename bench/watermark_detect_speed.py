"""Detection time per clip against the floor of reading its frames, side by side in one run (issue 20, item 3).

    .venv/bin/python -m bench.watermark_detect_speed [--clips N] [--repeat 2]

Each shared driving clip is marked (the default method, one key) and read back, alternately, with:

- floor: decoding the clip's frames to luma and nothing more (what any reader pays);
- detect: ``detect_watermark`` as it is (version 3: per-frame data; a plain BCH decode first, the Chase search
  only when no candidate decodes plainly).

Both marked and unmarked clips are read (an unmarked clip is the worst case: every candidate is searched).
Times are wall-clock and CPU seconds of this process, the median over ``--repeat`` reads; the ratio detect/floor
is the one to compare between runs on a shared machine. Version 2's reader, measured with this script before it
was removed (commit a94992f): 0.63 s CPU a clip against version 3's 0.57.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.watermark_attacks_issue import driving_videos
from watermark import Payload, WatermarkKey, detect_watermark, mark_video
from watermark.video_io import iter_frames

KEY = WatermarkKey(bytes(range(32)))
PAYLOAD = Payload(0x0123456789ABCDEF)


def read_floor(path: Path) -> tuple[bool, float]:
    for _ in iter_frames(path, gray=True):
        pass
    return False, 1.0


def detect(path: Path) -> tuple[bool, float]:
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
    print(
        "| clip | frames | marked | floor: wall s | floor: CPU s | detect: wall s | detect: CPU s | CPU ratio | found |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {"floor": [0.0, 0.0], "detect": [0.0, 0.0]}
    with tempfile.TemporaryDirectory(prefix="xp-detect-speed-") as folder:
        for video in videos:
            marked_path = Path(folder) / f"{video.stem}.marked.mp4"
            report = mark_video(video, marked_path, KEY, PAYLOAD)
            for marked, path in (("yes", marked_path), ("no", video)):
                floor = timed(read_floor, path, args.repeat)
                found = timed(detect, path, args.repeat)
                for name, measured in (("floor", floor), ("detect", found)):
                    totals[name][0] += measured[0]
                    totals[name][1] += measured[1]
                print(
                    f"| {video.name} | {report.frames} | {marked} | {floor[0]:.2f} | {floor[1]:.2f} | "
                    f"{found[0]:.2f} | {found[1]:.2f} | {found[1] / max(floor[1], 1e-9):.1f} | {found[2]} |"
                )
    reads = 2 * len(videos)
    print(
        f"\nmean per clip: floor {totals['floor'][0] / reads:.2f} s wall, {totals['floor'][1] / reads:.2f} s CPU; "
        f"detect {totals['detect'][0] / reads:.2f} s wall, {totals['detect'][1] / reads:.2f} s CPU"
    )


if __name__ == "__main__":
    main()
