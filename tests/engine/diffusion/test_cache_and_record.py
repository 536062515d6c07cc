"""One load per process per model set (a read-back retry regenerates nothing), and the C2PA record of a diffusion
clip names every diffusion component with its sha256."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xp_sdk.engine.diffusion.loading as loading
from tests.engine.diffusion.conftest import Face, tiny_config
from tests.engine.diffusion.on_disk import save_tiny, write_toml
from xp_sdk.engine import AnimateOptions, animate
from xp_sdk.engine.diffusion import check_weights
from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline
from xp_sdk.engine.models import FACE_LANDMARKER


@pytest.fixture(scope="module")
def toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = save_tiny(tmp_path_factory.mktemp("weights"), adapter="adapter", lora=True)
    return write_toml(root, adapter="adapter", lora_options="")


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every real load of the weights (the loader itself runs; this only counts it)."""
    loading.clear_cache()
    counted: list[object] = []
    real = loading.load_components

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load_components", counting)
    yield counted
    loading.clear_cache()


def test_the_same_model_set_is_loaded_once_per_process(toml: Path, loads: list[object], tmp_path: Path) -> None:
    first = loading.load_from_models_toml(tiny_config(models=str(toml)))
    assert loading.load_from_models_toml(tiny_config(models=str(toml), seed=7, strength=0.3)) is first
    assert len(loads) == 1
    # Another set (here: the same files, another LoRA scale) is a new load, and replaces the first.
    other = toml.parent / "models-half.toml"
    other.write_text(toml.read_text().replace("[lcm_lora]\n", "[lcm_lora]\nscale = 0.5\n"))
    second = loading.load_from_models_toml(tiny_config(models=str(other)))
    assert second is not first and second.lora_scale == 0.5 and len(loads) == 2
    assert loading.load_from_models_toml(tiny_config(models=str(toml))) is not first and len(loads) == 3


def test_pipelines_sharing_cached_models_give_what_fresh_models_give(toml: Path, loads: list[object]) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)

    def run(components: object, reference: np.ndarray) -> np.ndarray:
        pipeline = PortraitDiffusionPipeline(components, tiny_config())  # type: ignore[arg-type]
        pipeline.set_reference(reference)
        return pipeline.denoise(crops, crops).latents.numpy()

    shared = loading.load_from_models_toml(tiny_config(models=str(toml)))
    a = PortraitDiffusionPipeline(shared, tiny_config())
    a.set_reference(crops[0])
    b_out = run(shared, crops[1])  # a second pipeline installs its own processors on the same UNet
    a_out = a.denoise(crops, crops).latents.numpy()  # ...and the first puts its own back for its window
    fresh = loading.load_components(loading.require_weights(str(toml)), tiny_config())
    assert np.array_equal(a_out, run(fresh, crops[0])) and np.array_equal(b_out, run(fresh, crops[1]))
    assert not np.array_equal(a_out, b_out)


TEMPLATE_OPTIONS = {"max_side": 384, "keep_audio": False}


def test_the_animation_names_every_diffusion_component_it_ran(
    astronaut: Face, toml: Path, loads: list[object], tmp_path: Path
) -> None:
    options = AnimateOptions(engine="diffusion", diffusion=tiny_config(models=str(toml)), **TEMPLATE_OPTIONS)
    first = animate(astronaut.image, tmp_path / "a.mp4", template="blink", options=options)
    second = animate(astronaut.image, tmp_path / "b.mp4", template="blink", options=options)
    assert len(loads) == 1  # the second generation reused the first one's models
    report = check_weights(toml)
    expected = {("face_landmarker", FACE_LANDMARKER.sha256)} | {
        (f"diffusion.{s.name}", s.actual_sha256) for s in report.statuses if s.usable
    }
    assert {(m.name, m.sha256) for m in first.models} == expected == {(m.name, m.sha256) for m in second.models}
    assert {m.name for m in first.models} == {
        "face_landmarker", "diffusion.unet", "diffusion.vae", "diffusion.controlnet", "diffusion.prompt_embeds",
        "diffusion.motion_adapter", "diffusion.lcm_lora",
    }  # fmt: skip


def test_the_c2pa_record_names_them_and_a_read_back_retry_does_not_regenerate(
    faces: Path, provenance_home: Path, toml: Path, loads: list[object], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import xp_sdk.generate
    from xp_sdk.generate import generate
    from xp_sdk.home import Home
    from xp_sdk.provenance import load_provenance_keys
    from xp_sdk.verify import verify

    keys = load_provenance_keys(Home(provenance_home))
    runs: list[object] = []
    real_animate = xp_sdk.generate.animate

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(args[0])
        return real_animate(*args, **kwargs)

    monkeypatch.setattr(xp_sdk.generate, "animate", counted)
    options = AnimateOptions(engine="diffusion", diffusion=tiny_config(models=str(toml)), **TEMPLATE_OPTIONS)
    # 2 % of the strength rounds the mark away: the first read-back fails and the clip is marked again.
    done = generate(
        faces / "source" / "skimage_astronaut.png", tmp_path / "o.mp4", keys=keys, template="blink",
        options=options, watermark_strengths=(0.02, 1.4),
    )  # fmt: skip
    assert done.watermark_strength == 1.4 and len(runs) == 1 and len(loads) == 1
    recorded = {(m.name, m.sha256) for m in verify(done.output, keys=keys).c2pa.summary.generation.models}
    assert recorded == {(m.name, m.sha256) for m in done.animation.models}
    for name in ("unet", "vae", "controlnet", "prompt_embeds", "motion_adapter", "lcm_lora"):
        assert (f"diffusion.{name}", check_weights(toml).status(name).actual_sha256) in recorded
