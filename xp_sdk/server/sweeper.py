"""``AbandonedSweeper``: closes generations left "requested" by a server that died, once they are old enough.

A generation whose process died mid-way stays "requested" in the audit log until something says how it ended.
Only its age can tell a dead generation from a slow one when several servers share a database, so the sweeper
is off unless ``xp serve --close-abandoned-after MINUTES`` asks for it, and that age must exceed the longest
generation any server of the deployment may run. Generations this server's own runner still holds are never
closed, whatever their age.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from audit import Ledger
from xp_sdk.server.jobs import fail_abandoned

log = logging.getLogger(__name__)

ABANDONED = "abandoned"


class AbandonedSweeper:
    """Every ``interval_s``, record "failed" (``abandoned``) for each generation requested more than
    ``older_than`` ago and still unfinished, except those in ``active()``."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        older_than: timedelta,
        active: Callable[[], Collection[str]],
        interval_s: float | None = None,
    ) -> None:
        if older_than <= timedelta(0):
            raise ValueError("older_than must be positive")
        self._ledger = ledger
        self._older_than = older_than
        self._active = active
        # A quarter of the age, so nothing stays open much past it, and at most every 10 minutes.
        self._interval_s = interval_s if interval_s is not None else min(600.0, older_than.total_seconds() / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xp-abandoned-sweeper", daemon=True)

    def start(self) -> AbandonedSweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def sweep(self) -> list[str]:
        """One pass; the ids it closed."""
        stale = self._ledger.unfinished_generations(requested_before=datetime.now(UTC) - self._older_than)
        if not stale:
            return []
        held = set(self._active())
        reason = f"{ABANDONED}: still requested after {self._older_than} and held by no live job of this server"
        closed = [g.id for g in stale if g.id not in held and fail_abandoned(self._ledger, g.id, reason, ABANDONED)]
        if closed:
            log.warning("closed %d abandoned generation(s): %s", len(closed), ", ".join(closed))
        return closed

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.sweep()
            except Exception:  # the thread must outlive any one failed pass
                # The database may be briefly unreachable; the next pass tries again.
                log.exception("the abandoned-generation sweep failed")
