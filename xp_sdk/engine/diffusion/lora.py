"""Fuse a LoRA (LCM-LoRA, TCD-LoRA) into a UNet's weights, without peft.

diffusers loads LoRAs through peft, which pulls in transformers; fusing once at load time needs neither and
leaves a plain UNet (no adapter layers to slow every step). Two key layouts are read: kohya's
(``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``, what the public LCM-LoRA
files use) and peft's (``[unet.]<module path>.lora_A.weight`` / ``.lora_B.weight``). A key that names no module
of the UNet is an error: it means the LoRA is for another base model.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from xp_sdk.errors import ModelError


def _pairs(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor, float | None]]:
    """module key → (down, up, alpha or None)."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor, float | None]] = {}
    for key, down in state.items():
        for down_suffix, up_suffix in ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight"),
                                       (".lora.down.weight", ".lora.up.weight")):
            if key.endswith(down_suffix):
                base = key.removesuffix(down_suffix)
                up = state.get(base + up_suffix)
                if up is None:
                    raise ModelError(f"LoRA key {key} has no matching {base + up_suffix}")
                alpha = state.get(base + ".alpha")
                out[base] = (down, up, None if alpha is None else float(alpha))
    return out


def fuse_lora(unet: Any, state: dict[str, torch.Tensor], scale: float = 1.0) -> int:
    """Add ``scale`` × the LoRA's update to ``unet``'s weights in place; returns the number of layers changed."""
    modules = dict(unet.named_modules())
    kohya = {name.replace(".", "_"): module for name, module in modules.items()}
    pairs = _pairs(state)
    if not pairs:
        raise ModelError("the LoRA file holds no lora_down/lora_up (or lora_A/lora_B) weights")
    unknown = []
    fused = 0
    for base, (down, up, alpha) in pairs.items():
        if base.startswith("lora_te"):
            continue  # text-encoder layers: this engine uses pre-encoded prompts
        if base.startswith("lora_unet_"):
            module = kohya.get(base.removeprefix("lora_unet_"))
        else:
            module = modules.get(base.removeprefix("unet."))
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            unknown.append(base)
            continue
        rank = down.shape[0]
        factor = scale * (alpha / rank if alpha is not None else 1.0)
        if up.shape[0] != weight.shape[0] or down.flatten(1).shape[1] != weight[0].numel():
            unknown.append(base)
            continue
        delta = (up.flatten(1).float() @ down.flatten(1).float()).reshape(weight.shape) * factor
        with torch.no_grad():
            weight.add_(delta.to(device=weight.device, dtype=weight.dtype))
        fused += 1
    if unknown:
        raise ModelError(
            f"the LoRA does not fit this UNet: {len(unknown)} of its layers name no module (first: {unknown[0]}); "
            "is it a LoRA for Stable Diffusion 1.5?"
        )
    return fused


def fuse_lora_file(unet: Any, path: str | os.PathLike[str], scale: float = 1.0) -> int:
    from safetensors.torch import load_file

    return fuse_lora(unet, load_file(os.fspath(path)), scale)
