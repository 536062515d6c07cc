"""Where a generation may publish its video: checked before anything is requested, so a path that cannot take the
output is refused up front instead of failing (or overwriting an input) after the work is done."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from xp_sdk.errors import InvalidInputError

OUTPUT_SUFFIX = ".mp4"


def check_output_path(out: str | os.PathLike[str], *, inputs: Sequence[str | os.PathLike[str] | None]) -> Path:
    """``out`` as a ``Path`` once it can receive a published video; ``InvalidInputError`` saying why not when it
    names a folder or anything but a regular file, is one of ``inputs`` (the source photo, the driving video) by
    any spelling, link or hard link, lacks the ``.mp4`` suffix, or sits in a folder that is missing or that this
    process may not write into."""
    text = os.fspath(out)
    if not text or "\0" in text:
        raise InvalidInputError(f"the output path {text!r} is empty or holds a NUL character")
    path = Path(text)
    try:
        _check(path, [Path(os.fspath(given)) for given in inputs if given is not None])
    except OSError as exc:  # a path too long for the system, a folder that may not be searched
        raise InvalidInputError(f"cannot use {path} as the output: {exc.strerror or exc}") from None
    return path


def _check(path: Path, inputs: list[Path]) -> None:
    name_max = _name_max(path.parent)
    if len(os.fsencode(path.name)) > name_max:
        raise InvalidInputError(f"the output file name is longer than the {name_max} bytes its folder allows")
    if path.is_dir():
        raise InvalidInputError(f"the output {path} is a folder; name the .mp4 file to write inside it")
    if path.exists() and not path.is_file():  # a device, a pipe or a socket: never replaced by a video
        raise InvalidInputError(f"the output {path} exists and is not a regular file")
    if path.suffix.lower() != OUTPUT_SUFFIX:
        raise InvalidInputError(f"the output {path} must end in {OUTPUT_SUFFIX}")
    for given in inputs:
        if _same_file(path, given):
            raise InvalidInputError(
                f"the output {path} is the input {given}: writing it would destroy the input; choose another path"
            )
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(f"the folder {folder} for the output does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"cannot write into the folder {folder} (read-only or not yours); choose another")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet): compare where they would be
        try:
            return a.resolve(strict=False) == b.resolve(strict=False)
        except RuntimeError:  # a symbolic link loop names no file at all
            return False


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or the name is unknown
        return 255
