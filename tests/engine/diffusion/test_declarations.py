"""What models.toml declares: the noise schedule and LoRA scale follow the motion adapter (AnimateLCM included),
and a ControlNet whose conditioning the engine cannot draw is refused before anything is generated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engine.diffusion.conftest import tiny_config
from tests.engine.diffusion.dummy import tiny_unet
from tests.engine.diffusion.on_disk import save_tiny, write_toml
from xp_sdk.engine.diffusion import check_weights, require_weights
from xp_sdk.engine.diffusion.loading import clear_cache, load_from_models_toml
from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline
from xp_sdk.errors import DiffusionWeightsMissingError, InvalidInputError

LORA_KEY = "down_blocks.0.attentions.0.proj_in"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = save_tiny(tmp_path_factory.mktemp("weights"), adapter="animatediff-motion-adapter-v1-5-2", lora=True)
    shutil.copytree(root / "animatediff-motion-adapter-v1-5-2", root / "AnimateLCM")
    return root


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _betas(components: object) -> torch.Tensor:
    pipeline = PortraitDiffusionPipeline(components, tiny_config())  # type: ignore[arg-type]
    return pipeline.scheduler.betas  # type: ignore[no-any-return]


def _fused_scale(saved: Path, unet: object) -> float:
    """The scale the test LoRA (alpha 2, rank 2) was fused at, read back from the UNet's weight."""
    from safetensors.torch import load_file

    lora = load_file(str(saved / "lora.safetensors"))
    kohya = "lora_unet_" + LORA_KEY.replace(".", "_")
    delta = (lora[f"{kohya}.lora_up.weight"] @ lora[f"{kohya}.lora_down.weight"]).flatten()
    base = dict(tiny_unet().named_parameters())[f"{LORA_KEY}.weight"].detach().flatten()  # type: ignore[attr-defined]
    fused = dict(unet.named_parameters())[f"{LORA_KEY}.weight"].detach().flatten()  # type: ignore[attr-defined]
    return float(((fused - base) @ delta) / (delta @ delta))


def test_without_a_motion_adapter_the_schedule_is_sd15s_scaled_linear(saved: Path) -> None:
    components = load_from_models_toml(tiny_config(models=str(write_toml(saved, lora_options=""))))
    assert components.schedule["beta_schedule"] == "scaled_linear"
    betas = _betas(components)
    expected = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float32) ** 2
    assert torch.allclose(betas, expected)
    assert components.lora_scale == 1.0 and _fused_scale(saved, components.unet) == pytest.approx(1.0, abs=1e-4)


def test_an_animatediff_adapter_samples_under_the_linear_schedule_it_was_trained_with(saved: Path) -> None:
    toml = write_toml(saved, adapter="animatediff-motion-adapter-v1-5-2", lora_options="")
    components = load_from_models_toml(tiny_config(models=str(toml)))
    assert components.temporal and components.schedule["beta_schedule"] == "linear"
    assert torch.allclose(_betas(components), torch.linspace(0.00085, 0.012, 1000, dtype=torch.float32))
    # An LCM-LoRA with AnimateDiff is fused whole.
    assert components.lora_scale == 1.0 and _fused_scale(saved, components.unet) == pytest.approx(1.0, abs=1e-4)


def test_animatelcm_is_recognised_by_its_name_and_its_lora_fused_at_0_8(saved: Path) -> None:
    toml = write_toml(saved, adapter="AnimateLCM", lora_options="")
    components = load_from_models_toml(tiny_config(models=str(toml)))
    assert components.schedule["beta_schedule"] == "linear"
    assert components.lora_scale == 0.8 and _fused_scale(saved, components.unet) == pytest.approx(0.8, abs=1e-4)


