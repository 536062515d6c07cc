"""Fixtures for the diffusion engine's tests: one real face (the astronaut) and tiny random models, on the CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers")


@dataclass(frozen=True)
class Face:
    image: np.ndarray
    face: Any
    targets: list[Any]


@pytest.fixture(scope="session")
def astronaut(faces: Path) -> Face:
    """The astronaut, cropped to 320² around her face (the warp is then cheap), with 12 frames of `talk`."""
    from xp_sdk.engine.faces import FaceAnalyzer
    from xp_sdk.engine.images import load_image
    from xp_sdk.engine.retarget import Retargeter
    from xp_sdk.engine.templates import load_template

    image = np.ascontiguousarray(load_image(faces / "source" / "skimage_astronaut.png")[:320, 80:400])
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze_photo(image)
    retargeter = Retargeter(face)
    codes = list(load_template("talk").codes())[:12]
    return Face(image, face, [retargeter.from_template(c) for c in codes])


def tiny_config(**overrides: Any) -> Any:
    from xp_sdk.engine.diffusion.config import DiffusionConfig

    values: dict[str, Any] = {"resolution": 32, "steps": 2, "strength": 0.6, "device": "cpu", "window": 4, "overlap": 1}
    values.update(overrides)
    return DiffusionConfig(**values)


def run_generator(face: Face, components: Any, frames: int | None = None, **overrides: Any) -> tuple[np.ndarray, Any]:
    """Every output frame of the generator over ``face.targets``, and the generator."""
    from xp_sdk.engine.diffusion.generator import DiffusionGenerator
    from xp_sdk.engine.diffusion.pipeline import PortraitDiffusionPipeline
    from xp_sdk.engine.warp import WarpGenerator

    pipeline = PortraitDiffusionPipeline(components, tiny_config(**overrides))
    generator = DiffusionGenerator(face.image, face.face, pipeline, WarpGenerator(face.image, face.face))
    out: list[np.ndarray] = []
    for target in face.targets[:frames]:
        out += generator.push(target)
    out += generator.flush()
    return np.stack(out), generator


@pytest.fixture(scope="session")
def warp_frames(astronaut: Face) -> np.ndarray:
    from xp_sdk.engine.warp import WarpGenerator

    warp = WarpGenerator(astronaut.image, astronaut.face)
    return np.stack([warp.render(t) for t in astronaut.targets])


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Any:
    """Tiny models are all overhead: one thread each is faster, and two pytest workers then share two cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
