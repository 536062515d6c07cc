"""The animation engine: everything that makes pixels. Imports nothing from policy, watermark or audit.

Public face::

    from xp_sdk.engine import animate, AnimateOptions
    result = animate("photo.jpg", "out.mp4", driving="clip.mp4")          # or template="showcase"
"""

from xp_sdk.engine.animate import AnimateOptions, AnimationResult, FrameFilter, Progress, ProgressCallback, animate
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.motion import MotionCode, SmoothingConfig
from xp_sdk.engine.retarget import RetargetOptions
from xp_sdk.engine.shading import ShadingConfig
from xp_sdk.engine.templates import MotionTemplate, builtin_names, load_template
from xp_sdk.engine.warp import WarpConfig

ENGINE_NAME = "xp-warp"
ENGINE_VERSION = "0.2.0"  # recorded in every C2PA manifest; 0.2: shading transfer

__all__ = [
    "ENGINE_NAME",
    "ENGINE_VERSION",
    "AnimateOptions",
    "AnimationResult",
    "FaceAnalysis",
    "FaceAnalyzer",
    "FrameFilter",
    "MotionCode",
    "MotionTemplate",
    "Progress",
    "ProgressCallback",
    "RetargetOptions",
    "ShadingConfig",
    "SmoothingConfig",
    "WarpConfig",
    "animate",
    "builtin_names",
    "load_template",
]
