"""``RayJobRunner`` on a local Ray (one per module) with the audit store on PostgreSQL (a schema per module).

Real generations with real faces; a worker is killed with SIGKILL mid-job. Whatever happens, every output on disk
has its "completed" event with the same SHA-256, the dead generation ends "failed" (worker_lost), and the audit
log verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres import postgres_schema
from watermark import Payload
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.deployment import Deployment
from xp_sdk.server.jobs import AnimationJob, JobState, JobStatus, new_job_id

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[dev]' (or the ray extra)")
from xp_sdk.server.ray_runner import RayJobRunner, WorkerUnavailableError  # noqa: E402  (needs Ray)

SHORT_CLIP = "lp_d1_hist.mp4"  # 16 frames: the cheapest real generation
LONG_CLIP = "lp_d5_hist.mp4"  # 148 frames: time to kill its worker mid-way
POLL_S = 0.05


@dataclass
class World:
    """A home whose audit store is a PostgreSQL schema; the astronaut (Eileen Collins) has consented."""

    root: Path
    deployment: Deployment
    animator_key: str
    animator_key_id: str
    admin: Client
    eileen: str
    photo: Path
    faces: Path

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def job(self, clip: str = SHORT_CLIP, name: str = "clip.mp4") -> AnimationJob:
        """A job as the server makes one: uploads copied into a workdir of their own, the output in a folder
        named after its generation."""
        job_id = new_job_id()
        workdir = self.root / "uploads" / job_id
        workdir.mkdir(parents=True)
        source, driving = workdir / "source.png", workdir / "driving.mp4"
        shutil.copyfile(self.photo, source)
        shutil.copyfile(self.faces / "driving" / clip, driving)
        generation_id = Payload.new().hex
        out = self.outputs / generation_id / name
        out.parent.mkdir(parents=True)
        return AnimationJob(
            id=job_id, generation_id=generation_id, api_key=self.animator_key, tenant_id="acme",
            key_id=self.animator_key_id, subject=self.eileen, source=source, source_is_array=False, out=out,
            workdir=workdir, driving=driving, fingerprint=job_id,
        )  # fmt: skip

    def events(self, generation_id: str) -> dict[str, dict[str, object]]:
        """Event type → data, for one generation."""
        found = self.deployment.ledger.events_for_generation(generation_id)
        return {event.type: dict(event.data) for event in found}

    def check_every_output_is_audited(self) -> list[Path]:
        """No temporaries left, and each published file (of any test so far) is a completed generation's output,
        byte for byte; the files."""
        files = [p for p in self.outputs.rglob("*") if p.is_file()]
        assert [p.name for p in files if p.name.startswith(".")] == []
        for path in files:
            generation_id = path.parent.name
            completed = self.events(generation_id).get("generation.completed")
            assert completed is not None, f"{path} exists without a completed event"
            assert completed["output_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        self.admin.audit.verify()
        return files


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("ray")
    photo = faces / "source" / "skimage_astronaut.png"
    with postgres_schema("xp_ray") as url:
        init = init_deployment(root / "home", database_url=url, tenant="acme")
        admin = Client(init.api_key.secret, home=init.home)
        eileen = admin.subjects.register("Eileen Collins", [photo]).id
        admin.consents.grant(eileen, evidence=b"Eileen Collins consents (Ray tests)")
        animator = admin.keys.create(scopes="animate verify", name="animator", rate_limit_per_minute=6000)
        deployment = Deployment.open(Settings.resolve(home=init.home))
        assert deployment.ledger.store.dialect == "postgresql"
        try:
            yield World(
                root=root, deployment=deployment, animator_key=animator.secret, animator_key_id=animator.info.id,
                admin=admin, eileen=eileen, photo=photo, faces=faces,
            )  # fmt: skip
        finally:
            admin.close()
            deployment.close()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (starting one takes about ten seconds); runners find it connected."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture
def runner_for(world: World, local_ray: None) -> Iterator[Callable[..., RayJobRunner]]:
    made: list[RayJobRunner] = []

    def make(**options: object) -> RayJobRunner:
        runner = RayJobRunner(world.deployment, poll_s=POLL_S, **options)  # type: ignore[arg-type]
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.shutdown(wait=False)


def _watch(runner: RayJobRunner, job_id: str, seen: Callable[[JobState], None] = lambda _: None) -> JobState:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = runner.status(job_id)
        assert state is not None
        seen(state)
        if state.status.finished:
            return state
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish: {runner.status(job_id)}")


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _kill_mid_job(runner: RayJobRunner, job: AnimationJob, work_dir: Path) -> int:
    """SIGKILL the job's worker while its engine runs (after "requested", before anything is signed)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # The engine is running once its encoded frames appear in the generation's work folder under the home.
        unsigned = work_dir / job.generation_id / "unsigned.mp4"
        running = unsigned.is_file() and unsigned.stat().st_size > 0
        pid = runner.worker_pid(job.id)
        if running and pid is not None:
            os.kill(pid, signal.SIGKILL)
            return pid
        state = runner.status(job.id)
        assert state is not None and not state.status.finished, f"the job ended before it could be killed: {state}"
        time.sleep(0.002)
    raise AssertionError("the job's engine never started")


