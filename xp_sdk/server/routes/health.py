"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: the database answers, and Redis where one is
configured). Neither needs a key, and neither says more than each check's name and "ok" or "unavailable": what
failed and why goes to the server's log, never to an unauthenticated caller."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

import xp_sdk
from xp_sdk.server.schemas import ANY_ROUTE_RESPONSES, CheckState, Health, Readiness

log = logging.getLogger("xp_sdk.server")

ReadinessCheck = Callable[[], None]
"""Returns when its dependency answers; raises (anything) when it does not. Runs in a worker thread."""

CHECK_TIMEOUT_S = 3.0
"""A dependency slower than this to answer is unavailable: a load balancer's probe must get an answer in time."""
_PROBES = anyio.CapacityLimiter(4)
"""Probes stuck on a dead host keep their thread until the driver gives up: at most this many, never the pool the
routes use."""

router = APIRouter(tags=["health"], responses=ANY_ROUTE_RESPONSES)


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers (needs no key)")
def health() -> Health:
    return Health(version=xp_sdk.__version__)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the database (and Redis, when configured) answer (needs no key)",
    responses={503: {"model": Readiness, "description": "a dependency does not answer; the checks say which"}},
)
async def readiness(request: Request) -> JSONResponse:
    checks: Mapping[str, ReadinessCheck] = request.app.state.readiness
    states = {name: await _run(name, check) for name, check in checks.items()}
    ready = all(state == "ok" for state in states.values())
    body = Readiness(status="ready" if ready else "unavailable", checks=states)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})


async def _run(name: str, check: ReadinessCheck) -> CheckState:
    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            await anyio.to_thread.run_sync(check, limiter=_PROBES, abandon_on_cancel=True)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %.0f s", name, CHECK_TIMEOUT_S)
        return "unavailable"
    except Exception as exc:  # whatever the driver raised, the dependency is not usable
        first_line = (str(exc).strip().splitlines() or [""])[0]
        log.warning("readiness: %s is unavailable: %s: %s", name, type(exc).__name__, first_line)
        return "unavailable"
    return "ok"


def database_check(engine: Engine) -> ReadinessCheck:
    def check() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


def redis_check(url: str) -> ReadinessCheck:
    def check() -> None:
        import redis  # only where Redis is configured

        client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()

    return check


def readiness_checks(engine: Engine, redis_url: str | None) -> dict[str, ReadinessCheck]:
    """What ``/readyz`` asks, by name. A Redis URL is checked when the deployment has one (``XP_REDIS_URL``)."""
    checks = {"database": database_check(engine)}
    if redis_url:
        checks["redis"] = redis_check(redis_url)
    return checks
