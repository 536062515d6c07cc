"""Where a generation keeps its temporaries: a folder of its own under the deployment's home
(``<home>/work/<generation id>/``, 0700), never beside the output, so a process killed mid-way cannot leave a
complete, signed video where a user would take it for published.

The generation holds an exclusive lock on its folder (``flock`` on the folder itself) from before the folder has
its name until it is removed, so a sweep never removes the folder of a generation still running, in this process
or another. The sweep (``sweep_work_folders``: ``Deployment.open``, server start-up) removes the folders no live
process holds whose generation is not "requested" in the audit log (finished, or unknown to it); the folders of
generations left "requested" stay for ``xp audit abandoned --close``, which removes them as it closes them
(``remove_work_folders``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xp_sdk.errors import HomeError, InvalidInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; folders are then swept by generation status alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_CREATING_PREFIX = ".new-"
STALE_CREATION_S = 3600.0
"""A hidden folder that never got its generation's name (the process died between its two first system calls) is
removed once it is this old and unlocked."""
REQUESTED = "requested"


@contextmanager
def generation_workspace(work_dir: str | os.PathLike[str] | None, generation_id: str) -> Iterator[Path]:
    """A new, locked folder ``<work_dir>/<generation_id>/`` (0700) for one generation's temporaries, removed with
    everything in it on exit. With ``work_dir`` None (``generate`` called outside a deployment) it is a private
    folder in the system's temporary directory instead."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix=f"xp-{generation_id}-") as private:
            yield Path(private)
        return
    root = Path(work_dir)
    folder = root / generation_id
    creating = root / f"{_CREATING_PREFIX}{generation_id}.{secrets.token_hex(4)}"
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        creating.mkdir(mode=0o700)
        handle = _open_folder(creating)
    except OSError as exc:
        raise HomeError(f"cannot make a work folder in {root}: {exc.strerror or exc}") from exc
    try:
        _lock(handle, blocking=True)
        try:
            os.rename(creating, folder)  # named only once locked: a sweep never sees it unlocked while alive
        except OSError as exc:
            shutil.rmtree(creating, ignore_errors=True)
            raise HomeError(f"cannot make the work folder {folder}: {exc.strerror or exc}") from exc
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(handle)


def sweep_work_folders(work_dir: str | os.PathLike[str], status: Callable[[str], str | None]) -> list[str]:
    """Remove the work folders that no live process holds and whose generation's ``status`` (from the audit log;
    None when it knows no such generation) is not "requested"; the ids removed. Best effort: a folder that cannot
    be judged or removed is left, and logged."""
    removed: list[str] = []
    for entry in _entries(Path(work_dir)):
        if entry.name.startswith(_CREATING_PREFIX):
            _remove_stale_creation(entry)
            continue
        try:
            with _held(entry) as held:
                if held and status(entry.name) != REQUESTED:
                    shutil.rmtree(entry)
                    removed.append(entry.name)
        except Exception:
            log.warning("work folder %s: left in place, it could not be swept", entry, exc_info=True)
    return removed


def remove_work_folders(work_dir: str | os.PathLike[str], generation_ids: Iterable[str]) -> list[str]:
    """Remove the work folders of ``generation_ids`` (generations just closed as abandoned) that no live process
    holds; the ids removed."""
    removed: list[str] = []
    for generation_id in generation_ids:
        folder = Path(work_dir) / generation_id
        if folder.name != generation_id or not folder.is_dir():  # not a bare name, or nothing left
            continue
        try:
            with _held(folder) as held:
                if held:
                    shutil.rmtree(folder)
                    removed.append(generation_id)
        except OSError:
            log.warning("work folder %s: left in place, it could not be removed", folder, exc_info=True)
    return removed


def publish(prepared: Path, out: Path) -> None:
    """Move ``prepared`` (from ``prepare_publication``) to ``out`` by one atomic rename; across filesystems (a
    rename the system refuses), by a copy to a hidden temporary beside ``out`` renamed into place, the temporary
    removed on any failure."""
    try:
        os.replace(prepared, out)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        beside = copy_beside(prepared, out)
        try:
            os.replace(beside, out)
        except BaseException:
            beside.unlink(missing_ok=True)
            raise


_FOLDER_REFUSES = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT})
"""Errors writing beside the output that say the output's folder will not take it: the caller's to fix."""


def prepare_publication(finished: Path, out: Path) -> Path:
    """What ``publish`` will rename to ``out``: ``finished`` itself when it is on the output's filesystem (once the
    folder is shown to take a file), else its copy in a hidden temporary beside ``out``; both before the
    generation is recorded "completed", so a read-only folder, a full disk or a failing copy fails the
    generation instead of leaving "completed" without an output."""
    if os.stat(finished.parent).st_dev == os.stat(out.parent).st_dev:
        _check_writable(out)
        return finished
    return copy_beside(finished, out)


def _check_writable(out: Path) -> None:
    """Prove now, before "completed" is recorded, that ``out``'s folder takes a new file (a rename that failed
    afterwards would leave "completed" with no output): an empty file made and removed. Root passes
    ``os.access`` on a read-only mount; only writing tells. A kill in between leaves an empty file, no video."""
    probe = out.with_name(f".xp-publish.{secrets.token_hex(6)}.probe")
    try:
        probe.open("xb").close()
    except OSError as exc:
        raise InvalidInputError(f"cannot write the output in {out.parent}: {exc.strerror or exc}") from exc
    probe.unlink(missing_ok=True)


def copy_beside(source: Path, out: Path) -> Path:
    """A copy of ``source`` (mode included, flushed to disk) in a new hidden file beside ``out``; on any failure
    nothing is left."""
    beside = out.with_name(f".xp-publish.{secrets.token_hex(6)}.part")
    with source.open("rb") as reading:
        try:
            with beside.open("xb") as writing:
                shutil.copyfileobj(reading, writing, 1 << 20)
                writing.flush()
                os.fsync(writing.fileno())
            shutil.copymode(source, beside)
        except OSError as exc:
            beside.unlink(missing_ok=True)
            if exc.errno in _FOLDER_REFUSES:
                # A read-only or full folder, seen only now that it is written to (root passes os.access).
                raise InvalidInputError(f"cannot write the output in {out.parent}: {exc.strerror or exc}") from exc
            raise
        except BaseException:
            beside.unlink(missing_ok=True)
            raise
    return beside


def _entries(root: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(root) if entry.is_dir(follow_symlinks=False)]
    except OSError:  # no work folder yet (nothing to sweep), or one this process may not read
        return []


def _remove_stale_creation(entry: Path) -> None:
    with contextlib.suppress(OSError), _held(entry) as held:
        if held and time.time() - entry.stat().st_mtime > STALE_CREATION_S:
            shutil.rmtree(entry)


@contextmanager
def _held(folder: Path) -> Iterator[bool]:
    """Whether this process could take ``folder``'s lock (no live generation holds it), holding it meanwhile."""
    try:
        handle = _open_folder(folder)
    except FileNotFoundError:
        yield False
        return
    try:
        yield _lock(handle, blocking=False)
    finally:
        os.close(handle)


def _open_folder(folder: Path) -> int:
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _lock(handle: int, *, blocking: bool) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
