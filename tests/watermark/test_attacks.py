"""The robustness attacks do what their names say, on the first frames of a real driving clip."""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from bench.attacks import (
    H265_AVAILABLE,
    Attack,
    Crop,
    Trim,
    get_attack,
    select_evenly,
    standard_attacks,
    unmarked_variant_specs,
    unmarked_variants,
)
from watermark.transcode import reencode

CLIP_FRAMES = 40  # 1.33 s at 30 fps: long enough for trim_1s to cut and for 30 → 24 to drop frames
STANDARD_NAMES = [
    "identity",
    "h264_crf18",
    "h264_crf23",
    "h264_crf28",
    "h264_crf35",
    "h264_crf40",
    *(["h265_crf28"] if H265_AVAILABLE else []),
    "resize_0.5",
    "resize_0.71",
    "crop_0.71",
    "brightness_0.5",
    "brightness_1.5",
    "contrast_0.5",
    "contrast_1.5",
    "reencode_twice",
    "trim_1s",
    "fps_30_to_24",
    "grayscale",
    "combo_crf30_crop_brightness",
]


class Decoded:
    def __init__(self, path: Path) -> None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            self.codec = stream.codec_context.name
            self.fps = float(stream.average_rate or 0)
            self.frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[2], self.frames.shape[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def clip(driving_videos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first CLIP_FRAMES frames of a 30-fps shared driving clip, re-encoded at CRF 18."""
    candidates = [p for p in driving_videos if p.name == "lp_d5_hist.mp4"] or driving_videos
    for path in candidates:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            if float(stream.average_rate or 0) == 30 and (stream.frames or 0) >= CLIP_FRAMES:
                break
    else:
        pytest.skip("no 30-fps shared driving clip with enough frames")
    out = tmp_path_factory.mktemp("attacks") / "clip.mp4"
    Attack("clip", (Trim(CLIP_FRAMES / 30),)).apply(path, out)
    return out


@pytest.fixture(scope="module")
def source(clip: Path) -> Decoded:
    return Decoded(clip)


@pytest.fixture(scope="module")
def attacked(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Decoded]:
    """Attack name → the clip under that attack, decoded; each attack runs once per module."""
    folder = tmp_path_factory.mktemp("attacked")
    cache: dict[str, Decoded] = {}

    def run(name: str) -> Decoded:
        if name not in cache:
            out = folder / f"{name}.mp4"
            get_attack(name).apply(clip, out, threads=1)
            cache[name] = Decoded(out)
        return cache[name]

    return run


def test_standard_attacks_are_exactly_the_listed_ones() -> None:
    names = [a.name for a in standard_attacks()]
    assert names == STANDARD_NAMES
    assert all(a.describe() for a in standard_attacks())


def test_source_clip(source: Decoded) -> None:
    assert source.frames.shape == (CLIP_FRAMES, 480, 480, 3)
    assert source.fps == 30


def test_identity_keeps_everything(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    out = attacked("identity")
    assert out.frames.shape == source.frames.shape
    assert out.fps == 30 and out.codec == "h264"
    assert psnr(out.frames, source.frames) > 38


@pytest.mark.parametrize(("name", "side"), [("resize_0.5", 240), ("resize_0.71", 340)])
def test_resize_scales_each_side(attacked: Callable[[str], Decoded], name: str, side: int) -> None:
    out = attacked(name)
    assert out.size == (side, side)
    assert len(out.frames) == CLIP_FRAMES


def test_crop_keeps_071_of_the_area_off_the_block_grid(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    out = attacked("crop_0.71")
    x0, y0, w, h = Crop(0.71).window(480, 480)
    assert out.size == (w, h) == (404, 404)
    assert abs(w * h / 480**2 - 0.71) < 0.01
    assert x0 % 8 and y0 % 8 and (x0, y0) != ((480 - w) // 2, (480 - h) // 2)
    # Not scaled back: the pixels are the source's window at that offset, and not the one a pixel away.
    window = source.frames[:, y0 : y0 + h, x0 : x0 + w]
    shifted = source.frames[:, y0 + 1 : y0 + 1 + h, x0 + 1 : x0 + 1 + w]
    assert psnr(out.frames, window) > 38
    assert psnr(out.frames, window) > psnr(out.frames, shifted) + 3


def test_trim_keeps_the_first_second(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    out = attacked("trim_1s")
    assert len(out.frames) == 30 and out.fps == 30
    assert psnr(out.frames, source.frames[:30]) > 38


def test_fps_30_to_24_drops_every_fifth_frame(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    out = attacked("fps_30_to_24")
    assert out.fps == 24
    assert len(out.frames) == CLIP_FRAMES * 24 // 30
    # Output frame k shows source frame floor(k × 30 / 24): 0, 1, 2, 3, 5, 6, 7, 8, 10, ...
    picks = [k * 30 // 24 for k in range(len(out.frames))]
    assert 4 not in picks
    assert psnr(out.frames, source.frames[picks]) > 38


def test_grayscale_has_equal_channels(attacked: Callable[[str], Decoded]) -> None:
    frames = attacked("grayscale").frames.astype(np.int16)
    spread = np.abs(frames[..., 0] - frames[..., 1]) + np.abs(frames[..., 1] - frames[..., 2])
    assert spread.mean() < 0.5
    assert np.percentile(spread, 99.9) <= 4


def test_brightness_scales_the_mean(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    mean = source.frames.mean()
    assert 0.45 < attacked("brightness_0.5").frames.mean() / mean < 0.55
    brighter = attacked("brightness_1.5").frames.mean() / mean
    assert 1.2 < brighter < 1.55  # under 1.5: the brightest pixels saturate at 255


def test_contrast_scales_spread_and_keeps_the_mean(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    low, high = attacked("contrast_0.5").frames, attacked("contrast_1.5").frames
    std = source.frames.std()
    assert 0.45 < low.std() / std < 0.55
    assert 1.25 < high.std() / std < 1.55
    assert abs(low.mean() - source.frames.mean()) < 3


def test_higher_crf_loses_more(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    scores = [psnr(attacked(f"h264_crf{crf}").frames, source.frames) for crf in (18, 23, 28, 35, 40)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] - scores[-1] > 6


def test_reencode_twice_is_two_passes(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    twice = attacked("reencode_twice")
    assert twice.frames.shape == source.frames.shape
    assert psnr(twice.frames, source.frames) <= psnr(attacked("h264_crf23").frames, source.frames) + 0.1


@pytest.mark.skipif(not H265_AVAILABLE, reason="PyAV has no libx265")
def test_h265_is_hevc(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    out = attacked("h265_crf28")
    assert out.codec == "hevc"
    assert out.frames.shape == source.frames.shape
    assert psnr(out.frames, source.frames) > 30


def test_combo_crops_darkens_and_compresses(source: Decoded, attacked: Callable[[str], Decoded]) -> None:
    out = attacked("combo_crf30_crop_brightness")
    assert out.size == attacked("crop_0.71").size
    assert out.frames.mean() < 0.6 * source.frames.mean()


def test_reencode_helper_matches_the_crf_attack(clip: Path, attacked: Callable[[str], Decoded], tmp_path: Path) -> None:
    reencode(clip, tmp_path / "out.mp4", 35, threads=1)
    assert np.array_equal(Decoded(tmp_path / "out.mp4").frames, attacked("h264_crf35").frames)


# ------------------------------------------------------------------------------------------ unmarked variants


def test_unmarked_variants_cover_the_faces_set(faces: Path) -> None:
    specs = unmarked_variant_specs(faces)
    names = [s.name for s in specs]
    assert len(specs) >= 200
    assert len(set(names)) == len(names)
    counts = collections.Counter(s.category for s in specs)
    assert counts["clip"] == len(list((faces / "driving").iterdir())) * (1 + len(standard_attacks()))
    assert {"photo", "noise", "flat", "gradient", "moving_gradient", "checkerboard"} <= set(counts)


def test_synthetic_variants_are_short_even_and_deterministic(tmp_path: Path) -> None:
    synthetic = unmarked_variant_specs(None)
    # The moving shapes are among the clips this libx264 used to encode differently from run to run.
    specs = [*select_evenly(synthetic, 5), *(s for s in synthetic if s.name == "shapes/n100_moving_480x480")]
    assert len({s.category for s in specs}) >= 4 and len(specs) == 6
    for spec in specs:
        first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
        spec.write(first)
        spec.write(second)
        a, b = Decoded(first), Decoded(second)
        assert 1 <= len(a.frames) <= 60
        assert a.size[0] % 2 == 0 and a.size[1] % 2 == 0
        assert np.array_equal(a.frames, b.frames), spec.name


def test_unmarked_variants_are_written_lazily_and_removed(tmp_path: Path) -> None:
    seen = []
    for spec, path in unmarked_variants(tmp_path, limit=3, threads=1):
        assert path.is_file() and path.name == spec.filename
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
        seen.append(path)
    assert len(seen) == 3 and not any(p.exists() for p in seen)
