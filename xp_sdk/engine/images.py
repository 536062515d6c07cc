"""Loading portrait photos safely: format, orientation, and size limits checked before any pixel work."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xp_sdk.engine.paths import as_file_path
from xp_sdk.errors import ImageTooLargeError, ImageTooSmallError, UnreadableImageError, UnsupportedFormatError

MIN_IMAGE_SIDE = 64
# 36 megapixels admits every phone and DSLR photo in common use (6000×6000) and refuses decompression bombs
# and images whose decoded pixels alone would take gigabytes.
MAX_IMAGE_PIXELS = 36_000_000
# HEIF is what a phone camera saves by default (HEIC), read through pillow-heif; AVIF Pillow reads itself.
SUPPORTED_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO", "HEIF", "AVIF"})
_SIXTEEN_BIT_GREY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


@functools.cache
def _register_heif() -> bool:
    """Teach Pillow to open HEIC/HEIF photos, once; False where pillow-heif is not installed."""
    if importlib.util.find_spec("pillow_heif") is None:
        return False
    import pillow_heif

    pillow_heif.register_heif_opener()
    return True


def _heic_hint(file: Path) -> str:
    if file.suffix.lower() in (".heic", ".heif", ".hif") and not _register_heif():
        return "; HEIC photos need pillow-heif (pip install pillow-heif)"
    return ""


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a photo as an RGB ``uint8`` array (H, W, 3), with EXIF orientation applied."""
    file = as_file_path(path, "source photo")
    if not file.is_file():
        raise UnreadableImageError(f"source photo {file} does not exist or is not a file")
    if file.stat().st_size == 0:
        raise UnreadableImageError(f"source photo {file} is empty (0 bytes)")
    _register_heif()
    try:
        with Image.open(file) as img:
            fmt = img.format or "unknown"
            if fmt not in SUPPORTED_IMAGE_FORMATS:
                raise UnsupportedFormatError(
                    f"source photo {file} is in format {fmt}; supported: {', '.join(sorted(SUPPORTED_IMAGE_FORMATS))}"
                )
            width, height = img.size
            _check_size(file, width, height, max_pixels)
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = _eight_bit(upright).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"source photo {file} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImageError(
            f"{file} is not an image that can be read (corrupt or not a photo){_heic_hint(file)}"
        ) from exc
    except (OSError, ValueError) as exc:  # pillow-heif raises ValueError for a damaged file
        raise UnreadableImageError(f"source photo {file} could not be decoded: {exc}") from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit grey (scanners, raw converters) scaled to 8 bits: Pillow's own conversion clips it, and a portrait
    comes out white."""
    if img.mode not in _SIXTEEN_BIT_GREY:
        return img
    values = np.asarray(img, dtype=np.float64)
    # Mode "I" (32-bit) also holds 8-bit grey from some TIFF writers; only a 16-bit range is scaled down.
    scale = 257.0 if img.mode != "I" or values.max(initial=0.0) > 255.0 else 1.0
    return Image.fromarray(np.clip(np.round(values / scale), 0, 255).astype(np.uint8), mode="L")


def check_image_array(image: np.ndarray, *, max_pixels: int = MAX_IMAGE_PIXELS, name: str = "image") -> np.ndarray:
    """Validate an in-memory image and return it as contiguous RGB ``uint8``."""
    if not isinstance(image, np.ndarray):
        raise UnreadableImageError(f"{name} must be a numpy array (H×W×3 RGB uint8), got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise UnreadableImageError(f"{name} must be an H×W×3 RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise UnreadableImageError(f"{name} must be uint8, got {image.dtype}")
    _check_size(Path(name), image.shape[1], image.shape[0], max_pixels)
    return np.ascontiguousarray(image[:, :, :3])


def _check_size(file: Path, width: int, height: int, max_pixels: int) -> None:
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"{file} is {width}×{height} pixels; a portrait needs at least {MIN_IMAGE_SIDE} pixels on each side"
        )
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{file} is {width}×{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
            f"{max_pixels / 1e6:.0f} MP. Downscale the photo first (the output is capped at a smaller size anyway)"
        )


def pixels_at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The colours of ``image`` at the (x, y) ``points``, rounded to the nearest pixel and clamped to the image."""
    h, w = image.shape[:2]
    xy = np.clip(np.round(points).astype(int), 0, [w - 1, h - 1])
    pixels: np.ndarray = image[xy[:, 1], xy[:, 0]].astype(np.float64)
    return pixels


def padded_box(
    points: np.ndarray, shape: tuple[int, ...], pad: int, min_size: tuple[int, int] = (3, 2)
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the pixels around ``points`` with ``pad`` to spare, clipped to an image of ``shape``;
    None when less than ``min_size`` (width, height) of it lies inside the image."""
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)
    if x1 - x0 < min_size[0] or y1 - y0 < min_size[1]:
        return None
    return x0, y0, x1, y1
