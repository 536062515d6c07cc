"""What every route shares: the service, the job runner, the limits and the server's folders in the home."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import Request

from audit import AuthenticationError as AuditAuthenticationError
from audit.api_keys import parse_key
from audit.store import redact_url
from xp_sdk.config import Settings
from xp_sdk.server.jobs import JobRunner
from xp_sdk.server.limits import Limits
from xp_sdk.service import Service


@dataclass
class ServerState:
    service: Service
    runner: JobRunner
    limits: Limits
    root: Path
    """``<home>/server``: ``uploads/`` (while a request or job uses them) and ``outputs/<generation id>/``."""
    heavy: anyio.CapacityLimiter
    """Bounds the CPU-heavy calls (verification, face embedding) that run at once; more wait their turn."""

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def upload_dir(self) -> Path:
        return self.uploads / secrets.token_hex(8)

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.xp
    return state


def bearer_key(request: Request) -> str | None:
    """The API key from ``Authorization: Bearer <key>``; None when there is no header. A header in another scheme
    (``Basic …``) or an empty one is passed on as it is, so the service refuses it as a malformed key and logs the
    refusal like any other (the ledger never echoes what it was given)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else header


def well_formed_key(state: ServerState, request: Request) -> str:
    """A cheap check before an upload is read: a key is present and well formed (no database, no rate limit).
    The service authenticates it for real when it handles the request."""
    key = bearer_key(request)
    try:
        if key is None:
            raise AuditAuthenticationError("no API key")
        parse_key(key)
    except AuditAuthenticationError:
        state.service.caller(key)  # raises the error local mode raises, and logs the failure as it does
        raise
    return key


def shared_state_summary(settings: Settings, *, ray: bool) -> str:
    """What this server shares with other replicas, and what it keeps to itself: said once at start-up."""
    if settings.redis_url is None:
        return (
            "shared state: no Redis (XP_REDIS_URL / --redis unset): per-key rate limits in the audit database; jobs, "
            "their progress, idempotency keys and per-address limits in this process only (run one replica)"
        )
    where = f"Redis at {redact_url(settings.redis_url)}, keys under {settings.redis_prefix!r}"
    jobs = "jobs on Ray, their table in this process" if ray else "jobs, their progress and idempotency keys"
    return f"shared state: {where}: per-key and per-address rate limits, {jobs}"
