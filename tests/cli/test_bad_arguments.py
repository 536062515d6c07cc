"""Absurd values for the options of `xp` commands: the typed error's exit code and one `error: …` line naming the
option, never exit 1 ("unexpected …, this is a bug"), and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import assert_error, xp

# Each case: the extra arguments of `xp animate`, and a word the error line must hold.
ANIMATE_CASES: dict[str, tuple[list[str], str]] = {
    "--max-side 0": (["--max-side", "0"], "max_side"),
    "--max-side -5": (["--max-side", "-5"], "max_side"),
    "--max-side 10^20": (["--max-side", "100000000000000000000"], "max_side"),
    "--expression-scale nan": (["--expression-scale", "nan"], "expression_scale"),
    "--expression-scale inf": (["--expression-scale", "inf"], "expression_scale"),
    "--expression-scale -1e308": (["--expression-scale", "-1e308"], "expression_scale"),
    "--pose-scale -inf": (["--pose-scale", "-inf"], "pose_scale"),
    "--pose-scale nan": (["--pose-scale", "nan"], "pose_scale"),
    "--reference-frame -1": (["--reference-frame", "-1"], "reference_frame"),
    "--reference-frame 10^23": (["--reference-frame", "100000000000000000000000"], "reference_frame"),
    "--steps 100000": (["--steps", "100000"], "steps"),
    "--device ../x": (["--device", "../x"], "device"),
}


@pytest.mark.parametrize("case", list(ANIMATE_CASES))
def test_absurd_animate_option_is_an_input_error(case: str, astronaut_photo: Path, tmp_path: Path) -> None:
    extra, word = ANIMATE_CASES[case]
    out = tmp_path / "clip.mp4"
    result = xp(
        "animate", "--source", astronaut_photo, "--subject", "sub_0000000000000000", "--template", "blink",
        "--out", out, "--home", tmp_path / "home", "--api-key", "xp_000000000000_" + "A" * 43, *extra,
    )  # fmt: skip
    assert_error(result, 2, word)
    assert list(tmp_path.iterdir()) == []
