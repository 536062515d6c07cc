"""Build :class:`DiffusionComponents` from verified weights on disk. Local files only; safetensors only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from xp_sdk.engine.diffusion.components import DiffusionComponents, resolve_device
from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.diffusion.lora import fuse_lora_file
from xp_sdk.engine.diffusion.motion_tokens import MotionTokenizer
from xp_sdk.engine.diffusion.registry import ComponentEntry, VerifiedWeights, require_weights
from xp_sdk.engine.diffusion.text import encode_prompts, load_prompt_embeds
from xp_sdk.errors import ModelError


def _config_path(entry: ComponentEntry) -> Path:
    assert entry.path is not None
    if entry.path.is_dir():
        return entry.path / "config.json"
    assert entry.config is not None
    return entry.config / "config.json" if entry.config.is_dir() else entry.config


def _load_model(cls: Any, entry: ComponentEntry, dtype: torch.dtype) -> Any:
    assert entry.path is not None
    try:
        if entry.path.is_dir():
            return cls.from_pretrained(
                entry.path, variant=entry.variant, use_safetensors=True, local_files_only=True, torch_dtype=dtype
            )
        from safetensors.torch import load_file

        model = cls.from_config(cls.load_config(_config_path(entry)))
        model.load_state_dict(load_file(os.fspath(entry.path)), strict=True)
        return model.to(dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot load {entry.name} from {entry.path}: {exc}") from exc


def load_components(weights: VerifiedWeights, config: DiffusionConfig) -> DiffusionComponents:
    from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, MotionAdapter, UNet2DConditionModel

    _, dtype = resolve_device(config)
    entries = weights.entries
    unet = _load_model(UNet2DConditionModel, entries["unet"], torch.float32)
    if "lcm_lora" in entries:
        path = entries["lcm_lora"].path
        assert path is not None
        fuse_lora_file(unet, path)
    unet = unet.to(dtype=dtype)
    if "motion_adapter" in entries:
        from diffusers import UNetMotionModel

        adapter = _load_model(MotionAdapter, entries["motion_adapter"], dtype)
        unet = UNetMotionModel.from_unet2d(unet, adapter).to(dtype=dtype)
    vae_entry = entries["vae"]
    vae_class = json.loads(_config_path(vae_entry).read_text(encoding="utf-8")).get("_class_name")
    vae = _load_model(AutoencoderTiny if vae_class == "AutoencoderTiny" else AutoencoderKL, vae_entry, dtype)
    controlnet = _load_model(ControlNetModel, entries["controlnet"], dtype)

    if "prompt_embeds" in entries:
        path = entries["prompt_embeds"].path
        assert path is not None
        prompt, negative = load_prompt_embeds(path)
    else:
        encoder, tokenizer = entries["text_encoder"], entries["tokenizer"]
        assert encoder.path is not None and tokenizer.path is not None
        both = encode_prompts(encoder.path, tokenizer.path, [config.prompt, config.negative_prompt], encoder.variant)
        prompt, negative = both[:1], both[1:]
    if prompt.shape[-1] != unet.config.cross_attention_dim:
        raise ModelError(
            f"prompt embeddings have width {prompt.shape[-1]}, the UNet expects {unet.config.cross_attention_dim}"
        )
    tokenizer_model = None
    if "motion_tokens" in entries:
        path = entries["motion_tokens"].path
        assert path is not None
        tokenizer_model = MotionTokenizer.load(path)
    return DiffusionComponents(
        unet=unet,
        vae=vae,
        controlnet=controlnet,
        prompt_embeds=prompt,
        negative_prompt_embeds=negative,
        motion_tokenizer=tokenizer_model,
    )


def load_from_models_toml(config: DiffusionConfig) -> DiffusionComponents:
    """Verify every configured file against its pin, then load; raises before anything is generated."""
    return load_components(require_weights(config.models), config)
