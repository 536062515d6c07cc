"""Model files the engine uses, each pinned by sha256.

Models ship in this package (``model_files/``, found with ``importlib.util.find_spec`` so nothing is imported to
find them; sources and licences in ``model_files/README.md``) or come from a path the user gives. Nothing is ever
downloaded. A file whose hash differs from the pin is refused: a swapped model could silently change what the
engine does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from xp_sdk.errors import ModelHashMismatchError, ModelNotFoundError

_SHIPPED_WITH = "xp_sdk.engine"
"""The package whose ``model_files/`` folder holds the pinned files."""


@dataclass(frozen=True)
class PinnedModel:
    name: str
    package: str
    relative_path: str
    sha256: str
    env_override: str

    def describe(self) -> str:
        return f"{self.name} (package '{self.package}', file {self.relative_path}, sha256 {self.sha256[:12]}…)"


FACE_LANDMARKER = PinnedModel(
    name="face_landmarker",
    package=_SHIPPED_WITH,
    relative_path="model_files/face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    env_override="XP_FACE_LANDMARKER_MODEL",
)

FACE_DETECTOR_YUNET = PinnedModel(
    name="yunet",
    package=_SHIPPED_WITH,
    relative_path="model_files/face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    env_override="XP_YUNET_MODEL",
)

FACE_RECOGNIZER_SFACE = PinnedModel(
    name="sface",
    package=_SHIPPED_WITH,
    relative_path="model_files/face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    env_override="XP_SFACE_MODEL",
)

ALL_MODELS = (FACE_LANDMARKER, FACE_DETECTOR_YUNET, FACE_RECOGNIZER_SFACE)

_verified: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def resolve_model(model: PinnedModel, path: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of ``model``'s file after checking its sha256 against the pin.

    Looks at ``path`` first, then the model's ``XP_*_MODEL`` environment variable, then the file this package
    ships.
    """
    explicit = path if path is not None else os.environ.get(model.env_override)
    if explicit is not None:
        candidate = Path(explicit)
    else:
        package_dir = _package_dir(model.package)
        if package_dir is None:
            raise ModelNotFoundError(
                f"model {model.describe()} not found: reinstall xp-sdk "
                f"or set {model.env_override} to a local copy of the file"
            )
        candidate = package_dir / model.relative_path
    if not candidate.is_file():
        raise ModelNotFoundError(
            f"model file {candidate} does not exist; expected {model.describe()}; "
            f"set {model.env_override} to the file's path"
        )
    stat = candidate.stat()
    key = (str(candidate.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _verified.get(key) or sha256_file(candidate)
    if actual != model.sha256:
        raise ModelHashMismatchError(
            f"model file {candidate} has sha256 {actual}, but {model.name} is pinned to {model.sha256}; "
            "refusing to load a file that is not the pinned model"
        )
    _verified[key] = actual
    return candidate
