"""Motion templates: keyframed motion codes in JSON, used in place of a driving video.

A template is data only. It is parsed with ``json`` and validated with pydantic; nothing in it is executed.
Values are offsets from the photo's own pose and expression: blendshape activations in [0, 1] add an
expression, pose angles (degrees), translation (inter-ocular units) and scale turn and move the head.
Between keyframes values ease smoothly (cosine interpolation).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xp_sdk.engine.motion import BLENDSHAPE_INDEX, MotionCode
from xp_sdk.errors import TemplateError

FORMAT = "xp-motion-template/1"
MAX_TEMPLATE_BYTES = 8 * 1024 * 1024
Angle = Annotated[float, Field(ge=-60.0, le=60.0)]


class Pose(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    yaw: Angle = 0.0
    pitch: Angle = 0.0
    roll: Angle = 0.0
    x: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    y: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    scale: Annotated[float, Field(ge=0.5, le=2.0)] = 1.0


class Keyframe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    t: Annotated[float, Field(ge=0.0)]
    pose: Pose = Pose()
    blendshapes: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = {}

    @field_validator("blendshapes")
    @classmethod
    def _known_names(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(BLENDSHAPE_INDEX) | ({"_neutral"} & set(value)))
        if unknown:
            raise ValueError(f"unknown blendshape names {unknown}; use ARKit names such as jawOpen, eyeBlinkLeft")
        return value


class MotionTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["xp-motion-template/1"] = "xp-motion-template/1"
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")]
    description: str = ""
    fps: Annotated[float, Field(gt=0.0, le=120.0)] = 30.0
    duration: Annotated[float, Field(gt=0.0, le=600.0)]
    keyframes: Annotated[list[Keyframe], Field(min_length=1, max_length=100_000)]

    @model_validator(mode="after")
    def _ordered(self) -> MotionTemplate:
        times = [k.t for k in self.keyframes]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("keyframe times must be strictly increasing")
        if times[-1] > self.duration + 1e-9:
            raise ValueError(f"last keyframe at t={times[-1]} is after the duration {self.duration}")
        return self

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration * self.fps))

    def codes(self) -> Iterator[MotionCode]:
        """One motion code per output frame."""
        keys = self.keyframes
        times = np.array([k.t for k in keys])
        poses = np.array([_pose_vector(k.pose) for k in keys])
        shapes = np.array([_blendshape_vector(k.blendshapes) for k in keys])
        for i in range(self.frame_count):
            t = i / self.fps
            j = int(np.searchsorted(times, t, side="right"))
            if j == 0:
                pose, blend = poses[0], shapes[0]
            elif j >= len(keys):
                pose, blend = poses[-1], shapes[-1]
            else:
                u = (t - times[j - 1]) / (times[j] - times[j - 1])
                w = 0.5 - 0.5 * math.cos(math.pi * u)
                pose = poses[j - 1] * (1 - w) + poses[j] * w
                blend = shapes[j - 1] * (1 - w) + shapes[j] * w
            yield MotionCode(
                rotation=np.radians(pose[:3]),
                translation=pose[3:5].copy(),
                log_scale=float(pose[5]),
                blendshapes=blend.copy(),
            )


def _pose_vector(pose: Pose) -> np.ndarray:
    return np.array([pose.pitch, pose.yaw, pose.roll, pose.x, pose.y, math.log(pose.scale)])


def _blendshape_vector(values: dict[str, float]) -> np.ndarray:
    vec = np.zeros(len(BLENDSHAPE_INDEX))
    for name, value in values.items():
        vec[BLENDSHAPE_INDEX[name]] = value
    return vec


def builtin_names() -> list[str]:
    folder = resources.files(__name__)
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def parse_template(text: str | bytes, *, origin: str = "template") -> MotionTemplate:
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if size > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"{origin} is larger than {MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{origin} is not valid JSON: {exc}") from exc
    except RecursionError:
        # "[" * 100000 parses to a nesting deeper than Python's stack: no template is nested like that.
        raise TemplateError(f"{origin} is nested too deeply to be a motion template") from None
    try:
        return MotionTemplate.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise TemplateError(f"{origin} is not a valid motion template: {where}: {first['msg']}") from exc


def builtin_template(name: str) -> MotionTemplate:
    """A built-in template by its name, and nothing else: a path, however it is spelled, is an unknown name."""
    if name not in builtin_names():
        raise _unknown(name)
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return parse_template(text, origin=f"built-in template {name!r}")


def resolve_template(template: str | os.PathLike[str] | MotionTemplate) -> str | MotionTemplate:
    """A caller's ``template`` as a service takes it, resolved on the caller's own machine: a built-in name stays
    a name; a local template file (a ``.json`` path, or any existing file) becomes its validated content.

    A service never opens a path it is given (over HTTP that would be a path on the server), so a client reads the
    caller's file here and passes the template itself."""
    if isinstance(template, MotionTemplate):
        return template
    name = str(template)
    if name in builtin_names():
        return name
    path = Path(name)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise TemplateError(f"template file {path} does not exist")
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"template file {path} is larger than {MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB")
        return parse_template(path.read_bytes(), origin=f"template file {path}")
    raise _unknown(name)


