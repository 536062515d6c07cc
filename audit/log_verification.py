"""What re-verifying the log established (a plain value, free of the store, so a remote client can hold one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogVerification:
    """What ``AuditLog.verify`` established: every event and checkpoint up to ``tree_size`` is consistent."""

    tree_size: int
    root_hash: str
    checkpoints: int
    latest_checkpoint_size: int
    witnessed: int
    seconds: float
    records: int = 0
    """Rows of the record tables (tenants, API keys, subjects and their face references, consents, generations)
    found to agree with the events that describe them; 0 when ``verify`` was asked not to check them."""

    @property
    def unsigned_tail(self) -> int:
        """Events after the latest checkpoint: linked and hashed, but not yet committed to by a signature."""
        return self.tree_size - self.latest_checkpoint_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "checkpoints": self.checkpoints,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "unsigned_tail": self.unsigned_tail,
            "witnessed": self.witnessed,
            "records": self.records,
            "seconds": round(self.seconds, 3),
        }
