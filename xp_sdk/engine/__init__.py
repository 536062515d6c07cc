"""The animation engine: everything that makes pixels. Imports nothing from policy, watermark or audit.

Public face::

    from xp_sdk.engine import animate, AnimateOptions
    result = animate("photo.jpg", "out.mp4", driving="clip.mp4")          # or template="showcase"
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xp_sdk.engine.animate import AnimationResult, FrameFilter, animate
    from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
    from xp_sdk.engine.motion import MotionCode, SmoothingConfig
    from xp_sdk.engine.options import AnimateOptions, Progress, ProgressCallback, ShadingConfig, WarpConfig
    from xp_sdk.engine.photo import PreparedPhoto, prepare_photo
    from xp_sdk.engine.retarget import RetargetOptions
    from xp_sdk.engine.templates import MotionTemplate, builtin_names, load_template
    from xp_sdk.engine.tracking import FaceTracker

_EXPORTS: dict[str, str] = {
    "AnimateOptions": "xp_sdk.engine.options",
    "AnimationResult": "xp_sdk.engine.animate",
    "FrameFilter": "xp_sdk.engine.animate",
    "Progress": "xp_sdk.engine.options",
    "ProgressCallback": "xp_sdk.engine.options",
    "animate": "xp_sdk.engine.animate",
    "FaceAnalysis": "xp_sdk.engine.faces",
    "FaceAnalyzer": "xp_sdk.engine.faces",
    "MotionCode": "xp_sdk.engine.motion",
    "SmoothingConfig": "xp_sdk.engine.motion",
    "PreparedPhoto": "xp_sdk.engine.photo",
    "prepare_photo": "xp_sdk.engine.photo",
    "RetargetOptions": "xp_sdk.engine.retarget",
    "ShadingConfig": "xp_sdk.engine.options",
    "MotionTemplate": "xp_sdk.engine.templates",
    "builtin_names": "xp_sdk.engine.templates",
    "load_template": "xp_sdk.engine.templates",
    "FaceTracker": "xp_sdk.engine.tracking",
    "WarpConfig": "xp_sdk.engine.options",
}
"""Each public name and the module it comes from: imported on first use (PEP 562), so importing one light
module of the package does not load the heavy ones."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _EnginePackage(types.ModuleType):
    """Keeps ``xp_sdk.engine.animate`` the function. Importing the submodule of the same name binds the module
    here (the import system sets it on its parent), which the eager imports used to overwrite; lazily, nothing
    would, and ``from xp_sdk.engine import animate`` would return the module."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "animate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _EnginePackage


ENGINE_NAME = "xp-warp"
# Recorded in every C2PA manifest. 0.2: shading transfer; 0.2.1: driving clips tracked by FaceTracker (landmarks
# within 0.0004 inter-ocular units of MediaPipe's video mode, so outputs differ from 0.2.0 by that much).
ENGINE_VERSION = "0.2.1"

__all__ = [
    "ENGINE_NAME",
    "ENGINE_VERSION",
    "AnimateOptions",
    "AnimationResult",
    "FaceAnalysis",
    "FaceAnalyzer",
    "FaceTracker",
    "FrameFilter",
    "MotionCode",
    "MotionTemplate",
    "PreparedPhoto",
    "Progress",
    "ProgressCallback",
    "RetargetOptions",
    "ShadingConfig",
    "SmoothingConfig",
    "WarpConfig",
    "animate",
    "builtin_names",
    "load_template",
    "prepare_photo",
]
