"""Two real ``xp serve`` processes on one PostgreSQL schema, one home and one Redis (keys under a prefix of this run):
limits, jobs and idempotency keys hold across them, and a job outlives the replica that ran it as a failed,
audited job, never a lost one. Order and states are asserted, never durations."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from audit import Ledger
from audit.store import Store
from tests.cli.helpers import xp
from tests.postgres import postgres_schema
from tests.server.test_jobs import _job, _result
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.engine import Progress, ProgressCallback
from xp_sdk.errors import RateLimitedError
from xp_sdk.results import AnimationResult
from xp_sdk.server.jobs import AnimationJob, JobState, JobStatus
from xp_sdk.server.redis_jobs import LEASE_S, RedisJobRunner, clear
from xp_sdk.server.state import shared_state_summary

REDIS_URL = os.environ.get("XP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHORT_CLIP = "lp_d1_hist.mp4"  # 16 frames: the cheapest real generation
LONG_CLIP = "lp_d5_hist.mp4"  # 148 frames: long enough to kill its replica mid-way
JOB_TIMEOUT_S = 300.0  # a bound against a hang on a busy machine, not a measurement
FINISHED = ("succeeded", "failed", "cancelled")


def _require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        if os.environ.get("XP_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is required: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Replicas:
    home: Path
    prefix: str
    admin_key: str
    animator_key: str
    eileen: str
    astronaut: Path
    faces: Path
    replicas: list[Replica] = field(default_factory=list)

    def client(self, replica: Replica, key: str) -> httpx.Client:
        return httpx.Client(base_url=replica.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _start(home: Path, prefix: str, log: Path) -> Replica:
    port = _free_port()
    env = {**os.environ, "XP_REDIS_PREFIX": prefix}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "xp_sdk.cli", "serve", "--home", str(home), "--port", str(port),
             "--redis", REDIS_URL],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    replica = Replica(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not replica.alive():
            raise AssertionError(f"a replica exited at start-up:\n{log.read_text()}")
        try:
            if httpx.get(f"{replica.url}/healthz", timeout=2).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"a replica did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Replicas]:
    _require_redis()
    root = tmp_path_factory.mktemp("replicas")
    prefix = f"xp-test-{secrets.token_hex(5)}"
    with postgres_schema("xp_replicas") as database_url:
        init = init_deployment(root / "home", tenant="acme", database_url=database_url)
        astronaut = faces / "source" / "skimage_astronaut.png"
        # Set up in process, on the database's own limits (no Redis in this process's settings).
        with Client(init.api_key.secret, home=init.home) as first:
            admin_key = first.keys.create(
                scopes="animate verify audit:read subjects:write consents:write keys:admin", name="test admin",
                rate_limit_per_minute=6000,
            ).secret  # fmt: skip
        with Client(admin_key, home=init.home) as admin:
            eileen = admin.subjects.register("Eileen Collins", [astronaut]).id
            admin.consents.grant(eileen, evidence=b"Eileen Collins consents (replica tests)")
            animator = admin.keys.create(scopes="animate verify", name="animator", rate_limit_per_minute=6000).secret
        deployed = Replicas(init.home, prefix, admin_key, animator, eileen, astronaut, faces)
        try:
            deployed.replicas = [_start(init.home, prefix, root / f"replica-{n}.log") for n in range(2)]
            yield deployed
        finally:
            for replica in deployed.replicas:
                if replica.alive():
                    replica.process.send_signal(signal.SIGINT)
                    try:
                        replica.process.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        replica.process.kill()
                        replica.process.wait()
            clear(REDIS_URL, prefix)


def test_each_replica_says_at_start_up_that_it_shares_state_on_redis(replicas: Replicas) -> None:
    for replica in replicas.replicas:
        text = replica.log.read_text()
        assert "shared state: Redis at" in text and replicas.prefix in text, text


def test_a_key_limited_to_5_a_minute_gets_5_answers_across_both_replicas(replicas: Replicas) -> None:
    with Client(replicas.admin_key, home=replicas.home) as admin:
        limited = admin.keys.create(scopes="audit:read", name="five a minute", rate_limit_per_minute=5).secret
    answers: list[int] = []
    refusals: list[httpx.Response] = []
    others: list[httpx.Response] = []
    for n in range(12):
        replica = replicas.replicas[n % 2]
        with replicas.client(replica, limited) as http:
            response = http.get("/v1/audit/events", params={"limit": 1})
        answers.append(response.status_code)
        if response.status_code == 429:
            refusals.append(response)
        else:
            others.append(response)
    assert sum(code != 429 for code in answers) == 5, [(r.status_code, r.text[:200]) for r in others]
    assert answers[:5] == [200] * 5, answers  # both replicas answered before the shared limit ran out
    assert all(r.json()["error"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1 for r in refusals)


def test_the_cli_and_embedded_client_count_against_the_same_limit_when_redis_is_configured(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(replicas.admin_key, home=replicas.home) as admin:
        limited = admin.keys.create(scopes="audit:read", name="five, shared", rate_limit_per_minute=5).secret
    monkeypatch.setenv("XP_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("XP_REDIS_PREFIX", replicas.prefix)
    with Client(limited, home=replicas.home) as embedded:
        for _ in range(3):
            embedded.audit.checkpoints()
    answers = []
    for n in range(4):
        with replicas.client(replicas.replicas[n % 2], limited) as http:
            answers.append(http.get("/v1/audit/checkpoints").status_code)
    assert answers == [200, 200, 429, 429]
    with Client(limited, home=replicas.home) as embedded, pytest.raises(RateLimitedError):
        embedded.audit.checkpoints()
    assert xp("audit", "checkpoints", "--home", replicas.home, "--api-key", limited).code == RateLimitedError.exit_code


def test_without_redis_a_server_says_it_keeps_its_jobs_to_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XP_REDIS_URL", raising=False)
    alone = shared_state_summary(Settings.resolve(home=tmp_path, redis_url=None), ray=False)
    assert alone.startswith("shared state: no Redis") and "this process only" in alone
    shared = shared_state_summary(Settings.resolve(home=tmp_path, redis_url="redis://:pw@127.0.0.1/3"), ray=False)
    assert "Redis at redis://:***@127.0.0.1/3" in shared and "pw" not in shared


def _submit(replicas: Replicas, replica: Replica, clip: str, idempotency_key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with replicas.client(replica, replicas.animator_key) as http:
        return http.post(
            "/v1/animations",
            data={"subject": replicas.eileen, "out_name": "clip.mp4"},
            files={
                "source": ("astronaut.png", replicas.astronaut.read_bytes(), "image/png"),
                "driving": (clip, (replicas.faces / "driving" / clip).read_bytes(), "video/mp4"),
            },
            headers=headers,
        )


def _follow(
    replicas: Replicas, replica: Replica, job_id: str, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Poll ``replica`` for the job until ``until(job)``; every distinct state seen, in order."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    with replicas.client(replica, replicas.animator_key) as http:
        while time.monotonic() < deadline:
            response = http.get(f"/v1/animations/{job_id}")
            assert response.status_code == 200, response.text
            job = response.json()
            if not seen or seen[-1] != job:
                seen.append(job)
            if until(job):
                return seen
            time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there; last seen: {seen[-1:]}")


def test_a_job_started_on_one_replica_is_followed_and_downloaded_on_the_other(replicas: Replicas) -> None:
    first, second = replicas.replicas
    key = secrets.token_hex(8)
    created = _submit(replicas, first, SHORT_CLIP, idempotency_key=key)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    # The other replica knows the Idempotency-Key: a retry sent there returns the same job, not a second one.
    replayed = _submit(replicas, second, SHORT_CLIP, idempotency_key=key)
    assert replayed.status_code in (200, 202) and replayed.json()["id"] == job_id, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"

    seen = _follow(replicas, second, job_id, lambda job: job["status"] in FINISHED)
    statuses = [job["status"] for job in seen]
    order = ["queued", "running", "succeeded"]
    assert statuses[-1] == "succeeded", seen[-1]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses), statuses
    versions = [job.get("version", 0) for job in seen]
    assert versions == sorted(versions)

    with replicas.client(second, replicas.animator_key) as http:
        download = http.get(f"/v1/animations/{job_id}/output")
    assert download.status_code == 200, download.text
    digest = hashlib.sha256(download.content).hexdigest()
    assert digest == download.headers["X-Content-SHA256"] == seen[-1]["result"]["output_sha256"]


def test_a_job_started_on_one_replica_is_cancelled_through_the_other(replicas: Replicas) -> None:
    first, second = replicas.replicas
    created = _submit(replicas, first, LONG_CLIP)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    with replicas.client(second, replicas.animator_key) as http:
        cancelled = http.delete(f"/v1/animations/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    seen = _follow(replicas, first, job_id, lambda job: job["status"] in FINISHED)
    assert seen[-1]["status"] == "cancelled", seen[-1]
    assert seen[-1]["error"]["error"] == "cancelled"


def _running_replica(replicas: Replicas, job_id: str) -> Replica:
    """The replica whose worker holds the job, from the job's record in Redis (``host:pid:token``)."""
    raw = redis.Redis.from_url(REDIS_URL).get(f"{replicas.prefix}:job:{job_id}")
    assert raw is not None
    pid = int(json.loads(raw)["replica"].split(":")[-2])
    return next(r for r in replicas.replicas if r.process.pid == pid)


