"""models.toml: finding it, pinning, refusing what is missing or altered, and loading what it names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engine.diffusion.conftest import tiny_config
from tests.engine.diffusion.dummy import tiny_components, tiny_controlnet, tiny_unet, tiny_vae
from xp_sdk.engine.diffusion import check_weights, find_models_toml, require_weights
from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline
from xp_sdk.engine.diffusion.text import save_prompt_embeds
from xp_sdk.errors import DiffusionWeightsMissingError, InvalidInputError, ModelHashMismatchError

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XP_MODELS_TOML", raising=False)
    monkeypatch.setenv("XP_HOME", str(tmp_path / "home"))


def _folder_digest(folder: Path, names: list[str]) -> str:
    lines = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(names))
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny components written the way public weights come: diffusers folders and .safetensors files."""
    root = tmp_path_factory.mktemp("weights")
    tiny_unet().save_pretrained(root / "unet")  # type: ignore[attr-defined]
    tiny_vae(2).save_pretrained(root / "vae")  # type: ignore[attr-defined]
    tiny_controlnet(1).save_pretrained(root / "controlnet")  # type: ignore[attr-defined]
    components = tiny_components()
    save_prompt_embeds(root / "prompt.safetensors", components.prompt_embeds, components.negative_prompt_embeds)
    return root


def _write_toml(root: Path, pins: bool = True, **extra: str) -> Path:
    def pin(name: str, files: list[str]) -> str:
        return _folder_digest(root / name, files) if pins else ""

    weights = ["config.json", "diffusion_pytorch_model.safetensors"]
    prompt = hashlib.sha256((root / "prompt.safetensors").read_bytes()).hexdigest() if pins else ""
    text = (
        f'[unet]\npath = "unet"\nsha256 = "{pin("unet", weights)}"\n'
        f'[vae]\npath = "vae"\nsha256 = "{pin("vae", weights)}"\n'
        f'[controlnet]\npath = "controlnet"\nsha256 = "{pin("controlnet", weights)}"\nconditioning = "mediapipe_face"\n'
        f'[prompt_embeds]\npath = "prompt.safetensors"\nsha256 = "{prompt}"\n'
    )
    for name, body in extra.items():
        text += f"[{name}]\n{body}\n"
    path = root / "models.toml"
    path.write_text(text)
    return path


def test_without_any_models_toml_the_error_says_where_it_looked(tmp_path: Path) -> None:
    report = check_weights()
    assert not report.ok and report.toml is None
    assert "XP_MODELS_TOML (unset)" in report.searched[0]
    with pytest.raises(DiffusionWeightsMissingError) as caught:
        require_weights()
    message = caught.value.message
    assert str(tmp_path / "home" / "models.toml") in message and "template models.toml" in message
    assert {"unet", "vae", "controlnet"} <= set(caught.value.missing)


def test_the_template_names_every_required_component_and_where_to_get_it() -> None:
    report = check_weights(REPO / "models.toml")
    assert report.toml == REPO / "models.toml" and not report.ok
    assert {s.name for s in report.problems} == {"unet", "vae", "controlnet", "prompt_embeds"}
    with pytest.raises(DiffusionWeightsMissingError) as caught:
        require_weights(REPO / "models.toml")
    message = caught.value.message
    for hint in ("runwayml/stable-diffusion-v1-5", "CrucibleAI/ControlNetMediaPipeFace", "xp models check"):
        assert hint in message
    assert "motion_adapter" not in caught.value.missing  # optional and not configured: fine


def test_lookup_order_argument_then_environment_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saved: Path
) -> None:
    home_toml = tmp_path / "home" / "models.toml"
    home_toml.parent.mkdir()
    home_toml.write_text("")
    assert find_models_toml()[0] == home_toml
    env_toml = tmp_path / "env.toml"
    env_toml.write_text("")
    monkeypatch.setenv("XP_MODELS_TOML", str(env_toml))
    assert find_models_toml()[0] == env_toml
    assert find_models_toml(saved / "nothing.toml")[0] is None


def test_unpinned_components_report_the_digest_to_paste(saved: Path) -> None:
    report = check_weights(_write_toml(saved, pins=False))
    unet = report.status("unet")
    assert unet.state == "unpinned" and unet.actual_sha256 is not None
    assert unet.actual_sha256 in unet.message
    assert unet.actual_sha256 == _folder_digest(saved / "unet", ["config.json", "diffusion_pytorch_model.safetensors"])
    with pytest.raises(DiffusionWeightsMissingError, match="no sha256 pin"):
        require_weights(saved / "models.toml")


