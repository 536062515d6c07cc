"""End to end: animate() and `xp animate` on real photos and clips, and the bad inputs it must refuse."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_variable_rate_clip
from xp_sdk.cli import main
from xp_sdk.engine import AnimateOptions, MotionTemplate, Progress, animate
from xp_sdk.engine.animate import prepare_source
from xp_sdk.engine.images import load_image
from xp_sdk.engine.retarget import Retargeter, choose_reference, open_eye_openings
from xp_sdk.engine.templates import Keyframe
from xp_sdk.engine.video import VideoWriter, frame_times, read_frames
from xp_sdk.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidInputError,
    MultipleFacesError,
    NoFaceError,
    TemplateError,
    UnreadableImageError,
    UnreadableVideoError,
    UnsupportedFormatError,
    XPError,
)

ASTRONAUT = "skimage_astronaut.png"
D1 = "lp_d1_hist.mp4"  # 16 frames, 30 fps, AAC audio


@dataclass(frozen=True)
class Clip:
    codec: str
    container: str
    width: int
    height: int
    frames: int
    fps: float
    audio: list[str]
    audio_seconds: float | None
    first_frame: np.ndarray
    last_frame: np.ndarray


def _inspect(path: Path) -> Clip:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate or 0)
        audio = [s.codec_context.name for s in container.streams.audio]
        audio_seconds = None
        if container.streams.audio:
            a = container.streams.audio[0]
            if a.duration is not None and a.time_base is not None:
                audio_seconds = float(a.duration * a.time_base)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return Clip(
            codec=video.codec_context.name,
            container=container.format.name,
            width=video.codec_context.width,
            height=video.codec_context.height,
            frames=len(frames),
            fps=fps,
            audio=audio,
            audio_seconds=audio_seconds,
            first_frame=frames[0],
            last_frame=frames[-1],
        )


def _tiny_template(seconds: float = 0.2) -> MotionTemplate:
    return MotionTemplate(
        name="tiny",
        fps=30,
        duration=seconds,
        keyframes=[Keyframe(t=0.0), Keyframe(t=seconds, blendshapes={"jawOpen": 0.8})],
    )


@dataclass
class Run:
    result: Any
    clip: Clip
    progress: list[Progress]


def _run(out: Path, source: Any, **kwargs: Any) -> Run:
    calls: list[Progress] = []
    result = animate(source, out, progress=calls.append, **kwargs)
    return Run(result=result, clip=_inspect(out), progress=calls)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def driven(faces: Path, outputs: Path) -> Run:
    """The astronaut driven by lp_d1_hist (default options: audio kept, automatic reference)."""
    return _run(outputs / "driven.mp4", faces / "source" / ASTRONAUT, driving=faces / "driving" / D1)


@pytest.fixture(scope="module")
def templated(faces: Path, outputs: Path) -> Run:
    """lp_d30 (600×900) animated with the built-in blink template."""
    return _run(outputs / "blink.mp4", faces / "source" / "lp_d30.jpg", template="blink")


@pytest.fixture(scope="module")
def capped(faces: Path, outputs: Path) -> Run:
    """lp_s7 (852×852) capped at 256, no audio, reference frame 5."""
    options = AnimateOptions(max_side=256, keep_audio=False, reference_frame=5)
    return _run(
        outputs / "capped.mp4",
        faces / "source" / "lp_s7.jpg",
        driving=faces / "driving" / D1,
        options=options,
    )


# --- successful runs ----------------------------------------------------------------------------------------


def test_driven_output_is_h264_at_the_photo_size(driven: Run, outputs: Path) -> None:
    clip, result = driven.clip, driven.result
    assert result.output == outputs / "driven.mp4"
    assert clip.codec == "h264"
    assert "mp4" in clip.container
    assert (clip.width, clip.height) == (result.width, result.height) == (512, 512)
    assert clip.frames == result.frames == 16
    assert clip.fps == pytest.approx(30.0) and result.fps == pytest.approx(30.0)
    assert result.frames_without_face == 0
    assert result.reference_frame is not None and 0 <= result.reference_frame < 16
    assert result.seconds > 0 and set(result.stage_seconds) == {"analysis", "shading", "warp", "filter", "encode"}
    # Only the finished file is left: no partial files beside it.
    assert sorted(p.name for p in outputs.iterdir() if p.name.startswith(".")) == []


def test_driven_output_shows_the_photo(faces: Path, driven: Run) -> None:
    photo = load_image(faces / "source" / ASTRONAUT)
    assert np.abs(driven.clip.first_frame.astype(int) - photo.astype(int)).mean() < 6.0


def test_driving_audio_is_kept(driven: Run) -> None:
    assert driven.clip.audio == ["aac"]
    assert driven.clip.audio_seconds is not None
    assert 0.3 < driven.clip.audio_seconds <= 16 / 30 + 0.1  # cut to the video's length


def test_progress_is_reported_once_per_frame(driven: Run) -> None:
    # The 16-frame clip is its own reference window: each frame is reported as analysed, then as generated.
    calls = driven.progress
    assert [(p.stage, p.done) for p in calls] == [(stage, i) for stage in ("analyse", "generate") for i in range(1, 17)]
    assert {p.total for p in calls} == {16}


def test_template_output_matches_the_template(templated: Run) -> None:
    clip, result = templated.clip, templated.result
    assert clip.codec == "h264"
    assert (clip.width, clip.height) == (600, 900)  # the photo's own size, under the 1024 cap
    assert clip.frames == result.frames == 72  # blink: 2.4 s at 30 fps
    assert clip.fps == pytest.approx(30.0)
    assert clip.audio == []
    assert result.reference_frame is None
    assert [p.done for p in templated.progress] == list(range(1, 73))
    assert {p.total for p in templated.progress} == {72}


def test_max_side_caps_the_output(capped: Run) -> None:
    assert (capped.clip.width, capped.clip.height) == (256, 256)
    assert (capped.result.width, capped.result.height) == (256, 256)
    assert capped.clip.frames == 16


def test_audio_can_be_dropped(capped: Run) -> None:
    assert capped.clip.audio == []


def test_explicit_reference_frame_is_honoured(capped: Run) -> None:
    assert capped.result.reference_frame == 5


def test_automatic_reference_is_the_best_match(
    driven: Run, photo_faces: dict[str, Any], driving_codes: Callable[[str], list[Any]]
) -> None:
    codes = driving_codes(D1)
    assert all(c is not None for c in codes)
    face = photo_faces[ASTRONAUT][1]  # 512×512: analysed at the size animate() uses
    expected = choose_reference(codes, face, retargeter=Retargeter(face), open_eyes=open_eye_openings(codes))
    assert driven.result.reference_frame == expected


def test_max_side_keeps_the_aspect_ratio(faces: Path) -> None:
    image, face = prepare_source(faces / "source" / "lp_d30.jpg", AnimateOptions(max_side=450))
    assert image.shape == (450, 300, 3)
    assert face.image_size == (300, 450)


def test_array_source_with_odd_size(faces: Path, tmp_path: Path) -> None:
    photo = load_image(faces / "source" / ASTRONAUT)[:257, 100:401]  # 301×257
    run = _run(tmp_path / "odd.mp4", photo, template=_tiny_template())
    assert (run.clip.width, run.clip.height) == (run.result.width, run.result.height) == (300, 256)
    assert run.clip.frames == run.result.frames == 6


def test_allow_multiple_faces_animates_the_largest(two_face_photo: np.ndarray, tmp_path: Path) -> None:
    run = _run(
        tmp_path / "two.mp4", two_face_photo, template=_tiny_template(),
        options=AnimateOptions(allow_multiple_faces=True),
    )  # fmt: skip
    assert run.clip.frames == 6
    # The jaw opens on the left (larger) face only; the right face stays as in the photo.
    last = run.clip.last_frame.astype(int)
    photo = two_face_photo.astype(int)
    right = np.abs(last[:, 420:] - photo[:, 420:]).mean()
    left = np.abs(last[:, :384] - photo[:, :384]).mean()
    assert right < 3
    assert left > right + 1


# --- bad inputs: typed errors, and nothing written --------------------------------------------------------


def _gray_video(path: Path, frames: int = 12) -> None:
    with VideoWriter(path, width=160, height=160, fps=30) as writer:
        for _ in range(frames):
            writer.write(np.full((160, 160, 3), 110, np.uint8))


def _zero_frame_video(path: Path) -> None:
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()


@pytest.fixture(scope="module")
def bad(faces: Path, tmp_path_factory: pytest.TempPathFactory, two_face_photo: np.ndarray) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_inputs")
    photo = load_image(faces / "source" / ASTRONAUT)
    files = {name: folder / name for name in (
        "gray.png", "two.png", "random.mp4", "cut.mp4", "empty.mp4", "zero.mp4", "still.png", "photo.gif",
        "huge.png", "pixel.png", "blank.mp4",
    )}  # fmt: skip
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(files["gray.png"])
    Image.fromarray(two_face_photo).save(files["two.png"])
    files["random.mp4"].write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    d1 = (faces / "driving" / D1).read_bytes()
    files["cut.mp4"].write_bytes(d1[: len(d1) // 2])
    files["empty.mp4"].write_bytes(b"")
    _zero_frame_video(files["zero.mp4"])
    Image.fromarray(photo).save(files["still.png"])
    Image.fromarray(photo).save(files["photo.gif"])
    Image.new("L", (8000, 8000)).save(files["huge.png"], compress_level=1)
    Image.new("RGB", (1, 1), (200, 160, 140)).save(files["pixel.png"])
    _gray_video(files["blank.mp4"])
    return files


# Each case: the error, and animate()'s arguments. "photo" is the astronaut, "d1" the 16-frame clip,
# "bad/<name>" a file of the ``bad`` fixture, "missing.mp4" a path that does not exist.
CASES: dict[str, tuple[type[XPError], dict[str, Any]]] = {
    "photo without a face": (NoFaceError, {"source": "bad/gray.png", "driving": "d1"}),
    "photo with two faces": (MultipleFacesError, {"source": "bad/two.png", "driving": "d1"}),
    "corrupt video": (UnreadableVideoError, {"source": "photo", "driving": "bad/random.mp4"}),
    "truncated video": (UnreadableVideoError, {"source": "photo", "driving": "bad/cut.mp4"}),
    "empty video": (UnreadableVideoError, {"source": "photo", "driving": "bad/empty.mp4"}),
    "zero-frame video": (UnreadableVideoError, {"source": "photo", "driving": "bad/zero.mp4"}),
    "missing video": (UnreadableVideoError, {"source": "photo", "driving": "missing.mp4"}),
    "png as driving": (UnsupportedFormatError, {"source": "photo", "driving": "bad/still.png"}),
    "gif photo": (UnsupportedFormatError, {"source": "bad/photo.gif", "driving": "d1"}),
    "8000x8000 photo": (ImageTooLargeError, {"source": "bad/huge.png", "driving": "d1"}),
    "1-pixel photo": (ImageTooSmallError, {"source": "bad/pixel.png", "driving": "d1"}),
    "missing photo": (UnreadableImageError, {"source": "missing.mp4", "driving": "d1"}),
    "video without a face": (NoFaceError, {"source": "photo", "driving": "bad/blank.mp4"}),
    "unknown template": (TemplateError, {"source": "photo", "template": "wink"}),
    "both driving and template": (
        InvalidInputError,
        {"source": "photo", "driving": "d1", "template": "blink"},
    ),
    "neither driving nor template": (InvalidInputError, {"source": "photo"}),
    "reference beyond the clip": (
        InvalidInputError,
        {"source": "photo", "driving": "d1", "options": AnimateOptions(reference_frame=40)},
    ),
    # A negative reference frame is refused when the options are made (tests/engine/test_options.py).
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_typed_error_and_writes_nothing(
    faces: Path, bad: dict[str, Path], tmp_path: Path, case: str
) -> None:
    error, spec = CASES[case]
    named = {
        "photo": faces / "source" / ASTRONAUT,
        "d1": faces / "driving" / D1,
        "missing.mp4": tmp_path / "missing.mp4",
        **{f"bad/{name}": path for name, path in bad.items()},
    }
    kwargs = {key: named.get(value, value) if isinstance(value, str) else value for key, value in spec.items()}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    source = kwargs.pop("source")
    with pytest.raises(error) as err:
        animate(source, out_dir / "result.mp4", **kwargs)
    assert type(err.value) is error
    assert err.value.message
    assert list(out_dir.iterdir()) == []


def test_output_must_be_mp4(faces: Path, tmp_path: Path) -> None:
    for name in ("result.mov", "result.avi", "result", "result.mp4.txt"):
        with pytest.raises(InvalidInputError, match=r"\.mp4"):
            animate(faces / "source" / ASTRONAUT, tmp_path / name, driving=faces / "driving" / D1)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_is_an_input_error(faces: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        animate(faces / "source" / ASTRONAUT, tmp_path / "nowhere" / "out.mp4", template=_tiny_template())
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def cut_mid_stream(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lp_d5 re-encoded with its index up front (+faststart), then cut: decoding fails part-way through."""
    folder = tmp_path_factory.mktemp("cut")
    whole = folder / "whole.mp4"
    frames = list(read_frames(faces / "driving" / "lp_d5_hist.mp4", max_side=240))
    with VideoWriter(whole, width=240, height=240, fps=30) as writer:
        for frame in frames:
            writer.write(frame)
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return cut


