"""Loading photos and finding their one face, on the real shared photos and on images derived from them."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from tests.conftest import face_crop
from xp_sdk.engine import images
from xp_sdk.engine.faces import MIN_PHOTO_FACE_PX, FaceAnalyzer
from xp_sdk.engine.images import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE, load_image
from xp_sdk.engine.models import FACE_LANDMARKER, resolve_model
from xp_sdk.engine.motion import BLENDSHAPE_NAMES
from xp_sdk.engine.topology import NUM_LANDMARKS
from xp_sdk.errors import (
    FaceTooSmallError,
    ImageTooLargeError,
    ImageTooSmallError,
    ModelHashMismatchError,
    ModelNotFoundError,
    MultipleFacesError,
    NoFaceError,
    UnreadableImageError,
    UnsupportedFormatError,
)

PHOTOS = ["lp_d30.jpg", "lp_d8.jpg", "lp_s7.jpg", "lp_s9.jpg", "skimage_astronaut.png"]


@pytest.fixture(scope="module")
def manifest(faces: Path) -> dict[str, dict[str, Any]]:
    entries = json.loads((faces / "manifest.json").read_text())
    return {Path(e["file"]).name: e for e in entries}


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer() as a:
        yield a


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


# --- load_image ---------------------------------------------------------------------------------------------


def test_the_shared_photos_are_all_covered(source_photos: list[Path]) -> None:
    assert sorted(p.name for p in source_photos) == sorted(PHOTOS)


@pytest.mark.parametrize("name", PHOTOS)
def test_load_image_gives_rgb_uint8_at_the_manifest_size(
    faces: Path, manifest: dict[str, dict[str, Any]], name: str
) -> None:
    image = load_image(faces / "source" / name)
    entry = manifest[name]
    assert image.dtype == np.uint8
    assert image.shape == (entry["h"], entry["w"], 3)
    assert image.flags["C_CONTIGUOUS"]
    # Real photos, not blank decodes: a wide range of values and visible colour.
    assert int(image.max()) - int(image.min()) > 150
    assert float(np.abs(image[..., 0].astype(int) - image[..., 2].astype(int)).mean()) > 2.0


def test_load_image_applies_exif_orientation(faces: Path, tmp_path: Path) -> None:
    upright = load_image(faces / "source" / "lp_d30.jpg")  # portrait: 600 wide, 900 tall
    stored = np.ascontiguousarray(np.rot90(upright))  # what a camera held sideways writes: 900 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    sideways = tmp_path / "sideways.jpg"
    Image.fromarray(stored).save(sideways, quality=95, exif=exif)
    with Image.open(sideways) as raw:
        assert raw.size == (900, 600)

    loaded = load_image(sideways)
    assert loaded.shape == upright.shape
    assert float(np.abs(loaded.astype(int) - upright.astype(int)).mean()) < 3.0


def test_load_image_without_exif_is_left_as_stored(faces: Path, tmp_path: Path) -> None:
    upright = load_image(faces / "source" / "lp_d30.jpg")
    stored = np.ascontiguousarray(np.rot90(upright))
    plain = tmp_path / "plain.png"
    Image.fromarray(stored).save(plain)
    assert np.array_equal(load_image(plain), stored)


def test_load_image_converts_grey_and_rgba_to_rgb(faces: Path, tmp_path: Path) -> None:
    rgb = load_image(faces / "source" / "skimage_astronaut.png")
    grey_path, rgba_path = tmp_path / "grey.png", tmp_path / "rgba.png"
    Image.fromarray(rgb).convert("L").save(grey_path)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(rgba_path)
    grey = load_image(grey_path)
    assert grey.shape == rgb.shape
    assert np.array_equal(grey[..., 0], grey[..., 2])
    assert np.array_equal(load_image(rgba_path), rgb)


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(UnreadableImageError, match="does not exist"):
        load_image(tmp_path)  # a folder is not a photo


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="empty"):
        load_image(empty)


def test_text_file_renamed_jpg_is_unreadable(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n" * 50)
    with pytest.raises(UnreadableImageError, match="not an image") as err:
        load_image(fake)
    assert err.value.code == "unreadable_image"
    assert err.value.exit_code == 2


def test_truncated_jpeg_is_unreadable(faces: Path, tmp_path: Path) -> None:
    data = (faces / "source" / "lp_d8.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(UnreadableImageError):
        load_image(cut)


@pytest.mark.parametrize("side", [1, 20, MIN_IMAGE_SIDE - 1])
def test_tiny_images_are_too_small(tmp_path: Path, side: int) -> None:
    path = tmp_path / f"tiny{side}.png"
    Image.new("RGB", (side, side), (200, 150, 120)).save(path)
    with pytest.raises(ImageTooSmallError, match=f"{side}×{side}"):
        load_image(path)


def test_thin_image_is_too_small_even_when_long(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    Image.new("RGB", (2000, 40)).save(path)
    with pytest.raises(ImageTooSmallError):
        load_image(path)


def test_minimum_side_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "min.png"
    Image.new("RGB", (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)).save(path)
    assert load_image(path).shape == (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 3)


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("L", (8000, 8000)).save(path, compress_level=1)
    return path


def test_huge_image_is_refused_from_its_header(huge_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_IMAGE_PIXELS < 8000 * 8000

    # The size check must come from the header: decoding 64 MP of pixels first is what it exists to prevent.
    def no_decoding(self: Any) -> None:
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="8000×8000") as err:
        load_image(huge_png)
    assert "limit" in err.value.message
    assert "Downscale" in err.value.message


def test_max_pixels_is_a_parameter(faces: Path) -> None:
    photo = faces / "source" / "skimage_astronaut.png"
    with pytest.raises(ImageTooLargeError):
        load_image(photo, max_pixels=512 * 512 - 1)
    assert load_image(photo, max_pixels=512 * 512).shape == (512, 512, 3)


def test_gif_is_an_unsupported_format(faces: Path, tmp_path: Path) -> None:
    gif = tmp_path / "portrait.gif"
    Image.fromarray(load_image(faces / "source" / "skimage_astronaut.png")).save(gif)
    with pytest.raises(UnsupportedFormatError, match="GIF") as err:
        load_image(gif)
    assert "JPEG" in err.value.message  # says what is supported


def test_gif_renamed_to_jpg_is_still_refused_by_content(faces: Path, tmp_path: Path) -> None:
    disguised = tmp_path / "portrait.jpg"
    Image.fromarray(load_image(faces / "source" / "skimage_astronaut.png")).save(disguised, format="GIF")
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        load_image(disguised)


def test_webp_is_supported(faces: Path, tmp_path: Path) -> None:
    rgb = load_image(faces / "source" / "skimage_astronaut.png")
    webp = tmp_path / "portrait.webp"
    Image.fromarray(rgb).save(webp, lossless=True)
    assert np.array_equal(load_image(webp), rgb)



def test_heic_from_a_phone_is_read_upright(faces: Path, tmp_path: Path) -> None:
    # A phone saves HEIC with its orientation; pillow-heif turns the picture upright as it decodes it.
    rgb = load_image(faces / "source" / "skimage_astronaut.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: shown after a quarter turn clockwise
    heic = tmp_path / "IMG_0042.HEIC"
    assert images._register_heif(), "pillow-heif, a dependency, is not installed"
    Image.fromarray(rgb).save(heic, format="HEIF", quality=95, exif=exif.tobytes())
    loaded = load_image(heic)
    assert loaded.shape == (512, 512, 3)
    upright = np.rot90(rgb, -1)  # what a viewer shows
    assert np.abs(loaded.astype(np.float32) - upright).mean() < 4  # lossy HEVC at quality 95
    assert np.abs(loaded.astype(np.float32) - rgb).mean() > 20  # and it is not the picture as stored
    cut = tmp_path / "cut.heic"
    cut.write_bytes(heic.read_bytes()[:3000])
    with pytest.raises(UnreadableImageError, match="could not be decoded"):
        load_image(cut)


def test_heic_without_pillow_heif_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heic = tmp_path / "IMG_0042.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    monkeypatch.setattr(images, "_register_heif", lambda: False)
    with pytest.raises(UnreadableImageError, match=r"pip install pillow-heif"):
        load_image(heic)


def test_avif_is_supported(faces: Path, tmp_path: Path) -> None:
    rgb = load_image(faces / "source" / "skimage_astronaut.png")
    avif = tmp_path / "portrait.avif"
    Image.fromarray(rgb).save(avif, quality=95)
    assert np.abs(load_image(avif).astype(np.float32) - rgb).mean() < 4


def test_sixteen_bit_grey_is_scaled_not_clipped(faces: Path, tmp_path: Path) -> None:
    grey = np.asarray(Image.fromarray(load_image(faces / "source" / "lp_s7.jpg")).convert("L"))
    deep = tmp_path / "scan16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(deep)
    with Image.open(deep) as stored:
        assert stored.mode == "I;16"
    loaded = load_image(deep)
    assert loaded.shape == (*grey.shape, 3)
    assert np.abs(loaded[..., 1].astype(int) - grey).max() <= 1


# --- face analysis ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTOS)
def test_every_shared_photo_has_one_plausible_face(analyzer: FaceAnalyzer, faces: Path, name: str) -> None:
    image = load_image(faces / "source" / name)
    h, w = image.shape[:2]
    face = analyzer.analyze_photo(image, name=name)

    assert face.image_size == (w, h)
    assert face.landmarks.shape == (NUM_LANDMARKS, 3)
    assert face.landmarks.dtype == np.float32
    assert np.isfinite(face.landmarks).all()
    xy = face.landmarks[:, :2]
    assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= w).all()
    assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= h).all()

    assert face.blendshapes.shape == (len(BLENDSHAPE_NAMES),) == (52,)
    assert (face.blendshapes >= 0).all() and (face.blendshapes <= 1).all()

    assert 0.02 * w < face.inter_ocular < 0.6 * w
    assert face.size >= MIN_PHOTO_FACE_PX
    # Upright portraits: the forehead is above the chin, the eyes above the mouth.
    assert face.landmarks[10, 1] < face.landmarks[1, 1] < face.landmarks[152, 1]

    r = face.rotation
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-6)
    assert math.isclose(float(np.linalg.det(r)), 1.0, abs_tol=1e-6)


def test_scaled_analysis_matches_the_resized_image(analyzer: FaceAnalyzer, faces: Path) -> None:
    face = analyzer.analyze_photo(load_image(faces / "source" / "lp_s7.jpg"))
    half = face.scaled(0.5)
    assert half.image_size == (426, 426)
    assert np.allclose(half.landmarks, face.landmarks * 0.5)
    assert math.isclose(half.inter_ocular, face.inter_ocular / 2, rel_tol=1e-5)


def test_flat_grey_image_has_no_face(analyzer: FaceAnalyzer) -> None:
    with pytest.raises(NoFaceError, match="no face found in grey card") as err:
        analyzer.analyze_photo(np.full((480, 640, 3), 128, np.uint8), name="grey card")
    assert err.value.exit_code == 3


def test_landscape_without_a_face_has_no_face(analyzer: FaceAnalyzer) -> None:
    from skimage import data

    with pytest.raises(NoFaceError):
        analyzer.analyze_photo(np.ascontiguousarray(data.coffee()))
    rng = np.random.default_rng(7)
    with pytest.raises(NoFaceError):
        analyzer.analyze_photo(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))


def test_two_portraits_side_by_side_are_multiple_faces(
    analyzer: FaceAnalyzer, two_face_photo: np.ndarray
) -> None:
    with pytest.raises(MultipleFacesError, match="2 faces found") as err:
        analyzer.analyze_photo(two_face_photo)
    assert err.value.count == 2
    assert "allow" in err.value.message  # tells the user the way out


def test_allow_multiple_returns_the_largest_face(analyzer: FaceAnalyzer, two_face_photo: np.ndarray) -> None:
    found = analyzer.detect_all(two_face_photo)
    assert len(found) == 2
    assert found[0].size > found[1].size
    face = analyzer.analyze_photo(two_face_photo, allow_multiple=True)
    assert face.size == pytest.approx(found[0].size)
    half = two_face_photo.shape[1] / 2
    # The larger face is the astronaut, on the left; the other one lies wholly on the right.
    assert face.bbox[2] < half
    assert found[1].bbox[0] > half


def test_portrait_shrunk_into_a_large_canvas_is_refused(
    analyzer: FaceAnalyzer, photo_faces: dict[str, Any]
) -> None:
    image, face = photo_faces["lp_s7.jpg"]
    small = face_crop(image, face, side=80, margin=1.6)
    canvas = np.full((640, 640, 3), 180, np.uint8)
    canvas[280:360, 280:360] = small
    # Depending on the detector, a face this small is either missed or found and refused as too small.
    with pytest.raises((NoFaceError, FaceTooSmallError)):
        analyzer.analyze_photo(canvas)


@pytest.fixture(scope="module")
def tiny_face(photo_faces: dict[str, Any]) -> np.ndarray:
    image, face = photo_faces["lp_d8.jpg"]
    return face_crop(image, face, side=96, margin=1.8)  # the face fills half of a 96-pixel image


def test_detected_but_small_face_is_too_small(analyzer: FaceAnalyzer, tiny_face: np.ndarray) -> None:
    found = analyzer.detect_all(tiny_face)
    assert len(found) == 1
    assert 20 < found[0].size < MIN_PHOTO_FACE_PX
    with pytest.raises(FaceTooSmallError, match=f"at least {MIN_PHOTO_FACE_PX}") as err:
        analyzer.analyze_photo(tiny_face)
    assert f"{found[0].size:.0f} pixels" in err.value.message


def test_min_face_px_is_honoured(analyzer: FaceAnalyzer, tiny_face: np.ndarray) -> None:
    size = analyzer.detect_all(tiny_face)[0].size
    accepted = analyzer.analyze_photo(tiny_face, min_face_px=math.floor(size))
    assert accepted.size == pytest.approx(size)
    with pytest.raises(FaceTooSmallError, match=f"at least {math.ceil(size) + 1}"):
        analyzer.analyze_photo(tiny_face, min_face_px=math.ceil(size) + 1)


def test_closed_analyzer_refuses_work() -> None:
    from xp_sdk.errors import EngineError

    analyzer = FaceAnalyzer()
    analyzer.close()
    analyzer.close()  # closing twice is harmless
    with pytest.raises(EngineError, match="closed"):
        analyzer.detect_all(np.zeros((128, 128, 3), np.uint8))


# --- model pinning ------------------------------------------------------------------------------------------


def test_pinned_model_resolves_and_matches_its_hash() -> None:
    path = resolve_model(FACE_LANDMARKER)
    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FACE_LANDMARKER.sha256


def test_wrong_model_file_is_refused_with_both_hashes(faces: Path, tmp_path: Path) -> None:
    impostor = tmp_path / "face_landmarker.task"
    shutil.copyfile(faces / "source" / "lp_d8.jpg", impostor)
    actual = hashlib.sha256(impostor.read_bytes()).hexdigest()
    with pytest.raises(ModelHashMismatchError) as err:
        resolve_model(FACE_LANDMARKER, impostor)
    assert actual in err.value.message
    assert FACE_LANDMARKER.sha256 in err.value.message
    assert err.value.exit_code == 4


def test_wrong_model_from_the_environment_stops_the_analyzer(
    faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = tmp_path / "swapped.task"
    shutil.copyfile(faces / "manifest.json", impostor)
    monkeypatch.setenv(FACE_LANDMARKER.env_override, str(impostor))
    with pytest.raises(ModelHashMismatchError):
        FaceAnalyzer()


def test_missing_model_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=FACE_LANDMARKER.env_override) as err:
        resolve_model(FACE_LANDMARKER, tmp_path / "absent.task")
    assert "absent.task" in err.value.message
