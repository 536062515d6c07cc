"""The reference frame chosen from a sample of the driving clip, and its code made from the second of the clip
before it, so that generation starts without waiting for the whole reference window to be analysed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xp_sdk.engine.animate import AnimateOptions, Progress, animate, prepare_source
from xp_sdk.engine.driving import (
    DrivingFrame,
    ReferenceChoice,
    iter_driving,
    probe_frames,
    scout_frames,
    scout_reference,
)
from xp_sdk.engine.retarget import (
    REFERENCE_SLACK,
    Retargeter,
    choose_reference,
    open_eye_openings,
    reference_scores,
)
from xp_sdk.engine.shading import FaceLayout, ShadingConfig
from xp_sdk.engine.video import VideoWriter, read_frames
from xp_sdk.errors import InvalidInputError, NoFaceError

CLIP = "lp_d5_hist.mp4"  # 148 frames at 30 fps: longer than two probe leads, so animate() scouts it
PHOTO = "lp_s7.jpg"


@pytest.fixture(scope="module")
def layout(photo_faces: dict[str, Any]) -> FaceLayout:
    return FaceLayout(photo_faces[PHOTO][1].landmarks, ShadingConfig())


@pytest.fixture(scope="module")
def streamed(faces: Path, layout: FaceLayout) -> list[DrivingFrame]:
    """Every frame of the clip as the analysis thread makes it, from the first frame on."""
    return list(iter_driving(faces / "driving" / CLIP, 30.0, layout=layout))


def _code_gap(a: DrivingFrame, b: DrivingFrame) -> dict[str, float]:
    assert a.code is not None and b.code is not None
    assert a.code.shape is not None and b.code.shape is not None
    return {
        "shape": float(np.abs(a.code.shape - b.code.shape).max()),
        "blendshapes": float(np.abs(a.code.blendshapes - b.code.blendshapes).max()),
        "rotation_deg": float(np.degrees(np.abs(a.code.rotation - b.code.rotation).max())),
        "translation": float(np.abs(a.code.translation - b.code.translation).max()),
        "log_scale": abs(a.code.log_scale - b.code.log_scale),
    }


def test_a_frame_within_the_first_second_is_probed_exactly(
    faces: Path, layout: FaceLayout, streamed: list[DrivingFrame]
) -> None:
    index = scout_frames(30.0) - 5
    probed = probe_frames(faces / "driving" / CLIP, 30.0, index, index, layout=layout)[index]
    assert all(gap == 0.0 for gap in _code_gap(probed, streamed[index]).values())
    assert probed.texture is not None and streamed[index].texture is not None
    np.testing.assert_array_equal(probed.texture, streamed[index].texture)


@pytest.mark.parametrize("index", [70, 100, 140])
def test_a_later_frame_is_probed_as_the_whole_clip_makes_it(
    faces: Path, layout: FaceLayout, streamed: list[DrivingFrame], index: int
) -> None:
    probed = probe_frames(faces / "driving" / CLIP, 30.0, index, index, layout=layout)[index]
    gap = _code_gap(probed, streamed[index])
    # A frame of this clip's motion moves the shape by about 0.007 inter-ocular units; the probe is far closer.
    assert gap["shape"] < 0.002, gap
    assert gap["blendshapes"] < 0.01, gap
    assert gap["rotation_deg"] < 0.05, gap
    assert gap["translation"] < 0.002 and gap["log_scale"] < 0.002, gap
    assert probed.texture is not None and streamed[index].texture is not None
    difference = np.abs(probed.texture.astype(np.float32) - streamed[index].texture.astype(np.float32))
    # Brightness levels: within float16's rounding, where one frame of this clip changes it by 0.15-0.6.
    assert float(difference.mean()) < 0.1 and float(np.percentile(difference, 99)) < 1.0


def test_a_frame_beyond_the_clip_cannot_be_probed(faces: Path) -> None:
    with pytest.raises(InvalidInputError, match="reference frame 400 is beyond the driving video's 148 frames"):
        probe_frames(faces / "driving" / CLIP, 30.0, 400, 402)


@pytest.mark.parametrize("clip", ["lp_d5_hist.mp4", "lp_d7_hist.mp4"])
def test_the_scouted_reference_is_nearly_the_whole_clips_choice(
    faces: Path, photo_faces: dict[str, Any], driving_codes: Callable[[str], list[Any]], clip: str
) -> None:
    """From the sample alone, a reference about as close to the photo and about as faithful to the clip as the
    one chosen over every frame (before the frames the sample skipped are looked at)."""
    codes = [c for c in driving_codes(clip) if c is not None]
    eyes = open_eye_openings(codes)
    for name, (_, photo) in photo_faces.items():
        retargeter = Retargeter(photo)
        chosen = scout_reference(faces / "driving" / clip, 30.0, retargeter, len(codes))
        assert chosen is not None
        scores = reference_scores(codes, photo)
        assert scores[chosen.index] <= scores.min() + REFERENCE_SLACK, (name, chosen.index)
        whole = choose_reference(codes, photo, retargeter=retargeter, open_eyes=eyes)
        loss = retargeter.expression_loss(codes, codes[chosen.index], eyes)
        assert loss <= retargeter.expression_loss(codes, codes[whole], eyes) + 0.015, (name, chosen.index, whole)


def test_the_scout_keeps_to_its_window_and_to_a_wanted_frame(faces: Path, photo_faces: dict[str, Any]) -> None:
    path, retargeter = faces / "driving" / CLIP, Retargeter(photo_faces[PHOTO][1])
    early = scout_reference(path, 30.0, retargeter, 40)
    assert early is not None and early.index < 40
    whole = scout_reference(path, 30.0, retargeter, 148)
    fixed = scout_reference(path, 30.0, retargeter, 148, wanted=77)
    assert whole is not None and fixed is not None
    assert fixed.index == 77 and fixed.open_eyes == whole.open_eyes
    # The driver's usual open eye, measured on the sample, is that of the whole clip's open frames.
    assert all(0.05 < opening < 0.5 for opening in whole.open_eyes)


def test_the_scout_finds_nothing_in_a_faceless_clip(tmp_path: Path, photo_faces: dict[str, Any]) -> None:
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, width=128, height=128, fps=30.0) as writer:
        for _ in range(90):
            writer.write(np.full((128, 128, 3), 90, np.uint8))
    assert scout_reference(blank, 30.0, Retargeter(photo_faces[PHOTO][1]), 90) is None


def test_animate_measures_a_long_clip_against_the_scouted_frame(
    faces: Path, photo_faces: dict[str, Any], tmp_path: Path
) -> None:
    options = AnimateOptions(max_side=256, keep_audio=False)
    result = animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=faces / "driving" / CLIP, options=options)
    image, _ = photo_faces[PHOTO]
    _, capped = prepare_source(image, options)
    chosen = scout_reference(faces / "driving" / CLIP, 30.0, Retargeter(capped), 148)
    assert chosen is not None
    # The sample's choice, or one of the frames it skipped on either side.
    assert result.reference_frame is not None and abs(result.reference_frame - chosen.index) <= chosen.radius
    assert result.frames == 148 and result.frames_without_face == 0
    assert sum(1 for _ in read_frames(result.output)) == 148


@pytest.fixture(scope="module")
def gappy_clip(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lp_d5 at 240 px with no face in frames 0-11 (before the first face) and 100-109 (past the probe lead)."""
    frames = list(read_frames(faces / "driving" / CLIP, max_side=240))
    blank = np.full_like(frames[0], 120)
    path = tmp_path_factory.mktemp("gappy") / "gappy.mp4"
    with VideoWriter(path, width=240, height=240, fps=30.0) as writer:
        for i, frame in enumerate(frames):
            writer.write(blank if i < 12 or 100 <= i < 110 else frame)
    return path


