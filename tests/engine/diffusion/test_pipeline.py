"""The composed pipeline and its frame generator, with tiny random components on the CPU (32-px crops, 2 steps).

What is checked is the plumbing, not the pictures: random weights make noise-like faces. Real weights have not
been run here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tests.engine.diffusion.conftest import Face, run_generator, tiny_config
from tests.engine.diffusion.dummy import tiny_components
from xp_sdk.engine.diffusion.motion_tokens import MOTION_FEATURES
from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline


def _crop(frames: np.ndarray, generator: object) -> np.ndarray:
    c = generator.crop  # type: ignore[attr-defined]
    return frames[:, c.y0 : c.y0 + c.side, c.x0 : c.x0 + c.side].astype(np.float64)


def test_two_windows_stream_in_order_and_only_the_face_crop_changes(astronaut: Face, warp_frames: np.ndarray) -> None:
    from xp_sdk.engine.diffusion.generator import DiffusionGenerator
    from xp_sdk.engine.warp import WarpGenerator

    pipeline = PortraitDiffusionPipeline(tiny_components(), tiny_config(window=4))
    warp = WarpGenerator(astronaut.image, astronaut.face)
    generator = DiffusionGenerator(astronaut.image, astronaut.face, pipeline, warp)
    ready = [len(generator.push(t)) for t in astronaut.targets[:7]]
    assert ready == [0, 0, 0, 4, 0, 0, 0]  # a window is emitted when full; memory holds at most one
    rest = generator.flush()
    assert len(rest) == 3 and generator.flush() == []
    c = generator.crop
    for frame, warp in zip(rest, warp_frames[4:7], strict=True):
        assert frame.shape == astronaut.image.shape and frame.dtype == np.uint8
        outside = np.ones(frame.shape[:2], bool)
        outside[c.y0 : c.y0 + c.side, c.x0 : c.x0 + c.side] = False
        assert np.array_equal(frame[outside], warp[outside])
        assert np.abs(frame.astype(int) - warp).max() > 0
    assert set(generator.timings) == {"warp", "diffusion"} and generator.timings["diffusion"] > 0


def test_same_seed_same_frames_other_seed_other_frames(astronaut: Face) -> None:
    a, _ = run_generator(astronaut, tiny_components(), frames=5, seed=7)
    b, _ = run_generator(astronaut, tiny_components(), frames=5, seed=7)
    c, _ = run_generator(astronaut, tiny_components(), frames=5, seed=8)
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 0.05


def test_strength_zero_returns_the_warp_result_exactly(astronaut: Face, warp_frames: np.ndarray) -> None:
    out, generator = run_generator(astronaut, tiny_components(), frames=6, strength=0.0)
    assert np.array_equal(out, warp_frames[:6])
    assert generator.timings["diffusion"] == 0.0


def test_without_a_motion_module_windows_are_invisible(astronaut: Face) -> None:
    """Frames do not interact, and the noise is shared: a frame's result does not depend on its window."""
    small, _ = run_generator(astronaut, tiny_components(), frames=6, window=2)
    large, _ = run_generator(astronaut, tiny_components(), frames=6, window=5)
    assert np.abs(small.astype(int) - large).max() <= 1


def test_motion_module_windows_meet_without_a_seam(astronaut: Face) -> None:
    """Two full windows of 6 sharing 2 frames and a padded last one: the step from frame to frame across each seam
    is no larger than within the windows."""
    out, generator = run_generator(astronaut, tiny_components(motion_adapter=True), window=6, overlap=2)
    assert generator.overlap == 2 and len(out) == 12
    steps = np.abs(np.diff(_crop(out, generator), axis=0)).mean(axis=(1, 2, 3))
    seams = [3, 4, 5, 7, 8, 9]  # steps into, across and out of the shared frames 4–5 and 8–9
    inside = [i for i in range(len(steps)) if i not in seams]
    assert steps[seams].max() <= 1.5 * steps[inside].max() + 0.05, steps


def test_reference_path_changes_the_output(astronaut: Face) -> None:
    """Runs are bit-exact (see the seed test), so any difference is the path's doing."""
    with_reference, generator = run_generator(astronaut, tiny_components(), frames=4, reference_scale=1.0)
    without, _ = run_generator(astronaut, tiny_components(), frames=4, reference_scale=0.0)
    half, _ = run_generator(astronaut, tiny_components(), frames=4, reference_scale=0.5)
    full_change = np.abs(_crop(with_reference, generator) - _crop(without, generator)).mean()
    half_change = np.abs(_crop(half, generator) - _crop(without, generator)).mean()
    assert full_change > 0.05, full_change  # over the whole square: only the face oval is blended back
    assert 0 < half_change < full_change


@pytest.mark.parametrize(("mode", "least"), [("noised", 0.005), ("clean", 0.1)])
def test_what_the_reference_photo_shows_reaches_the_frames(mode: str, least: float) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)

    def run(reference: np.ndarray) -> np.ndarray:
        pipeline = PortraitDiffusionPipeline(tiny_components(), tiny_config(reference_mode=mode))
        pipeline.set_reference(reference)
        return pipeline.decode(pipeline.denoise(crops, None).latents).astype(np.float64)

    change = np.abs(run(crops[0]) - run(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))).mean()
    assert change > least, change


def test_reference_bank_is_computed_once_per_step_for_the_whole_video(astronaut: Face) -> None:
    _, generator = run_generator(astronaut, tiny_components(), frames=9, window=3)
    assert sorted(generator.pipeline._bank_cache) == [0, 1]
    _, clean = run_generator(astronaut, tiny_components(), frames=3, window=3, reference_mode="clean")
    assert sorted(clean.pipeline._bank_cache) == [0]


