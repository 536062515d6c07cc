"""The parts a diffusion pipeline is composed of, and the device and number format they run in."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.diffusion.motion_tokens import MotionTokenizer
from xp_sdk.errors import DeviceUnavailableError

# Stable Diffusion 1.5's noise schedule (its scheduler_config.json); LCM and TCD are built on it. With an
# AnimateDiff or AnimateLCM motion adapter the loader changes beta_schedule to the adapter's (linear).
SD15_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "clip_sample": False,
}


@dataclass
class DiffusionComponents:
    """Models loaded from models.toml (:mod:`.loading`) or built tiny for tests (``tests/engine/diffusion/dummy.py``).

    ``unet`` is a ``UNet2DConditionModel``, or a ``UNetMotionModel`` when an AnimateDiff MotionAdapter was given;
    ``vae`` an ``AutoencoderKL`` or ``AutoencoderTiny``.
    """

    unet: Any
    vae: Any
    controlnet: Any | None
    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None = None
    motion_tokenizer: MotionTokenizer | None = None
    schedule: dict[str, Any] = field(default_factory=lambda: dict(SD15_SCHEDULE))
    weights: tuple[tuple[str, str], ...] = ()
    """(component, sha256) of every file-backed component loaded, for the C2PA record; empty when built in memory."""
    lora_scale: float | None = None
    """The scale the LoRA was fused at, when one was."""
    phase_seconds: dict[str, float] | None = field(default=None, repr=False, compare=False)
    """When a dict (a benchmark sets one), every pipeline running these models adds each phase's seconds to it
    (VAE encode, reference pass, ControlNet, UNet, scheduler, VAE decode), waiting for the device around each
    phase so the time is the device's; None (the default) measures nothing and never waits."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held while a pipeline runs these models: cached components are shared by every generation of a process,
    and each pipeline installs its own attention processors (reference bank, motion tokens) before it runs."""

    @property
    def temporal(self) -> bool:
        return type(self.unet).__name__ == "UNetMotionModel"


def resolve_device(config: DiffusionConfig) -> tuple[torch.device, torch.dtype]:
    name = config.device
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError("device 'mps' was asked for, but Metal is not available on this machine")
    dtype_name = config.dtype
    if dtype_name == "auto":
        dtype_name = "float16" if device.type == "cuda" else "float32"
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype_name]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceUnavailableError("bfloat16 was asked for, but this GPU does not support it; use float16")
    if dtype == torch.float16 and device.type == "cpu":
        raise DeviceUnavailableError("float16 on the CPU is unsupported by several layers; use float32 there")
    return device, dtype