def test_faceless_frames_before_the_first_face_hold_it(gappy_clip: Path, faces: Path, tmp_path: Path) -> None:
    options = AnimateOptions(max_side=256, keep_audio=False, shading=ShadingConfig(enabled=False))
    result = animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=gappy_clip, options=options)
    assert result.frames == 148 and result.frames_without_face == 22
    reference = result.reference_frame
    assert reference is not None and not (reference < 12 or 100 <= reference < 110)
    frames = [f.astype(np.float32) for f in read_frames(result.output)]
    # The first face's pose and expression, held: the opening frames do not change, nor jump into frame 12.
    assert max(float(np.abs(frames[i] - frames[0]).mean()) for i in range(1, 12)) < 0.5
    assert float(np.abs(frames[12] - frames[11]).mean()) < 2.0


@pytest.mark.parametrize("index", [5, 105])
def test_an_explicit_reference_without_a_face_is_refused(
    gappy_clip: Path, faces: Path, tmp_path: Path, index: int
) -> None:
    options = AnimateOptions(max_side=256, keep_audio=False, reference_frame=index)
    with pytest.raises(NoFaceError, match=f"driving frame {index}, chosen as reference, has no face"):
        animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=gappy_clip, options=options)
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_reference_beyond_a_long_clip_is_refused_before_analysis(faces: Path, tmp_path: Path) -> None:
    options = AnimateOptions(max_side=256, reference_frame=148)
    with pytest.raises(InvalidInputError, match="reference frame 148 is beyond the driving video's 148 frames"):
        animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=faces / "driving" / CLIP, options=options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("clip", "window"), [(CLIP, 148), ("lp_d1_hist.mp4", 16)])
