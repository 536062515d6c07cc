"""``serve``: run the app with uvicorn, as ``xp serve`` does; ``BackgroundServer`` runs it on a thread."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from xp_sdk.config import Settings
from xp_sdk.server.app import create_app
from xp_sdk.server.limits import Limits


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    home: str | os.PathLike[str] | None = None,
    workers: int = 1,
    *,
    limits: Limits | None = None,
    log_level: str = "info",
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    close_abandoned_after: timedelta | None = None,
    redis_url: str | None = None,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve the deployment in ``home`` (default: ``XP_HOME``) until interrupted.

    ``workers`` is how many animations run at once, in this one process, not a count of uvicorn processes. Without
    Redis the job table and the idempotency keys live in its memory (one replica); with ``redis_url`` (default:
    ``XP_REDIS_URL``) they, and the rate limits, live in Redis, so several ``xp serve`` processes on one database and
    one shared home answer alike (see ``xp_sdk.server.redis_jobs``). Put TLS in front (a reverse proxy) for anything
    but loopback: API keys travel in the Authorization header.

    With ``ray_address`` generations run on ``workers`` Ray actors that hold the models (see
    ``xp_sdk.server.ray_runner`` for what the cluster must share). ``close_abandoned_after``: see
    ``xp_sdk.server.sweeper``. ``forwarded_allow_ips``: see ``proxy_settings``."""
    app = create_app(
        Settings.resolve(home=home, redis_url=redis_url), workers=workers, limits=limits, ray_address=ray_address,
        gpus_per_worker=gpus_per_worker, close_abandoned_after=close_abandoned_after,
    )  # fmt: skip
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, server_header=False, timeout_keep_alive=15,
        **proxy_settings(forwarded_allow_ips),
    )  # fmt: skip


def proxy_settings(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn's reading of X-Forwarded-For: off unless the operator names the proxies to believe.

    uvicorn believes it by default from 127.0.0.1, so any process on the server's own host could pick the address
    that per-address limits and the audit log see, one fresh address per request."""
    if not forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips}


class BackgroundServer:
    """The app on a free loopback port, served from a thread of this process (tests, benchmarks).

    ``with BackgroundServer(app) as server: Client(key, base_url=server.url)``"""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        log_level: str = "warning",
        forwarded_allow_ips: str | None = None,
    ) -> None:
        # Bound here and handed to uvicorn, so nothing else can take the port in between.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, log_level=log_level, lifespan="on", server_header=False, **proxy_settings(forwarded_allow_ips)
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="xp-serve", daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start; see its log")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self._socket.close()
