"""The diffusers the engine runs with: a version in the supported range, and its motion-adapter path working.

On diffusers 0.30.3 the second test failed (a shape mismatch in the motion module's attention); the first one
refuses such a version by name before any weights are read.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

from tests.engine.diffusion.conftest import tiny_config
from tests.engine.diffusion.dummy import tiny_components
from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline
from xp_sdk.engine.diffusion.versions import SUPPORTED, is_supported, require_supported_diffusers
from xp_sdk.errors import EngineError


def test_the_installed_diffusers_is_in_the_supported_range() -> None:
    installed = metadata.version("diffusers")
    assert is_supported(installed), f"diffusers {installed} is outside {SUPPORTED}"
    assert require_supported_diffusers() == installed


@pytest.mark.parametrize("version", ["0.30.3", "0.29.2", "0.43.0", "1.0.0", "0.43.0.dev0"])
def test_versions_outside_the_range_are_refused_with_what_to_install(version: str) -> None:
    with pytest.raises(EngineError, match=r"pip install 'diffusers>=0\.31,<0\.43'"):
        require_supported_diffusers(version)


@pytest.mark.parametrize("version", ["0.31.0", "0.35.2", "0.42.1", "0.42.2"])
def test_versions_that_ran_are_accepted(version: str) -> None:
    assert require_supported_diffusers(version) == version


def test_the_motion_adapter_path_runs_a_window_on_the_installed_diffusers() -> None:
    components = tiny_components(motion_adapter=True)
    assert components.temporal
    pipeline = PortraitDiffusionPipeline(components, tiny_config(window=4))
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    pipeline.set_reference(crops[0])
    latents = pipeline.denoise(crops, crops).latents
    assert latents.shape == (4, 4, 16, 16) and bool(latents.isfinite().all())
    # Frames attend to each other: changing one frame's input changes another frame's result.
    other = crops.copy()
    other[3] = 255 - other[3]
    assert float((pipeline.denoise(other, other).latents[0] - latents[0]).abs().max()) > 0


def test_joining_unet_and_adapter_without_random_init_gives_diffusers_own_model() -> None:
    import torch
    from diffusers import UNetMotionModel

    from tests.engine.diffusion.dummy import tiny_motion_adapter, tiny_unet
    from xp_sdk.engine.diffusion.loading import with_motion_adapter

    ours = with_motion_adapter(tiny_unet(), tiny_motion_adapter(), torch.float32)
    theirs = UNetMotionModel.from_unet2d(tiny_unet(), tiny_motion_adapter())
    assert type(ours) is UNetMotionModel and dict(ours.config) == dict(theirs.config)
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == reference.keys()
    assert all(torch.equal(mine[k], reference[k]) for k in mine)
    assert not any(t.is_meta for t in [*ours.parameters(), *ours.buffers()])
    sample = torch.randn(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(1)).repeat(3, 1, 1)  # one per frame
    with torch.no_grad():
        assert torch.equal(ours(sample, 10, text).sample, theirs(sample, 10, text).sample)
