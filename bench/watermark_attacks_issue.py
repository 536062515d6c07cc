"""Issue 20's informed attacker at the issue's own scale (``python -m bench.watermark_attacks_informed --issue-scale``).

One deployment (one key) makes 20 outputs: moving views of 20 shared face pictures, marked and written as H.264
(CRF 18), each with the content fingerprint ``generate`` records. Then:

1. Removal from output 0, every estimator of ``bench.watermark_attacks_informed`` swept in strength, the static
   ones also pooled over all 20 outputs; read in memory (no H.264 after the attack: that favours the attacker).
2. Transplant: each of 20 unrelated real clips (segments of the shared driving videos, never generated) gets one
   output's estimate added (the whole per-frame residual, its temporal components, or its time average), is
   written as H.264 and judged by the product's ``verify`` (``xp_sdk.verify.verify``, then ``attribute`` with the
   recorded fingerprint of the generation the payload names, as ``Service.verify`` does). The table gives both
   the raw payload decode and verify's verdict: a transplant must never be attributed.
3. False positives over >= 200 unmarked clips made at run time from the shared driving videos: segments, crops,
   flips, rescales and re-encodes, written to a temporary folder and read with ``detect_watermark``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from bench.watermark_attacks_informed import (
    FACES,
    FRAME_ESTIMATORS,
    STATIC_ESTIMATORS,
    add_patterns,
    estimate,
    estimate_frames,
    face_pictures,
    mark,
    moving_clip,
    p_value,
    psnr,
)
from watermark import Payload, WatermarkKey, detect_watermark, get_method
from watermark.fingerprint import Fingerprint, fingerprint_video
from watermark.methods.base import Frame
from watermark.video_io import Mp4Writer, iter_frames

OUTPUTS = 20
UNRELATED = 20
TRANSPLANT_ESTIMATORS = ("residual", "pca4+mean", "mean")
TRANSPLANT_STRENGTHS = (1.0, 2.0)
REMOVAL_STRENGTHS = (0.5, 1.0, 1.25, 1.5, 2.0, 3.0)
UNMARKED_FRAMES = 36
FPS = 25


def driving_videos() -> list[Path]:
    found: list[Path] = []
    for root in (FACES / "driving", FACES.parent / "faces-wide" / "driving"):
        if root.is_dir():
            found += sorted(p for p in root.iterdir() if p.suffix.lower() in {".mp4", ".mov", ".mpg", ".avi", ".mkv"})
    return found


def read_frames(path: Path, *, start: int, count: int) -> list[Frame]:
    frames = []
    for index, frame in enumerate(iter_frames(path, max_frames=start + count)):
        if index >= start:
            frames.append(np.ascontiguousarray(frame))
    return frames


def cover(frames: Sequence[Frame], height: int, width: int) -> list[Frame]:
    """Each frame scaled to cover height × width and centre-cropped to it."""
    out = []
    for frame in frames:
        scale = max(height / frame.shape[0], width / frame.shape[1])
        size = (math.ceil(frame.shape[1] * scale), math.ceil(frame.shape[0] * scale))
        big = np.asarray(
            cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR), dtype=np.uint8
        )
        top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
        out.append(np.ascontiguousarray(big[top : top + height, left : left + width]))
    return out


def write_clip(path: Path, frames: Sequence[Frame], *, crf: int = 18) -> Path:
    height, width = frames[0].shape[:2]
    writer = Mp4Writer(path, width=width - width % 2, height=height - height % 2, rate=Fraction(FPS), crf=crf)
    try:
        for index, frame in enumerate(frames):
            writer.write(np.ascontiguousarray(frame[: height - height % 2, : width - width % 2]), index / FPS)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return path


def unrelated_clips(count: int, *, frames: int, height: int, width: int) -> list[tuple[str, list[Frame]]]:
    """``count`` segments of the shared driving videos (real footage), each covering height × width."""
    videos = driving_videos()
    if not videos:
        raise SystemExit("no shared driving videos found (set XP_FACES)")
    clips = []
    for index in range(count):
        video = videos[index % len(videos)]
        start = (index // len(videos)) * frames
        segment = read_frames(video, start=start, count=frames)
        if len(segment) < frames:
            segment = read_frames(video, start=0, count=frames)
        clips.append((f"{video.name}@{start}", cover(segment, height, width)))
    return clips


def unmarked_variants(count: int, seed: int = 7) -> Iterator[tuple[str, list[Frame], int]]:
    """``count`` unmarked clips: segments of the shared driving videos, cropped, flipped, rescaled, re-encoded."""
    videos = driving_videos()
    rng = np.random.default_rng(seed)
    for index in range(count):
        video = videos[index % len(videos)]
        variant = index // len(videos)
        start = int(rng.integers(0, 60)) if variant % 2 else 0
        frames = read_frames(video, start=start, count=UNMARKED_FRAMES) or read_frames(
            video, start=0, count=UNMARKED_FRAMES
        )
        crop = (1.0, 0.8, 0.6)[variant % 3]
        flip = variant % 4 >= 2
        scale = (1.0, 0.75, 1.25)[(variant // 3) % 3]
        crf = (18, 28, 35)[variant % 3]
        out = []
        for frame in frames:
            height, width = frame.shape[:2]
            h, w = max(64, round(height * math.sqrt(crop))), max(64, round(width * math.sqrt(crop)))
            top, left = (height - h) // 3, (width - w) // 2
            picture = frame[top : top + h, left : left + w]
            if flip:
                picture = picture[:, ::-1]
            if scale != 1.0:
                size = (round(w * scale), round(h * scale))
                picture = np.asarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
            out.append(np.ascontiguousarray(picture))
        name = f"{video.name} start {start} crop {crop} {'flipped ' if flip else ''}×{scale} CRF {crf}"
        yield name, out, crf


def run_issue_scale(
    method_name: str = "tiled", *, frames: int = 48, height: int = 448, width: int = 512, unmarked: int = 204
) -> None:
    from xp_sdk.home import Home
    from xp_sdk.provenance import init_provenance_keys
    from xp_sdk.verification import Attribution
    from xp_sdk.verify import attribute, verify

    method = get_method(method_name)
    key = WatermarkKey(np.random.default_rng(20).bytes(32))
    pictures = face_pictures()
    if len(pictures) < OUTPUTS:
        raise SystemExit(f"need {OUTPUTS} face pictures, found {len(pictures)} (set XP_FACES)")
    payloads = [Payload(int(v)) for v in np.random.default_rng(21).integers(1, 2**62, OUTPUTS)]
    print(f"method {method_name}: {OUTPUTS} outputs of one key, {frames} frames at {width}×{height}")
    with tempfile.TemporaryDirectory(prefix="xp-informed-") as folder:
        work = Path(folder)
        keys = dataclasses.replace(init_provenance_keys(Home(work / "home")), watermark_key=key)
        sources = [
            moving_clip(p, height=height, width=width, frames=frames, seed=i) for i, p in enumerate(pictures[:OUTPUTS])
        ]
        marked = [mark(src, key, payload, method) for src, payload in zip(sources, payloads, strict=True)]
        recorded: dict[str, Fingerprint] = {}
        for index, (frames_, payload) in enumerate(zip(marked, payloads, strict=True)):
            recorded[payload.hex] = fingerprint_video(write_clip(work / f"output{index}.mp4", frames_))

        # 1. Removal.
        target, payload = marked[0], payloads[0]
        p0, found = p_value(target, key, method)
        print("\n### Removal from one output (read in memory)\n")
        print(f"unattacked: {psnr(target, sources[0]):.1f} dB from its source, p {p0:.1e}, traced {found == payload}")
        print("\n| attack | estimator | alpha | PSNR vs marked dB | p-value | traced |\n|---|---|---|---|---|---|")
        removed_above_35 = 0
        for estimator in STATIC_ESTIMATORS + FRAME_ESTIMATORS:
            attacks = [("one clip", estimate_frames(target, estimator))]
            if estimator in STATIC_ESTIMATORS:
                attacks.append((f"pooled over {OUTPUTS}", [estimate(marked, estimator)]))
            for attack, patterns in attacks:
                for alpha in REMOVAL_STRENGTHS:
                    attacked = add_patterns(target, patterns, -alpha)
                    p, found = p_value(attacked, key, method)
                    quality = psnr(attacked, target)
                    removed_above_35 += int(found != payload and quality >= 35.0)
                    print(f"| {attack} | {estimator} | {alpha:g} | {quality:.1f} | {p:.1e} | "
                          f"{'yes' if found == payload else '**no**'} |")  # fmt: skip
        print(f"\nremovals at >= 35 dB that left the generation untraced: {removed_above_35}")

        # 2. Transplant, judged through verify.
        print(f"\n### Transplant onto {UNRELATED} unrelated real clips (H.264 CRF 18, judged by verify)\n")
        print("| estimator | alpha | clips | PSNR vs clip dB (mean) | raw payload decoded | of its output | "
              "verify: attributed | verify: forged | smallest p |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
        unrelated = unrelated_clips(UNRELATED, frames=frames, height=height, width=width)
        attributed_total = 0
        for estimator in TRANSPLANT_ESTIMATORS:
            estimates = [estimate_frames(frames_, estimator) for frames_ in marked]
            for alpha in TRANSPLANT_STRENGTHS:
                decoded = own = attributed = forged = 0
                smallest = 1.0
                qualities = []
                for index, (_name, clip) in enumerate(unrelated):
                    source = index % OUTPUTS
                    forged_frames = add_patterns(clip, estimates[source], alpha)
                    qualities.append(psnr(forged_frames, clip))
                    path = write_clip(work / f"transplant_{estimator}_{alpha}_{index}.mp4", forged_frames)
                    report = verify(path, keys=keys)
                    smallest = min(smallest, report.watermark.p_value or 1.0)
                    if report.watermark.detected:
                        decoded += 1
                        own += int(report.watermark.payload == payloads[source].hex)
                        report = attribute(report, recorded.get(report.watermark.payload or ""))
                    attributed += int(report.attribution is Attribution.ATTRIBUTED)
                    forged += int(report.attribution is Attribution.FORGED)
                    path.unlink()
                attributed_total += attributed
                print(f"| {estimator} | {alpha:g} | {len(unrelated)} | {np.mean(qualities):.1f} | {decoded} | {own} | "
                      f"{attributed} | {forged} | {smallest:.1e} |")  # fmt: skip
        print(f"\ntransplants attributed by verify: {attributed_total}")

        # 3. False positives.
        print(f"\n### Unmarked clips ({unmarked}, made from the shared driving videos)\n")
        positives = decodes = 0
        smallest_p, smallest_name = 1.0, ""
        for index, (name, clip, crf) in enumerate(unmarked_variants(unmarked)):
            path = write_clip(work / f"unmarked{index}.mp4", clip, crf=crf)
            found_mark = detect_watermark(path, key, method=method_name)
            path.unlink()
            positives += int(found_mark.detected)
            decodes += int(found_mark.corrected_bits is not None)
            if found_mark.p_value < smallest_p:
                smallest_p, smallest_name = found_mark.p_value, name
        print(f"false positives: {positives} of {unmarked}; decoded at all: {decodes}; "
              f"smallest p {smallest_p:.1e} ({smallest_name or 'none decoded'})")  # fmt: skip
