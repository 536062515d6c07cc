"""Tiny components written the way public weights come (diffusers folders, .safetensors), and a models.toml."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from tests.engine.diffusion.dummy import tiny_components, tiny_controlnet, tiny_motion_adapter, tiny_unet, tiny_vae
from xp_sdk.engine.diffusion.text import save_prompt_embeds

FOLDER_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_digest(folder: Path, names: list[str] = FOLDER_FILES) -> str:
    lines = "".join(f"{file_digest(folder / n)}  {n}\n" for n in sorted(names))
    return hashlib.sha256(lines.encode()).hexdigest()


def save_tiny(root: Path, *, adapter: str | None = None, lora: bool = False) -> Path:
    """unet/, vae/, controlnet/, prompt.safetensors under ``root``; with ``adapter`` a MotionAdapter folder of that
    name; with ``lora`` a kohya-layout LoRA file. Returns ``root``."""
    tiny_unet().save_pretrained(root / "unet")  # type: ignore[attr-defined]
    tiny_vae(2).save_pretrained(root / "vae")  # type: ignore[attr-defined]
    tiny_controlnet(1).save_pretrained(root / "controlnet")  # type: ignore[attr-defined]
    components = tiny_components()
    save_prompt_embeds(root / "prompt.safetensors", components.prompt_embeds, components.negative_prompt_embeds)
    if adapter is not None:
        tiny_motion_adapter().save_pretrained(root / adapter)  # type: ignore[attr-defined]
    if lora:
        from safetensors.torch import save_file

        generator = torch.Generator().manual_seed(0)
        key = "lora_unet_down_blocks_0_attentions_0_proj_in"
        save_file(
            {
                f"{key}.lora_down.weight": torch.randn(2, 8, generator=generator),
                f"{key}.lora_up.weight": torch.randn(8, 2, generator=generator),
                f"{key}.alpha": torch.tensor(2.0),
            },
            str(root / "lora.safetensors"),
        )
    return root


def write_toml(
    root: Path,
    *,
    controlnet: str = 'conditioning = "mediapipe_face"',
    adapter: str | None = None,
    adapter_options: str = "",
    lora_options: str | None = None,
    name: str = "models.toml",
) -> Path:
    """A pinned models.toml for what :func:`save_tiny` wrote; extra table lines as given."""
    text = (
        f'[unet]\npath = "unet"\nsha256 = "{folder_digest(root / "unet")}"\n'
        f'[vae]\npath = "vae"\nsha256 = "{folder_digest(root / "vae")}"\n'
        f'[controlnet]\npath = "controlnet"\nsha256 = "{folder_digest(root / "controlnet")}"\n{controlnet}\n'
        f'[prompt_embeds]\npath = "prompt.safetensors"\nsha256 = "{file_digest(root / "prompt.safetensors")}"\n'
    )
    if adapter is not None:
        text += f'[motion_adapter]\npath = "{adapter}"\nsha256 = "{folder_digest(root / adapter)}"\n{adapter_options}\n'
    if lora_options is not None:
        text += (
            f'[lcm_lora]\npath = "lora.safetensors"\nsha256 = "{file_digest(root / "lora.safetensors")}"\n'
            f"{lora_options}\n"
        )
    path = root / name
    path.write_text(text)
    return path
