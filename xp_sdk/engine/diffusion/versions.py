"""The diffusers versions the engine has run with, checked before any weights are read.

diffusers 0.30.3 (inside the range the project first allowed) crashes in the AnimateDiff motion module's
attention (a shape mismatch on the first window); 0.31.0, 0.32.2, 0.33.1, 0.35.2 and 0.42.1 ran the engine's
motion-adapter path on tiny components (tests/engine/diffusion/test_versions.py runs it on whatever is installed).
Versions after the newest one tried are refused too: diffusers changes its model classes between minor versions.
"""

from __future__ import annotations

import re
from importlib import metadata

from xp_sdk.errors import EngineError

OLDEST = (0, 31, 0)
NEWEST_TRIED = (0, 42, 1)
SUPPORTED = "diffusers>=0.31,<0.43"


def parse_version(text: str) -> tuple[int, int, int]:
    """``0.42.1``, ``0.43.0.dev0`` → (major, minor, micro); a pre-release counts as its release."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        raise EngineError(f"cannot read the diffusers version {text!r}; install {SUPPORTED!r}")
    major, minor, micro = match.groups()
    return int(major), int(minor), int(micro or 0)


def is_supported(version: str) -> bool:
    parsed = parse_version(version)
    return parsed >= OLDEST and parsed[:2] <= NEWEST_TRIED[:2]


def require_supported_diffusers(version: str | None = None) -> str:
    """The installed diffusers version, or an error that says which to install."""
    if version is None:
        try:
            version = metadata.version("diffusers")
        except metadata.PackageNotFoundError as exc:
            raise EngineError(
                f"the diffusion engine needs diffusers, which is not installed: pip install '{SUPPORTED}'"
            ) from exc
    if not is_supported(version):
        raise EngineError(
            f"diffusers {version} is not a version the diffusion engine runs with (0.30.3 crashes in the motion "
            f"module; versions after {'.'.join(map(str, NEWEST_TRIED))} are untried): pip install '{SUPPORTED}'"
        )
    return version
