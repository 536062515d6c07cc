"""``RayJobRunner``: animation jobs on Ray actors (``GenerationWorker``), each holding its own ``Service``.

One actor per GPU (``gpus_per_worker=1``) or per CPU core; each opens the deployment from the server's settings
once and keeps it (database pool, policy set, keys, face embedder) across jobs. The runner keeps the job table,
the queue and the idempotency keys in the server's process (a ``JobTable``, as ``ThreadJobRunner`` does), and
polls each running actor for progress.

Requirements of a cluster:

- Every Ray node sees the deployment's home (keys, policies) and the server's ``uploads/`` and ``outputs/`` at the
  same absolute paths: a job names its inputs and its output by path, never by content. One machine, or a shared
  filesystem mounted alike everywhere.
- The audit store is PostgreSQL that every node reaches (SQLite only when the whole cluster is one machine).
- xp-sdk (with the ``ray`` extra) is installed at the same version on every node.
- The cluster is private: a job carries the caller's API key to the worker, which authenticates it afresh.

A worker that dies mid-job (its process killed, its node gone) leaves a generation that may have reached
"requested". The runner marks it failed (``generation.failed``, error ``worker_lost``) before anything else, and
only then retries the job once on a fresh actor under a new generation id, or reports the job failed. Marking it
first is what keeps a worker that was only unreachable from publishing later: its "completed" event would be
refused, and ``generate`` publishes an output only after that event is committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

try:
    import ray
    from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayError
except ImportError as exc:  # Ray is an optional extra: only `xp serve --ray` needs it
    raise ImportError("running jobs on Ray needs the ray extra: pip install 'xp-sdk[ray]'") from exc

from watermark import Payload
from xp_sdk.config import Settings
from xp_sdk.deployment import Deployment
from xp_sdk.engine import Progress, ProgressCallback
from xp_sdk.errors import EngineError, XPError
from xp_sdk.home import Home
from xp_sdk.results import AnimationResult
from xp_sdk.server.errors import error_body, internal_error
from xp_sdk.server.jobs import (
    AnimationJob,
    JobCancelledError,
    JobEntry,
    JobProgress,
    JobState,
    JobStatus,
    JobTable,
    ProgressMeter,
    TableRunner,
    fail_abandoned,
    remove_inputs,
    run_animation,
)
from xp_sdk.service import Service
from xp_sdk.workspace import remove_work_folders

log = logging.getLogger("xp_sdk.server.ray")

# A running job's actor also answers progress and cancel calls, each on a thread of its own.
_ACTOR_THREADS = 4
# Ray reports a worker process or node that is gone as these, whatever the task was doing.
_LOST = (RayActorError, ObjectLostError)


class WorkerLostError(EngineError):
    """The worker running a job died (or its node did) before the job ended."""

    code = "worker_lost"


class WorkerUnavailableError(EngineError):
    """No Ray worker could be started (the cluster lacks resources, or a worker cannot open the deployment)."""

    code = "worker_unavailable"


@dataclass(frozen=True)
class Outcome:
    """How a job ended on its worker: plain data, so that only Ray's own failures cross as exceptions."""

    status: JobStatus
    progress: JobProgress
    result: AnimationResult | None = None
    error: dict[str, Any] | None = None