def test_killing_the_replica_running_a_job_leaves_it_failed_and_audited_elsewhere(replicas: Replicas) -> None:
    created = _submit(replicas, replicas.replicas[0], LONG_CLIP)
    assert created.status_code == 202, created.text
    job_id, generation_id = created.json()["id"], created.json()["generation_id"]

    def generating(job: dict[str, Any]) -> bool:
        assert job["status"] not in FINISHED, job  # it must still be running when it is killed
        return job["status"] == "running" and (job.get("progress") or {}).get("stage") == "generate"

    _follow(replicas, replicas.replicas[1], job_id, generating)
    victim = _running_replica(replicas, job_id)
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    survivor = next(r for r in replicas.replicas if r is not victim)

    seen = _follow(replicas, survivor, job_id, lambda job: job["status"] in FINISHED)
    final = seen[-1]
    assert final["status"] in ("succeeded", "failed"), final
    with replicas.client(survivor, replicas.admin_key) as http:
        events = http.get("/v1/audit/events", params={"generation_id": generation_id}).json()["events"]
    types = [event["type"] for event in events]
    if final["status"] == "failed":
        assert final["error"]["error"] == "worker_lost", final
        # The audit log says how the generation ended: requested, then failed, and never completed.
        assert "generation.requested" in types and "generation.failed" in types, types
        assert "generation.completed" not in types
        assert types.index("generation.requested") < types.index("generation.failed")
        failed = next(event for event in events if event["type"] == "generation.failed")
        assert "worker_lost" in json.dumps(failed)
    else:
        assert "generation.completed" in types, types


