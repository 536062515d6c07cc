"""The informed attacker of issue 20, small and fast: someone who read the source, holds marked clips and no key.

Clips are short moving views (sub-pixel pan, slight zoom) of the shared real faces, 256×320, marked and read in
memory (bench/watermark_attacks_informed.py is the full sweep, bench/watermark_attacks_issue.py the issue's
scale). The attacker averages each clip's high-pass residual over time (folded by the period its
autocorrelation shows, or not), or takes its main temporal components, and subtracts the estimate (removal) or
adds it to footage that was never marked (transplant). A mark that repeats in space and time gives itself away
to this; the tiled mark (version 3) carries a keyed sign per tile position on its data chips, so folding
recovers only the shared pilot, and flips its data's sign in keyed runs of 6-12 frames, so the time average of
any clip over 12 frames holds the data of both signs, never the whole of it (24-frame clips here).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.watermark_attacks_informed import (
    add_pattern,
    add_patterns,
    estimate,
    estimate_frames,
    face_pictures,
    mark,
    moving_clip,
    p_value,
    psnr,
)
from watermark import DEFAULT_P_THRESHOLD, Payload, WatermarkKey, get_method
from watermark.methods import algorithm_name
from watermark.methods.base import Frame

KEY = WatermarkKey(bytes(range(7, 39)))
PAYLOADS = [Payload(0x0123456789ABCDEF), Payload(0x1111222233334444), Payload(0x7654321076543210)]
HEIGHT, WIDTH, FRAMES = 256, 320, 24
METHOD = get_method("tiled")
PERIOD = (128, 128)
"""The tile period the source gives for 256×320 (32 chips of 4 px): an informed attacker need not measure it."""

Clips = tuple[list[list[Frame]], list[list[Frame]], list[list[Frame]]]


@pytest.fixture(scope="module")
def clips(faces: Path) -> Clips:
    """Three marked clips (three payloads, one key), their sources, and two unrelated unmarked clips."""
    pictures = face_pictures([faces / "source", faces.parent / "faces-wide" / "source"])
    if len(pictures) < 5:
        pytest.skip(f"need 5 shared face pictures, found {len(pictures)}")
    sources = [moving_clip(p, height=HEIGHT, width=WIDTH, frames=FRAMES, seed=i) for i, p in enumerate(pictures[:3])]
    marked = [mark(src, KEY, payload, METHOD) for src, payload in zip(sources, PAYLOADS, strict=True)]
    unrelated = [
        moving_clip(p, height=HEIGHT, width=WIDTH, frames=FRAMES, seed=50 + i) for i, p in enumerate(pictures[3:5])
    ]
    return sources, marked, unrelated


def test_the_clips_are_marked_and_the_unrelated_ones_are_not(clips: Clips) -> None:
    _, marked, unrelated = clips
    for frames, payload in zip(marked, PAYLOADS, strict=True):
        assert p_value(frames, KEY, METHOD)[1] == payload
    for frames in unrelated:
        p, found = p_value(frames, KEY, METHOD)
        assert found is None and p >= DEFAULT_P_THRESHOLD


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_folding_one_clip_and_subtracting_leaves_the_generation_traced(clips: Clips, alpha: float) -> None:
    _, marked, _ = clips
    attacked = add_pattern(marked[0], estimate([marked[0]], "fold"), -alpha)
    p, found = p_value(attacked, KEY, METHOD)
    assert found == PAYLOADS[0], f"removed at alpha {alpha}, {psnr(attacked, marked[0]):.1f} dB, p {p:.1e}"


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_folding_several_outputs_and_subtracting_leaves_the_generation_traced(clips: Clips, alpha: float) -> None:
    _, marked, _ = clips
    attacked = add_pattern(marked[0], estimate(marked, "fold"), -alpha)
    p, found = p_value(attacked, KEY, METHOD)
    assert found == PAYLOADS[0], f"removed at alpha {alpha}, {psnr(attacked, marked[0]):.1f} dB, p {p:.1e}"


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_a_folded_estimate_added_to_unrelated_footage_is_not_attributed(clips: Clips, alpha: float) -> None:
    _, marked, unrelated = clips
    single, pooled = estimate([marked[0]], "fold", period=PERIOD), estimate(marked, "fold", period=PERIOD)
    for pattern in (single, pooled):
        for frames in unrelated:
            forged = add_pattern(frames, pattern, alpha)
            p, found = p_value(forged, KEY, METHOD)
            assert found is None, f"forged at alpha {alpha}, {psnr(forged, frames):.1f} dB, p {p:.1e}"


def test_an_inverted_mark_still_names_its_generation(clips: Clips) -> None:
    """Subtracting twice the true mark (an over-estimate) leaves it inverted: still this generation's mark."""
    sources, marked, _ = clips
    inverted = [
        np.clip(2 * src.astype(np.int16) - m.astype(np.int16), 0, 255).astype(np.uint8)
        for src, m in zip(sources[0], marked[0], strict=True)
    ]
    assert p_value(inverted, KEY, METHOD)[1] == PAYLOADS[0]