class GenerationWorker:
    """The body of one Ray actor: a ``Service`` opened once, one job at a time."""

    def __init__(self, settings: Settings) -> None:
        self._service = Service(Deployment.open(settings))
        self._lock = threading.Lock()
        self._job_id: str | None = None
        self._progress = JobProgress()
        # A set, not a flag: a cancel may arrive before the job's own call starts on the actor.
        self._cancelled: set[str] = set()

    def ready(self) -> int:
        """The worker's process id, once the deployment is open."""
        return os.getpid()

    def run(self, job: AnimationJob) -> Outcome:
        with self._lock:
            self._job_id, self._progress = job.id, JobProgress()
        try:
            result = run_animation(self._service, job, self._reporter(job.id))
        except JobCancelledError as exc:
            return self._outcome(JobStatus.CANCELLED, error=error_body(exc))
        except XPError as exc:
            return self._outcome(JobStatus.FAILED, error=error_body(exc, job.renames))
        except Exception:
            reference = secrets.token_hex(6)
            log.exception("job %s failed on its Ray worker (reference %s)", job.id, reference)
            return self._outcome(JobStatus.FAILED, error=internal_error(reference))
        finally:
            with self._lock:
                self._cancelled.discard(job.id)
        return self._outcome(JobStatus.SUCCEEDED, result=result)

    def progress(self) -> tuple[str | None, JobProgress]:
        with self._lock:
            return self._job_id, self._progress

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def close(self) -> None:
        self._service.close()

    def _outcome(self, status: JobStatus, **changes: Any) -> Outcome:
        with self._lock:
            return Outcome(status=status, progress=self._progress, **changes)

    def _reporter(self, job_id: str) -> ProgressCallback:
        meter = ProgressMeter()

        def report(update: Progress) -> None:
            measured = meter(update)
            with self._lock:
                self._progress = measured
                cancelled = job_id in self._cancelled
            if cancelled:
                raise JobCancelledError("cancelled while running")

        return report


@dataclass
class _Worker:
    handle: Any
    """The Ray actor handle of a ``GenerationWorker``."""
    pid: int


@dataclass
class _Entry(JobEntry):
    attempts: int = 0
    worker: _Worker | None = None