# -- RedisJobRunner on its own: two runners (replicas) on one Redis prefix, fake generations --------------------


class Held:
    """A fake generation that reports a frame every few milliseconds until released (a cancel reaches it at
    its next frame), then succeeds."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Event()
        self.ended = threading.Event()

    def execute(self, job: AnimationJob, progress: ProgressCallback) -> AnimationResult:
        self.running.set()
        try:
            while not self.release.wait(0.02):
                progress(Progress("generate", 1, 2))
            progress(Progress("generate", 2, 2))
            return _result(job)
        finally:
            self.ended.set()


@pytest.fixture
def prefix() -> Iterator[str]:
    _require_redis()
    made = f"xp-unit-{secrets.token_hex(5)}"
    yield made
    clear(REDIS_URL, made)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = Store.open(f"sqlite:///{tmp_path / 'xp.db'}")
    yield Ledger(store, origin="xp-sdk/test")
    store.dispose()


def _until(runner: RedisJobRunner, job_id: str, done: Callable[[JobState], bool]) -> JobState:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = runner.status(job_id)
        assert state is not None
        if done(state):
            return state
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never got there: {runner.status(job_id)}")


def test_a_running_job_whose_lease_lapses_is_failed_by_another_replica_and_stays_failed(
    tmp_path: Path, prefix: str, ledger: Ledger
) -> None:
    held = Held()
    first = RedisJobRunner(held.execute, ledger, url=REDIS_URL, prefix=prefix)
    second: RedisJobRunner | None = None
    try:
        job = _job(tmp_path)
        first.submit(job)
        assert held.running.wait(60)
        second = RedisJobRunner(Held().execute, ledger, url=REDIS_URL, prefix=prefix)
        assert second.reconcile() == []  # the first replica renews its lease
        # As the second replica sees it once the lease has lapsed (the first one frozen or dead):
        assert second.reconcile(now=time.time() + LEASE_S + 1) == [job.id]
        failed = first.status(job.id)
        assert failed is not None and failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error["error"] == "worker_lost"
        held.release.set()  # the first replica's worker wakes up: it may not turn the job into a success
        assert held.ended.wait(60)
        assert first.status(job.id) == failed
    finally:
        held.release.set()
        first.shutdown()
        if second is not None:
            second.shutdown()


def test_a_queued_job_outlives_the_replica_that_accepted_it(tmp_path: Path, prefix: str, ledger: Ledger) -> None:
    held = Held()
    first = RedisJobRunner(held.execute, ledger, url=REDIS_URL, prefix=prefix, workers=1)
    busy, waiting = _job(tmp_path), _job(tmp_path)
    first.submit(busy)
    assert held.running.wait(60)
    queued, _ = first.submit(waiting)
    assert queued.status is JobStatus.QUEUED
    first.shutdown(wait=False)  # its running job stops at its next frame; the queued one stays in Redis
    free = Held()
    free.release.set()
    second = RedisJobRunner(free.execute, ledger, url=REDIS_URL, prefix=prefix, workers=1)
    try:
        assert _until(second, busy.id, lambda s: s.status.finished).status is JobStatus.CANCELLED
        done = _until(second, waiting.id, lambda s: s.status.finished)
        assert done.status is JobStatus.SUCCEEDED and done.result is not None, done
    finally:
        second.shutdown()
