"""`animate(engine="diffusion")`: the same streaming call, refined by tiny models; refusal without weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.engine.diffusion.conftest import Face, tiny_config
from tests.engine.diffusion.dummy import tiny_components
from xp_sdk.engine import AnimateOptions, MotionTemplate, Progress, animate
from xp_sdk.engine.templates import Keyframe
from xp_sdk.engine.video import read_frames
from xp_sdk.errors import DiffusionWeightsMissingError

TEMPLATE = MotionTemplate(
    name="open",
    fps=30,
    duration=0.3,
    keyframes=[Keyframe(t=0.0), Keyframe(t=0.3, blendshapes={"jawOpen": 0.8})],
)


def test_diffusion_engine_streams_every_frame_in_order(astronaut: Face, tmp_path: Path) -> None:
    calls: list[Progress] = []
    seen: list[np.ndarray] = []

    def keep(frame: np.ndarray) -> np.ndarray:
        seen.append(frame)
        return frame

    options = AnimateOptions(engine="diffusion", diffusion=tiny_config(window=4), keep_audio=False)
    result = animate(
        astronaut.image, tmp_path / "out.mp4", template=TEMPLATE, options=options, progress=calls.append,
        frame_filter=keep, diffusion_components=tiny_components(motion_adapter=True),
    )
    frames = TEMPLATE.frame_count
    assert result.engine == "diffusion" and result.frames == frames == 9
    assert set(result.stage_seconds) == {"analysis", "shading", "warp", "diffusion", "filter", "encode"}
    assert result.stage_seconds["diffusion"] > 0
    assert [p.done for p in calls] == list(range(1, frames + 1))
    assert len(seen) == frames and all(f.shape == astronaut.image.shape for f in seen)
    assert sum(1 for _ in read_frames(tmp_path / "out.mp4")) == frames


def test_diffusion_engine_without_weights_fails_before_any_output(
    astronaut: Face, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XP_MODELS_TOML", raising=False)
    monkeypatch.setenv("XP_HOME", str(tmp_path / "home"))
    out = tmp_path / "out.mp4"
    with pytest.raises(DiffusionWeightsMissingError) as caught:
        animate(astronaut.image, out, template=TEMPLATE, options=AnimateOptions(engine="diffusion"))
    assert "models.toml" in caught.value.message and str(tmp_path / "home") in caught.value.message
    assert caught.value.exit_code == 4 and caught.value.code == "diffusion_weights_missing"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_diffusion_engine_with_the_template_models_toml_names_each_missing_component(
    astronaut: Face, tmp_path: Path
) -> None:
    template = Path(__file__).resolve().parents[3] / "models.toml"
    options = AnimateOptions(engine="diffusion", diffusion=tiny_config(models=str(template)))
    with pytest.raises(DiffusionWeightsMissingError) as caught:
        animate(astronaut.image, tmp_path / "out.mp4", template=TEMPLATE, options=options)
    assert set(caught.value.missing) == {"unet", "vae", "controlnet", "prompt_embeds"}
    for name in caught.value.missing:
        assert f"{name} (not_configured)" in caught.value.message
    assert not (tmp_path / "out.mp4").exists()


def test_warp_engine_is_unchanged_by_default(astronaut: Face, tmp_path: Path) -> None:
    result = animate(astronaut.image, tmp_path / "w.mp4", template=TEMPLATE, options=AnimateOptions(keep_audio=False))
    assert result.engine == "warp" and set(result.stage_seconds) == {"analysis", "shading", "warp", "filter", "encode"}
