"""The diffusion engine: the warp result refined by a Stable Diffusion 1.5-family model (GPU path).

Composed from standard diffusers parts: a ``UNet2DConditionModel`` (a ``UNetMotionModel`` with an AnimateDiff
``MotionAdapter``), ``AutoencoderKL`` or ``AutoencoderTiny``, a ``ControlNetModel`` on MediaPipe face-mesh renders,
reference attention from the photo, optional learned motion tokens, and an LCM or TCD scheduler. The weights are
the user's, named in models.toml and pinned by sha256; nothing is downloaded.

Importing this package is cheap (no torch): the pipeline modules are imported only when the engine runs.
Tiny random components run through this code in the CPU tests, and the real architectures with random weights
load from the published layout and take one step on the CPU; nothing has run with real weights or on a GPU yet
(docs/diffusion.md says exactly what has run).

    from xp_sdk.engine import AnimateOptions, animate
    from xp_sdk.engine.diffusion import DiffusionConfig
    animate("photo.jpg", "out.mp4", driving="clip.mp4",
            options=AnimateOptions(engine="diffusion", diffusion=DiffusionConfig(models="models.toml")))
"""

from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.diffusion.registry import (
    COMPONENTS,
    ComponentStatus,
    WeightsReport,
    check_weights,
    find_models_toml,
    require_weights,
)

__all__ = [
    "COMPONENTS",
    "ComponentStatus",
    "DiffusionConfig",
    "WeightsReport",
    "check_weights",
    "find_models_toml",
    "require_weights",
]