def test_a_job_runs_on_a_worker_and_publishes_an_audited_output(
    world: World, runner_for: Callable[..., RayJobRunner]
) -> None:
    runner = runner_for(workers=1)
    job = world.job()
    queued, created = runner.submit(job)
    assert created and queued.status is JobStatus.QUEUED
    pids: set[int] = set()
    progressed: list[JobState] = []

    def seen(state: JobState) -> None:
        pid = runner.worker_pid(job.id)
        if pid is not None:
            pids.add(pid)
        if state.status is JobStatus.RUNNING and state.progress.stage == "generate":
            progressed.append(state)

    final = _watch(runner, job.id, seen)
    assert final.status is JobStatus.SUCCEEDED, final.error
    assert final.result is not None and final.generation_id == job.generation_id
    assert len(pids) == 1 and os.getpid() not in pids  # it ran in the actor's process
    assert progressed and progressed[0].progress.total == 16  # progress came back while it ran
    assert final.progress.done == final.progress.total == 16
    events = world.events(job.generation_id)
    assert {"generation.requested", "generation.completed"} <= set(events)
    digest = hashlib.sha256(job.out.read_bytes()).hexdigest()
    assert digest == final.result.output_sha256 == events["generation.completed"]["output_sha256"]
    assert not job.workdir.exists()
    assert job.out in world.check_every_output_is_audited()
    runner.shutdown()
    assert _gone(pids.pop()), "the runner's worker outlived its shutdown"


def test_two_jobs_run_at_once_on_two_workers(world: World, runner_for: Callable[..., RayJobRunner]) -> None:
    runner = runner_for(workers=2)
    # A long job first, a short one second: one worker would have to finish the long one before starting the
    # short one, so the short one finishing while the long one still runs shows two jobs ran at once, whatever
    # the machine's load does to how fast either goes.
    long_job, short_job = world.job(clip=LONG_CLIP, name="long.mp4"), world.job(name="short.mp4")
    runner.submit(long_job)
    runner.submit(short_job)
    pids: dict[str, int] = {}
    long_running_when_short_finished: bool | None = None
    while True:
        # The short job's state is read first: the queue hands out jobs in order, so with one worker the short
        # job could only have finished after the long one had.
        short_state, long_state = runner.status(short_job.id), runner.status(long_job.id)
        assert long_state is not None and short_state is not None
        for job in (long_job, short_job):
            pid = runner.worker_pid(job.id)
            if pid is not None:
                pids[job.id] = pid
        if long_running_when_short_finished is None and short_state.status.finished:
            long_running_when_short_finished = long_state.status is JobStatus.RUNNING
        if short_state.status.finished and long_state.status.finished:
            break
        time.sleep(0.01)
    finals = [runner.status(j.id) for j in (long_job, short_job)]
    assert [f.status for f in finals] == [JobStatus.SUCCEEDED] * 2  # type: ignore[union-attr]
    assert len(set(pids.values())) == 2, pids
    assert long_running_when_short_finished, "the short job waited for the long one: only one worker was at work"
    assert {long_job.out, short_job.out} <= set(world.check_every_output_is_audited())