def test_declarations_override_what_the_names_suggest(saved: Path) -> None:
    toml = write_toml(
        saved, adapter="animatediff-motion-adapter-v1-5-2", adapter_options='family = "animatelcm"',
        lora_options="scale = 0.5",
    )  # fmt: skip
    components = load_from_models_toml(tiny_config(models=str(toml)))
    assert components.lora_scale == 0.5 and _fused_scale(saved, components.unet) == pytest.approx(0.5, abs=1e-4)
    toml = write_toml(saved, adapter="AnimateLCM", adapter_options='beta_schedule = "scaled_linear"', lora_options="")
    components = load_from_models_toml(tiny_config(models=str(toml)))
    assert components.schedule["beta_schedule"] == "scaled_linear" and components.lora_scale == 0.8


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ("motion_adapter", 'family = "svd"', "family must be one of"),
        ("motion_adapter", 'beta_schedule = "cosine"', "beta_schedule must be one of"),
        ("lcm_lora", "scale = 0", "scale must be in"),
        ("lcm_lora", 'scale = "high"', "scale must be a number"),
        ("controlnet", "conditioning = 3", "conditioning must be a string"),
        ("vae", 'family = "animatediff"', "unknown keys"),
    ],
)
def test_malformed_declarations_are_input_errors(tmp_path: Path, table: str, line: str, message: str) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text(f'[{table}]\npath = "x"\n{line}\n')
    with pytest.raises(InvalidInputError, match=message):
        check_weights(toml)


def _controlnet_copy(saved: Path, tmp_path: Path, folder: str, name_or_path: str | None = None) -> Path:
    root = tmp_path / "w"
    shutil.copytree(saved, root, ignore=shutil.ignore_patterns("models*.toml"))
    if folder != "controlnet":
        (root / "controlnet").rename(root / folder)
    if name_or_path is not None:
        config = json.loads((root / folder / "config.json").read_text())
        config["_name_or_path"] = name_or_path
        (root / folder / "config.json").write_text(json.dumps(config))
    return root




def _make(root: Path, folder: str, declaration: str) -> Path:
    # write_toml pins ./controlnet; point it at the renamed folder instead.
    if folder != "controlnet":
        shutil.copytree(root / folder, root / "controlnet")
    toml = write_toml(root, controlnet=declaration)
    if folder != "controlnet":
        shutil.rmtree(root / "controlnet")
        text = toml.read_text().replace('path = "controlnet"', f'path = "{folder}"')
        toml.write_text(text)
    return toml


@pytest.mark.parametrize(
    ("folder", "name_or_path", "declaration", "said"),
    [
        ("controlnet", None, 'conditioning = "openpose"', "declared conditioning = 'openpose'"),
        ("sd-controlnet-openpose", None, "", "looks like a ControlNet for openpose"),
        ("controlnet", "lllyasviel/control_v11p_sd15_canny", "", "looks like a ControlNet for canny"),
        ("controlnet", None, "", 'add conditioning = "mediapipe_face"'),
    ],
)
def test_a_controlnet_the_engine_cannot_draw_for_is_refused_before_generation(
    saved: Path, tmp_path: Path, folder: str, name_or_path: str | None, declaration: str, said: str
) -> None:
    toml = _make(_controlnet_copy(saved, tmp_path, folder, name_or_path), folder, declaration)
    status = check_weights(toml).status("controlnet")
    assert status.state == "unsupported" and said in status.message
    assert "MediaPipe face-mesh" in status.message and "CrucibleAI/ControlNetMediaPipeFace" in status.message
    with pytest.raises(DiffusionWeightsMissingError, match="controlnet \\(unsupported\\)") as caught:
        require_weights(toml)
    assert caught.value.missing == ("controlnet",)


@pytest.mark.parametrize(
    ("folder", "name_or_path", "declaration"),
    [
        ("controlnet", None, 'conditioning = "mediapipe_face"'),
        ("controlnet", "CrucibleAI/ControlNetMediaPipeFace", ""),
        ("models--CrucibleAI--ControlNetMediaPipeFace", None, ""),
    ],
)
def test_a_mediapipe_face_controlnet_is_accepted(
    saved: Path, tmp_path: Path, folder: str, name_or_path: str | None, declaration: str
) -> None:
    toml = _make(_controlnet_copy(saved, tmp_path, folder, name_or_path), folder, declaration)
    assert check_weights(toml).status("controlnet").state == "ok"
    crops = np.zeros((1, 32, 32, 3), np.uint8)
    pipeline = PortraitDiffusionPipeline(load_from_models_toml(tiny_config(models=str(toml))), tiny_config())
    assert pipeline.denoise(crops, crops).latents.shape == (1, 4, 16, 16)
