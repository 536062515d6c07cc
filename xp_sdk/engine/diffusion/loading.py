"""Build :class:`DiffusionComponents` from verified weights on disk. Local files only; safetensors only.

Weights are read with ``low_cpu_mem_usage`` (accelerate): the model is built without initialising random weights
that the file then overwrites, so loading costs one copy of the weights, not two, and none of the random init's
time. The noise schedule and the LoRA's scale follow the motion adapter (:mod:`.declarations`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import torch

from xp_sdk.engine.diffusion.components import SD15_SCHEDULE, DiffusionComponents, resolve_device
from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.diffusion.declarations import MotionFamily, beta_schedule, lora_scale, motion_family
from xp_sdk.engine.diffusion.lora import fuse_lora_file
from xp_sdk.engine.diffusion.motion_tokens import MotionTokenizer
from xp_sdk.engine.diffusion.registry import ComponentEntry, VerifiedWeights, require_weights
from xp_sdk.engine.diffusion.text import encode_prompts, load_prompt_embeds
from xp_sdk.engine.diffusion.versions import require_supported_diffusers
from xp_sdk.errors import ModelError


def _config_path(entry: ComponentEntry) -> Path:
    config = entry.config_file()
    assert config is not None
    return config


def _low_cpu_mem_usage() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def _load_model(cls: Any, entry: ComponentEntry, dtype: torch.dtype) -> Any:
    assert entry.path is not None
    try:
        if entry.path.is_dir():
            return cls.from_pretrained(
                entry.path, variant=entry.variant, use_safetensors=True, local_files_only=True, torch_dtype=dtype,
                low_cpu_mem_usage=_low_cpu_mem_usage(),
            )
        from safetensors.torch import load_file

        state = {k: v.to(dtype) for k, v in load_file(os.fspath(entry.path)).items()}
        if not _low_cpu_mem_usage():
            model = cls.from_config(cls.load_config(_config_path(entry)))
            model.load_state_dict(state, strict=True)
            return model.to(dtype=dtype)
        from accelerate import init_empty_weights

        with init_empty_weights():  # parameters on the meta device; buffers (not in the file) made as usual
            model = cls.from_config(cls.load_config(_config_path(entry)))
        model.load_state_dict(state, strict=True, assign=True)
        return model
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot load {entry.name} from {entry.path}: {exc}") from exc


def _family(entry: ComponentEntry | None) -> MotionFamily | None:
    if entry is None:
        return None
    assert entry.path is not None
    return motion_family(entry.path, entry.config_file(), entry.options)


def load_components(weights: VerifiedWeights, config: DiffusionConfig) -> DiffusionComponents:
    require_supported_diffusers()
    from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, MotionAdapter, UNet2DConditionModel

    _, dtype = resolve_device(config)
    entries = weights.entries
    adapter_entry = entries.get("motion_adapter")
    family = _family(adapter_entry)
    schedule = dict(SD15_SCHEDULE)
    if adapter_entry is not None:
        schedule["beta_schedule"] = beta_schedule(adapter_entry.options)
    # The LoRA is fused in float32 (a rank-64 update rounds away in half precision), then the UNet is cast.
    unet = _load_model(UNet2DConditionModel, entries["unet"], torch.float32)
    fused_scale = None
    if "lcm_lora" in entries:
        lora = entries["lcm_lora"]
        assert lora.path is not None
        fused_scale = lora_scale(family, lora.options)
        fuse_lora_file(unet, lora.path, fused_scale)
    unet = unet.to(dtype=dtype)
    if adapter_entry is not None:
        adapter = _load_model(MotionAdapter, adapter_entry, dtype)
        unet = with_motion_adapter(unet, adapter, dtype)
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
        schedule=schedule,
        weights=tuple(sorted(weights.digests.items())),
        lora_scale=fused_scale,
    )


def with_motion_adapter(unet: Any, adapter: Any, dtype: torch.dtype) -> Any:
    """The ``UNetMotionModel`` of ``unet`` and ``adapter``: the model diffusers' ``from_unet2d`` makes.

    ``from_unet2d`` builds the whole model with random weights (float32: 5 GB and most of a minute for SD 1.5 on
    a CPU) and then copies both models' weights in. Here it is built empty (accelerate's meta device) and takes the
    two models' tensors as they are, so joining them costs no memory and no time."""
    from diffusers import UNetMotionModel

    try:
        if adapter.config.get("conv_in_channels") or not _low_cpu_mem_usage():
            return UNetMotionModel.from_unet2d(unet, adapter).to(dtype=dtype)  # PIA's conv_in is spliced there
        from accelerate import init_empty_weights

        with init_empty_weights():
            model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
        model.load_state_dict({**unet.state_dict(), **adapter.state_dict()}, strict=True, assign=True)
        return model.to(dtype=dtype)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"the motion adapter does not fit the UNet: {exc}") from exc


_cache_lock = threading.Lock()
_cached: tuple[tuple[object, ...], DiffusionComponents] | None = None


def _cache_key(weights: VerifiedWeights, config: DiffusionConfig) -> tuple[object, ...]:
    device, dtype = resolve_device(config)
    declared = tuple(
        sorted((name, e.variant, tuple(sorted(e.options.items()))) for name, e in weights.entries.items())
    )
    # Prompts are encoded at load time only from a text encoder; pre-encoded embeddings do not depend on them.
    text = () if "prompt_embeds" in weights.entries else (config.prompt, config.negative_prompt)
    return (str(weights.toml.resolve()), tuple(sorted(weights.digests.items())), declared, str(device), dtype, text)


def load_from_models_toml(config: DiffusionConfig) -> DiffusionComponents:
    """Verify every configured file against its pin, then load; raises before anything is generated.

    One model set is kept per process: the next generation with the same files (same pins), device, number
    format and prompts gets the same components without reading several GB again. A different set replaces it
    (the old one is let go before the new one is read, so two never share the memory)."""
    global _cached
    weights = require_weights(config.models)
    key = _cache_key(weights, config)
    with _cache_lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        _cached = None
        components = load_components(weights, config)
        _cached = (key, components)
        return components


def clear_cache() -> None:
    """Let the cached models go (their memory is freed once no generation holds them)."""
    global _cached
    with _cache_lock:
        _cached = None
