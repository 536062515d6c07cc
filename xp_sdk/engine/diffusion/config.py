"""Settings of the diffusion engine: device, number format, sampling, windows, memory. No torch import here."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from xp_sdk.errors import InvalidInputError

Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["auto", "float16", "bfloat16", "float32"]
SchedulerName = Literal["lcm", "tcd"]
ReferenceMode = Literal["noised", "clean"]


MAX_RESOLUTION = 2048
MAX_GUIDANCE = 20.0
MAX_WEIGHT = 10.0
MAX_WINDOW = 128
MAX_PROMPT_CHARS = 2000
"""CLIP reads 77 tokens; far longer text only costs tokenising."""
# A torch device type with an optional index ("cuda:1"); never a path.
_DEVICE = re.compile(r"^[a-z]{2,16}(:[0-9]{1,3})?$")


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _finite(value: object, low: float, high: float) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return math.isfinite(value) and low <= value <= high


@dataclass(frozen=True)
class DiffusionConfig:
    models: str | None = None
    """Path of the models.toml to read; None looks at ``XP_MODELS_TOML``, then ``<XP_HOME>/models.toml``.
    A string, so options stay JSON-serialisable (they travel to the server as JSON)."""
    device: Device | str = "auto"
    """"auto": cuda, else mps, else cpu. Any torch device string ("cuda:1") is accepted."""
    dtype: DType = "auto"
    """"auto": float16 on cuda, float32 elsewhere (mps and cpu are slow or inexact in half precision)."""

    resolution: int = 512
    """Side of the square face crop the model sees (SD 1.5 is trained at 512)."""
    crop_scale: float = 2.0
    """Crop side as a multiple of the photo's face box: room for hair and for the head to move."""

    steps: int = 6
    """Denoising steps actually run (LCM and TCD are made for 4–8)."""
    strength: float = 0.5
    """How far from the warp frame the model may go: 0 returns the warp result exactly, 1 ignores it."""
    scheduler: SchedulerName = "lcm"
    tcd_gamma: float = 0.3
    """TCD's stochasticity (its ``eta``); ignored by LCM."""
    guidance_scale: float = 1.0
    """Classifier-free guidance; 1 runs no unconditional pass (what LCM-LoRA is distilled for)."""
    prompt: str = "a photo of a person, detailed face, natural skin, high quality"
    negative_prompt: str = ""

    controlnet_scale: float = 0.8
    reference_scale: float = 1.0
    """Weight of the photo's features in self-attention: 0 turns the reference path off."""
    reference_mode: ReferenceMode = "noised"
    """"noised": the photo's latents noised to each step's timestep (reference-only, works with untrained
    weights); "clean": one pass on the clean latents at t=0 (ReferenceNet-style, cheaper, wants trained weights)."""
    motion_token_scale: float = 1.0
    """Weight of the learned motion-token cross-attention, when its weights are configured."""

    window: int = 16
    """Frames denoised together (the AnimateDiff motion module's context)."""
    overlap: int = 4
    """Frames shared by consecutive windows and cross-faded; used only with a motion module."""
    seed: int = 0

    vae_batch: int = 4
    """Frames per VAE encode/decode call (VAE slicing); 0 sends the whole window at once."""
    vae_tiling: bool = False
    """Tiled VAE (AutoencoderKL only): for resolutions well above 512."""
    cpu_offload: bool = False
    """Keep models in CPU memory and move each to the device only for its phase."""

    def validate(self) -> DiffusionConfig:
        problems = []
        if not _whole(self.resolution, 16, MAX_RESOLUTION) or self.resolution % 8:
            problems.append(f"resolution must be a multiple of 8 from 16 to {MAX_RESOLUTION}, got {self.resolution}")
        if not 1.0 <= self.crop_scale <= 4.0:
            problems.append(f"crop_scale must be in [1, 4], got {self.crop_scale}")
        if not _whole(self.steps, 1, 50):
            problems.append(f"steps must be in [1, 50], got {self.steps}")
        if not (self.strength == 0.0 or 0.001 <= self.strength <= 1.0):
            problems.append(f"strength must be 0 or in [0.001, 1], got {self.strength}")
        if self.scheduler not in ("lcm", "tcd"):
            problems.append(f"scheduler must be 'lcm' or 'tcd', got {self.scheduler!r}")
        if self.dtype not in ("auto", "float16", "bfloat16", "float32"):
            problems.append(f"dtype must be auto, float16, bfloat16 or float32, got {self.dtype!r}")
        if self.reference_mode not in ("noised", "clean"):
            problems.append(f"reference_mode must be 'noised' or 'clean', got {self.reference_mode!r}")
        if not _finite(self.guidance_scale, 1.0, MAX_GUIDANCE):
            problems.append(f"guidance_scale must be from 1 to {MAX_GUIDANCE:g}, got {self.guidance_scale}")
        for name in ("controlnet_scale", "reference_scale", "motion_token_scale", "tcd_gamma"):
            if not _finite(getattr(self, name), 0.0, MAX_WEIGHT):
                problems.append(f"{name} must be a number from 0 to {MAX_WEIGHT:g}, got {getattr(self, name)}")
        if self.reference_scale > 1.0:
            problems.append(f"reference_scale must be in [0, 1], got {self.reference_scale}")
        if not _whole(self.window, 1, MAX_WINDOW):
            problems.append(f"window must be from 1 to {MAX_WINDOW} frames, got {self.window}")
        if not 0 <= self.overlap < self.window:
            problems.append(f"overlap must be in [0, window), got {self.overlap} with window {self.window}")
        if not _whole(self.vae_batch, 0, MAX_WINDOW):
            problems.append(f"vae_batch must be from 0 to {MAX_WINDOW}, got {self.vae_batch}")
        if not _whole(self.seed, 0, 2**63 - 1):
            problems.append(f"seed must be a whole number from 0 to 2**63-1, got {self.seed}")
        if not (isinstance(self.device, str) and _DEVICE.match(self.device)):
            problems.append(f"device must be auto, cpu, mps, cuda or cuda:<index>, got {self.device!r}")
        for name in ("prompt", "negative_prompt"):
            text = getattr(self, name)
            if not (isinstance(text, str) and len(text) <= MAX_PROMPT_CHARS):
                problems.append(f"{name} must be text of at most {MAX_PROMPT_CHARS} characters")
        for name in ("vae_tiling", "cpu_offload"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if problems:
            raise InvalidInputError("invalid diffusion settings: " + "; ".join(problems))
        return self
