"""The deployment's home: where keys, the database, policies and settings live, with owner-only permissions."""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "xp-sdk"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Home:
        """The argument, else ``XP_HOME``, else a per-user data directory."""
        chosen = home if home is not None else os.environ.get("XP_HOME")
        return cls(Path(chosen).expanduser().resolve() if chosen else default_home())

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def signing_dir(self) -> Path:
        """The C2PA development CA and signer (``ca.pem`` is the trust anchor)."""
        return self.keys_dir / "c2pa"

    @property
    def watermark_key_path(self) -> Path:
        return self.keys_dir / "watermark.key"

    @property
    def audit_key_path(self) -> Path:
        """The Ed25519 key that signs the audit log's checkpoints."""
        return self.keys_dir / "audit-log.key"

    @property
    def database_path(self) -> Path:
        """The embedded SQLite database (unless the settings name another database)."""
        return self.root / "xp.db"

    @property
    def work_dir(self) -> Path:
        """Each running generation's temporaries, in a folder of its own (``xp_sdk.workspace``)."""
        return self.root / "work"

    @property
    def policies_dir(self) -> Path:
        """Operator Cedar policies, loaded after the defaults."""
        return self.root / "policies"

    @property
    def database_files(self) -> tuple[Path, ...]:
        """The embedded database and the files SQLite keeps beside it."""
        name = self.database_path.name
        return tuple(self.database_path.with_name(name + suffix) for suffix in ("", "-wal", "-shm", "-journal"))

    def secure_database_files(self) -> None:
        """Owner-only modes for the embedded database files a home made before they were created 0600 still has
        (SQLite gives new -wal and -shm files the database file's mode)."""
        for path in self.database_files:
            with suppress(OSError):  # missing, or not this user's to change: best effort
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    os.chmod(path, mode & 0o700)

    def ensure(self) -> None:
        for directory in (self.root, self.keys_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
