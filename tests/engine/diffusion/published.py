"""The published models' architectures with random weights, written in the published on-disk layout.

Configs: ``published/*.json`` (see its README). Weights are drawn straight into the state dict of a model built on
the meta device, so nothing is initialised twice: the real SD 1.5 UNet, VAE, MediaPipe-face ControlNet and
AnimateDiff v1-5-2 adapter (1.7 billion parameters) are written as fp16 safetensors in well under a minute.
Speed and memory do not depend on the values, so these serve the GPU bench as well as the loader test.

Layout written (what the public repositories hold, pickles left out):

    stable-diffusion-v1-5/unet/{config.json, diffusion_pytorch_model.fp16.safetensors}
    stable-diffusion-v1-5/vae/{config.json, diffusion_pytorch_model.fp16.safetensors}
    ControlNetMediaPipeFace/diffusion_sd15/{config.json, diffusion_pytorch_model.fp16.safetensors}
    animatediff-motion-adapter-v1-5-2/{config.json, diffusion_pytorch_model.fp16.safetensors}
    lcm-lora-sdv1-5/pytorch_lora_weights.safetensors   (kohya keys: lora_unet_<module>.lora_down/lora_up/alpha)
    prompt_embeds.safetensors                           (the engine's pre-encoded prompt, (1, 77, 768))
    models.toml                                         (pinned)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

PUBLISHED = Path(__file__).with_name("published")
FOLDERS = {
    "unet": "stable-diffusion-v1-5/unet",
    "vae": "stable-diffusion-v1-5/vae",
    "controlnet": "ControlNetMediaPipeFace/diffusion_sd15",
    "motion_adapter": "animatediff-motion-adapter-v1-5-2",
}
LORA_FILE = "lcm-lora-sdv1-5/pytorch_lora_weights.safetensors"
# The layers latent-consistency's LCM-LoRA training script targets in the SD 1.5 UNet; rank 64 as published.
LCM_LORA_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
    "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
)  # fmt: skip
LCM_LORA_RANK = 64
LCM_LORA_ALPHA = 8.0


def published_config(component: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((PUBLISHED / f"{component}.json").read_text(encoding="utf-8"))
    return config


def empty_model(component: str, config: dict[str, Any] | None = None) -> Any:
    """The model of ``component``'s published config (or ``config``), its parameters on the meta device."""
    import diffusers
    from accelerate import init_empty_weights

    config = config or published_config(component)
    cls = getattr(diffusers, config["_class_name"])
    with init_empty_weights():
        return cls.from_config(config)


_POOL = 1 << 22


