"""Shading transfer on real faces: the driver's change of shading lands on the photo where it happened on the
driver, a face that did not change gives no shading, and misregistration between frames is not mistaken for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from xp_sdk.engine import topology
from xp_sdk.engine.animate import AnimateOptions, animate
from xp_sdk.engine.driving import ClipTargets, iter_driving, iter_motion_codes
from xp_sdk.engine.faces import FaceAnalysis, FaceAnalyzer
from xp_sdk.engine.retarget import Retargeter, TargetFace
from xp_sdk.engine.shading import FaceLayout, ShadingConfig
from xp_sdk.engine.video import probe_video, read_frames
from xp_sdk.engine.warp import WarpGenerator
from xp_sdk.errors import InvalidInputError

CHEEK_A, CHEEK_B, FOREHEAD = 205, 425, 151  # cheek below each eye (MediaPipe mesh), mid-forehead


@pytest.fixture(scope="module")
def driver(faces: Path) -> tuple[np.ndarray, FaceAnalysis]:
    """A frontal driving frame (lp_d5, first frame) and its face."""
    frame = next(iter(read_frames(faces / "driving" / "lp_d5_hist.mp4")))
    with FaceAnalyzer() as analyzer:
        return frame, analyzer.analyze_photo(frame, name="lp_d5 frame 0")


@pytest.fixture(scope="module")
def photo(photo_faces: dict[str, Any]) -> tuple[np.ndarray, FaceAnalysis, FaceLayout]:
    image, face = photo_faces["lp_s7.jpg"]
    # The driver's shading as measured, not tempered (the default strength carries only part of it).
    return image, face, FaceLayout(face.landmarks, ShadingConfig(strength=1.0))


def _darken(frame: np.ndarray, centre: np.ndarray, sigma: float, depth: float) -> np.ndarray:
    ys, xs = np.mgrid[: frame.shape[0], : frame.shape[1]]
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    factor = 1.0 - depth * blob
    return np.clip(frame * factor[..., None], 0, 255).astype(np.uint8)  # type: ignore[no-any-return]


def _at(layout: FaceLayout, ratio: np.ndarray, photo_point: np.ndarray) -> float:
    x, y = ((photo_point[:2] - layout.origin) * layout.scale).round().astype(int)
    return float(ratio[y, x])


def _identity(face: FaceAnalysis) -> TargetFace:
    return TargetFace(landmarks=face.landmarks[:, :2].astype(np.float64), rotation=face.rotation,
                      centre=np.zeros(2), scale=1.0)  # fmt: skip


def test_texture_of_the_photo_is_its_own_face(photo: tuple[np.ndarray, FaceAnalysis, FaceLayout]) -> None:
    image, face, layout = photo
    texture = layout.texture(image, face.landmarks)
    # The layout is the photo's face, scaled: sampling the photo with its own landmarks is a plain resize.
    h, w = layout.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0 / layout.scale)
    ox, oy = (float(v) for v in layout.origin)
    plain = cv2.remap(gray, xs / layout.scale + ox, ys / layout.scale + oy, cv2.INTER_LINEAR)
    oval = np.zeros(layout.shape, np.uint8)
    cv2.fillPoly(oval, [np.round((face.landmarks[list(topology.FACE_OVAL), :2] - layout.origin) * layout.scale)
                        .astype(np.int32)], 1)  # fmt: skip
    inside = cv2.erode(oval, np.ones((5, 5), np.uint8)) > 0
    assert np.abs(texture - plain)[inside].mean() < 3.0


def test_an_unchanged_face_gets_no_shading(photo: tuple[np.ndarray, FaceAnalysis, FaceLayout]) -> None:
    image, face, layout = photo
    texture = layout.texture(image, face.landmarks)
    shading = layout.ratio(texture, texture)
    np.testing.assert_allclose(shading.ratio, 1.0, atol=1e-4)


def test_darkening_on_the_driver_lands_on_the_same_place_of_the_photo(
    driver: tuple[np.ndarray, FaceAnalysis], photo: tuple[np.ndarray, FaceAnalysis, FaceLayout]
) -> None:
    frame, drv_face = driver
    image, face, layout = photo
    iod = drv_face.inter_ocular
    # A crease-sized shadow on the driver's cheek below one eye (not on the other).
    shadowed = _darken(frame, drv_face.landmarks[CHEEK_A], sigma=0.03 * iod, depth=0.5)
    shading = layout.ratio(layout.texture(shadowed, drv_face.landmarks), layout.texture(frame, drv_face.landmarks))
    points = face.landmarks
    assert _at(layout, shading.ratio, points[CHEEK_A]) < 0.8
    assert abs(_at(layout, shading.ratio, points[CHEEK_B]) - 1.0) < 0.03
    assert abs(_at(layout, shading.ratio, points[FOREHEAD]) - 1.0) < 0.03

    generator = WarpGenerator(image, face)
    plain = generator.render(_identity(face)).astype(np.float64)
    shaded = generator.render(TargetFace(**{**_identity(face).__dict__, "shading": shading})).astype(np.float64)
    changed = np.abs(shaded - plain).max(axis=2)
    ax, ay = points[CHEEK_A, :2].round().astype(int)
    bx, by = points[CHEEK_B, :2].round().astype(int)
    assert shaded[ay, ax].mean() < 0.85 * plain[ay, ax].mean()
    assert changed[by, bx] <= 2
    # Outside the face's layout nothing changes: the shading is on the skin only.
    x0, y0 = np.floor(layout.origin).astype(int)
    x1, y1 = np.ceil(layout.origin + np.array(layout.shape[::-1]) / layout.scale).astype(int)
    outside = np.ones(changed.shape, bool)
    outside[max(y0, 0) : y1, max(x0, 0) : x1] = False
    assert changed[outside].max() == 0


def test_misregistration_between_frames_is_not_shading(
    driver: tuple[np.ndarray, FaceAnalysis], photo: tuple[np.ndarray, FaceAnalysis, FaceLayout]
) -> None:
    frame, drv_face = driver
    _, _, layout = photo
    # The same face moved by a pixel and a half while its landmarks stay: every edge (nostrils, lips, brows)
    # lands beside itself, as when the detector is off by that much between two frames.
    shifted = cv2.warpAffine(frame, np.float32([[1, 0, 1.5], [0, 1, 1.0]]), frame.shape[1::-1],
                             borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    reference = layout.texture(frame, drv_face.landmarks)
    moved = layout.texture(shifted, drv_face.landmarks)
    change = np.abs(layout.ratio(moved, reference).ratio - 1.0)
    naive = np.abs(np.clip((moved + 10.0) / (reference + 10.0), 0.6, 1.15) - 1.0)
    assert np.percentile(change, 99) < 0.04
    assert np.percentile(change, 99) < 0.5 * np.percentile(naive, 99)


def test_driving_textures_come_with_the_same_codes(faces: Path, photo: tuple[Any, Any, FaceLayout]) -> None:
    path = faces / "driving" / "lp_d1_hist.mp4"
    fps = probe_video(path).fps
    with_textures = list(iter_driving(path, fps, layout=photo[2]))
    codes = list(iter_motion_codes(path, fps))
    assert len(with_textures) == len(codes) == 16
    for frame, code in zip(with_textures, codes, strict=True):
        assert (frame.code is None) == (code is None)
        if code is not None:
            assert frame.code is not None
            np.testing.assert_allclose(frame.code.shape, code.shape)
            assert frame.texture is not None and frame.texture.shape == photo[2].shape


def test_animate_shades_the_face_and_nothing_else(faces: Path, source_photos: list[Path], tmp_path: Path) -> None:
    photo_path = next(p for p in source_photos if p.name == "lp_s7.jpg")
    driving = faces / "driving" / "lp_d1_hist.mp4"  # an eye squeeze: creases around the eyes and cheeks
    frames: dict[bool, list[np.ndarray]] = {True: [], False: []}
    stages = {}
    for enabled in (True, False):
        result = animate(
            photo_path, tmp_path / f"{enabled}.mp4", driving=driving,
            options=AnimateOptions(shading=ShadingConfig(enabled=enabled), keep_audio=False),
            frame_filter=lambda f, e=enabled: frames[e].append(f.copy()) or f,  # type: ignore[func-returns-value]
        )  # fmt: skip
        stages[enabled] = result.stage_seconds
    assert stages[True]["shading"] > 0 and stages[False]["shading"] == 0
    diffs = [np.abs(a.astype(np.int16) - b).max(axis=2) for a, b in zip(frames[True], frames[False], strict=True)]
    with FaceAnalyzer() as analyzer:
        face = analyzer.analyze_photo(frames[False][0])
    x0, y0, x1, y1 = (int(v) for v in face.bbox)
    pad = (x1 - x0) // 3
    outside = np.ones(diffs[0].shape, bool)
    outside[max(y0 - pad, 0) : y1 + pad, max(x0 - pad, 0) : x1 + pad] = False
    assert all(d[outside].max() == 0 for d in diffs)
    # The squeeze shades the face: some frames change visibly inside it.
    assert max(float(np.percentile(d[~outside], 99)) for d in diffs) >= 3


def test_frames_without_a_face_keep_the_last_shading(faces: Path, photo: tuple[Any, Any, FaceLayout],
                                                     tmp_path: Path) -> None:  # fmt: skip
    from xp_sdk.engine.video import VideoWriter

    frames = list(read_frames(faces / "driving" / "lp_d1_hist.mp4"))
    blank = np.full_like(frames[0], 128)
    clip = tmp_path / "gap.mp4"
    with VideoWriter(clip, width=frames[0].shape[1], height=frames[0].shape[0], fps=30.0) as writer:
        for i, frame in enumerate(frames):
            writer.write(blank if i in (6, 7, 8) else frame)
    driven = list(iter_driving(clip, 30.0, layout=photo[2]))
    assert len(driven) == len(frames)
    assert [i for i, f in enumerate(driven) if f.code is None] == [6, 7, 8]
    # The generator repeats the last code over the gap; the shading is held with it, never dropped for a frame.
    assert all(f.texture is not None for f in driven)
    held, before = driven[7].texture, driven[5].texture
    assert held is not None and before is not None
    assert np.abs(held.astype(np.float32) - before.astype(np.float32)).mean() < 1.0

    _, face, layout = photo
    with pytest.raises(ValueError, match="reference frame must have a face"):
        ClipTargets.from_window(Retargeter(face), driven, 7, layout)
    retargeter = Retargeter(face)
    targets = ClipTargets.from_window(retargeter, driven, ClipTargets.best_reference(driven, retargeter), layout)
    made = [targets(f) for f in driven]
    assert targets.frames_without_face == 3 and targets.shading_seconds > 0
    np.testing.assert_array_equal(made[7].landmarks, made[5].landmarks)  # the last code, held
    assert all(t.shading is not None for t in made)

    result = animate(faces / "source" / "lp_s7.jpg", tmp_path / "gap_out.mp4", driving=clip)
    assert result.frames == len(frames) and result.frames_without_face == 3


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"strength": -0.5}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"texture_px": 8}, "texture_px"),
        ({"darkest": 1.2}, "darkest"),
        ({"detail_px": 0.0}, "detail_px"),
    ],
)
def test_bad_shading_settings_are_refused_before_any_output(
    faces: Path, source_photos: list[Path], tmp_path: Path, settings: dict[str, float], named: str
) -> None:
    out = tmp_path / "never.mp4"
    with pytest.raises(InvalidInputError, match=named):
        animate(source_photos[0], out, driving=faces / "driving" / "lp_d1_hist.mp4",
                options=AnimateOptions(shading=ShadingConfig(**settings)))  # type: ignore[arg-type]  # fmt: skip
    assert not out.exists() and list(tmp_path.iterdir()) == []
