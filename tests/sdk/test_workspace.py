"""Work folders: locked while their generation runs, swept when it is over, and outputs published by one rename
(across filesystems, by a hidden copy beside the output that nothing leaves behind)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xp_sdk.errors import HomeError
from xp_sdk.workspace import (
    STALE_CREATION_S,
    copy_beside,
    generation_workspace,
    prepare_publication,
    publish,
    remove_work_folders,
    sweep_work_folders,
)

STATUSES = {"aaaa000000000001": "completed", "aaaa000000000002": "failed", "aaaa000000000003": "requested"}


def status(generation_id: str) -> str | None:
    return STATUSES.get(generation_id)


def leftover(work: Path, generation_id: str) -> Path:
    """The folder a killed generation leaves: named, full, and held by nobody."""
    folder = work / generation_id
    folder.mkdir(parents=True)
    (folder / "signed.mp4").write_bytes(b"a complete, signed video")
    return folder


def test_a_generation_folder_is_private_and_gone_afterwards(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with generation_workspace(work, "aaaa000000000009") as folder:
        assert folder == work / "aaaa000000000009"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(work.stat().st_mode) == 0o700
        (folder / "unsigned.mp4").write_bytes(b"frames")
    assert list(work.iterdir()) == []
    with pytest.raises(RuntimeError), generation_workspace(work, "aaaa000000000009") as folder:
        (folder / "signed.mp4").write_bytes(b"frames")
        raise RuntimeError("the generation failed")
    assert list(work.iterdir()) == []


def test_without_a_work_dir_the_folder_is_a_private_temporary(tmp_path: Path) -> None:
    with generation_workspace(None, "aaaa000000000009") as folder:
        assert folder.is_dir() and Path(tempfile.gettempdir()) in folder.parents
    assert not folder.exists()


def test_a_work_dir_that_cannot_be_made_is_a_home_error(tmp_path: Path) -> None:
    (tmp_path / "work").write_bytes(b"a file where the folder should be")
    with pytest.raises(HomeError, match="cannot make a work folder"), generation_workspace(tmp_path / "work", "a1"):
        pass


def test_the_sweep_removes_finished_and_unknown_generations_and_keeps_requested_ones(tmp_path: Path) -> None:
    work = tmp_path / "work"
    for generation_id in [*STATUSES, "bbbb000000000000"]:
        leftover(work, generation_id)
    removed = sweep_work_folders(work, status)
    assert sorted(removed) == ["aaaa000000000001", "aaaa000000000002", "bbbb000000000000"]
    assert [p.name for p in work.iterdir()] == ["aaaa000000000003"]
    assert sweep_work_folders(tmp_path / "no-such-folder", status) == []


def test_the_sweep_never_touches_a_running_generation(tmp_path: Path) -> None:
    """A generation that has finished in the log but is still publishing holds its folder: it stays."""
    work = tmp_path / "work"
    with generation_workspace(work, "aaaa000000000001") as running:
        (running / "signed.mp4").write_bytes(b"about to be renamed to the output")
        swept = [False]

        def sweep_from_another_thread() -> None:  # another open file description: flock excludes it as another process
            swept[0] = bool(sweep_work_folders(work, status))

        thread = threading.Thread(target=sweep_from_another_thread)
        thread.start()
        thread.join()
        assert swept == [False] and (running / "signed.mp4").is_file()
        assert remove_work_folders(work, ["aaaa000000000001"]) == []
        assert (running / "signed.mp4").is_file()
    assert list(work.iterdir()) == []


def test_the_sweep_survives_a_status_that_fails(tmp_path: Path) -> None:
    work = tmp_path / "work"
    leftover(work, "aaaa000000000001")

    def broken(generation_id: str) -> str | None:
        raise RuntimeError("the audit store is down")

    assert sweep_work_folders(work, broken) == []
    assert (work / "aaaa000000000001").is_dir()


def test_a_half_made_folder_is_removed_only_once_stale(tmp_path: Path) -> None:
    work = tmp_path / "work"
    half = work / ".new-aaaa000000000001.0123abcd"
    half.mkdir(parents=True)
    sweep_work_folders(work, status)
    assert half.is_dir()
    old = time.time() - STALE_CREATION_S - 60
    os.utime(half, (old, old))
    sweep_work_folders(work, status)
    assert not half.exists()


def test_remove_work_folders_removes_only_the_named_bare_ids(tmp_path: Path) -> None:
    work = tmp_path / "work"
    leftover(work, "aaaa000000000003")
    leftover(work, "aaaa000000000004")
    (tmp_path / "outside").mkdir()
    assert remove_work_folders(work, ["aaaa000000000003", "../outside", "missing0000000000"]) == ["aaaa000000000003"]
    assert [p.name for p in work.iterdir()] == ["aaaa000000000004"] and (tmp_path / "outside").is_dir()


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path (tmpfs /dev/shm), where a rename from tmp_path fails."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to publish across")
    folder = Path(tempfile.mkdtemp(prefix="xp-publish-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_publishing_on_one_filesystem_is_a_rename(tmp_path: Path) -> None:
    finished = tmp_path / "work" / "signed.mp4"
    finished.parent.mkdir()
    finished.write_bytes(b"signed")
    out = tmp_path / "clip.mp4"
    prepared = prepare_publication(finished, out)
    assert prepared == finished
    inode = finished.stat().st_ino
    publish(prepared, out)
    assert out.read_bytes() == b"signed" and out.stat().st_ino == inode and not finished.exists()


def test_publishing_across_filesystems_copies_beside_then_renames(tmp_path: Path, other_filesystem: Path) -> None:
    finished = tmp_path / "signed.mp4"
    finished.write_bytes(b"signed" * 1000)
    finished.chmod(0o644)
    out = other_filesystem / "clip.mp4"
    prepared = prepare_publication(finished, out)
    assert prepared.parent == other_filesystem and prepared.name.startswith(".")
    publish(prepared, out)
    assert out.read_bytes() == b"signed" * 1000 and stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in other_filesystem.iterdir()] == ["clip.mp4"]
    # publish() alone, handed the finished file, falls back to the same copy when the rename is refused.
    finished.write_bytes(b"second")
    publish(finished, out)
    assert out.read_bytes() == b"second" and [p.name for p in other_filesystem.iterdir()] == ["clip.mp4"]


def test_a_copy_that_fails_leaves_nothing_beside_the_output(tmp_path: Path, other_filesystem: Path) -> None:
    with pytest.raises(FileNotFoundError):
        copy_beside(tmp_path / "missing.mp4", other_filesystem / "clip.mp4")
    # A source that opens but cannot be read (address 0 of this process's memory): the copy beside has begun.
    with pytest.raises(OSError):
        copy_beside(Path("/proc/self/mem"), other_filesystem / "clip.mp4")
    assert list(other_filesystem.iterdir()) == []