def test_the_reference_window_reports_progress_before_any_frame(
    faces: Path, tmp_path: Path, clip: str, window: int
) -> None:
    """Scouted (lp_d5) or analysed whole (lp_d1, 16 frames), the reference window is reported as the "analyse"
    stage, rising to the window's size, before the first generated frame."""
    calls: list[Progress] = []
    options = AnimateOptions(max_side=256, keep_audio=False)
    animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=faces / "driving" / clip, options=options,
            progress=calls.append)  # fmt: skip
    analysed = [c for c in calls if c.stage == "analyse"]
    assert analysed and calls[: len(analysed)] == analysed  # all of them before the first generated frame
    assert all(c.total == window for c in analysed)
    done = [c.done for c in analysed]
    assert done == sorted(done) and done[-1] == window and len(set(done)) >= 10


def test_a_caller_can_stop_the_run_while_the_reference_is_chosen(faces: Path, tmp_path: Path) -> None:
    class StopRequestedError(Exception):
        pass

    def stop_at_once(update: Progress) -> None:
        raise StopRequestedError(update.stage)

    with pytest.raises(StopRequestedError, match="analyse"):
        animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=faces / "driving" / CLIP,
                options=AnimateOptions(max_side=256), progress=stop_at_once)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_scouted_reference_without_a_face_falls_back_to_the_whole_window(
    gappy_clip: Path, faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the sample see a face the stream's tracker does not, the reference is chosen from every frame of
    the window instead of failing the run."""
    from xp_sdk.engine import driving

    def faceless_choice(*args: Any, **kwargs: Any) -> ReferenceChoice:
        return ReferenceChoice(105, (0.2, 0.2))

    monkeypatch.setattr(driving, "scout_reference", faceless_choice)
    options = AnimateOptions(max_side=256, keep_audio=False)
    result = animate(faces / "source" / PHOTO, tmp_path / "out.mp4", driving=gappy_clip, options=options)
    reference = result.reference_frame
    assert reference is not None and not (reference < 12 or 100 <= reference < 110)
    assert result.frames == 148 and result.frames_without_face == 22
