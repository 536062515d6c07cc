"""File paths given to the engine: a str or an os.PathLike of str, anything else an input error (not the
TypeError ``Path`` raises)."""

from __future__ import annotations

import os
from pathlib import Path

from xp_sdk.errors import InvalidInputError


def as_file_path(value: object, what: str, *, also: str = "") -> Path:
    """``value`` as a Path when it names a file (a str or an os.PathLike of str); else an input error naming
    ``what`` (and ``also``, what else would have been accepted)."""
    if isinstance(value, str | os.PathLike):
        name = os.fspath(value)
        if isinstance(name, str):
            if "\0" in name:
                raise InvalidInputError(f"{what} path {name!r} contains a NUL character")
            return Path(name)
    alternatives = f" or {also}" if also else ""
    raise InvalidInputError(f"{what} must be a file path{alternatives}, got {type(value).__name__}")


__all__ = ["as_file_path"]
