"""Nothing left behind: a generation's temporaries live in ``<home>/work/<generation id>/``, never beside the
output, even when the process is killed with SIGKILL mid-way; what a dead generation leaves in the home is swept
(``xp audit abandoned --close`` for one left "requested", ``Deployment.open`` for one that finished)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.cli.helpers import XP_VARIABLES, xp
from tests.sdk.test_kill import completed_events, kill_when
from xp_sdk import Client, init_deployment
from xp_sdk.engine import AnimateOptions, Progress
from xp_sdk.errors import XPError
from xp_sdk.generate import Generation, GenerationLog, generate
from xp_sdk.home import Home
from xp_sdk.provenance import load_provenance_keys

ASTRONAUT = "skimage_astronaut.png"
CLIP = "lp_d5_hist.mp4"  # 148 frames: long enough to be killed mid-way
_CHILD = """
import sys
from xp_sdk import Client
home, key, photo, subject, clip, out = sys.argv[1:7]
with Client(key, home=home) as client:
    client.animate(photo, subject=subject, driving=clip, out=out)
print("done", flush=True)
"""


@pytest.fixture(autouse=True)
def _no_xp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in XP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def everything_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def test_a_generation_keeps_its_temporaries_in_the_home_and_leaves_only_its_output(tmp_path: Path, faces: Path) -> None:
    made = init_deployment(tmp_path / "home", tenant="leftovers")
    work = Home(made.home).work_dir
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    midway: list[tuple[list[str], list[str]]] = []

    def progress(update: Progress) -> None:
        if update.stage == "generate" and update.done >= 40 and not midway:  # the encoder is writing by now
            midway.append((everything_in(out_dir), everything_in(work)))

    with Client(made.api_key.secret, home=made.home) as client:
        subject = client.subjects.register("Eileen Collins", [faces / "source" / ASTRONAUT]).id
        client.consents.grant(subject, evidence=b"consent for the leftovers test")
        result = client.animate(
            faces / "source" / ASTRONAUT, subject=subject, template="blink", out=out_dir / "clip.mp4",
            options=AnimateOptions(max_side=384), progress=progress,
        )  # fmt: skip
        [(beside_the_output, in_the_home)] = midway
        assert beside_the_output == []
        assert in_the_home and all(p.startswith(result.generation_id) for p in in_the_home), in_the_home
        # Owner-only, the database and its WAL files too, after a generation.
        database = {p.name: mode(p) for p in Home(made.home).database_files if p.exists()}
        assert database == {"xp.db": 0o600, "xp.db-wal": 0o600, "xp.db-shm": 0o600}
    assert mode(work) == 0o700
    assert everything_in(out_dir) == ["clip.mp4"]
    assert everything_in(work) == []


@pytest.mark.parametrize("kill_point", ["engine-running", "signing", "publishing"])
def test_a_killed_generation_leaves_nothing_beside_the_output_and_its_folder_is_swept(
    tmp_path: Path, faces: Path, kill_point: str
) -> None:
    made = init_deployment(tmp_path / "home", tenant="kill")
    work = Home(made.home).work_dir
    photo = faces / "source" / ASTRONAUT
    with Client(made.api_key.secret, home=made.home) as admin:
        subject = admin.subjects.register("Eileen Collins", [photo]).id
        admin.consents.grant(subject, evidence=b"consent for the kill test")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "clip.mp4"
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(made.home), made.api_key.secret, str(photo), subject,
         str(faces / "driving" / CLIP), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def in_work(name: Callable[[str], bool]) -> bool:
        return any(p.is_file() and name(p.name) and p.stat().st_size > 0 for p in work.rglob("*"))

    ready = {
        "engine-running": lambda: in_work(lambda n: n.endswith(".mp4") and "unsigned" in n),
        "signing": lambda: in_work(lambda n: n.startswith((".signed.mp4", "signed.mp4"))),
        "publishing": lambda: completed_events(made.home) > 0,
    }[kill_point]
    killed = kill_when(process, ready, timeout=120.0)
    assert killed or kill_point == "publishing", f"the generation ended before it reached {kill_point}"

    # Whatever the moment, nothing but the published output is ever beside it.
    assert everything_in(out_dir) in ([], ["clip.mp4"]), everything_in(out_dir)
    if killed and kill_point != "publishing":
        assert everything_in(out_dir) == []
        [left] = [p.name for p in work.iterdir()]
        with Client(made.api_key.secret, home=made.home) as admin:  # opening sweeps, but this one is "requested"
            [stale] = admin.audit.abandoned(older_than=timedelta(0))
            assert stale.id == left and (work / left).is_dir()
        closed = xp("audit", "abandoned", "--older-than", "0s", "--close", "--home", made.home,
                    "--api-key", made.api_key.secret, "--json").json()  # fmt: skip
        assert [g["id"] for g in closed["generations"]] == [left]
        assert everything_in(work) == [], "abandoned --close must remove the work folders of what it closes"
    else:
        # Finished (completed, perhaps not yet published) or not started: the next open sweeps what is left.
        with Client(made.api_key.secret, home=made.home) as admin:
            assert everything_in(work) == []
            admin.audit.verify()
    with Client(made.api_key.secret, home=made.home) as admin:
        admin.audit.verify()


# -- across filesystems: the output is staged beside it before "completed", and never left there ------------------


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to publish across")
    folder = Path(tempfile.mkdtemp(prefix="xp-out-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_a_generation_published_to_another_filesystem_leaves_nothing_beside_it(
    tmp_path: Path, faces: Path, provenance_home: Path, other_filesystem: Path
) -> None:
    keys = load_provenance_keys(Home(provenance_home))
    work = tmp_path / "work"
    out = other_filesystem / "clip.mp4"
    staged: list[list[str]] = []

    class RefusingLog:
        def __init__(self) -> None:
            self.failed_with: list[BaseException] = []

        def requested(self) -> None:
            pass

        def completed(self, generation: Generation) -> None:
            staged.append(everything_in(other_filesystem))
            raise XPError("the audit store refused the completed event")

        def failed(self, error: BaseException) -> None:
            self.failed_with.append(error)

    def make(log: GenerationLog | None) -> Generation:
        return generate(
            faces / "source" / ASTRONAUT, out, keys=keys, template="blink", options=AnimateOptions(max_side=384),
            work_dir=work, log=log,
        )  # fmt: skip

    refusing = RefusingLog()
    with pytest.raises(XPError, match="refused"):
        make(refusing)
    assert [str(e) for e in refusing.failed_with] == ["the audit store refused the completed event"]
    # The copy was made beside the output before "completed" (so a failing copy fails the generation), hidden,
    # and removed when publishing did not go ahead.
    [[hidden]] = staged
    assert hidden.startswith(".")
    assert everything_in(other_filesystem) == [] and everything_in(work) == []
    done = make(None)
    assert done.output == out and everything_in(other_filesystem) == ["clip.mp4"] and everything_in(work) == []