def _unknown(name: str) -> TemplateError:
    shown = name if len(name) <= 80 else name[:77] + "…"
    return TemplateError(f"unknown template {shown!r}; built-in templates: {', '.join(builtin_names())}")


def load_template(name_or_path: str | os.PathLike[str]) -> MotionTemplate:
    """A built-in template by name (``showcase``), or a template JSON file by path (a local file: for what a
    caller asks a service for, see :func:`resolve_template`)."""
    resolved = resolve_template(name_or_path)
    return builtin_template(resolved) if isinstance(resolved, str) else resolved


def template_json(template: MotionTemplate) -> bytes:
    """The template's canonical JSON: what a client uploads, what a C2PA ingredient and an audit record hash."""
    return dump_template(template).encode("utf-8")


def template_ref(template: str | MotionTemplate) -> str:
    """How an audit record names the motion: ``template:<name>`` for a built-in, ``template:<name>@sha256:<hex>``
    (of :func:`template_json`) for a template given as content, which may share a built-in's name."""
    if isinstance(template, str):
        builtin_template(template)  # a name, never a path
        return f"template:{template}"
    return f"template:{template.name}@sha256:{hashlib.sha256(template_json(template)).hexdigest()}"


def template_from_codes(
    codes: Sequence[MotionCode],
    *,
    fps: float,
    name: str,
    description: str = "",
    stride: int = 2,
    times: Sequence[float] | None = None,
) -> MotionTemplate:
    """Record a template from a driving video's motion codes, relative to its calmest frame.

    ``times``: each code's second in the video (a variable frame rate, frames without a face left out); without
    them, code ``i`` is at ``i / fps``."""
    if not codes:
        raise TemplateError("no motion to record: the driving video has no frame with a face")
    if times is not None and len(times) != len(codes):
        raise ValueError(f"{len(times)} times for {len(codes)} codes")
    at = list(times) if times is not None else [i / fps for i in range(len(codes))]
    activity = [float(np.sum(c.blendshapes[1:])) for c in codes]
    rest = codes[int(np.argmin(activity))]
    indices = list(range(0, len(codes), max(stride, 1)))
    if indices[-1] != len(codes) - 1:
        indices.append(len(codes) - 1)
    keys = []
    for i in indices:
        code = codes[i]
        rel = np.degrees(code.rotation - rest.rotation)
        delta = np.clip(code.blendshapes - rest.blendshapes, 0.0, 1.0)
        shapes = {
            n: round(float(delta[j]), 3)
            for n, j in BLENDSHAPE_INDEX.items()
            if n != "_neutral" and delta[j] >= 0.02
        }
        keys.append(
            Keyframe(
                t=round(at[i], 4),
                pose=Pose(
                    pitch=float(np.clip(rel[0], -60, 60)),
                    yaw=float(np.clip(rel[1], -60, 60)),
                    roll=float(np.clip(rel[2], -60, 60)),
                    x=float(np.clip(code.translation[0] - rest.translation[0], -2, 2)),
                    y=float(np.clip(code.translation[1] - rest.translation[1], -2, 2)),
                    scale=float(np.clip(math.exp(code.log_scale - rest.log_scale), 0.5, 2.0)),
                ),
                blendshapes=shapes,
            )
        )
    duration = max(at[-1] + 1 / fps, keys[-1].t)
    return MotionTemplate(name=name, description=description, fps=fps, duration=duration, keyframes=keys)


def dump_template(template: MotionTemplate) -> str:
    return template.model_dump_json(indent=1, exclude_defaults=False)