def test_failure_mid_generation_leaves_no_file(faces: Path, cut_mid_stream: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls: list[Progress] = []
    options = AnimateOptions(reference_window_s=0.2)  # start generating before the damage is reached
    with pytest.raises(UnreadableVideoError):
        animate(
            faces / "source" / ASTRONAUT, out_dir / "result.mp4", driving=cut_mid_stream, options=options,
            progress=calls.append,
        )  # fmt: skip
    assert len(calls) > 0  # frames had been generated and encoded when it failed
    assert list(out_dir.iterdir()) == []


def test_failed_run_keeps_an_existing_output(faces: Path, cut_mid_stream: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(UnreadableVideoError):
        animate(
            faces / "source" / ASTRONAUT,
            out,
            driving=cut_mid_stream,
            options=AnimateOptions(reference_window_s=0.2),
        )
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"]


# --- the command line ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _home_with_keys(provenance_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `xp animate` marks and signs, so it needs a home with provenance keys.
    monkeypatch.setenv("XP_HOME", str(provenance_home))


def _run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["xp", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    code = exit_info.value.code
    assert isinstance(code, int)
    return code


@pytest.mark.parametrize(
    "extra",
    [[], ["--driving", "a.mp4", "--template", "blink"], ["--bogus-option"]],
    ids=["neither", "both", "unknown"],
)
def test_cli_usage_error_exits_2(
    faces: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    photo, out = str(faces / "source" / ASTRONAUT), str(tmp_path / "o.mp4")
    code = _run_main(monkeypatch, "animate", "--source", photo, "--out", out, *extra)
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_fps_of_the_output_is_an_exact_rate(driven: Run, outputs: Path) -> None:
    with av.open(str(outputs / "driven.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(30, 1)


def test_a_variable_rate_driving_video_keeps_its_timing(faces: Path, tmp_path: Path) -> None:
    """A phone's variable frame rate: each output frame is shown when its driving frame was, so the motion and the
    kept speech stay together (at the average rate alone, frame 30 would show at 1.33 s instead of 2.0 s)."""
    driving = tmp_path / "phone.mp4"
    times = write_variable_rate_clip(faces / "driving", driving)
    out = tmp_path / "out.mp4"
    result = animate(faces / "source" / ASTRONAUT, out, driving=driving, options=AnimateOptions(max_side=384))
    assert result.frames == len(times)
    assert frame_times(out) == pytest.approx(times, abs=1e-4)
    clip = _inspect(out)
    assert clip.audio == ["aac"] and clip.audio_seconds is not None


@pytest.mark.parametrize("turns", [1, 3])
def test_a_photo_on_its_side_is_animated_upright(faces: Path, tmp_path: Path, turns: int) -> None:
    """A photo whose orientation was lost holds its face at ±90°: head motion must follow the face (a nod stays a
    nod), so the engine animates it upright and gives the video back in the photo's own orientation."""
    photo = load_image(faces / "source" / "lp_s7.jpg")[:, 80:-40]  # not square: a wrong turn shows in the shape
    upright, sideways = tmp_path / "upright.mp4", tmp_path / "sideways.mp4"
    options = AnimateOptions(max_side=512)
    animate(photo, upright, template="nod", options=options)
    animate(np.ascontiguousarray(np.rot90(photo, turns)), sideways, template="nod", options=options)
    straight = list(read_frames(upright))
    turned = list(read_frames(sideways))
    assert turned[0].shape == np.rot90(straight[0], turns).shape
    assert len(turned) == len(straight)
    back = [np.rot90(f, -turns).astype(np.float32) for f in turned]
    # The same frames but for H.264 coding them on a turned block grid (1.3-1.5); animated on its side, the nod
    # moved the head across the picture instead (up to 13, median 4.5).
    assert max(float(np.abs(b - s).mean()) for b, s in zip(back, straight, strict=True)) < 3.0
