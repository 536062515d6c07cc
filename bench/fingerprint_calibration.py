"""Calibrate ``watermark.fingerprint.MATCH_DISTANCE``: the distance of each clip's handled copies to its own
record (the same content) and of every clip to every other clip's record (unrelated content).

    .venv/bin/python -m bench.fingerprint_calibration [--frames 96]

Each real clip of ``XP_FACES`` and ``XP_FACES_WIDE`` (default ../shared/faces, ../shared/faces-wide) is cut to its
first ``--frames`` frames (H.264 CRF 18, the "output"), fingerprinted as a generation records it, then put through
the robustness bench's standard attacks; prints the largest same-content and smallest unrelated distance.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import av
import numpy as np

from bench.attacks import standard_attacks
from watermark.fingerprint import MATCH_DISTANCE, fingerprint_video, match_video
from watermark.video_io import iter_frames


def _cut(src: Path, dst: Path, frames: int) -> None:
    with av.open(str(dst), "w") as out:
        stream = None
        for index, frame in enumerate(iter_frames(src)):
            if index >= frames:
                break
            if stream is None:
                stream = out.add_stream("libx264", rate=25)
                stream.width, stream.height = frame.shape[1] // 2 * 2, frame.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18"}
            picture = av.VideoFrame.from_ndarray(frame[: stream.height, : stream.width], format="rgb24")
            out.mux(stream.encode(picture))
        if stream is not None:
            out.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=96)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    folders = [
        Path(os.environ.get("XP_FACES", root.parent / "shared" / "faces")) / "driving",
        Path(os.environ.get("XP_FACES_WIDE", root.parent / "shared" / "faces-wide")) / "driving",
    ]
    clips = sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir())
    same: list[float] = []
    with tempfile.TemporaryDirectory() as work:
        outputs = []
        for clip in clips:
            cut = Path(work) / f"{clip.stem}.mp4"
            _cut(clip, cut, args.frames)
            outputs.append((clip.stem, cut, fingerprint_video(cut)))
        unrelated = np.array(
            [[match_video(b, fa).distance if a != b else np.nan for (_, b, _) in outputs] for (_, a, fa) in outputs]
        )
        print(f"{'clip':40} {'attack':32} distance")
        for name, cut, recorded in outputs:
            for attack in standard_attacks():
                copy = Path(work) / f"{name}.{attack.name}.mp4"
                attack.apply(cut, copy)
                distance = match_video(copy, recorded).distance
                same.append(distance)
                print(f"{name:40} {attack.name:32} {distance:6.3f}")
                copy.unlink()
    print(f"\nsame content, {len(same)} handled copies: max {max(same):.3f}, mean {np.mean(same):.3f}")
    print(
        f"unrelated, {np.sum(~np.isnan(unrelated))} pairs: min {np.nanmin(unrelated):.3f}, "
        f"mean {np.nanmean(unrelated):.3f}"
    )
    print(f"MATCH_DISTANCE = {MATCH_DISTANCE}")


if __name__ == "__main__":
    main()
