"""The home is 0700 and its database files 0600 (owner-only), from ``xp init`` on, WAL files included."""

from __future__ import annotations

import stat
from pathlib import Path

from xp_sdk import Client, init_deployment
from xp_sdk.home import Home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database_modes(home: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in Home(home).database_files if p.exists()}


def test_init_makes_the_database_and_its_wal_files_owner_only(tmp_path: Path) -> None:
    made = init_deployment(tmp_path / "home", tenant="modes")
    assert mode(made.home) == 0o700
    assert database_modes(made.home) == {"xp.db": 0o600}
    with Client(made.api_key.secret, home=made.home) as client:
        client.keys.list()  # a connection stays open in the pool, so SQLite keeps its -wal and -shm files
        assert database_modes(made.home) == {"xp.db": 0o600, "xp.db-wal": 0o600, "xp.db-shm": 0o600}


def test_opening_a_home_made_before_tightens_its_database_files(tmp_path: Path) -> None:
    made = init_deployment(tmp_path / "home", tenant="modes")
    (made.home / "xp.db").chmod(0o644)
    with Client(made.api_key.secret, home=made.home) as client:
        client.keys.list()
        assert database_modes(made.home) == {"xp.db": 0o600, "xp.db-wal": 0o600, "xp.db-shm": 0o600}
