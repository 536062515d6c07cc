"""``/healthz`` and ``/readyz`` on a live server over a real PostgreSQL database that is then made unreachable.

The deployment gets a database of its own; refusing connections to it (``ALLOW_CONNECTIONS false`` and ending its
sessions) is what a database outage looks like from the server, and allowing them again is its recovery."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from xp_sdk import init_deployment
from xp_sdk.config import Settings
from xp_sdk.engine.options import ProgressCallback
from xp_sdk.results import AnimationResult
from xp_sdk.server.app import create_app
from xp_sdk.server.jobs import AnimationJob, ThreadJobRunner
from xp_sdk.server.serve import BackgroundServer

POSTGRES_URL = os.environ.get("XP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")


@dataclass
class Live:
    url: str
    database: str
    database_url: str
    admin: Engine

    def allow_connections(self, allowed: bool) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": self.database},
                )


def _admin_engine() -> Engine:
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        if os.environ.get("XP_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable ({type(exc).__name__}); set XP_TEST_POSTGRES_URL")
    return engine


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    admin = _admin_engine()
    database = f"xp_ready_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    database_url = make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)
    try:
        home = tmp_path_factory.mktemp("ready") / "home"
        init = init_deployment(home, tenant="acme", database_url=database_url)
        app = create_app(Settings.resolve(home=init.home, database_url=database_url))
        with BackgroundServer(app) as server:
            yield Live(url=server.url, database=database, database_url=database_url, admin=admin)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def test_liveness_needs_no_key_and_says_only_ok(live: Live) -> None:
    answer = httpx.get(f"{live.url}/healthz")
    assert answer.status_code == 200
    assert set(answer.json()) == {"status", "version"} and answer.json()["status"] == "ok"


def test_readiness_follows_the_database_down_and_back(live: Live) -> None:
    ready = httpx.get(f"{live.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}

    live.allow_connections(False)
    try:
        down = httpx.get(f"{live.url}/readyz", timeout=30)
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable", "checks": {"database": "unavailable"}}
        # Liveness is the process, not its dependencies: an orchestrator must not restart it for the database.
        assert httpx.get(f"{live.url}/healthz").status_code == 200
        # Nothing about the database reaches an unauthenticated caller: no name, URL, host or driver message.
        for secret in (live.database, "127.0.0.1", "5432", "psycopg", "postgres"):
            assert secret not in down.text
    finally:
        live.allow_connections(True)

    assert httpx.get(f"{live.url}/readyz", timeout=30).json()["status"] == "ready"


class OwnRedis:
    """A Redis of the test's own on a free port (the shared one must not be stopped), to stop and start again."""

    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("no redis-server binary (apt-get install redis-server)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.command = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=self.folder, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        while True:  # until it accepts connections; one that died instead fails the test
            assert self.process.poll() is None, "redis-server exited at start"
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _never_runs(job: AnimationJob, progress: ProgressCallback) -> AnimationResult:
    raise AssertionError("no job is started in this test")


def test_readiness_follows_redis_down_and_back(own_redis: OwnRedis, tmp_path: Path) -> None:
    if "redis_url" not in Settings.model_fields:
        pytest.skip("Settings has no redis_url (XP_REDIS_URL) yet: /readyz checks the database only")
    home = init_deployment(tmp_path / "home", tenant="acme").home
    # Jobs in this process's memory: Redis's job workers, stranded by the outage, would hold the shutdown for a
    # minute of connection retries, and jobs are not what this test is about.
    no_jobs = ThreadJobRunner(_never_runs)
    settings = Settings.resolve(home=home, redis_url=own_redis.url)
    with BackgroundServer(create_app(settings, runner=no_jobs)) as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        own_redis.stop()
        down = httpx.get(f"{server.url}/readyz", timeout=30)
        own_redis.start()  # back before the server stops, which then finds its job store again
        again = httpx.get(f"{server.url}/readyz", timeout=30)
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "checks": {"database": "ok", "redis": "unavailable"}}
    assert str(own_redis.port) not in down.text
    assert again.status_code == 200
