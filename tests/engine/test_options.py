"""AnimateOptions are refused when they are made, with a message naming the option and its range: by the SDK's
constructor, by the HTTP route's pydantic adapter, and so by the CLI, never deep in the engine."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from xp_sdk.engine import AnimateOptions, ShadingConfig, SmoothingConfig, WarpConfig
from xp_sdk.engine.diffusion.config import DiffusionConfig
from xp_sdk.errors import InvalidInputError

# Each case: the options' arguments, and a word the message must hold (the option's name).
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "zero max_side": ({"max_side": 0}, "max_side"),
    "negative max_side": ({"max_side": -5}, "max_side"),
    "absurd max_side": ({"max_side": 10**20}, "max_side"),
    "float max_side": ({"max_side": 512.5}, "max_side"),
    "bool max_side": ({"max_side": True}, "max_side"),
    "string max_side": ({"max_side": "512"}, "max_side"),
    "nan expression_scale": ({"expression_scale": math.nan}, "expression_scale"),
    "inf expression_scale": ({"expression_scale": math.inf}, "expression_scale"),
    "-1e308 expression_scale": ({"expression_scale": -1e308}, "expression_scale"),
    "negative expression_scale": ({"expression_scale": -1.0}, "expression_scale"),
    "huge expression_scale": ({"expression_scale": 1e6}, "expression_scale"),
    "-inf pose_scale": ({"pose_scale": -math.inf}, "pose_scale"),
    "nan pose_scale": ({"pose_scale": math.nan}, "pose_scale"),
    "huge pose_scale": ({"pose_scale": 50.0}, "pose_scale"),
    "negative reference_frame": ({"reference_frame": -1}, "reference_frame"),
    "absurd reference_frame": ({"reference_frame": 10**23}, "reference_frame"),
    "zero reference window": ({"reference_window_s": 0.0}, "reference_window_s"),
    "nan reference window": ({"reference_window_s": math.nan}, "reference_window_s"),
    "inf reference window": ({"reference_window_s": math.inf}, "reference_window_s"),
    "crf 999": ({"crf": 999}, "crf"),
    "crf -1": ({"crf": -1}, "crf"),
    "crf float": ({"crf": 18.5}, "crf"),
    "keep_audio string": ({"keep_audio": "no"}, "keep_audio"),
    "allow_multiple_faces int": ({"allow_multiple_faces": 2}, "allow_multiple_faces"),
    "driver_mouth None": ({"driver_mouth": None}, "driver_mouth"),
    "unknown engine": ({"engine": "gpu"}, "engine"),
    "smoothing not a config": ({"smoothing": {"pose_beta": 1.0}}, "smoothing"),
    "shading not a config": ({"shading": None}, "shading"),
    "warp not a config": ({"warp": 256}, "warp"),
    "diffusion not a config": ({"diffusion": "fast"}, "diffusion"),
    "diffusion steps 100000 (warp engine too)": ({"diffusion": DiffusionConfig(steps=100_000)}, "steps"),
    "diffusion nan guidance": ({"diffusion": DiffusionConfig(guidance_scale=math.nan)}, "guidance_scale"),
    "diffusion nan controlnet": ({"diffusion": DiffusionConfig(controlnet_scale=math.nan)}, "controlnet_scale"),
    "diffusion device path": ({"diffusion": DiffusionConfig(device="../x")}, "device"),
}

NESTED_BAD: dict[str, tuple[type[Any], dict[str, Any], str]] = {
    "smoothing nan cutoff": (SmoothingConfig, {"pose_min_cutoff": math.nan}, "pose_min_cutoff"),
    "smoothing zero cutoff": (SmoothingConfig, {"shape_min_cutoff": 0.0}, "shape_min_cutoff"),
    "smoothing negative beta": (SmoothingConfig, {"blendshape_beta": -1.0}, "blendshape_beta"),
    "smoothing inf beta": (SmoothingConfig, {"pose_beta": math.inf}, "pose_beta"),
    "smoothing huge lookahead": (SmoothingConfig, {"lookahead_frames": 10**9}, "lookahead_frames"),
    "smoothing negative lookahead": (SmoothingConfig, {"lookahead_frames": -1}, "lookahead_frames"),
    "shading nan strength": (ShadingConfig, {"strength": math.nan}, "strength"),
    "shading float texture": (ShadingConfig, {"texture_px": 160.5}, "texture_px"),
    "shading nan darkest": (ShadingConfig, {"darkest": math.nan}, "darkest"),
    "shading enabled string": (ShadingConfig, {"enabled": "yes"}, "enabled"),
    "warp zero cells": (WarpConfig, {"map_cells": 0}, "map_cells"),
    "warp absurd cells": (WarpConfig, {"map_cells": 10**9}, "map_cells"),
    "warp paint string": (WarpConfig, {"paint_lids": "no"}, "paint_lids"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_option_is_refused_when_made(case: str) -> None:
    arguments, name = BAD[case]
    with pytest.raises(InvalidInputError) as refused:
        AnimateOptions(**arguments)
    assert type(refused.value) is InvalidInputError
    assert name in refused.value.message
    # The message says what is allowed, not only what is wrong.
    assert any(word in refused.value.message for word in (" from ", " one of ", " must be "))


@pytest.mark.parametrize("case", list(NESTED_BAD))
def test_bad_nested_setting_is_refused_when_made(case: str) -> None:
    config, arguments, name = NESTED_BAD[case]
    with pytest.raises(InvalidInputError, match=name):
        config(**arguments)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidInputError) as refused:
        AnimateOptions(max_side=0, crf=999, pose_scale=math.nan)
    for name in ("max_side", "crf", "pose_scale"):
        assert name in refused.value.message


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"max_side": 64, "crf": 0, "expression_scale": 0.0, "pose_scale": 0.0, "reference_frame": 0},
        {"max_side": 8192, "crf": 51, "expression_scale": 3.0, "pose_scale": 3.0, "reference_window_s": 600.0},
        {"max_side": np.int64(512), "expression_scale": np.float32(1.5), "crf": np.int32(23)},
        {"engine": "diffusion", "keep_audio": False, "allow_multiple_faces": True, "driver_mouth": False},
    ],
)
def test_options_in_range_are_kept_as_plain_numbers(arguments: dict[str, Any]) -> None:
    options = AnimateOptions(**arguments)
    for name, value in arguments.items():
        kept = getattr(options, name)
        assert kept == value
        assert type(kept) in (int, float, bool, str)


# The HTTP route parses the options form field with this adapter (xp_sdk/server/routes/animations.py).
ADAPTER = TypeAdapter(AnimateOptions)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('{"crf": 999}', "crf"),
        ('{"max_side": 0}', "max_side"),
        ('{"expression_scale": NaN}', "expression_scale"),
        ('{"pose_scale": -Infinity}', "pose_scale"),
        ('{"expression_scale": -1e308}', "expression_scale"),
        ('{"reference_window_s": 1e999}', "reference_window_s"),
        ('{"smoothing": {"pose_min_cutoff": NaN}}', "pose_min_cutoff"),
        ('{"shading": {"strength": Infinity}}', "strength"),
        ('{"warp": {"map_cells": 0}}', "map_cells"),
        ('{"diffusion": {"steps": 100000}}', "steps"),
    ],
)
def test_json_options_out_of_range_are_an_input_error(text: str, name: str) -> None:
    with pytest.raises(InvalidInputError, match=name):
        ADAPTER.validate_json(text)


def test_json_options_in_range_make_the_same_options() -> None:
    made = ADAPTER.validate_json('{"max_side": 512, "crf": 23, "smoothing": {"lookahead_frames": 0}}')
    assert made == AnimateOptions(max_side=512, crf=23, smoothing=SmoothingConfig(lookahead_frames=0))
