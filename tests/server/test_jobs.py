"""``ThreadJobRunner`` on its own: bounded workers, queue limit, cancellation, idempotency, retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xp_sdk.engine import Progress, ProgressCallback
from xp_sdk.errors import ConflictError, FaceMismatchError, RateLimitedError
from xp_sdk.results import AnimationResult
from xp_sdk.server.jobs import AnimationJob, JobState, JobStatus, ThreadJobRunner, new_job_id


def _job(tmp_path: Path, fingerprint: str = "same", key_id: str = "key1") -> AnimationJob:
    workdir = tmp_path / new_job_id()
    workdir.mkdir()
    return AnimationJob(
        id=new_job_id(), generation_id="00000000000000aa", api_key="secret", tenant_id="acme", key_id=key_id,
        subject="sub_1", source=workdir / "photo.png", source_is_array=False, out=tmp_path / "out.mp4",
        workdir=workdir, template="smile", fingerprint=fingerprint,
    )  # fmt: skip


def _result(job: AnimationJob) -> AnimationResult:
    return AnimationResult(
        generation_id=job.generation_id, watermark_id=job.generation_id, output=job.out, output_sha256="0" * 64,
        manifest_label="urn:c2pa:x", manifest_sha256=None, subject_id=job.subject, consent_id=None,
        decision_id="d" * 32, face_similarity=0.9, frames=4, fps=25.0, width=64, height=64, seconds=0.1,
        reference_frame=None, frames_without_face=0, audit_seq=(1, 2),
    )  # fmt: skip


class Gate:
    """Lets a fake generation run one frame at a time, so a test decides when each frame happens."""

    def __init__(self) -> None:
        self.frames = threading.Semaphore(0)
        self.running = threading.Event()
        self.concurrent = 0
        self.most_concurrent = 0
        self.lock = threading.Lock()

    def open(self) -> None:
        """Let every frame through (before a shutdown that waits for running jobs)."""
        for _ in range(100):
            self.frames.release()

    def execute(self, job: AnimationJob, progress: ProgressCallback) -> AnimationResult:
        with self.lock:
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
        self.running.set()
        try:
            for done in range(1, 5):
                assert self.frames.acquire(timeout=10)
                progress(Progress("generate", done, 4))
            return _result(job)
        finally:
            with self.lock:
                self.concurrent -= 1


def _until(runner: ThreadJobRunner, job_id: str, done: Callable[[JobState], bool]) -> JobState:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = runner.status(job_id)
        assert state is not None
        if done(state):
            return state
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached the expected state: {runner.status(job_id)}")


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate()
    yield made
    made.open()


def test_a_job_runs_reports_progress_and_succeeds(tmp_path: Path, gate: Gate) -> None:
    runner = ThreadJobRunner(gate.execute, workers=1)
    state, created = runner.submit(_job(tmp_path))
    assert created and state.status is JobStatus.QUEUED
    gate.frames.release()
    gate.frames.release()
    halfway = _until(runner, state.id, lambda s: s.progress.done == 2)
    assert halfway.status is JobStatus.RUNNING and halfway.progress.total == 4 and halfway.started_at is not None
    for _ in range(2):
        gate.frames.release()
    final = _until(runner, state.id, lambda s: s.status.finished)
    assert final.status is JobStatus.SUCCEEDED and final.result is not None and final.progress.done == 4
    assert final.version > halfway.version > state.version
    runner.shutdown()


def test_no_more_jobs_run_at_once_than_workers(tmp_path: Path, gate: Gate) -> None:
    runner = ThreadJobRunner(gate.execute, workers=2)
    ids = [runner.submit(_job(tmp_path, fingerprint=str(n)))[0].id for n in range(4)]
    _until(runner, ids[1], lambda s: s.status is JobStatus.RUNNING)
    assert [runner.status(i).status for i in ids[2:]] == [JobStatus.QUEUED, JobStatus.QUEUED]  # type: ignore[union-attr]
    for _ in range(16):
        gate.frames.release()
    for job_id in ids:
        _until(runner, job_id, lambda s: s.status is JobStatus.SUCCEEDED)
    assert gate.most_concurrent == 2
    runner.shutdown()


def test_the_queue_is_bounded(tmp_path: Path, gate: Gate) -> None:
    runner = ThreadJobRunner(gate.execute, workers=1, max_queued=2)
    first = runner.submit(_job(tmp_path, fingerprint="0"))[0]
    _until(runner, first.id, lambda s: s.status is JobStatus.RUNNING)
    runner.submit(_job(tmp_path, fingerprint="1"))
    runner.submit(_job(tmp_path, fingerprint="2"))
    with pytest.raises(RateLimitedError) as caught:
        runner.submit(_job(tmp_path, fingerprint="3"))
    assert caught.value.retry_after > 0
    gate.open()
    runner.shutdown(wait=False)


def test_cancel_stops_a_queued_job_at_once_and_a_running_one_at_its_next_frame(tmp_path: Path, gate: Gate) -> None:
    runner = ThreadJobRunner(gate.execute, workers=1)
    running = runner.submit(_job(tmp_path, fingerprint="a"))[0]
    queued_job = _job(tmp_path, fingerprint="b")
    queued = runner.submit(queued_job)[0]
    gate.frames.release()
    _until(runner, running.id, lambda s: s.progress.done == 1)
    cancelled = runner.cancel(queued.id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert not queued_job.workdir.exists()  # its uploads go at once
    runner.cancel(running.id)
    gate.frames.release()
    final = _until(runner, running.id, lambda s: s.status.finished)
    assert final.status is JobStatus.CANCELLED and final.error is not None and final.error["error"] == "cancelled"
    assert final.progress.done == 2  # the frame in flight finished; no other began
    assert runner.cancel("job_unknown") is None
    runner.shutdown()


def test_an_idempotency_key_returns_its_job_and_refuses_a_different_request(tmp_path: Path, gate: Gate) -> None:
    runner = ThreadJobRunner(gate.execute, workers=1)
    first, created = runner.submit(_job(tmp_path), idempotency_key="k1")
    again, created_again = runner.submit(_job(tmp_path), idempotency_key="k1")
    assert created and not created_again and again.id == first.id
    other_key, created_other = runner.submit(_job(tmp_path, key_id="key2"), idempotency_key="k1")
    assert created_other and other_key.id != first.id  # keys are per API key
    with pytest.raises(ConflictError, match="different request"):
        runner.submit(_job(tmp_path, fingerprint="changed"), idempotency_key="k1")
    gate.open()
    runner.shutdown(wait=False)


def test_a_failed_job_carries_the_typed_error(tmp_path: Path) -> None:
    def refuse(job: AnimationJob, progress: ProgressCallback) -> AnimationResult:
        raise FaceMismatchError("not her", reasons=(("face_mismatch", "too far", None),), decision_id="f" * 32)

    def crash(job: AnimationJob, progress: ProgressCallback) -> AnimationResult:
        raise RuntimeError(f"secret detail at {job.workdir}")

    for execute, kind in ((refuse, "FaceMismatchError"), (crash, "XPError")):
        runner = ThreadJobRunner(execute, workers=1)
        state = runner.submit(_job(tmp_path))[0]
        final = _until(runner, state.id, lambda s: s.status.finished)
        assert final.status is JobStatus.FAILED and final.error is not None and final.error["type"] == kind
        assert "secret detail" not in final.error["message"]
        runner.shutdown()


def test_finished_jobs_are_dropped_after_retention(tmp_path: Path, gate: Gate) -> None:
    discarded: list[str] = []
    runner = ThreadJobRunner(gate.execute, workers=1, retention_s=0.0, on_discard=lambda s: discarded.append(s.id))
    first = runner.submit(_job(tmp_path, fingerprint="1"), idempotency_key="k")[0]
    for _ in range(4):
        gate.frames.release()
    _until(runner, first.id, lambda s: s.status.finished)
    time.sleep(0.01)
    second, created = runner.submit(_job(tmp_path, fingerprint="2"), idempotency_key="k")
    assert created and second.id != first.id  # the key was forgotten with its job
    assert runner.status(first.id) is None and discarded == [first.id]
    gate.open()
    runner.shutdown(wait=False)


def test_a_generation_whose_worker_is_gone_is_marked_failed_once(tmp_path: Path) -> None:
    from xp_sdk import init_deployment
    from xp_sdk.config import Settings
    from xp_sdk.deployment import Deployment
    from xp_sdk.server.jobs import fail_abandoned

    init = init_deployment(tmp_path / "home", tenant="acme")
    deployment = Deployment.open(Settings.resolve(home=init.home))
    try:
        ledger = deployment.ledger
        ledger.record_requested(
            "00000000000000ab", tenant_id="acme", key_id=init.api_key.info.id, subject_id=None, consent_id=None,
            decision={"allowed": True}, source_sha256="0" * 64, driving="template:smile", request={},
        )  # fmt: skip
        assert fail_abandoned(ledger, "00000000000000ab", "worker process exited") is True
        assert fail_abandoned(ledger, "00000000000000ab", "again") is False  # already failed
        assert fail_abandoned(ledger, "00000000000000ff", "never requested") is False
        record = ledger.generation("00000000000000ab")
        assert record.status == "failed" and record.error_code == "worker_lost"
    finally:
        deployment.close()