def test_a_weak_mark_raised_by_the_difference_reads_like_a_full_one(clips: Clips) -> None:
    """generate() raises a weak mark by marking the marked clip again with the strength difference: the same key
    and payload give the same pattern, so 0.4 then 0.6 adds up to about 1.0."""
    sources, _, _ = clips
    source = sources[1]
    once = mark(source, KEY, PAYLOADS[1], get_method("tiled", strength=1.0))
    weak = mark(source, KEY, PAYLOADS[1], get_method("tiled", strength=0.4))
    raised = mark(weak, KEY, PAYLOADS[1], get_method("tiled", strength=0.6))
    delta_once = np.stack(once).astype(np.float32) - np.stack(source)
    delta_raised = np.stack(raised).astype(np.float32) - np.stack(source)
    correlation = float(np.corrcoef(delta_once.ravel(), delta_raised.ravel())[0, 1])
    assert correlation > 0.9
    assert 0.8 < float(np.std(delta_raised) / np.std(delta_once)) < 1.2
    p_once, found_once = p_value(once, KEY, METHOD)
    p_raised, found_raised = p_value(raised, KEY, METHOD)
    assert found_once == found_raised == PAYLOADS[1]
    # As well as the full mark: both far past the threshold (1e-9), where a p-value means few or no bit errors.
    assert p_once < 1e-20 and p_raised < 1e-20, (p_once, p_raised)


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_subtracting_the_time_averaged_residual_leaves_the_generation_traced(clips: Clips, alpha: float) -> None:
    """Version 2 lost its mark to 1.5× the clip's own time-averaged residual (34.6 dB on the bench's clips)."""
    _, marked, _ = clips
    attacked = add_pattern(marked[0], estimate([marked[0]], "mean"), -alpha)
    p, found = p_value(attacked, KEY, METHOD)
    assert found == PAYLOADS[0], f"removed at alpha {alpha}, {psnr(attacked, marked[0]):.1f} dB, p {p:.1e}"


@pytest.mark.parametrize(("estimator", "alpha"), [("pca1", 1.0), ("pca1", 2.0), ("pca4+mean", 1.0)])
def test_subtracting_the_main_temporal_components_leaves_the_generation_traced(
    clips: Clips, estimator: str, alpha: float
) -> None:
    """The flipping data is what changes over time where the picture holds still: the attacker's next try."""
    _, marked, _ = clips
    attacked = add_patterns(marked[0], estimate_frames(marked[0], estimator), -alpha)
    p, found = p_value(attacked, KEY, METHOD)
    assert found == PAYLOADS[0], f"removed at alpha {alpha}, {psnr(attacked, marked[0]):.1f} dB, p {p:.1e}"


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_the_time_average_of_marked_clips_carries_no_payload(clips: Clips, alpha: float) -> None:
    _, marked, unrelated = clips
    for pattern in (estimate([marked[0]], "mean"), estimate(marked, "mean")):
        for frames in unrelated:
            forged = add_pattern(frames, pattern, alpha)
            p, found = p_value(forged, KEY, METHOD)
            assert found is None, f"forged at alpha {alpha}, {psnr(forged, frames):.1f} dB, p {p:.1e}"


def test_frames_dropped_trimmed_or_reordered_change_nothing(clips: Clips) -> None:
    """The reader finds each frame's data sign from the frame itself: no frame index to lose."""
    _, marked, _ = clips
    frames = marked[0]
    for kept in (frames[1:], frames[3:], frames[::2], frames[1::2], frames[::-1], frames[:5]):
        p, found = p_value(kept, KEY, METHOD)
        assert found == PAYLOADS[0], f"{len(kept)} frames, p {p:.1e}"


def test_the_data_sign_changes_over_time_and_the_pilot_does_not(clips: Clips) -> None:
    sources, marked, _ = clips
    deltas = np.stack(marked[0]).astype(np.float32) - np.stack(sources[0]).astype(np.float32)
    # The time average keeps far less of the mark than one frame holds: the static pilot (a quarter of the chips)
    # and the data's imbalance between its signs (8 of 24 frames here: 0.34 of the energy).
    mean_energy = float(np.mean(np.mean(deltas, axis=0) ** 2))
    frame_energy = float(np.mean(deltas**2))
    assert mean_energy < 0.5 * frame_energy, (mean_energy, frame_energy)


def test_a_transplanted_whole_residual_is_never_attributed(clips: Clips, tmp_path: Path) -> None:
    """The whole per-frame residual carries the mark along (the raw decode may find it); the product's verify
    then sees pictures that are not the generation's and reports a forged mark, never the generation."""
    from bench.watermark_attacks_issue import write_clip
    from watermark.fingerprint import fingerprint_video
    from xp_sdk.home import Home
    from xp_sdk.provenance import init_provenance_keys
    from xp_sdk.verification import Attribution
    from xp_sdk.verify import attribute, verify

    _, marked, unrelated = clips
    keys = replace(init_provenance_keys(Home(tmp_path / "home")), watermark_key=KEY)
    recorded = fingerprint_video(write_clip(tmp_path / "output.mp4", marked[0]))
    residual = estimate_frames(marked[0], "residual")
    for index, frames in enumerate(unrelated):
        for alpha in (1.0, 2.0):
            path = write_clip(tmp_path / f"transplant{index}_{alpha}.mp4", add_patterns(frames, residual, alpha))
            report = verify(path, keys=keys)
            if report.watermark.detected:
                report = attribute(report, recorded)
                assert report.attribution is Attribution.FORGED, report
            assert report.attribution is not Attribution.ATTRIBUTED and report.generation_id is None


def test_the_soft_binding_names_the_method_version() -> None:
    assert algorithm_name("tiled") == "com.xp-sdk.watermark.tiled.v3"
    assert algorithm_name("dwtdctsvd") == "com.xp-sdk.watermark.dwtdctsvd.v1"
    with pytest.raises(ValueError, match="unknown watermark method"):
        algorithm_name("tiled-v9")
