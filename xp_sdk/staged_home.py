"""``xp init`` all or nothing: the new home is built in a hidden folder beside it and put in place only once
complete, so a run that is killed or fails leaves no half-made home that a second ``xp init`` would refuse.

Where the home does not exist yet, or is an empty folder, the built folder becomes it by one ``rename``. Where it
already holds files an operator put there before ``xp init`` (``config.json``, ``models.toml``, ``policies/``), the
built files are moved in one by one, the audit log key last: that key is what makes a folder an initialized home.
A journal beside them lists what was moved in, so a run killed part way is undone by the next one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xp_sdk.errors import AlreadyInitializedError, HomeError
from xp_sdk.home import Home

JOURNAL = ".xp-init-journal.json"
STALE_STAGING_S = 3600.0
"""A staging folder this old is what a killed ``xp init`` left (a run takes seconds): the next run removes it."""
_REPLACEABLE = frozenset({"config.json"})
"""Files a staged home may replace in an existing folder: the settings, which ``init`` read and extended."""


@contextmanager
def staged_home(target: Home) -> Iterator[Home]:
    """A new, empty home (0700) beside ``target`` to build in. When the block ends normally, what it holds becomes
    ``target``'s (see the module's docstring); when it raises, or the process dies, ``target`` is as it was."""
    undo_interrupted_merge(target)
    parent = target.root.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(target)
        staging = Home(Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=parent)))
    except OSError as exc:
        raise HomeError(f"cannot make a home beside {target.root}: {exc.strerror or exc}") from exc
    try:
        yield staging
        _put_in_place(staging, target)
    finally:
        shutil.rmtree(staging.root, ignore_errors=True)


def undo_interrupted_merge(target: Home) -> None:
    """Remove what a killed merge moved into ``target`` (its journal lists it), unless the audit log key arrived
    too: then the home is complete and only the journal is left over."""
    journal = target.root / JOURNAL
    try:
        moved = json.loads(journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise HomeError(f"cannot read {journal}, left by an interrupted `xp init`: {exc}") from exc
    if not target.audit_key_path.exists():
        for relative in reversed(moved):
            _remove(target.root / relative)
    journal.unlink(missing_ok=True)


def _put_in_place(staging: Home, target: Home) -> None:
    if not target.root.exists() or _is_empty_folder(target.root):
        try:
            os.rename(staging.root, target.root)  # onto an empty folder, rename replaces it in one step
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise HomeError(f"cannot put the new home in place at {target.root}: {exc.strerror}") from exc
            # something arrived there meanwhile: merge, which refuses to overwrite what is not ours
    _merge(staging, target)


def _merge(staging: Home, target: Home) -> None:
    marker = target.audit_key_path.relative_to(target.root)
    held_back = Path(".audit-key-comes-last")
    os.rename(staging.root / marker, staging.root / held_back)  # so no folder moved in carries it early
    moves = [m for m in _plan(staging.root, target.root, Path()) if m != held_back]
    conflicts = [m for m in moves if (target.root / m).exists() and str(m) not in _REPLACEABLE]
    if conflicts or target.audit_key_path.exists():
        raise AlreadyInitializedError(
            f"{target.root} already holds {', '.join(map(str, conflicts or [marker]))}: another `xp init` may have "
            "made it; use it, or point XP_HOME at a new folder"
        )
    journal = target.root / JOURNAL
    created = [str(m) for m in moves if not (target.root / m).exists()]
    _write_json(journal, created)
    try:
        for move in moves:
            (target.root / move).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _move(staging.root / move, target.root / move, replace=str(move) in _REPLACEABLE)
        # The mark of an initialized home comes last.
        _move(staging.root / held_back, target.root / marker, replace=False)
    except BaseException as exc:
        undo_interrupted_merge(target)
        if isinstance(exc, OSError) and exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise AlreadyInitializedError(f"{target.root} was initialized by another `xp init` meanwhile") from exc
        if isinstance(exc, OSError):
            raise HomeError(f"cannot move the new home into {target.root}: {exc.strerror or exc}") from exc
        raise
    journal.unlink()
    os.chmod(target.root, 0o700)  # an initialized home is private, whoever made the folder


def _move(source: Path, destination: Path, *, replace: bool) -> None:
    """Move without overwriting (unless ``replace``): a file another run put there meanwhile stays, and this run
    fails with ``FileExistsError``."""
    if replace:
        os.replace(source, destination)
    elif source.is_dir():
        os.rename(source, destination)  # refused onto a folder that is not empty, or onto a file
    else:
        os.link(source, destination)
        os.unlink(source)


def _plan(staged: Path, existing: Path, relative: Path) -> list[Path]:
    """What to move from ``staged`` into ``existing``: whole folders where ``existing`` has none of that name,
    else their contents, one by one."""
    moves: list[Path] = []
    for entry in sorted(staged.iterdir()):
        inside = relative / entry.name
        if entry.is_dir() and (existing / entry.name).is_dir():
            moves += _plan(entry, existing / entry.name, inside)
        else:
            moves.append(inside)
    return moves


def _remove_stale_staging(target: Home) -> None:
    for folder in target.root.parent.glob(f"{_staging_prefix(target)}*"):
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(folder)


def _staging_prefix(target: Home) -> str:
    return f".{target.root.name}.init-"


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_json(path: Path, value: object) -> None:
    temporary = path.with_name(f"{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
