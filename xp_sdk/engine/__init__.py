"""The animation engine: everything that makes pixels. Imports nothing from policy, watermark or audit.

Public face::

    from xp_sdk.engine import animate, AnimateOptions
    result = animate("photo.jpg", "out.mp4", driving="clip.mp4")          # or template="showcase"
"""

from xp_sdk.engine.animate import AnimateOptions, AnimationResult, FrameFilter, Progress, ProgressCallback, animate
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.motion import MotionCode, SmoothingConfig
from xp_sdk.engine.photo import PreparedPhoto, prepare_photo
from xp_sdk.engine.retarget import RetargetOptions
from xp_sdk.engine.shading import ShadingConfig
from xp_sdk.engine.templates import MotionTemplate, builtin_names, load_template
from xp_sdk.engine.tracking import FaceTracker
from xp_sdk.engine.warp import WarpConfig

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