def test_pinned_components_load_and_run_like_the_in_memory_ones(saved: Path) -> None:
    from xp_sdk.engine.diffusion.loading import load_from_models_toml

    toml = _write_toml(saved)
    report = check_weights(toml)
    assert report.ok, report.describe()
    assert "ready" in report.describe() and report.to_dict()["ok"] is True
    loaded = load_from_models_toml(tiny_config(models=str(toml)))
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)

    def run(components: object) -> torch.Tensor:
        pipeline = PortraitDiffusionPipeline(components, tiny_config())  # type: ignore[arg-type]
        pipeline.set_reference(crops[0])
        return pipeline.denoise(crops, crops).latents

    difference = (run(loaded) - run(tiny_components())).abs().max()
    assert difference < 1e-4, difference


def test_an_altered_weights_file_is_refused(saved: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "weights"
    shutil.copytree(saved, copy)
    toml = _write_toml(copy)
    weights = copy / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert check_weights(toml).status("vae").state == "mismatch"
    with pytest.raises(ModelHashMismatchError, match="vae"):
        require_weights(toml)


def test_pickle_only_folders_are_refused(saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    toml = tmp_path / "models.toml"
    toml.write_text(f'[controlnet]\npath = "{folder}"\nsha256 = ""\n')
    status = check_weights(toml).status("controlnet")
    assert status.state == "unsafe_format" and ".safetensors only" in status.message


def test_a_missing_path_says_what_belongs_there(tmp_path: Path) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text('[unet]\npath = "nowhere/unet"\nsha256 = "ab"\n')
    status = check_weights(toml).status("unet")
    assert status.state == "missing" and "does not exist" in status.message and "UNet2DConditionModel" in status.message


def test_malformed_models_toml_is_an_input_error(tmp_path: Path) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text('[unets]\npath = "x"\n')
    with pytest.raises(InvalidInputError, match="unknown components"):
        check_weights(toml)
    toml.write_text('[unet]\npath = 3\n')
    with pytest.raises(InvalidInputError, match="must be a string"):
        check_weights(toml)


def test_optional_components_load_when_configured(saved: Path, tmp_path: Path) -> None:
    """A single-file LoRA (kohya keys) is fused; a MotionAdapter folder makes the UNet temporal."""
    from safetensors.torch import save_file

    from tests.engine.diffusion.dummy import tiny_motion_adapter
    from xp_sdk.engine.diffusion.loading import load_from_models_toml

    tiny_motion_adapter().save_pretrained(tmp_path / "adapter")  # type: ignore[attr-defined]
    torch.manual_seed(0)
    lora = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.randn(2, 8),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.randn(8, 2),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(1.0),
    }
    save_file(lora, str(tmp_path / "lora.safetensors"))

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    adapter_pin = _folder_digest(tmp_path / "adapter", ["config.json", "diffusion_pytorch_model.safetensors"])
    toml = _write_toml(
        saved,
        motion_adapter=f'path = "{tmp_path / "adapter"}"\nsha256 = "{adapter_pin}"',
        lcm_lora=f'path = "{tmp_path / "lora.safetensors"}"\nsha256 = "{digest(tmp_path / "lora.safetensors")}"',
    )
    loaded = load_from_models_toml(tiny_config(models=str(toml)))
    assert loaded.temporal
    base = tiny_unet().down_blocks[0].attentions[0].proj_in.weight  # type: ignore[attr-defined]
    fused = loaded.unet.down_blocks[0].attentions[0].proj_in.weight
    up = lora["lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"]
    down = lora["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]
    assert torch.allclose(fused, base + 0.5 * (up @ down).reshape(base.shape), atol=1e-5)


def test_text_encoder_without_transformers_names_the_package_and_the_alternative(
    saved: Path, tmp_path: Path
) -> None:
    import importlib.util

    from xp_sdk.engine.diffusion.loading import load_from_models_toml

    if importlib.util.find_spec("transformers") is not None:
        pytest.skip("transformers is installed here")
    encoder, tokenizer = tmp_path / "text_encoder", tmp_path / "tokenizer"
    encoder.mkdir()
    tokenizer.mkdir()
    (encoder / "config.json").write_text("{}")
    (encoder / "model.safetensors").write_bytes(b"x")
    (tokenizer / "vocab.json").write_text("{}")
    toml = _write_toml(saved, pins=True)
    text = toml.read_text().split("[prompt_embeds]")[0]
    toml.write_text(text + f'[text_encoder]\npath = "{encoder}"\n[tokenizer]\npath = "{tokenizer}"\n')
    report = check_weights(toml)
    for name in ("text_encoder", "tokenizer"):
        digest = report.status(name).actual_sha256
        toml.write_text(toml.read_text().replace(f'[{name}]\npath = "{tmp_path / name}"\n',
                                                 f'[{name}]\npath = "{tmp_path / name}"\nsha256 = "{digest}"\n'))
    assert check_weights(toml).ok
    with pytest.raises(DiffusionWeightsMissingError, match=r"pip install transformers.*prompt_embeds"):
        load_from_models_toml(tiny_config(models=str(toml)))
