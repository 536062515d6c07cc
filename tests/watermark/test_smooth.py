"""The mark on smooth pictures (issue 20, item 4): a flat cartoon and a smooth painted portrait.

Smooth pixels are those with local luma standard deviation under 2 levels (bench/watermark_smooth.py, which also
writes 2× contact sheets to look at). Before the smoothness test in the mask, a flat cartoon was marked at
41.3 dB on its smooth regions with visible mottling beside its outlines; the target is ≥ 40 dB on smooth regions
everywhere and no grain at 2× on flat fills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.watermark_attacks_informed import mark, moving_clip, p_value
from bench.watermark_smooth import KEY, PAYLOAD, cartoon, clip_of, measure
from watermark import DEFAULT_P_THRESHOLD, get_method

METHOD = get_method("tiled")


def test_a_flat_cartoon_is_marked_lightly_where_it_is_flat_and_still_read() -> None:
    source = clip_of(cartoon(), 8, seed=1)
    marked = mark(source, KEY, PAYLOAD, METHOD)
    report = measure("cartoon", source, marked)
    assert report.smooth_share > 0.5
    assert report.psnr_smooth_db >= 45.0, report
    p, found = p_value(marked, KEY, METHOD)
    assert found == PAYLOAD and p < DEFAULT_P_THRESHOLD


def test_a_smooth_painted_portrait_stays_above_40_db_where_smooth(faces: Path) -> None:
    painting = faces.parent / "faces-wide" / "source" / "echomimic_e.png"
    if not painting.is_file():
        pytest.skip(f"{painting} not found")
    source = moving_clip(painting, height=512, width=512, frames=8, seed=3)
    marked = mark(source, KEY, PAYLOAD, METHOD)
    report = measure(painting.name, source, marked)
    assert report.psnr_smooth_db >= 40.0, report
    assert p_value(marked, KEY, METHOD)[1] == PAYLOAD
