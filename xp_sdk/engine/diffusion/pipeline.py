"""The composed pipeline: one window of frames, refined from the warp result by a few LCM/TCD steps.

Per window of F frames (face crops at the model's resolution):

1. img2img: the warp frames are VAE-encoded and noised to the first timestep of a schedule cut at ``strength``,
   so structure and motion come from the warp even with 4 steps; strength 0 is never sent here (the generator
   returns the warp frames themselves).
2. Each step: the reference bank is filled by a UNet pass on the photo's latents (cached per step and reused by
   every window), the ControlNet reads the face-mesh renders, the motion tokens (if any) are set, and the UNet
   (a ``UNetMotionModel`` when a MotionAdapter was given, so frames attend to each other) predicts the noise.
3. The first frames of a window that overlap the previous one are pulled, at every step, toward the latents
   they had at that step in the previous window (its trajectory, kept for those frames), so the motion module
   sees a continuous past. Pulling toward the previous *result* re-noised would refine those frames twice,
   which shows as a jump at the seam.

Noise is shared by all frames (one seed for the video): a frame's result then depends on its inputs, not on
its position in the video, which keeps flicker down and makes windows meet without seams when there is no
motion module. Nothing here has run with real weights yet: only tiny random components, on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xp_sdk.engine.diffusion.components import DiffusionComponents, resolve_device
from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.diffusion.motion_tokens import MotionTokenState, motion_processors
from xp_sdk.engine.diffusion.reference import ReferenceBank, reference_processors
from xp_sdk.engine.diffusion.versions import require_supported_diffusers
from xp_sdk.errors import InvalidInputError


@dataclass(frozen=True)
class Anchor:
    """The previous window's latents, at the start of each step, of the K frames this window shares with it, and
    how hard to hold each frame to them."""

    trajectory: list[torch.Tensor]  # per step: (K, C, h, w)
    weights: torch.Tensor  # (K,) in [0, 1]


@dataclass(frozen=True)
class Refined:
    latents: torch.Tensor  # (F, C, h, w) final
    trajectory: list[torch.Tensor]  # per step: the last ``keep`` frames' latents at the start of the step


class PortraitDiffusionPipeline:
    def __init__(self, components: DiffusionComponents, config: DiffusionConfig) -> None:
        from diffusers import LCMScheduler, TCDScheduler

        require_supported_diffusers()
        self.config = config.validate()
        self.components = c = components
        self.device, self.dtype = resolve_device(config)
        self.temporal = c.temporal
        scheduler_class = TCDScheduler if config.scheduler == "tcd" else LCMScheduler
        self.scheduler: Any = scheduler_class(**c.schedule)
        vae_config = c.vae.config
        channels = vae_config.get("block_out_channels") or vae_config.get("encoder_block_out_channels")
        self.vae_scale: int = 2 ** (len(channels) - 1)
        self.latent_scale = float(vae_config.get("scaling_factor", 1.0))
        self.tiny_vae = type(c.vae).__name__ == "AutoencoderTiny"
        if config.resolution % self.vae_scale:
            raise InvalidInputError(f"resolution {config.resolution} is not a multiple of the VAE's {self.vae_scale}")
        if c.negative_prompt_embeds is None and config.guidance_scale > 1.0:
            raise InvalidInputError("guidance_scale > 1 needs negative prompt embeddings (or a text encoder)")

        self.bank = ReferenceBank(scale=config.reference_scale)
        self.motion_state = MotionTokenState(config.motion_token_scale)
        processors: dict[str, Any] = dict(c.unet.attn_processors)
        processors.update(reference_processors(c.unet, self.bank))
        if c.motion_tokenizer is not None:
            processors.update(motion_processors(c.unet, c.motion_tokenizer, self.motion_state))
        self._processors = processors
        if config.vae_tiling and hasattr(c.vae, "enable_tiling"):
            c.vae.enable_tiling()

        self._models = [m for m in (c.unet, c.vae, c.controlnet, c.motion_tokenizer) if m is not None]
        for model in self._models:
            model.eval().requires_grad_(False)
            if next(model.parameters()).dtype != self.dtype:
                model.to(dtype=self.dtype)
            model.to(torch.device("cpu") if config.cpu_offload else self.device)
        self._reference: torch.Tensor | None = None
        self._bank_cache: dict[int, dict[str, torch.Tensor]] = {}
        self._noise: torch.Tensor | None = None

    @property
    def has_motion_tokens(self) -> bool:
        return self.components.motion_tokenizer is not None

    @property
    def latent_side(self) -> int:
        return self.config.resolution // self.vae_scale

    # --- memory ---------------------------------------------------------------------------------------------

    @contextmanager
    def _on_device(self, *models: Any) -> Iterator[None]:
        """With CPU offload, each phase borrows the device only for the models it runs."""
        if not self.config.cpu_offload:
            yield
            return
        present = [m for m in models if m is not None]
        for m in present:
            m.to(self.device)
        try:
            yield
        finally:
            for m in present:
                m.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        seconds = self.components.phase_seconds
        if seconds is None:
            yield
            return
        self._synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    # --- VAE ------------------------------------------------------------------------------------------------

    def _chunks(self, n: int) -> list[slice]:
        size = self.config.vae_batch or n
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (F, R, R, 3) → scaled latents (F, C, R/s, R/s) on the device."""
        vae = self.components.vae
        out = []
        with self._on_device(vae), self._phase("vae_encode"):
            for part in self._chunks(len(images)):
                x = torch.from_numpy(np.ascontiguousarray(images[part])).to(self.device)
                x = x.permute(0, 3, 1, 2).to(self.dtype) / 127.5 - 1.0
                encoded = vae.encode(x)
                latents = encoded.latents if self.tiny_vae else encoded.latent_dist.mean
                out.append(latents * self.latent_scale)
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents (F, C, h, w) → uint8 (F, R, R, 3)."""
        vae = self.components.vae
        out = []
        with self._on_device(vae), self._phase("vae_decode"):
            for part in self._chunks(len(latents)):
                x = vae.decode(latents[part].to(self.device, self.dtype) / self.latent_scale).sample
                x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                out.append(x.permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)

    # --- reference --------------------------------------------------------------------------------------------

    def set_reference(self, image: np.ndarray) -> None:
        """The photo's face crop (R, R, 3) uint8, whose features every frame attends to."""
        self._reference = self.encode(image[None])
        self._bank_cache.clear()

    def _shared_noise(self, like: torch.Tensor) -> torch.Tensor:
        if self._noise is None or self._noise.shape[1:] != like.shape[1:]:
            generator = torch.Generator("cpu").manual_seed(self.config.seed)
            self._noise = torch.randn((1, *like.shape[1:]), generator=generator).to(self.device, self.dtype)
        return self._noise

    def _fill_bank(self, step: int, timestep: torch.Tensor, text: torch.Tensor) -> None:
        bank = self.bank
        if self._reference is None or self.config.reference_scale == 0:
            bank.features = {}
            return
        key = 0 if self.config.reference_mode == "clean" else step
        if key not in self._bank_cache:
            reference = self._reference
            t = timestep
            if self.config.reference_mode == "clean":
                t = torch.zeros_like(timestep)
            else:
                reference = self.scheduler.add_noise(reference, self._shared_noise(reference), timestep.reshape(1))
            bank.mode = "write"
            bank.features = {}
            tokens = self.motion_state.tokens
            if tokens is not None:
                self.motion_state.tokens = self._neutral_tokens()
            try:
                with self._phase("reference"):
                    self._unet(reference, t, text[:1], None, None, frames=1)
            finally:
                self.motion_state.tokens = tokens
            self._bank_cache[key] = bank.features
        bank.features = self._bank_cache[key]

    def _neutral_tokens(self) -> torch.Tensor:
        tokenizer = self.components.motion_tokenizer
        assert tokenizer is not None
        zeros = torch.zeros(1, int(tokenizer.config["in_features"]), device=self.device, dtype=self.dtype)
        return tokenizer(zeros)  # type: ignore[no-any-return]

    # --- denoising --------------------------------------------------------------------------------------------

    def _unet(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        down: Any,
        mid: Any,
        frames: int,
    ) -> torch.Tensor:
        unet = self.components.unet
        if not self.temporal:
            return unet(  # type: ignore[no-any-return]
                x, t, encoder_hidden_states=text,
                down_block_additional_residuals=down, mid_block_additional_residual=mid, return_dict=False,
            )[0]
        videos = x.shape[0] // frames
        sample = x.reshape(videos, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        out = unet(
            sample, t, encoder_hidden_states=text,
            down_block_additional_residuals=down, mid_block_additional_residual=mid, return_dict=False,
        )[0]
        return out.permute(0, 2, 1, 3, 4).reshape(x.shape)  # type: ignore[no-any-return]

    def timesteps(self) -> torch.Tensor:
        """The schedule cut at ``strength``; fewer steps than asked when a low strength leaves fewer to take."""
        strength = self.config.strength
        original = int(self.scheduler.config.original_inference_steps)
        if int(original * strength) < 1:
            original = min(math.ceil(1 / strength), int(self.scheduler.config.num_train_timesteps))
        steps = max(1, min(self.config.steps, int(original * strength)))
        self.scheduler.set_timesteps(
            steps, device=self.device, original_inference_steps=original, strength=strength
        )
        return self.scheduler.timesteps  # type: ignore[no-any-return]

    def denoise(
        self,
        warp: np.ndarray,
        control: np.ndarray | None,
        motion: np.ndarray | None = None,
        anchor: Anchor | None = None,
        keep: int = 0,
    ) -> Refined:
        """Refined latents (F, C, h, w) of one window of warp crops (F, R, R, 3) uint8.

        ``control``: face-mesh renders (F, R, R, 3) uint8 for the ControlNet; ``motion``: motion vectors (F, M)
        for the motion tokens; ``anchor``: the previous window's trajectory for this window's first frames;
        ``keep``: how many last frames' trajectory to return, to anchor the next window.
        """
        with self.components.lock:
            # The models may be shared with other pipelines (the process's cache): this one's processors go in
            # for the window it runs.
            self.components.unet.set_attn_processor(dict(self._processors))
            return self._denoise(warp, control, motion, anchor, keep)

    @torch.no_grad()
    def _denoise(
        self,
        warp: np.ndarray,
        control: np.ndarray | None,
        motion: np.ndarray | None = None,
        anchor: Anchor | None = None,
        keep: int = 0,
    ) -> Refined:
        cfg = self.config
        c = self.components
        frames = len(warp)
        latents = self.encode(warp)
        noise = self._shared_noise(latents).expand_as(latents)
        timesteps = self.timesteps()
        x = self.scheduler.add_noise(latents, noise, timesteps[:1])
        guided = cfg.guidance_scale > 1.0
        text = c.prompt_embeds.to(self.device, self.dtype).expand(frames, -1, -1)
        if guided:
            assert c.negative_prompt_embeds is not None
            negative = c.negative_prompt_embeds.to(self.device, self.dtype).expand(frames, -1, -1)
            text = torch.cat([negative, text])
        copies = 2 if guided else 1
        cond = None
        if c.controlnet is not None and control is not None and cfg.controlnet_scale > 0:
            cond = torch.from_numpy(np.ascontiguousarray(control)).to(self.device).permute(0, 3, 1, 2)
            cond = (cond.to(self.dtype) / 255.0).repeat(copies, 1, 1, 1)

        with self._on_device(c.unet, c.controlnet, c.motion_tokenizer):
            if c.motion_tokenizer is not None and motion is not None:
                features = torch.from_numpy(np.ascontiguousarray(motion, dtype=np.float32))
                self.motion_state.tokens = c.motion_tokenizer(features.to(self.device, self.dtype)).repeat(
                    copies, 1, 1
                )
            else:
                self.motion_state.tokens = None
            try:
                trajectory = []
                for step, t in enumerate(timesteps):
                    if anchor is not None:
                        held = anchor.trajectory[step]
                        k = len(held)
                        w = anchor.weights.to(self.device, self.dtype).view(-1, 1, 1, 1)
                        x = torch.cat([x[:k] + w * (held - x[:k]), x[k:]])
                    if keep:
                        trajectory.append(x[len(x) - keep :])
                    self.bank.mode = "off"
                    self._fill_bank(step, t, text[-frames:])
                    self.bank.mode = "read"
                    model_input = torch.cat([x] * copies)
                    down = mid = None
                    if cond is not None and c.controlnet is not None:
                        with self._phase("controlnet"):
                            down, mid = c.controlnet(
                                model_input, t, encoder_hidden_states=text, controlnet_cond=cond,
                                conditioning_scale=cfg.controlnet_scale, return_dict=False,
                            )
                    with self._phase("unet"):
                        eps = self._unet(model_input, t, text, down, mid, frames=frames)
                    if guided:
                        uncond, conditioned = eps.chunk(2)
                        eps = uncond + cfg.guidance_scale * (conditioned - uncond)
                    with self._phase("scheduler"):
                        x = self._step(eps, t, x, step)
            finally:
                self.bank.mode = "off"
                self.motion_state.tokens = None
        return Refined(x, trajectory)

    def _step(self, eps: torch.Tensor, t: torch.Tensor, x: torch.Tensor, step: int) -> torch.Tensor:
        # One generator per frame, all seeded alike: every frame gets the same step noise, so a frame's result
        # does not depend on which window it falls in.
        seed = self.config.seed * 1000 + 1 + step
        generators = [torch.Generator("cpu").manual_seed(seed) for _ in range(len(x))]
        kwargs: dict[str, Any] = {"generator": generators}
        if self.config.scheduler == "tcd":
            kwargs["eta"] = self.config.tcd_gamma
        return self.scheduler.step(eps, t, x, **kwargs).prev_sample  # type: ignore[no-any-return]