def _noise(pool: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Unit-variance random values: a window at a random offset into ``pool`` (4M normal draws), repeated to fill.
    Drawing 1.7 billion fresh normals costs minutes of CPU; loading, speed and memory do not care about repeats."""
    count = math.prod(shape)
    start = int(torch.randint(0, len(pool), (1,), generator=generator))
    reps = -(-(start + count) // len(pool))
    source = pool.repeat(reps) if reps > 1 else pool
    return source[start : start + count].reshape(shape).clone()


def random_state(model: Any, generator: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Weights scaled by 1/sqrt(fan-in) (activations stay of order one through the depth), norms' scales 1,
    biases 0; buffers as the model made them."""
    tensors = model.state_dict()
    size = min(_POOL, max(1, sum(t.numel() for t in tensors.values())))
    pool = torch.randn(size, generator=generator).to(dtype)
    state = {}
    for key, tensor in tensors.items():
        if not tensor.is_meta:
            state[key] = tensor.to(dtype).contiguous()
        elif tensor.ndim >= 2:
            fan_in = tensor[0].numel()
            state[key] = _noise(pool, tuple(tensor.shape), generator) / math.sqrt(fan_in)
        elif "norm" in key and key.endswith("weight"):
            state[key] = torch.ones(tensor.shape, dtype=dtype)
        else:
            state[key] = torch.zeros(tensor.shape, dtype=dtype)
    return state


def write_model(component: str, folder: Path, *, seed: int, config: dict[str, Any] | None = None) -> Any:
    """``folder``/config.json (the published one) and diffusion_pytorch_model.fp16.safetensors; returns the
    empty model (for its module names)."""
    from safetensors.torch import save_file

    config = config or published_config(component)
    model = empty_model(component, config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    state = random_state(model, torch.Generator().manual_seed(seed), torch.float16)
    save_file(state, str(folder / "diffusion_pytorch_model.fp16.safetensors"), metadata={"format": "pt"})
    return model


def lcm_lora_state(unet: Any, *, seed: int, rank: int = LCM_LORA_RANK) -> dict[str, torch.Tensor]:
    """A LoRA in LCM-LoRA's key layout over every targeted layer of ``unet`` (an empty model is enough)."""
    generator = torch.Generator().manual_seed(seed)
    pool = torch.randn(min(_POOL, sum(p.numel() for p in unet.parameters())), generator=generator).half()
    state = {}
    for name, module in unet.named_modules():
        if not name.endswith(LCM_LORA_TARGETS) or not isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
            continue
        weight = module.weight
        key = "lora_unet_" + name.replace(".", "_")
        if isinstance(module, torch.nn.Conv2d):
            down_shape: tuple[int, ...] = (rank, weight.shape[1], *weight.shape[2:])
            up_shape: tuple[int, ...] = (weight.shape[0], rank, 1, 1)
        else:
            down_shape, up_shape = (rank, weight.shape[1]), (weight.shape[0], rank)
        state[f"{key}.lora_down.weight"] = _noise(pool, down_shape, generator) * 0.01
        state[f"{key}.lora_up.weight"] = _noise(pool, up_shape, generator) * 0.01
        state[f"{key}.alpha"] = torch.tensor(LCM_LORA_ALPHA, dtype=torch.float16)
    return state


def write_published_layout(
    root: Path,
    *,
    configs: dict[str, dict[str, Any]] | None = None,
    motion_adapter: bool = True,
    lora: bool = True,
    lora_rank: int = LCM_LORA_RANK,
) -> Path:
    """Every component in its published layout under ``root`` and a pinned models.toml naming them; returns the
    models.toml. ``configs`` replaces published configs (the bench's CPU run uses tiny ones)."""
    from safetensors.torch import save_file

    from xp_sdk.engine.diffusion import check_weights
    from xp_sdk.engine.diffusion.text import save_prompt_embeds

    configs = configs or {}
    components = ["unet", "vae", "controlnet", *(["motion_adapter"] if motion_adapter else [])]
    models = {
        name: write_model(name, root / FOLDERS[name], seed=i, config=configs.get(name))
        for i, name in enumerate(components)
    }
    width = int(models["unet"].config.cross_attention_dim)
    generator = torch.Generator().manual_seed(10)
    prompt = torch.randn(1, 77, width, generator=generator)
    save_prompt_embeds(root / "prompt_embeds.safetensors", prompt, torch.randn(1, 77, width, generator=generator))
    text = ""
    for name in components:
        text += f'[{name}]\npath = "{FOLDERS[name]}"\nvariant = "fp16"\n'
        if name == "controlnet":
            text += 'conditioning = "mediapipe_face"\n'
    text += '[prompt_embeds]\npath = "prompt_embeds.safetensors"\n'
    if lora:
        (root / LORA_FILE).parent.mkdir(parents=True, exist_ok=True)
        save_file(lcm_lora_state(models["unet"], seed=20, rank=lora_rank), str(root / LORA_FILE))
        text += f'[lcm_lora]\npath = "{LORA_FILE}"\n'
    toml = root / "models.toml"
    toml.write_text(text, encoding="utf-8")
    # Pin what was written: the digests the registry computes (and keeps for the load that follows).
    report = check_weights(toml)
    pinned = ""
    for block in text.split("[")[1:]:
        name = block.split("]")[0]
        pinned += f'[{block}sha256 = "{report.status(name).actual_sha256}"\n'
    toml.write_text(pinned, encoding="utf-8")
    return toml
