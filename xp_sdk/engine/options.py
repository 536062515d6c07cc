"""What an animation can be asked for: ``AnimateOptions`` and the settings it carries, checked where they are
made. Light on purpose (no OpenCV, SciPy or MediaPipe), so a remote client can build options it sends away."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from xp_sdk.engine.bounds import SettingsCheck
from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.engine.images import MIN_IMAGE_SIDE
from xp_sdk.engine.motion import SmoothingConfig

DEFAULT_MAX_SIDE = 1024
Engine = Literal["warp", "diffusion"]
ENGINES: tuple[str, ...] = get_args(Engine)
MAX_OUTPUT_SIDE = 8192
"""The largest ``max_side``: twice DCI 4K's longer side. It is a cap, so a larger one would only let numbers
through that no photo reaches."""
MAX_MOTION_SCALE = 3.0
"""The largest expression and pose scale (0 freezes that motion, 1 copies it): room to exaggerate, none for
numbers that overflow the geometry."""
MAX_REFERENCE_WINDOW_S = 600.0
MAX_REFERENCE_FRAME = 10_000_000
MAX_CRF = 51
"""H.264's quantiser range is 0-51 (0 lossless, 51 worst)."""


@dataclass(frozen=True)
class ShadingConfig:
    enabled: bool = True
    """Carry the driver's expression shading onto the photo (driving videos only; templates have none)."""
    texture_px: int = 160
    """Longer side, in pixels, of the face layout in which shading is measured."""
    strength: float = 0.7
    """Exponent on the measured ratio: 1 carries the driver's shading as it is, 0 none of it. Below 1 because
    the photo is not the driver: on the shared faces 0.7 keeps most of what the shading adds to the expression
    (mean ratio -0.017 on seven pairs) at no identity cost, where 1.0 lowered the worst frame's SFace cosine by
    up to 0.05."""
    darkest: float = 0.6
    brightest: float = 1.15
    detail_px: float = 4.0
    """Changes broader than this (layout pixels, Gaussian sigma) are removed: lighting and exposure, and the broad
    darkening of a squeezed cheek, which made faces look less like themselves (SFace) for little expression."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> ShadingConfig:
        """This config, or :class:`~xp_sdk.errors.InvalidInputError` naming every setting out of range."""
        check = SettingsCheck(self)
        check.flag("enabled")
        check.whole("texture_px", 32, 1024)
        check.number("strength", 0.0, 2.0)
        check.number("darkest", 0.0, 1.0, above_low=True)
        check.number("brightest", 1.0, 4.0)
        check.number("detail_px", 0.5, 100.0)
        check.done("shading settings")
        return self


@dataclass(frozen=True)
class WarpConfig:
    map_cells: int = 256  # resolution of the backward map along the region's longer side
    paint_mouth: bool = True
    paint_lids: bool = True

    def __post_init__(self) -> None:
        check = SettingsCheck(self)
        check.whole("map_cells", 16, 4096)
        check.flag("paint_mouth")
        check.flag("paint_lids")
        check.done("warp settings")


@dataclass(frozen=True)
class AnimateOptions:
    max_side: int = DEFAULT_MAX_SIDE
    """Output resolution cap: the photo is downscaled so its longer side is at most this."""
    expression_scale: float = 1.0
    pose_scale: float = 1.0
    reference_frame: int | None = None
    """Driving frame to measure motion against; None chooses the best match to the photo automatically."""
    reference_window_s: float = 10.0
    """How far into the driving video the automatic reference is searched (sampled about five frames a second
    when longer than two seconds; every frame otherwise)."""
    keep_audio: bool = True
    allow_multiple_faces: bool = False
    crop_to_face: bool = False
    """Where the face is small in the photo (see :func:`~xp_sdk.engine.photo.prepare_photo`), return the animated
    square around it alone instead of pasting it back into the whole photo; a portrait is animated whole either
    way."""
    crf: int = 18
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    shading: ShadingConfig = field(default_factory=ShadingConfig)
    """The driver's creases and folds carried onto the photo (:mod:`xp_sdk.engine.shading`); driving videos only."""
    driver_mouth: bool = True
    """Where the photo's closed mouth opens, show the driver's own teeth and tongue, in the photo's colours
    (:mod:`xp_sdk.engine.interior`); False paints a generic interior. Driving videos only."""
    warp: WarpConfig = field(default_factory=WarpConfig)
    engine: Engine = "warp"
    """"warp": the CPU warp alone. "diffusion": the warp refined by a diffusion model (needs weights, a GPU)."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Settings of the diffusion engine; unused by the warp engine (and checked all the same)."""

    def __post_init__(self) -> None:
        """Every option is checked here, where the options are made (the SDK, the CLI and the HTTP route's
        pydantic adapter all make them), so a bad one is an ``InvalidInputError`` naming it and its range before
        any work starts, never a ``cv2.error`` or a NaN deep in the engine."""
        check = SettingsCheck(self)
        check.whole("max_side", MIN_IMAGE_SIDE, MAX_OUTPUT_SIDE)
        check.number("expression_scale", 0.0, MAX_MOTION_SCALE)
        check.number("pose_scale", 0.0, MAX_MOTION_SCALE)
        check.whole("reference_frame", 0, MAX_REFERENCE_FRAME, optional=True)
        check.number("reference_window_s", 0.0, MAX_REFERENCE_WINDOW_S, above_low=True)
        for name in ("keep_audio", "allow_multiple_faces", "crop_to_face", "driver_mouth"):
            check.flag(name)
        check.whole("crf", 0, MAX_CRF)
        check.choice("engine", ENGINES)
        for name, kind in (
            ("smoothing", SmoothingConfig), ("shading", ShadingConfig), ("warp", WarpConfig),
            ("diffusion", DiffusionConfig),
        ):  # fmt: skip
            check.instance(name, kind)
        if isinstance(self.diffusion, DiffusionConfig):
            check.nested(self.diffusion.validate)
        check.done("animation options")


@dataclass(frozen=True)
class Progress:
    """How far one animation is. "analyse": frames of the driving video's reference window read while the
    reference frame is chosen (``total`` is the window), before any frame is generated; "generate": frames
    generated (``total`` is the clip's length when known). A callback that raises stops the run at either."""

    stage: Literal["analyse", "generate"]
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]
