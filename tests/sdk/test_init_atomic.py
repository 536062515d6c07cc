"""``xp init`` is all or nothing: interrupted (Ctrl-C) or killed (SIGKILL) after its keys are written, it leaves no
half-made home, and a second ``xp init`` succeeds, in a new folder, an empty one, or one an operator seeded."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from audit.ledger import Ledger
from tests.cli.helpers import XP_VARIABLES, xp
from tests.postgres import postgres_schema
from xp_sdk import Client, init_deployment
from xp_sdk.errors import AlreadyInitializedError
from xp_sdk.home import Home
from xp_sdk.staged_home import JOURNAL, STALE_STAGING_S

# A child that runs init and dies by SIGKILL at one step: `key` (creating the admin key, after every key file of
# the home is written) or `merge:N` (moving the Nth file into a seeded home).
_KILLED_INIT = """
import os, signal, sys
from audit.ledger import Ledger
import xp_sdk.staged_home as staged
from xp_sdk import init_deployment
home, step = sys.argv[1:3]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if step == "key":
    Ledger.create_key = die
else:
    calls, move = [0], staged._move
    def move_then_die(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(step.split(":")[1]):
            die()
        return move(*args, **kwargs)
    staged._move = move_then_die
init_deployment(home, tenant="atomic")
"""


@pytest.fixture(autouse=True)
def _no_xp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in XP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def siblings(home: Path) -> list[str]:
    return sorted(p.name for p in home.parent.iterdir() if p.name != home.name)


@contextmanager
def ctrl_c_while_creating_the_admin_key() -> Iterator[None]:
    """Every key file of the home has been written by then."""

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Ledger, "create_key", interrupt)
        yield


def assert_a_working_home(home: Path, secret: str) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not (home / JOURNAL).exists()
    with Client(secret, home=home) as client:
        assert [k.name for k in client.keys.list()] == ["admin (xp init)"]
        assert client.audit.verify().tree_size >= 2


@pytest.mark.parametrize("place", ["new folder", "empty folder"])
def test_an_interrupted_init_leaves_nothing_and_a_second_one_succeeds(tmp_path: Path, place: str) -> None:
    home = tmp_path / "parent" / "home"
    if place == "empty folder":
        home.mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt), ctrl_c_while_creating_the_admin_key():
        init_deployment(home, tenant="atomic")
    assert listing(home) == [] and siblings(home) == []
    assert home.exists() == (place == "empty folder")
    made = init_deployment(home, tenant="atomic")
    assert made.home == home.resolve()
    assert_a_working_home(home, made.api_key.secret)
    assert siblings(home) == []


def test_xp_init_again_after_ctrl_c_succeeds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ctrl_c_while_creating_the_admin_key():
        assert xp("init", "--home", home, "--json").code == 130
    assert listing(home) == []
    made = xp("init", "--home", home, "--json").json()
    assert_a_working_home(home, made["api_key"])
    # And a third refuses, as before, changing nothing.
    before = listing(home)
    assert xp("init", "--home", home, "--json").code == AlreadyInitializedError.exit_code
    assert listing(home) == before


def test_a_seeded_home_is_left_as_it_was_then_initialized_keeping_its_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"log_origin": "example.org/xp"}), encoding="utf-8")
    (home / "models.toml").write_text("# the operator's diffusion weights\n", encoding="utf-8")
    (home / "policies").mkdir()
    before = {p: (home / p).read_bytes() for p in ("config.json", "models.toml")}
    with pytest.raises(KeyboardInterrupt), ctrl_c_while_creating_the_admin_key():
        init_deployment(home, tenant="atomic")
    assert listing(home) == ["config.json", "models.toml", "policies"] and siblings(home) == []
    assert {p: (home / p).read_bytes() for p in before} == before
    made = init_deployment(home, tenant="atomic")
    assert_a_working_home(home, made.api_key.secret)
    assert (home / "models.toml").read_bytes() == before["models.toml"]
    assert json.loads((home / "config.json").read_text(encoding="utf-8"))["log_origin"] == "example.org/xp"


def _killed(home: Path, step: str) -> None:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_INIT, str(home), step], cwd=repo, capture_output=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


def test_a_killed_init_leaves_no_home_and_its_staging_folder_is_removed_once_stale(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _killed(home, "key")
    assert not home.exists()
    [staging] = siblings(home)  # SIGKILL runs no clean-up: the half-built home is hidden beside, never at, home
    assert staging.startswith(".home.init-")
    made = init_deployment(home, tenant="atomic")
    assert_a_working_home(home, made.api_key.secret)
    assert siblings(home) == [staging]  # a run in progress elsewhere may look the same: only a stale one goes
    old = time.time() - STALE_STAGING_S - 60
    os.utime(tmp_path / staging, (old, old))
    with pytest.raises(AlreadyInitializedError):
        init_deployment(home, tenant="atomic")
    assert siblings(home) == []


@pytest.mark.parametrize("step", ["merge:1", "merge:3", "merge:5"])
def test_an_init_killed_while_moving_into_a_seeded_home_is_undone_by_the_next(tmp_path: Path, step: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.toml").write_text("# kept\n", encoding="utf-8")
    _killed(home, step)
    assert not Home(home).audit_key_path.exists()
    assert (home / JOURNAL).exists()  # what was moved in so far is listed
    made = init_deployment(home, tenant="atomic")
    assert_a_working_home(home, made.api_key.secret)
    assert (home / "models.toml").read_text(encoding="utf-8") == "# kept\n"


def test_an_init_on_postgresql_killed_after_its_key_row_leaves_a_log_the_next_one_can_sign(tmp_path: Path) -> None:
    """The database is not in the home, so what a killed init wrote there stays: the next init must still end with
    a log that verifies under its own key (nothing was signed with the lost one)."""
    with postgres_schema("xp_init") as url:
        home = tmp_path / "home"
        with pytest.raises(KeyboardInterrupt), ctrl_c_after_the_admin_key_row_is_written():
            init_deployment(home, database_url=url, tenant="atomic")
        assert not home.exists()
        made = init_deployment(home, database_url=url, tenant="atomic")
        with Client(made.api_key.secret, home=home) as client:
            checked = client.audit.verify()
            assert checked.checkpoints >= 1 and checked.unsigned_tail == 0


@contextmanager
def ctrl_c_after_the_admin_key_row_is_written() -> Iterator[None]:
    """The admin key's row and event are written to the database; then Ctrl-C, before the home is in place."""
    create_key = Ledger.create_key

    def create_then_interrupt(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        create_key(self, *args, **kwargs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Ledger, "create_key", create_then_interrupt)
        yield
