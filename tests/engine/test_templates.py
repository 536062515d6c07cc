"""Motion templates: the built-ins, strict validation of untrusted files, and recording from real video."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import write_variable_rate_clip
from xp_sdk.cli import app
from xp_sdk.engine.driving import record_template
from xp_sdk.engine.motion import BLENDSHAPE_INDEX
from xp_sdk.engine.templates import (
    MAX_TEMPLATE_BYTES,
    MotionTemplate,
    builtin_names,
    dump_template,
    load_template,
    parse_template,
)
from xp_sdk.engine.video import VideoWriter, probe_video
from xp_sdk.errors import TemplateError

BUILTINS = ["blink", "head_turn", "nod", "showcase", "smile", "surprise", "talk"]


def _valid() -> dict[str, Any]:
    return {
        "format": "xp-motion-template/1",
        "name": "mine",
        "fps": 30,
        "duration": 1.0,
        "keyframes": [
            {"t": 0.0},
            {"t": 0.5, "blendshapes": {"jawOpen": 0.6}, "pose": {"yaw": 10}},
            {"t": 1.0},
        ],
    }


def _series(template: MotionTemplate) -> tuple[np.ndarray, np.ndarray]:
    codes = list(template.codes())
    return np.array([c.blendshapes for c in codes]), np.degrees(np.array([c.rotation for c in codes]))


# --- built-in templates -------------------------------------------------------------------------------------


def test_builtin_names() -> None:
    assert builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_template_loads_and_yields_its_frames(name: str) -> None:
    template = load_template(name)
    assert template.name == name
    assert 1.0 <= template.duration <= 600.0
    assert template.frame_count == round(template.duration * template.fps)
    codes = list(template.codes())
    assert len(codes) == template.frame_count
    for code in codes:
        assert code.shape is None
        assert code.blendshapes.shape == (52,)
        assert (code.blendshapes >= 0).all() and (code.blendshapes <= 1).all()
        assert np.abs(code.rotation).max() <= math.radians(60)
    blend, rotation = _series(template)
    assert blend.max() > 0.3 or np.abs(rotation).max() > 5  # every template moves something
    # Every template starts from the photo's own pose and expression: the first frame is the photo.
    assert np.abs(blend[0]).max() < 0.05 and np.abs(rotation[0]).max() < 1


def test_showcase_shows_everything() -> None:
    template = load_template("showcase")
    assert 6.0 <= template.duration <= 8.0
    blend, rotation = _series(template)
    peak = {name: float(blend[:, i].max()) for name, i in BLENDSHAPE_INDEX.items()}
    assert peak["eyeBlinkLeft"] > 0.8 and peak["eyeBlinkRight"] > 0.8
    assert peak["mouthSmileLeft"] > 0.5 and peak["mouthSmileRight"] > 0.5
    assert peak["jawOpen"] > 0.3
    pitch, yaw = np.abs(rotation[:, 0]).max(), np.abs(rotation[:, 1]).max()
    assert yaw > 5.0
    assert pitch > 3.0


def test_codes_ease_between_keyframes() -> None:
    template = parse_template(json.dumps(_valid()))
    blend, rotation = _series(template)
    jaw = blend[:, BLENDSHAPE_INDEX["jawOpen"]]
    assert len(jaw) == 30
    assert jaw[0] == 0.0 and jaw[15] == pytest.approx(0.6)
    assert jaw[8] == pytest.approx(0.6 * (0.5 - 0.5 * math.cos(math.pi * 8 / 15)))
    assert np.all(np.diff(jaw[:16]) >= 0) and np.all(np.diff(jaw[15:]) <= 0)
    assert rotation[15, 1] == pytest.approx(10.0)


def test_dump_and_parse_round_trip_for_builtins() -> None:
    for name in BUILTINS:
        template = load_template(name)
        assert parse_template(dump_template(template)) == template


# --- malformed templates ------------------------------------------------------------------------------------


def _error_for(data: Any, tmp_path: Path) -> TemplateError:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(TemplateError) as err:
        load_template(path)
    assert str(path) in err.value.message  # says which file
    assert err.value.code == "invalid_template" and err.value.exit_code == 2
    return err.value


def test_invalid_json_is_a_template_error(tmp_path: Path) -> None:
    err = _error_for('{"name": "x", "keyframes": [', tmp_path)
    assert "not valid JSON" in err.message
    assert "line 1" in err.message  # where it broke


def test_binary_garbage_is_a_template_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\xff\xfe\x00\x01" * 100)
    with pytest.raises(TemplateError, match="not valid JSON"):
        load_template(path)


def test_unknown_blendshape_name_is_named(tmp_path: Path) -> None:
    data = _valid()
    data["keyframes"][1]["blendshapes"] = {"jawOpen": 0.2, "jawOpn": 0.5}
    err = _error_for(data, tmp_path)
    assert "jawOpn" in err.message
    assert "keyframes.1.blendshapes" in err.message
    assert "jawOpen" in err.message  # suggests the naming scheme


def test_neutral_is_not_a_settable_blendshape(tmp_path: Path) -> None:
    data = _valid()
    data["keyframes"][1]["blendshapes"] = {"_neutral": 1.0}
    assert "_neutral" in _error_for(data, tmp_path).message


def test_activation_above_one_is_refused(tmp_path: Path) -> None:
    data = _valid()
    data["keyframes"][1]["blendshapes"] = {"jawOpen": 1.5}
    err = _error_for(data, tmp_path)
    assert "keyframes.1.blendshapes.jawOpen" in err.message
    assert "less than or equal to 1" in err.message


@pytest.mark.parametrize(
    ("field", "value"), [("yaw", 75.0), ("pitch", -61.0), ("scale", 3.0), ("x", 2.5), ("scale", 0.0)]
)
def test_pose_out_of_range_is_refused(tmp_path: Path, field: str, value: float) -> None:
    data = _valid()
    data["keyframes"][1]["pose"] = {field: value}
    assert f"keyframes.1.pose.{field}" in _error_for(data, tmp_path).message


def test_decreasing_times_are_refused(tmp_path: Path) -> None:
    data = _valid()
    data["keyframes"][1]["t"] = 0.8
    data["keyframes"][2]["t"] = 0.6
    assert "strictly increasing" in _error_for(data, tmp_path).message
    data["keyframes"][2]["t"] = 0.8  # equal times are not increasing either
    assert "strictly increasing" in _error_for(data, tmp_path).message


def test_keyframe_after_the_end_is_refused(tmp_path: Path) -> None:
    data = _valid()
    data["duration"] = 0.9
    assert "after the duration" in _error_for(data, tmp_path).message


@pytest.mark.parametrize(
    "patch",
    [
        {"__import__": "os"},
        {"exec": "print(1)"},
        {"__class__": {"__init__": "x"}},
    ],
)
def test_extra_top_level_fields_are_refused(tmp_path: Path, patch: dict[str, Any]) -> None:
    data = {**_valid(), **patch}
    err = _error_for(data, tmp_path)
    (key,) = patch
    assert key in err.message
    assert "Extra inputs are not permitted" in err.message


def test_extra_fields_inside_keyframes_are_refused(tmp_path: Path) -> None:
    data = _valid()
    data["keyframes"][1]["eval"] = "__import__('os')"
    assert "keyframes.1.eval" in _error_for(data, tmp_path).message
    data = _valid()
    data["keyframes"][1]["pose"] = {"yaw": 1, "exec": "x"}
    assert "keyframes.1.pose.exec" in _error_for(data, tmp_path).message


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"format": "xp-motion-template/2"}, "format"),
        ({"name": "../../etc/passwd"}, "name"),
        ({"name": ""}, "name"),
        ({"duration": 0}, "duration"),
        ({"duration": 601}, "duration"),
        ({"fps": 0}, "fps"),
        ({"keyframes": []}, "keyframes"),
        ({"keyframes": "none"}, "keyframes"),
    ],
)
def test_invalid_header_fields_are_located(tmp_path: Path, patch: dict[str, Any], where: str) -> None:
    assert f": {where}" in _error_for({**_valid(), **patch}, tmp_path).message


def test_json_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    assert "(top level)" in _error_for("[1, 2, 3]", tmp_path).message


def test_huge_template_file_is_refused(tmp_path: Path) -> None:
    data = _valid()
    data["description"] = "x" * (MAX_TEMPLATE_BYTES + 1)
    err = _error_for(data, tmp_path)
    assert "larger than 8 MiB" in err.message


def test_template_just_under_the_limit_loads(tmp_path: Path) -> None:
    data = _valid()
    data["description"] = "x" * (MAX_TEMPLATE_BYTES - 1000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(data))
    assert len(load_template(path).description) == MAX_TEMPLATE_BYTES - 1000


def test_size_limit_counts_bytes_for_text_input() -> None:
    data = _valid()
    data["description"] = "€" * (3 * 1024 * 1024)
    text = json.dumps(data, ensure_ascii=False)
    assert len(text.encode("utf-8")) > MAX_TEMPLATE_BYTES
    with pytest.raises(TemplateError, match="larger than"):
        parse_template(text)


def test_unknown_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="built-in templates: blink") as err:
        load_template("wink")
    assert "showcase" in err.value.message
    with pytest.raises(TemplateError, match="does not exist"):
        load_template(tmp_path / "absent.json")
    with pytest.raises(TemplateError, match="does not exist"):
        load_template(tmp_path)  # a folder


def test_loading_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    data = _valid()
    data["description"] = payload
    data["keyframes"][1]["blendshapes"] = {"jawOpen": 0.5}
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(data))
    template = load_template(path)
    assert template.description == payload  # it stays data
    list(template.codes())
    dump_template(template)
    assert not marker.exists()
    # Code in a place where a name belongs is refused, and still not run.
    data["keyframes"][1]["blendshapes"] = {payload: 0.5}
    path.write_text(json.dumps(data))
    with pytest.raises(TemplateError):
        load_template(path)
    data = {**_valid(), "name": payload}
    path.write_text(json.dumps(data))
    with pytest.raises(TemplateError):
        load_template(path)
    assert not marker.exists()


def test_pickle_and_yaml_tags_are_not_interpreted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "yaml.json"
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']")
    with pytest.raises(TemplateError, match="not valid JSON"):
        load_template(path)
    assert not marker.exists()


# --- recording ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_d5(faces: Path) -> MotionTemplate:
    return record_template(faces / "driving" / "lp_d5_hist.mp4", name="D5 Hist!")


def test_recorded_template_follows_the_clip(faces: Path, recorded_d5: MotionTemplate) -> None:
    info = probe_video(faces / "driving" / "lp_d5_hist.mp4")
    assert recorded_d5.name == "d5_hist_"  # sanitised to a valid name
    assert recorded_d5.fps == pytest.approx(info.fps)
    assert recorded_d5.frame_count == info.frame_count == 148
    assert len(recorded_d5.keyframes) == 75  # every second frame, plus the last
    assert "lp_d5_hist.mp4" in recorded_d5.description
    # lp_d5: pucker, toothy grin: the record carries them.
    peak = {n: max(k.blendshapes.get(n, 0.0) for k in recorded_d5.keyframes) for n in BLENDSHAPE_INDEX}
    assert peak["mouthPucker"] > 0.5
    assert peak["mouthSmileLeft"] > 0.5 and peak["mouthSmileRight"] > 0.5
    # Relative to the calmest frame: some keyframe carries no expression at all.
    assert min(sum(k.blendshapes.values()) for k in recorded_d5.keyframes) < 0.1


def test_recorded_template_round_trips(recorded_d5: MotionTemplate, tmp_path: Path) -> None:
    text = dump_template(recorded_d5)
    again = parse_template(text)
    assert again == recorded_d5
    path = tmp_path / "d5.json"
    path.write_text(text)
    assert load_template(path) == recorded_d5
    for a, b in zip(again.codes(), recorded_d5.codes(), strict=True):
        assert np.array_equal(a.blendshapes, b.blendshapes)
        assert np.array_equal(a.rotation, b.rotation)


def test_a_recorded_variable_rate_clip_keeps_its_timing(faces: Path, tmp_path: Path) -> None:
    # 2 s at 15 frames a second, then 2 s at 30: at the average rate alone, frame 30 was keyed at 1.33 s, not 2.0 s.
    clip = tmp_path / "phone.mp4"
    times = write_variable_rate_clip(faces / "driving", clip)
    recorded = record_template(clip, name="phone", stride=1)
    assert [k.t for k in recorded.keyframes] == pytest.approx(times, abs=1e-3)
    assert recorded.duration == pytest.approx(times[-1] + 1 / recorded.fps, abs=1e-3)


def test_recording_a_video_without_a_face_is_a_template_error(tmp_path: Path) -> None:
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, width=128, height=128, fps=25) as writer:
        for _ in range(8):
            writer.write(np.full((128, 128, 3), 90, np.uint8))
    with pytest.raises(TemplateError, match="no frame with a face"):
        record_template(blank, name="blank")


def test_cli_records_a_template(faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "My Take.json"
    result = CliRunner().invoke(
        app, ["templates", "record", str(faces / "driving" / "lp_d1_hist.mp4"), str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out)
    assert report["name"] == "my_take"
    template = load_template(out)
    assert template.name == "my_take"
    assert report["keyframes"] == len(template.keyframes) == 9  # 16 frames, every second, plus the last
    assert template.frame_count == 16
    assert report["duration"] == pytest.approx(template.duration)


def test_cli_record_takes_a_name(faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    result = CliRunner().invoke(
        app, ["templates", "record", str(faces / "driving" / "lp_d1_hist.mp4"), str(out), "--name", "squint"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout
    assert load_template(out).name == "squint"


def test_cli_lists_the_builtins() -> None:
    result = CliRunner().invoke(app, ["templates", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["templates"]
    assert [t["name"] for t in listed] == BUILTINS
    assert all(t["duration"] > 0 and t["description"] for t in listed)
