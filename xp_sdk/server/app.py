"""``create_app``: the deployment's operations over HTTP, for ``xp serve`` (or any ASGI server).

The server holds what a caller must not: the model, the signing keys, the audit database. Every route runs the
same ``Service`` the embedded client runs, so the gate, the audit events and one generation's order are the same
code in both modes.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

import anyio
from fastapi import Depends, FastAPI
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import xp_sdk
from xp_sdk.config import Settings
from xp_sdk.deployment import Deployment, shared_rate_limiter
from xp_sdk.server import errors
from xp_sdk.server.access_log import install_access_log_filter
from xp_sdk.server.jobs import JobRunner, JobState, ThreadJobRunner, run_animation
from xp_sdk.server.limits import BodyLimit, ClientRateLimit, Limits
from xp_sdk.server.routes import api, docs, health, page
from xp_sdk.server.state import ServerState, shared_state_summary
from xp_sdk.server.sweeper import AbandonedSweeper
from xp_sdk.service import Service

DESCRIPTION = """Provenance-gated portrait animation. Every request carries `Authorization: Bearer <API key>`;
errors are `{"error": code, "type": class, "message": ...}` with the class names of `xp_sdk.errors`.
The Python client speaks this API when given `base_url`: `xp_sdk.Client(api_key=..., base_url=...)`."""


def create_app(
    settings_or_deployment: Settings | Deployment,
    *,
    workers: int = 1,
    limits: Limits | None = None,
    runner: JobRunner | None = None,
    retention_s: float = 3600.0,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    close_abandoned_after: timedelta | None = None,
) -> FastAPI:
    """``workers``: animations that run at once (each takes about one core), or with ``ray_address`` the number
    of Ray actors holding the models. ``close_abandoned_after``: close generations left "requested" longer than
    this (see ``xp_sdk.server.sweeper``; off by default). A ``Deployment`` passed in stays the caller's to close;
    one opened here from ``Settings`` closes with the app."""
    install_access_log_filter()
    owned = isinstance(settings_or_deployment, Settings)
    deployment = (
        Deployment.open(settings_or_deployment)
        if isinstance(settings_or_deployment, Settings)
        else settings_or_deployment
    )
    # Start-up sweeps the temporaries a dead server left (a deployment passed in may have been opened long ago).
    deployment.sweep_work()
    service = Service(deployment)
    root = Path(deployment.settings.home) / "server"
    # Uploads live only while a request or a job uses them: what is left is from a process that died (with Redis,
    # replicas share the folder and another one's queued jobs may still need theirs).
    if deployment.settings.redis_url is None:
        shutil.rmtree(root / "uploads", ignore_errors=True)
    for folder in (root, root / "uploads", root / "outputs"):
        folder.mkdir(mode=0o700, exist_ok=True)

    def discard_output(job: JobState) -> None:
        shutil.rmtree(root / "outputs" / job.generation_id, ignore_errors=True)

    chosen_runner: JobRunner
    if runner is not None:
        chosen_runner = runner
    elif ray_address is not None:
        from xp_sdk.server.ray_runner import RayJobRunner  # the optional `ray` extra

        try:
            chosen_runner = RayJobRunner(
                deployment, address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                retention_s=retention_s, on_discard=discard_output,
            )  # fmt: skip
        except BaseException:
            if owned:
                service.close()
            raise
    elif deployment.settings.redis_url is not None:
        from xp_sdk.server.redis_jobs import RedisJobRunner  # redis and rq load only when configured

        try:
            chosen_runner = RedisJobRunner(
                partial(run_animation, service), deployment.ledger, url=deployment.settings.redis_url,
                prefix=deployment.settings.redis_prefix, workers=workers, retention_s=retention_s,
                on_discard=discard_output,
            )  # fmt: skip
        except BaseException:
            if owned:
                service.close()
            raise
    else:
        chosen_runner = ThreadJobRunner(
            partial(run_animation, service), workers=workers, retention_s=retention_s, on_discard=discard_output
        )
    chosen_limits = limits or Limits()
    state = ServerState(
        service=service,
        runner=chosen_runner,
        limits=chosen_limits,
        root=root,
        heavy=anyio.CapacityLimiter(max(1, os.cpu_count() or 1)),
    )

    sweeper = (
        AbandonedSweeper(
            deployment.ledger, older_than=close_abandoned_after, active=chosen_runner.active_generation_ids
        )
        if close_abandoned_after is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("uvicorn.error").info(shared_state_summary(deployment.settings, ray=ray_address is not None))
        if sweeper is not None:
            sweeper.start()
        yield
        if sweeper is not None:
            await run_in_threadpool(sweeper.stop)
        # Running generations stop at their next frame and are logged "failed"; none is left half-published.
        await run_in_threadpool(partial(chosen_runner.shutdown, wait=False))
        if owned:
            service.close()

    app = FastAPI(
        title="xp-sdk",
        version=xp_sdk.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package's own files (routes/docs.py), not a CDN
        redoc_url=None,
    )
    app.state.xp = state
    # /readyz checks the database, and Redis where XP_REDIS_URL names one.
    app.state.readiness = health.readiness_checks(deployment.ledger.store.engine, deployment.settings.redis_url)
    errors.install(app, {str(root.parent): "<server home>"})
    app.include_router(api, dependencies=[Depends(HTTPBearer(auto_error=False, description="an xp-sdk API key"))])
    app.include_router(page.router)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    app.mount(docs.ASSETS, docs.assets(), name="docs-assets")

    app.add_middleware(BodyLimit, limits=chosen_limits)
    app.add_middleware(
        ClientRateLimit,
        per_minute=chosen_limits.requests_per_minute_per_client,
        buckets=shared_rate_limiter(deployment.settings),
    )
    return app
