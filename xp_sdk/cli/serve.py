"""``xp serve``: the deployment over HTTP (the real enforcement point; see SECURITY.md)."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Annotated

import typer

from xp_sdk.cli.common import HomeOption
from xp_sdk.errors import InvalidInputError
from xp_sdk.inputs import MAX_OLDER_THAN

MAX_WORKERS = 1024
MAX_GPUS_PER_WORKER = 64


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (put TLS in front beyond loopback).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    home: HomeOption = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=MAX_WORKERS, help="Animations run at once (with --ray: Ray actors).")
    ] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run generations on Ray actors: local, auto, host:port or ray://host:10001 (needs the ray extra, "
            "the home on a filesystem every node shares, and PostgreSQL).",
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option("--gpus-per-worker", min=0, max=MAX_GPUS_PER_WORKER, help="GPUs each actor holds.")
    ] = 0.0,
    close_abandoned_after: Annotated[
        int | None,
        typer.Option(
            "--close-abandoned-after",
            metavar="MINUTES",
            min=10,
            max=MAX_OLDER_THAN // timedelta(minutes=1),
            help="Close generations still 'requested' this long after they began (their server died). Make it "
            "longer than the longest generation any server of the deployment runs. Off unless given.",
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            metavar="URL",
            help="redis://host:port/db that every replica shares: rate limits, jobs, their progress and idempotency "
            "keys (default: XP_REDIS_URL; without it, one process keeps them).",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            metavar="ADDRESSES",
            help="Comma-separated addresses of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto to "
            "believe (per-address limits and the audit log then see the client behind them). Default: none, every "
            "request is its peer's.",
        ),
    ] = None,
) -> None:
    """Serve the Client's operations over HTTP, with the verification page at /."""
    from xp_sdk.server.serve import serve as run_server

    _check_can_listen(host, port)

    abandoned = timedelta(minutes=close_abandoned_after) if close_abandoned_after is not None else None
    try:
        run_server(
            host=host, port=port, home=home, workers=workers, ray_address=ray, gpus_per_worker=gpus_per_worker,
            close_abandoned_after=abandoned, redis_url=redis, forwarded_allow_ips=forwarded_allow_ips,
        )  # fmt: skip
    except ImportError as exc:
        raise InvalidInputError(f"--ray needs the ray extra: pip install 'xp-sdk[ray]' ({exc})") from exc


def _check_can_listen(host: str, port: int) -> None:
    """Refuse a host that does not resolve or an address already taken, in the CLI's one line: uvicorn would log
    the error and exit on its own (code 3). A port taken between this check and the server's bind still ends
    that way."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise InvalidInputError(f"--host {host!r} cannot be listened on: {exc}") from None
    family, kind, protocol, _, address = addresses[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