def test_control_path_changes_the_output() -> None:
    pipeline = PortraitDiffusionPipeline(tiny_components(), tiny_config())
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    pipeline.set_reference(crops[0])
    blank = np.zeros_like(crops)
    mesh = blank.copy()
    mesh[:, 8:24, 14:18] = (10, 200, 10)
    mesh[:, 4:8, 4:28] = (180, 220, 10)

    def run(control: np.ndarray | None) -> np.ndarray:
        return pipeline.decode(pipeline.denoise(crops, control).latents).astype(np.float64)

    with_mesh = run(mesh)
    assert np.abs(with_mesh - run(blank)).mean() > 0.1
    assert np.abs(with_mesh - run(None)).mean() > 1.0
    assert np.array_equal(with_mesh, run(mesh))


def test_generator_renders_the_target_mesh_for_the_controlnet(astronaut: Face) -> None:
    out_talk, _ = run_generator(astronaut, tiny_components(), frames=4)
    still = Face(astronaut.image, astronaut.face, [astronaut.targets[0]] * 4)
    out_still, g = run_generator(still, tiny_components(), frames=4)
    # Same first frame, then the mouth moves in `talk` and not in the still clip.
    assert np.array_equal(out_talk[0], out_still[0])
    assert np.abs(_crop(out_talk[3:], g) - _crop(out_still[3:], g)).mean() > 0.1


def test_untrained_motion_tokens_change_nothing_trained_ones_do() -> None:
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    motion = rng.normal(size=(3, MOTION_FEATURES)).astype(np.float32)

    def run(components: object, motion: np.ndarray | None) -> torch.Tensor:
        pipeline = PortraitDiffusionPipeline(components, tiny_config())  # type: ignore[arg-type]
        pipeline.set_reference(crops[0])
        return pipeline.denoise(crops, None, motion).latents

    baseline = run(tiny_components(), None)
    trained = tiny_components(motion_tokens=True)
    assert trained.motion_tokenizer is not None
    untrained = tiny_components(motion_tokens=True)
    assert untrained.motion_tokenizer is not None
    for v in untrained.motion_tokenizer.to_v.values():
        torch.nn.init.zeros_(v.weight)  # type: ignore[arg-type]
    assert torch.allclose(run(untrained, motion), baseline, atol=1e-5)
    assert (run(trained, motion) - baseline).abs().mean() > 0.01


@pytest.mark.parametrize(
    "options",
    [
        {"scheduler": "tcd", "steps": 3},
        {"guidance_scale": 2.0},
        {"vae_batch": 1, "cpu_offload": True},
    ],
    ids=["tcd", "guidance", "offload"],
)
def test_other_schedulers_and_memory_options_run(astronaut: Face, options: dict[str, object]) -> None:
    out, _ = run_generator(astronaut, tiny_components(), frames=3, **options)
    assert out.shape == (3, *astronaut.image.shape)


def test_tiny_autoencoder_and_motion_tokens_through_the_generator(astronaut: Face) -> None:
    out, generator = run_generator(astronaut, tiny_components(tiny_autoencoder=True, motion_tokens=True), frames=3)
    assert out.shape == (3, *astronaut.image.shape) and generator.pipeline.tiny_vae


def test_device_that_is_not_there_is_a_typed_error() -> None:
    from xp_sdk.engine.diffusion.components import resolve_device
    from xp_sdk.errors import DeviceUnavailableError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        resolve_device(tiny_config(device="cuda"))
    with pytest.raises(DeviceUnavailableError, match="float16 on the CPU"):
        resolve_device(tiny_config(device="cpu", dtype="float16"))
    assert resolve_device(tiny_config(device="auto"))[1] == torch.float32


def test_invalid_settings_are_refused_with_every_problem_named() -> None:
    from xp_sdk.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"resolution.*strength.*overlap"):
        tiny_config(resolution=30, strength=1.5, overlap=4, window=4).validate()


@pytest.mark.parametrize("strength", [0.005, 0.05, 0.1])
def test_low_strength_takes_the_steps_it_has_and_stays_near_the_warp(strength: float) -> None:
    pipeline = PortraitDiffusionPipeline(tiny_components(), tiny_config(steps=6, strength=strength))
    timesteps = pipeline.timesteps()
    assert 1 <= len(timesteps) <= 6 and int(timesteps[0]) <= 1000 * strength
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    pipeline.set_reference(crops[0])
    round_trip = pipeline.decode(pipeline.encode(crops)).astype(np.float64)
    refined = pipeline.decode(pipeline.denoise(crops, crops).latents).astype(np.float64)
    strong = PortraitDiffusionPipeline(tiny_components(), tiny_config(strength=0.9))
    strong.set_reference(crops[0])
    far = strong.decode(strong.denoise(crops, crops).latents).astype(np.float64)
    assert np.abs(refined - round_trip).mean() < np.abs(far - round_trip).mean()


@pytest.mark.parametrize(
    "error",
    [
        # What CUDA raises, under the name every torch the project allows has (torch.OutOfMemoryError is 2.5+).
        lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"),
    ],
)
def test_running_out_of_gpu_memory_is_an_engine_error_with_advice(
    astronaut: Face, monkeypatch: pytest.MonkeyPatch, error: Any
) -> None:
    from xp_sdk.errors import EngineError

    def exhausted(*args: object, **kwargs: object) -> None:
        raise error()

    monkeypatch.setattr(PortraitDiffusionPipeline, "denoise", exhausted)
    with pytest.raises(EngineError, match=r"ran out of memory.*cpu_offload"):
        run_generator(astronaut, tiny_components(), frames=4)


def test_other_runtime_errors_are_not_taken_for_memory(astronaut: Face, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(PortraitDiffusionPipeline, "denoise", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        run_generator(astronaut, tiny_components(), frames=4)