def test_a_worker_killed_mid_job_fails_its_generation_and_the_job_runs_again(
    world: World, runner_for: Callable[..., RayJobRunner]
) -> None:
    runner = runner_for(workers=1, retries=1)
    job = world.job(clip=LONG_CLIP)
    runner.submit(job)
    killed = _kill_mid_job(runner, job, world.deployment.home.work_dir)
    pids: set[int] = set()

    def seen(state: JobState) -> None:
        pid = runner.worker_pid(job.id)
        if pid is not None and state.generation_id != job.generation_id:
            pids.add(pid)

    final = _watch(runner, job.id, seen)
    assert final.status is JobStatus.SUCCEEDED, final.error
    assert final.generation_id != job.generation_id and final.result is not None
    assert final.result.generation_id == final.generation_id
    assert len(pids) == 1 and killed not in pids, "the job did not run again on one fresh worker"
    lost = world.events(job.generation_id)
    assert "generation.completed" not in lost
    assert lost["generation.failed"]["error"] == "worker_lost"
    assert final.generation_id in str(lost["generation.failed"]["message"])
    assert world.deployment.ledger.generation(job.generation_id).status == "failed"
    assert not job.out.parent.exists(), "the lost generation's folder is left behind"
    retried = world.events(final.generation_id)
    assert retried["generation.completed"]["output_sha256"] == final.result.output_sha256
    assert final.result.output == world.outputs / final.generation_id / job.out.name
    assert final.result.output in world.check_every_output_is_audited()


def test_without_retries_a_killed_worker_fails_the_job_and_is_replaced(
    world: World, runner_for: Callable[..., RayJobRunner]
) -> None:
    runner = runner_for(workers=1, retries=0)
    job = world.job(clip=LONG_CLIP)
    runner.submit(job)
    killed = _kill_mid_job(runner, job, world.deployment.home.work_dir)
    final = _watch(runner, job.id)
    assert final.status is JobStatus.FAILED and final.result is None
    assert final.error is not None and final.error["error"] == "worker_lost"
    assert final.generation_id == job.generation_id
    lost = world.events(job.generation_id)
    assert lost["generation.failed"]["error"] == "worker_lost" and "generation.completed" not in lost
    assert not job.out.parent.exists() and not job.workdir.exists()
    world.check_every_output_is_audited()

    after = world.job()
    runner.submit(after)
    pids: set[int] = set()
    done = _watch(runner, after.id, lambda _: pids.add(runner.worker_pid(after.id) or 0))
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert killed not in pids and pids - {0}, "the next job did not run on a fresh worker"
    assert after.out in world.check_every_output_is_audited()


def test_a_running_job_is_cancelled_on_its_worker(world: World, runner_for: Callable[..., RayJobRunner]) -> None:
    runner = runner_for(workers=1)
    job = world.job(clip=LONG_CLIP)
    runner.submit(job)

    def cancel_once_generating(state: JobState) -> None:
        if state.status is JobStatus.RUNNING and state.progress.stage == "generate":
            runner.cancel(job.id)

    final = _watch(runner, job.id, cancel_once_generating)
    assert final.status is JobStatus.CANCELLED, final
    assert final.error is not None and final.error["error"] == "cancelled"
    assert final.progress.total is not None and final.progress.done < final.progress.total
    assert world.events(job.generation_id)["generation.failed"]["error"] == "cancelled"
    assert not job.out.parent.exists() and not job.workdir.exists()
    world.check_every_output_is_audited()


def test_a_worker_that_cannot_open_the_deployment_stops_the_runner_from_starting(
    world: World, local_ray: None, tmp_path: Path
) -> None:
    nowhere = world.deployment.settings.model_copy(update={"home": tmp_path / "not-a-home"})
    with pytest.raises(WorkerUnavailableError, match="is not an xp-sdk home yet"):
        RayJobRunner(dataclasses.replace(world.deployment, settings=nowhere), workers=1)


def test_workers_asking_for_a_gpu_the_cluster_lacks_time_out(world: World, local_ray: None) -> None:
    with pytest.raises(WorkerUnavailableError, match="1 GPU free"):
        RayJobRunner(world.deployment, workers=1, gpus_per_worker=1, start_timeout_s=2)


def test_the_http_server_runs_generations_on_ray(world: World, local_ray: None, tmp_path: Path) -> None:
    """`xp serve --ray`: the remote client's animate goes through the API to an actor and back, audited."""
    from xp_sdk.server.app import create_app
    from xp_sdk.server.serve import BackgroundServer

    app = create_app(world.deployment, workers=1, ray_address="local")
    out = tmp_path / "over-http.mp4"
    with BackgroundServer(app) as server, Client(world.animator_key, base_url=server.url) as client:
        clip = world.faces / "driving" / SHORT_CLIP
        result = client.animate(world.photo, subject=world.eileen, driving=clip, out=out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest == result.output_sha256
    assert world.events(result.generation_id)["generation.completed"]["output_sha256"] == digest
    world.admin.audit.verify()
