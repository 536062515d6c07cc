"""``check_output_path``: an output that cannot be published, or would overwrite an input, is refused up front."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from xp_sdk.errors import InvalidInputError
from xp_sdk.output_path import check_output_path


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A source photo and a driving video, as files with content that must survive."""
    photo, video = tmp_path / "in" / "photo.jpg", tmp_path / "in" / "driving.mp4"
    photo.parent.mkdir()
    photo.write_bytes(b"photo bytes")
    video.write_bytes(b"video bytes")
    return photo, video


def test_a_new_mp4_in_a_writable_folder_is_accepted(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    out = tmp_path / "clip.mp4"
    assert check_output_path(out, inputs=[*inputs, None]) == out
    assert check_output_path(str(tmp_path / "CLIP.MP4"), inputs=inputs) == tmp_path / "CLIP.MP4"
    out.write_bytes(b"an earlier output")  # replacing an earlier output (not an input) is allowed
    assert check_output_path(out, inputs=inputs) == out


def test_an_existing_folder_is_refused(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    with pytest.raises(InvalidInputError, match="is a folder"):
        check_output_path(folder, inputs=inputs)
    with pytest.raises(InvalidInputError, match="is a folder"):
        check_output_path(tmp_path, inputs=inputs)
    link = tmp_path / "link.mp4"
    link.symlink_to(folder)
    with pytest.raises(InvalidInputError, match="is a folder"):
        check_output_path(link, inputs=inputs)


@pytest.mark.parametrize("spelling", ["same", "dotted", "relative", "symlink", "hardlink"])
def test_the_driving_video_or_the_photo_is_refused_however_it_is_named(
    tmp_path: Path, inputs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    photo, video = inputs
    if spelling == "same":
        out = video
    elif spelling == "dotted":
        out = video.parent / ".." / "in" / "." / video.name
    elif spelling == "relative":
        monkeypatch.chdir(video.parent)
        out = Path(video.name)
    elif spelling == "symlink":
        out = tmp_path / "alias.mp4"
        out.symlink_to(video)
    else:
        out = tmp_path / "hard.mp4"
        os.link(video, out)
    with pytest.raises(InvalidInputError, match="is the input"):
        check_output_path(out, inputs=[photo, video])
    photo_alias = tmp_path / "photo-alias.mp4"
    photo_alias.symlink_to(photo)
    with pytest.raises(InvalidInputError, match="is the input"):
        check_output_path(photo_alias, inputs=[str(photo), None])
    assert video.read_bytes() == b"video bytes" and photo.read_bytes() == b"photo bytes"


@pytest.mark.parametrize("name", ["clip.mov", "clip", "clip.mp4.txt", ".mp4x"])
def test_a_suffix_other_than_mp4_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match=r"must end in \.mp4"):
        check_output_path(tmp_path / name, inputs=[])


def test_a_missing_folder_or_a_file_as_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_output_path(tmp_path / "nowhere" / "clip.mp4", inputs=[])
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InvalidInputError):
        check_output_path(tmp_path / "file" / "clip.mp4", inputs=[])


def test_something_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        check_output_path(fifo, inputs=[])
    device = tmp_path / "null.mp4"
    device.symlink_to("/dev/null")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        check_output_path(device, inputs=[])


@pytest.mark.parametrize("path", ["", "clip\0.mp4"])
def test_an_empty_path_or_a_nul_is_refused(path: str) -> None:
    with pytest.raises(InvalidInputError, match="empty or holds a NUL"):
        check_output_path(path, inputs=[])


def test_a_name_longer_than_the_filesystem_allows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="longer than"):
        check_output_path(tmp_path / ("x" * 300 + ".mp4"), inputs=[])
    with pytest.raises(InvalidInputError):
        check_output_path(tmp_path / "/".join(["y" * 200] * 30) / "clip.mp4", inputs=[])


@pytest.fixture
def read_only_folder() -> Iterator[Path]:
    """A folder nobody may write into (root may write anywhere, so root's check runs as ``nobody``, below)."""
    base = Path(tempfile.mkdtemp(prefix="xp-read-only-"))
    try:
        base.chmod(0o755)
        folder = base / "read-only"
        folder.mkdir(mode=0o555)
        folder.chmod(0o555)
        yield folder
    finally:
        (base / "read-only").chmod(0o755)
        shutil.rmtree(base)


def test_a_read_only_folder_is_refused(read_only_folder: Path) -> None:
    out = read_only_folder / "clip.mp4"
    if os.geteuid() != 0:
        with pytest.raises(InvalidInputError, match="cannot write into"):
            check_output_path(out, inputs=[])
        return
    # Root may write anywhere, so the check runs in a child that has become ``nobody`` (a fork: the interpreter
    # need not be readable by nobody).
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            check_output_path(out, inputs=[])
        except InvalidInputError as exc:
            os.write(writer, exc.message.encode())
            code = 2
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2, message
    assert "cannot write into" in message


# -- generate() checks before any work, so an input is never overwritten -------------------------------------


@pytest.mark.parametrize("target", ["driving", "folder"])
def test_generate_refuses_an_output_that_is_its_driving_video_or_a_folder(
    faces: Path, provenance_home: Path, tmp_path: Path, target: str
) -> None:
    from xp_sdk.generate import generate
    from xp_sdk.home import Home
    from xp_sdk.provenance import load_provenance_keys

    driving = tmp_path / "driving.mp4"
    shutil.copyfile(faces / "driving" / "lp_d18.mp4", driving)
    before = driving.read_bytes()
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    out = driving if target == "driving" else folder
    with pytest.raises(InvalidInputError, match="is the input" if target == "driving" else "is a folder"):
        generate(
            faces / "source" / "skimage_astronaut.png", out, keys=load_provenance_keys(Home(provenance_home)),
            driving=driving,
        )  # fmt: skip
    assert driving.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips.mp4", "driving.mp4"]
    assert list(folder.iterdir()) == []