class RayJobRunner(TableRunner[_Entry]):
    """A ``JobRunner`` over ``workers`` Ray actors.

    ``address``: a Ray cluster (``ray://…`` or ``host:port``), or ``"local"`` to start Ray in this process's
    machine; a process already connected to Ray (``ray.init`` called before) keeps that connection. ``retries``:
    how many times a job whose worker died runs again, each time under a new generation id. The rest is as for
    ``ThreadJobRunner``."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        address: str = "local",
        workers: int = 1,
        gpus_per_worker: float = 0.0,
        retries: int = 1,
        max_queued: int = 64,
        retention_s: float = 3600.0,
        on_discard: Callable[[JobState], None] | None = None,
        poll_s: float = 0.1,
        start_timeout_s: float = 300.0,
        ray_options: Mapping[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a job runner needs at least one worker")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self._ledger = deployment.ledger
        # Workers authenticate each job's own key; the server's default key has no business on them.
        self._settings = deployment.settings.model_copy(update={"api_key": None})
        self._retries = retries
        self._poll_s = poll_s
        self._start_timeout_s = start_timeout_s
        self._gpus_per_worker = gpus_per_worker
        self._jobs = JobTable(_Entry, max_queued=max_queued, retention_s=retention_s, on_discard=on_discard)

        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            defaults = {"include_dashboard": False} if address == "local" else {}
            ray.init(address=address, **{**defaults, **(ray_options or {})})
        if address != "local" and self._settings.database_url.startswith("sqlite"):
            log.warning("Ray workers share a SQLite audit store: this is safe only while the cluster is one machine")
        self._actor_class = ray.remote(GenerationWorker).options(
            num_cpus=1, num_gpus=self._gpus_per_worker, max_concurrency=_ACTOR_THREADS, max_restarts=0
        )
        try:
            self._workers: list[_Worker | None] = list(self._start_workers(workers))
        except BaseException:
            if self._owns_ray:
                ray.shutdown()
            raise
        self._threads = [
            threading.Thread(target=self._work, args=(slot,), name=f"xp-ray-job-{slot}", daemon=True)
            for slot in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- the JobRunner interface -----------------------------------------------------------------------------

    def shutdown(self, *, wait: bool = True) -> None:
        """Cancel what is queued; with ``wait``, let running jobs finish, else stop them at their next frame.
        Then stop the actors, and Ray itself if this runner started it."""
        if not self._jobs.close(wait=wait):
            return
        self._jobs.stop(len(self._threads))
        for thread in self._threads:
            thread.join()
        for worker in self._workers:
            if worker is not None:
                self._stop_worker(worker, gracefully=True)
        if self._owns_ray:
            ray.shutdown()

    # -- beyond the interface --------------------------------------------------------------------------------

    def worker_pid(self, job_id: str) -> int | None:
        """The process id of the worker running ``job_id`` now (on its node); None unless it is running."""
        with self._jobs.lock:
            entry = self._jobs.get(job_id)
            if entry is None or entry.state.status is not JobStatus.RUNNING or entry.worker is None:
                return None
            return entry.worker.pid

    # -- workers ---------------------------------------------------------------------------------------------

    def _start_workers(self, count: int) -> list[_Worker]:
        """``count`` ready actors; all started at once, so a cluster starts them in parallel."""
        handles = [self._actor_class.remote(self._settings) for _ in range(count)]
        try:
            pids = ray.get([handle.ready.remote() for handle in handles], timeout=self._start_timeout_s)
        except RayError as exc:
            for handle in handles:
                ray.kill(handle, no_restart=True)
            log.error("a Ray worker did not start: %s", exc)
            if isinstance(exc, GetTimeoutError):
                reason = (
                    f"none was ready within {self._start_timeout_s:g} s; does the cluster have 1 CPU and "
                    f"{self._gpus_per_worker:g} GPU free for each worker?"
                )
            else:
                # An error in the actor's __init__ arrives as its traceback, which ends with the error itself.
                reason = _last_line(exc)
            raise WorkerUnavailableError(f"a Ray worker did not start: {reason}") from exc
        return [_Worker(handle, int(pid)) for handle, pid in zip(handles, pids, strict=True)]

    def _stop_worker(self, worker: _Worker, *, gracefully: bool) -> None:
        if gracefully:
            with contextlib.suppress(RayError):  # gone already, or stuck: killed below either way
                ray.get(worker.handle.close.remote(), timeout=30)
        ray.kill(worker.handle, no_restart=True)

    def _worker(self, slot: int) -> _Worker:
        """The slot's actor, started again if the last one died and could not be replaced then."""
        worker = self._workers[slot]
        if worker is None:
            worker = self._workers[slot] = self._start_workers(1)[0]
        return worker

    def _work(self, slot: int) -> None:
        while (entry := self._jobs.take()) is not None:
            try:
                outcome = self._run(slot, entry)
            except Exception:
                reference = secrets.token_hex(6)
                log.exception("job %s failed in the Ray job runner (reference %s)", entry.job.id, reference)
                outcome = Outcome(JobStatus.FAILED, entry.state.progress, error=internal_error(reference))
            with self._jobs.lock:
                entry.worker = None
                self._jobs.finish(
                    entry, outcome.status, progress=outcome.progress, result=outcome.result, error=outcome.error
                )

    def _run(self, slot: int, entry: _Entry) -> Outcome:
        while True:
            try:
                worker = self._worker(slot)
            except WorkerUnavailableError as exc:
                remove_inputs(entry.job)
                return Outcome(JobStatus.FAILED, entry.state.progress, error=error_body(exc, entry.job.renames))
            with self._jobs.lock:
                entry.worker = worker
                entry.attempts += 1
                job = entry.job
            try:
                return self._attempt(worker, entry, job)
            except _LOST as exc:
                outcome = self._lost(slot, worker, entry, job, exc)
                if outcome is not None:
                    return outcome
            except RayError:
                # The worker lives, but Ray could not hand its answer back: the job's fate is unknown here.
                reference = secrets.token_hex(6)
                log.exception("job %s: no answer from its Ray worker (reference %s)", job.id, reference)
                self._fail_generation(job, f"the job's Ray worker gave no answer (reference {reference})")
                remove_inputs(job)
                return Outcome(JobStatus.FAILED, entry.state.progress, error=internal_error(reference))

    def _attempt(self, worker: _Worker, entry: _Entry, job: AnimationJob) -> Outcome:
        done = worker.handle.run.remote(job)
        cancel_sent = False
        while True:
            ready, _ = ray.wait([done], timeout=self._poll_s)
            if ready:
                outcome: Outcome = ray.get(done)
                return outcome
            if entry.cancel.is_set() and not cancel_sent:
                worker.handle.cancel.remote(job.id)
                cancel_sent = True
            try:
                running, progress = ray.get(worker.handle.progress.remote(), timeout=self._poll_s)
            except RayError:
                continue  # a dead worker shows on the job's own reference, next time round
            with self._jobs.lock:
                if running == job.id and progress != entry.state.progress:
                    self._jobs.update(entry, progress=progress)

    def _lost(self, slot: int, worker: _Worker, entry: _Entry, job: AnimationJob, exc: Exception) -> Outcome | None:
        """A job's worker died: fail its generation, replace the worker, and say how the job ends (None: run it
        again, as ``entry.job`` now says)."""
        with self._jobs.lock:
            entry.worker = None
            retry = entry.attempts <= self._retries and not entry.cancel.is_set()
        retry_id = Payload.new().hex if retry else None
        then = f"the job runs again as generation {retry_id}" if retry_id else "the job failed"
        log.warning(
            "job %s: Ray worker pid %d lost during generation %s; %s", job.id, worker.pid, job.generation_id, then
        )
        audited = self._fail_generation(job, f"Ray worker pid {worker.pid} lost during job {job.id}: {then}")
        # Its temporaries (unsigned and signed videos) were the dead process's to remove.
        remove_work_folders(Home(self._settings.home).work_dir, [job.generation_id])
        self._workers[slot] = None
        self._stop_worker(worker, gracefully=False)  # a worker that was only unreachable must not run on
        with contextlib.suppress(WorkerUnavailableError):  # then the slot tries again before its next job
            self._workers[slot] = self._start_workers(1)[0]
        if entry.cancel.is_set():
            remove_inputs(job)
            error = error_body(JobCancelledError("cancelled while its worker was lost"))
            return Outcome(JobStatus.CANCELLED, entry.state.progress, error=error)
        if retry_id is None or not audited:
            remove_inputs(job)
            lost = WorkerLostError(f"the worker running this job was lost ({_first_line(exc)}); submit it again")
            return Outcome(JobStatus.FAILED, entry.state.progress, error=error_body(lost, job.renames))
        retried = _renamed(job, retry_id)
        retried.out.parent.mkdir(parents=True, exist_ok=True)
        if _dedicated_folder(job):
            shutil.rmtree(job.out.parent, ignore_errors=True)
        with self._jobs.lock:
            entry.job = retried
            self._jobs.update(entry, generation_id=retry_id, progress=JobProgress())
        return None

    def _fail_generation(self, job: AnimationJob, reason: str) -> bool:
        """Mark the generation failed, unless it never started or already ended; False when the audit store
        cannot be written (then the job must not run again under a new id: the old one would stay open)."""
        try:
            fail_abandoned(self._ledger, job.generation_id, reason)
        except Exception:
            log.exception("job %s: cannot mark generation %s failed", job.id, job.generation_id)
            return False
        return True


def _dedicated_folder(job: AnimationJob) -> bool:
    """The output sits in a folder named after its generation (as the server lays them out)."""
    return job.out.parent.name == job.generation_id


def _renamed(job: AnimationJob, generation_id: str) -> AnimationJob:
    """``job`` under a new generation id, with its output in that generation's folder when it had its own."""
    if not _dedicated_folder(job):
        return replace(job, generation_id=generation_id)
    old, new = str(job.out.parent), str(job.out.parent.with_name(generation_id))
    renames = {(new + key[len(old) :] if key.startswith(old) else key): name for key, name in job.renames.items()}
    return replace(job, generation_id=generation_id, out=Path(new) / job.out.name, renames=renames)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
