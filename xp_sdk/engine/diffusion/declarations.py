"""What a models.toml entry declares beyond its path and pin, and what the engine decides from it.

- ``[controlnet] conditioning``: the picture the ControlNet was trained to read. The engine draws one kind only,
  MediaPipe face-mesh renders with pupils (:mod:`.conditioning`); any other ControlNet (OpenPose, canny, depth…)
  would load and run, fed a picture it was never trained on, so it is refused before anything is generated.
  Without a declaration the ControlNet's config and folder names are read for a hint.
- ``[motion_adapter] family`` (``animatediff`` or ``animatelcm``) and ``beta_schedule``: AnimateDiff and AnimateLCM
  motion modules were trained under the ``linear`` beta schedule, not SD 1.5's ``scaled_linear``; sampling with
  the wrong one shifts every timestep's noise level away from what the motion module learned.
- ``[lcm_lora] scale``: how much of the LoRA is fused. AnimateLCM's own LoRA is published for use at 0.8 (as in
  diffusers' AnimateLCM example); LCM-LoRA and TCD-LoRA at 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

MotionFamily = Literal["animatediff", "animatelcm"]
OptionValue = str | float

DRAWN_CONDITIONING = "mediapipe_face"
"""The one conditioning picture the engine draws (``render_face_mesh``)."""

OPTION_KEYS: dict[str, dict[str, type]] = {
    "controlnet": {"conditioning": str},
    "motion_adapter": {"family": str, "beta_schedule": str},
    "lcm_lora": {"scale": float},
}
MOTION_FAMILIES: tuple[MotionFamily, ...] = ("animatediff", "animatelcm")
BETA_SCHEDULES = ("linear", "scaled_linear")
MAX_LORA_SCALE = 2.0

# Names under which other ControlNets are published (lllyasviel's SD 1.5 set, T2I, QR and the like).
_OTHER_CONDITIONINGS = (
    "openpose", "dwpose", "pose", "canny", "depth", "normal", "mlsd", "scribble", "hed", "softedge", "seg",
    "lineart", "shuffle", "tile", "inpaint", "ip2p", "qrcode", "brightness", "sketch",
)  # fmt: skip


def check_options(component: str, table: Mapping[str, Any]) -> tuple[dict[str, OptionValue], list[str]]:
    """The declared options of ``component``'s table, and what is wrong with them (empty when nothing is)."""
    allowed = OPTION_KEYS.get(component, {})
    options: dict[str, OptionValue] = {}
    problems = []
    for key, kind in allowed.items():
        if key not in table:
            continue
        value = table[key]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(f"[{component}] {key} must be a number, got {value!r}")
                continue
            options[key] = float(value)
        elif not isinstance(value, str):
            problems.append(f"[{component}] {key} must be a string, got {value!r}")
        else:
            options[key] = value.strip().lower()
    family = options.get("family")
    if family is not None and family not in MOTION_FAMILIES:
        problems.append(f"[motion_adapter] family must be one of {list(MOTION_FAMILIES)}, got {family!r}")
    schedule = options.get("beta_schedule")
    if schedule is not None and schedule not in BETA_SCHEDULES:
        problems.append(f"[motion_adapter] beta_schedule must be one of {list(BETA_SCHEDULES)}, got {schedule!r}")
    scale = options.get("scale")
    if isinstance(scale, float) and not 0.0 < scale <= MAX_LORA_SCALE:
        problems.append(f"[lcm_lora] scale must be in (0, {MAX_LORA_SCALE:g}], got {scale:g}")
    return options, problems


def _names(path: Path, config: Path | None) -> str:
    """The words a published model carries about itself: its folders' names and its config's ``_name_or_path``."""
    words = [part.lower() for part in path.parts[-4:]]
    if config is not None and config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = {}
        if isinstance(data, dict) and isinstance(data.get("_name_or_path"), str):
            words.append(data["_name_or_path"].lower())
    return " ".join(words)


def controlnet_refusal(path: Path, config: Path | None, options: Mapping[str, OptionValue]) -> str | None:
    """Why this ControlNet cannot be fed what the engine draws, or None when it can."""
    fix = (
        "the diffusion engine draws only MediaPipe face-mesh renders with pupils "
        f'(conditioning = "{DRAWN_CONDITIONING}"), what the diffusion_sd15/ folder of '
        "CrucibleAI/ControlNetMediaPipeFace was trained on"
    )
    declared = options.get("conditioning")
    if declared is not None:
        if declared == DRAWN_CONDITIONING:
            return None
        return f"declared conditioning = {declared!r}, which the engine cannot draw: {fix}"
    names = _names(path, config)
    other = next((word for word in _OTHER_CONDITIONINGS if word in names), None)
    if "mediapipe" in names and "face" in names:
        return None
    if other is not None:
        return f"this looks like a ControlNet for {other} (from its name), which the engine cannot draw: {fix}"
    return (
        f"cannot tell what conditioning this ControlNet reads; {fix}. If it is such a ControlNet, add "
        f'conditioning = "{DRAWN_CONDITIONING}" to [controlnet]'
    )


def motion_family(path: Path, config: Path | None, options: Mapping[str, OptionValue]) -> MotionFamily:
    declared = options.get("family")
    if declared in MOTION_FAMILIES:
        return declared
    return "animatelcm" if "animatelcm" in _names(path, config) else "animatediff"


def beta_schedule(options: Mapping[str, OptionValue]) -> str:
    """The beta schedule to sample with when this motion adapter is used: both families were trained on linear."""
    declared = options.get("beta_schedule")
    return declared if isinstance(declared, str) else "linear"


def lora_scale(family: MotionFamily | None, options: Mapping[str, OptionValue]) -> float:
    declared = options.get("scale")
    if isinstance(declared, float):
        return declared
    return 0.8 if family == "animatelcm" else 1.0
