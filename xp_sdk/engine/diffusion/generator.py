"""The frame generator the engine calls: warp each frame, refine windows of them by diffusion, emit in order.

Streaming in bounded memory: at most one window of warp frames (and their crops and renders) is buffered, plus
the latents of the frames shared with the next window. ``push(target)`` returns the frames that became final
(none until a window is full); ``flush()`` returns the rest at the end of the video. Only the square face crop
is refined, and only the face is blended back: through a feathered mask of each frame's face oval (from its
landmarks), so outside the face (background, and where the mask fades out) every pixel is the warp result.

Windows: with a motion module, consecutive windows share ``overlap`` frames; on those frames the later window is
held at every step to the latents the earlier one had at that step, and the two results are cross-faded (linear
ramp) before decoding.
Without one, frames do not influence each other, so windows share nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from xp_sdk.engine.diffusion.components import DiffusionComponents
from xp_sdk.engine.diffusion.conditioning import FaceCrop, render_face_mesh
from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.diffusion.motion_tokens import MotionFeaturizer
from xp_sdk.engine.diffusion.pipeline import Anchor, PortraitDiffusionPipeline, Refined
from xp_sdk.engine.faces import FaceAnalysis
from xp_sdk.engine.retarget import TargetFace
from xp_sdk.engine.warp import WarpGenerator
from xp_sdk.errors import EngineError


@dataclass
class _Pending:
    frame: np.ndarray  # full warp frame
    crop: np.ndarray  # its face crop at the model's resolution
    control: np.ndarray  # face-mesh render of the target
    motion: np.ndarray | None  # motion vector, when the motion-token path is on
    landmarks: np.ndarray  # the target's landmarks in frame pixels: where the face is, for the blend mask


class DiffusionGenerator:
    def __init__(
        self,
        image: np.ndarray,
        face: FaceAnalysis,
        pipeline: PortraitDiffusionPipeline,
        warp: WarpGenerator,
        timings: dict[str, float] | None = None,
    ) -> None:
        self.config: DiffusionConfig = pipeline.config
        self.pipeline = pipeline
        self.warp = warp
        self.timings = timings if timings is not None else {}
        self.timings.setdefault("warp", 0.0)
        self.timings.setdefault("diffusion", 0.0)
        height, width = image.shape[:2]
        self.crop = FaceCrop.around(face, (width, height), self.config.crop_scale, self.config.resolution)
        self._featurize = MotionFeaturizer(face) if pipeline.has_motion_tokens else None
        self.overlap = self.config.overlap if pipeline.temporal else 0
        self.window = self.config.window
        self._pending: list[_Pending] = []
        self._carry: Refined | None = None  # the last window's result for _pending[:overlap]
        if self.config.strength > 0:
            t0 = time.perf_counter()
            pipeline.set_reference(self.crop.cut(image))
            self.timings["diffusion"] += time.perf_counter() - t0

    def push(self, target: TargetFace) -> list[np.ndarray]:
        t0 = time.perf_counter()
        frame = self.warp.render(target)
        self.timings["warp"] += time.perf_counter() - t0
        if self.config.strength == 0:
            return [frame]
        t0 = time.perf_counter()
        self._pending.append(
            _Pending(
                frame=frame,
                crop=self.crop.cut(frame),
                control=render_face_mesh(self.crop.to_crop(target.landmarks), self.config.resolution),
                motion=None if self._featurize is None else self._featurize(target),
                landmarks=target.landmarks,
            )
        )
        self.timings["warp"] += time.perf_counter() - t0
        if len(self._pending) < self.window:
            return []
        return self._run(final=False)

    def flush(self) -> list[np.ndarray]:
        if not self._pending:
            return []
        return self._run(final=True)

    @property
    def models(self) -> tuple[tuple[str, str], ...]:
        """(component, sha256) of every diffusion weight file this generator runs (for the C2PA record)."""
        return self.pipeline.components.weights

    def _run(self, final: bool) -> list[np.ndarray]:
        try:
            return self._refine(final)
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            raise EngineError(
                f"the {self.pipeline.device} ran out of memory refining a window of {len(self._pending)} frames at "
                f"{self.config.resolution}px; lower `window`, set `vae_batch` to 1, or turn on `cpu_offload`"
            ) from exc

    def _refine(self, final: bool) -> list[np.ndarray]:
        t0 = time.perf_counter()
        pending = self._pending
        carry = self._carry
        carried = 0 if carry is None else len(carry.latents)
        keep = 0 if final else min(self.overlap, len(pending) - 1)
        if carry is not None and carried == len(pending):
            latents = carry.latents  # nothing new since the last window: its tail is already refined
            refined = carry
        else:
            # Frames nearest the previous window follow it most closely; the ramp hands over to this one.
            ramp = torch.arange(1, carried + 1, dtype=torch.float32) / (carried + 1)
            anchor = None if carry is None else Anchor(carry.trajectory, 1.0 - ramp)
            # A short last window is padded with its last frame held still: the motion module behaves
            # differently over fewer frames, which shows as a jump where the short window starts.
            padded = pending + [pending[-1]] * (self.window - len(pending) if self.pipeline.temporal else 0)
            refined = self.pipeline.denoise(
                np.stack([p.crop for p in padded]),
                np.stack([p.control for p in padded]),
                None if self._featurize is None else np.stack([p.motion for p in padded]),  # type: ignore[misc]
                anchor,
                keep=keep,
            )
            latents = refined.latents[: len(pending)]
            if carry is not None:
                w = ramp.to(latents).view(-1, 1, 1, 1)
                latents = torch.cat([carry.latents + w * (latents[:carried] - carry.latents), latents[carried:]])
        done = len(pending) - keep
        patches = self.pipeline.decode(latents[:done])
        out = [
            self.crop.paste(p.frame, patch, self.crop.face_alpha(p.landmarks))
            for p, patch in zip(pending[:done], patches, strict=True)
        ]
        self._pending = pending[done:]
        self._carry = Refined(latents[done:], refined.trajectory) if keep else None
        self.timings["diffusion"] += time.perf_counter() - t0
        return out


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's own error (``torch.cuda.OutOfMemoryError``, in every torch the project allows; ``torch.OutOfMemoryError``
    only from 2.5), or the RuntimeError that MPS and older CUDA paths raise."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def open_diffusion_generator(
    image: np.ndarray,
    face: FaceAnalysis,
    warp: WarpGenerator,
    config: DiffusionConfig,
    components: DiffusionComponents | None = None,
    timings: dict[str, float] | None = None,
) -> DiffusionGenerator:
    """The generator for one photo: loads (and verifies) the weights of models.toml unless given components."""
    if components is None:
        from xp_sdk.engine.diffusion.loading import load_from_models_toml

        components = load_from_models_toml(config)
    return DiffusionGenerator(image, face, PortraitDiffusionPipeline(components, config), warp, timings)
