"""The real architectures, at real size, in the published on-disk layout, through models.toml and the loader.

Random weights (tests/engine/diffusion/published.py) of the SD 1.5 UNet and VAE, the MediaPipe-face ControlNet and
the AnimateDiff v1-5-2 motion adapter, from their published configs, saved as the public repositories hold them
(diffusers folders, fp16 safetensors), plus a LoRA in LCM-LoRA's kohya key layout over every layer LCM-LoRA
targets (rank 8 here, 64 in the published file: the keys and shapes per rank are the same, and fusing rank 64
only costs more time). Then one denoising step of a two-frame window at a 64-pixel crop (8x8 latents) runs on
the CPU in bfloat16 (float32 would need 7 GB for the weights alone).

Measured on the shared 2-core machine (8 sessions busy): 140 s (70 s writing 3.5 GB of weights and pinning them,
67 s loading, fusing and the step) and 5.5 GB peak resident memory. Marked slow, which the default pytest run
(and CI's `pytest -n 2 -q`) still runs: pyproject's addopts deselect nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.engine.diffusion.published import FOLDERS, LORA_FILE, write_published_layout
from xp_sdk.engine.diffusion import DiffusionConfig, check_weights
from xp_sdk.engine.diffusion.loading import clear_cache, load_from_models_toml
from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline

pytestmark = pytest.mark.slow

# Parameter counts of the published models (diffusers' own numbers for these configs).
SD15_UNET = 859_520_964
SD15_VAE = 83_653_863
SD15_CONTROLNET = 361_279_120


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_published_layout(tmp_path_factory.mktemp("published"), lora_rank=8)


def test_the_published_layout_loads_through_models_toml_and_one_step_runs(published: Path) -> None:
    root = published.parent
    for name, folder in FOLDERS.items():
        assert sorted(p.name for p in (root / folder).iterdir()) == [
            "config.json", "diffusion_pytorch_model.fp16.safetensors"
        ], name  # fmt: skip
    assert (root / LORA_FILE).is_file()
    report = check_weights(published)
    assert report.ok, report.describe()

    clear_cache()
    config = DiffusionConfig(
        models=str(published), device="cpu", dtype="bfloat16", resolution=64, steps=1, strength=0.5, window=2,
        overlap=0,
    )  # fmt: skip
    try:
        components = load_from_models_toml(config)
        assert components.temporal and components.schedule["beta_schedule"] == "linear"
        assert components.lora_scale == 1.0
        adapter_parameters = sum(
            p.numel() for n, p in components.unet.named_parameters() if "motion_modules" in n
        )
        assert sum(p.numel() for p in components.unet.parameters()) - adapter_parameters == SD15_UNET
        assert sum(p.numel() for p in components.vae.parameters()) == SD15_VAE
        assert sum(p.numel() for p in components.controlnet.parameters()) == SD15_CONTROLNET
        assert {name for name, _ in components.weights} == {
            "unet", "vae", "controlnet", "motion_adapter", "lcm_lora", "prompt_embeds"
        }  # fmt: skip
        assert not any(p.is_meta for p in components.unet.parameters())

        pipeline = PortraitDiffusionPipeline(components, config)
        crops = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
        pipeline.set_reference(crops[0])
        assert len(pipeline.timesteps()) == 1
        latents = pipeline.denoise(crops, crops).latents
        assert latents.shape == (2, 4, 8, 8) and bool(latents.float().isfinite().all())
        frames = pipeline.decode(latents)
        assert frames.shape == (2, 64, 64, 3) and frames.dtype == np.uint8
    finally:
        clear_cache()
