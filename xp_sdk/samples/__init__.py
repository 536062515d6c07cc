"""Sample media that ships with xp-sdk, so the demo and the README's walk-through need no file of their own.

``astronaut.jpg``: NASA's portrait of astronaut Eileen Collins (public domain), the 512×512 picture scikit-image
ships as ``skimage.data.astronaut()``, saved as JPEG (quality 95).

    python -m xp_sdk.samples photo.jpg      # writes the portrait to photo.jpg
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xp_sdk.errors import InvalidInputError

ASTRONAUT = Path(__file__).resolve().with_name("astronaut.jpg")
"""The astronaut portrait's file."""


def astronaut() -> npt.NDArray[np.uint8]:
    """The astronaut portrait as RGB pixels (512×512×3, uint8)."""
    from PIL import Image

    with Image.open(ASTRONAUT) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def write_astronaut(path: str | Path) -> Path:
    """Copy the astronaut portrait to ``path`` (a new file; an existing one is left alone) and return it."""
    target = Path(path)
    if target.exists():
        raise InvalidInputError(f"{target} already exists; give a new file name")
    shutil.copyfile(ASTRONAUT, target)
    return target
