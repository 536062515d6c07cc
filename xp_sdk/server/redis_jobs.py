"""``RedisJobRunner``: animation jobs, their progress and their idempotency keys in Redis, run by RQ workers on
threads of every replica of ``xp serve``, so that any replica answers any job.

What lives where (keys under the deployment's ``redis_prefix``):

- ``<prefix>:job:<id>``: the job's record (its ``JobState``, the request's fingerprint, a cancel request), changed
  only in optimistic transactions (WATCH), so that a cancel and a worker's start cannot both win;
- ``<prefix>:idem:<key id>:<hash>``: an Idempotency-Key, taken with SET NX by the first replica to see it;
- ``<prefix>:active`` (job id → generation id) and ``<prefix>:finished`` (job id by finish time, for retention);
- the queue itself: RQ's ``<prefix>-animations`` queue and registries. The RQ job carries the ``AnimationJob``
  (the caller's API key included, as a Ray job does: the Redis must be private) and is deleted once it ends.

A job names its inputs and output by path, so every replica must see the home's ``server/`` folder at the same
path (one machine, or a shared filesystem), as for Ray.

A replica that dies mid-job stops renewing the job's lease in RQ's started registry; within ``LEASE_S`` another
replica's reconciler finds the job abandoned, records "failed" (``worker_lost``) for its generation in the audit
log first (so a worker that was only paused can no longer publish), and then marks the job failed. A job still
queued when its replica dies is simply taken by another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQJobStatus
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker, WorkerStatus

from audit import Ledger
from audit.store import redact_url
from xp_sdk.engine import Progress
from xp_sdk.errors import AuditStoreError, ConflictError, EngineError, RateLimitedError, XPError
from xp_sdk.server.errors import error_body, internal_error
from xp_sdk.server.jobs import (
    AnimationJob,
    Execute,
    JobCancelledError,
    JobState,
    JobStatus,
    ProgressMeter,
    fail_abandoned,
)

log = logging.getLogger("xp_sdk.server.redis_jobs")

LEASE_S = 20
"""A running job's replica renews its lease every quarter of this; a job whose lease lapses is abandoned."""
WORKER_TTL_S = 20
"""RQ blocks on the queue ``WORKER_TTL_S - 15`` seconds at a time: how long a stopping worker may take to see it."""
RECONCILE_S = 5.0

# The runner whose worker thread this is: what ``perform``, RQ's job function, reaches its runner through.
_WORKER_THREAD = threading.local()


class ReplicaLostError(EngineError):
    """The replica running a job stopped renewing its lease (its process died) before the job ended."""

    code = "worker_lost"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: JobState
    fingerprint: str
    workdir: str
    idempotency: str | None = None
    """The Redis key of the job's Idempotency-Key, dropped with the job."""
    cancel: bool = False
    replica: str | None = None
    """The replica running it."""

    def changed(self, **state: Any) -> _Record:
        return self.model_copy(
            update={"state": self.state.model_copy(update={**state, "version": self.state.version + 1})}
        )

    def finished(self, status: JobStatus, **state: Any) -> _Record:
        return self.changed(status=status, finished_at=datetime.now(UTC), **state)


def perform(prefix: str, job: AnimationJob) -> None:
    """RQ's job function: run ``job`` with the runner whose worker thread took it."""
    runner: RedisJobRunner | None = getattr(_WORKER_THREAD, "runner", None)
    if runner is None or runner.prefix != prefix:
        raise RuntimeError(f"job {job.id} of {prefix!r} reached a thread that runs no job runner of it")
    runner.run(job)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def _redis_errors(where: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise AuditStoreError(f"the job store (Redis at {where}) cannot be reached: {exc}") from exc


class _ThreadWorker(SimpleWorker):
    """An RQ worker on a thread of the server: no signal handlers (the server owns them), and a lease of
    ``LEASE_S`` renewed from a thread of its own while a job runs, since the job runs on the worker's thread."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass

    def get_heartbeat_ttl(self, job: RQJob, working_time: float = 0.0) -> int:
        return LEASE_S

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(LEASE_S / 4):
                try:
                    self.maintain_heartbeats(job, execution)
                except redis.RedisError:
                    log.warning("could not renew the lease of job %s; retrying", job.id, exc_info=True)

        renewer = threading.Thread(target=renew, name=f"xp-lease-{job.id}", daemon=True)
        renewer.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            renewer.join()
        self.set_state(WorkerStatus.IDLE)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[RQJob, Queue] | None:
        # RQ's own loop waits for a job until one comes (or max_idle_time): this one also sees ``stop`` between
        # two blocking reads of the queue.
        while not self._stop_requested:
            taken = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time=timeout)
            if taken is not None:
                return taken
        return None

    def stop(self) -> None:
        """Leave the work loop after the current job, at the latest when the queue's blocking read times out."""
        self._stop_requested = True

    def resume(self) -> None:
        self._stop_requested = False


class RedisJobRunner:
    """The ``JobRunner`` over Redis: ``workers`` RQ workers on threads of this process run jobs from the queue every
    replica shares; at most ``max_queued`` jobs wait; finished jobs are kept ``retention_s`` seconds, then dropped
    with ``on_discard`` (by whichever replica sweeps first)."""

    def __init__(
        self,
        execute: Execute,
        ledger: Ledger,
        *,
        url: str,
        prefix: str,
        workers: int = 1,
        max_queued: int = 64,
        retention_s: float = 3600.0,
        on_discard: Callable[[JobState], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a job runner needs at least one worker")
        self._execute = execute
        self._ledger = ledger
        self.prefix = prefix
        self._where = redact_url(url)
        self._max_queued = max_queued
        self._retention_s = retention_s
        self._on_discard = on_discard
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._redis = redis.Redis.from_url(url)
        with _redis_errors(self._where):
            self._redis.ping()
        self._queue = Queue(f"{prefix}-animations", connection=self._redis, death_penalty_class=TimerDeathPenalty)
        self._running: dict[str, AnimationJob] = {}  # the jobs this replica runs now
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._workers = [
            _ThreadWorker(
                [self._queue],
                name=f"xp-{self.replica}-{n}",
                connection=self._redis,
                worker_ttl=WORKER_TTL_S,
                log_job_description=False,
            )
            for n in range(workers)
        ]
        self._threads = [
            threading.Thread(target=self._work, args=(w,), name=f"xp-job-{n}", daemon=True)
            for n, w in enumerate(self._workers)
        ]
        self._threads.append(threading.Thread(target=self._reconcile_forever, name="xp-job-reaper", daemon=True))
        for thread in self._threads:
            thread.start()

    # -- keys --------------------------------------------------------------------------------------------------

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def _active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def _finished(self) -> str:
        return f"{self.prefix}:finished"

    def _idempotency_key(self, key_id: str, idempotency_key: str) -> str:
        return f"{self.prefix}:idem:{key_id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"

    # -- the JobRunner interface -------------------------------------------------------------------------------

    def submit(self, job: AnimationJob, *, idempotency_key: str | None = None) -> tuple[JobState, bool]:
        if self._closed:
            raise ConflictError("the server is shutting down; submit the job again later")
        with _redis_errors(self._where):
            self._sweep()
            idempotency = self._idempotency_key(job.key_id, idempotency_key) if idempotency_key else None
            if idempotency is not None and (replayed := self._replay(idempotency, job)) is not None:
                return replayed, False
            waiting = self._queue.count
            if waiting >= self._max_queued:
                raise RateLimitedError(f"{waiting} jobs are already waiting; retry in a few seconds", retry_after=5.0)
            queued = JobState(
                id=job.id, status=JobStatus.QUEUED, generation_id=job.generation_id, tenant_id=job.tenant_id,
                key_id=job.key_id, created_at=datetime.now(UTC),
            )  # fmt: skip
            record = _Record(
                state=queued, fingerprint=job.fingerprint, workdir=str(job.workdir), idempotency=idempotency
            )
            self._redis.set(self._job_key(job.id), record.model_dump_json())
            # The record first, then the key: whoever finds the key finds its job.
            if idempotency is not None and not self._redis.set(idempotency, job.id, nx=True):
                self._redis.delete(self._job_key(job.id))
                replayed = self._replay(idempotency, job)
                if replayed is None:
                    raise ConflictError("a request with this Idempotency-Key is being accepted; retry in a moment")
                return replayed, False
            self._redis.hset(self._active, job.id, job.generation_id)
            self._queue.enqueue(
                perform, self.prefix, job, job_id=job.id, job_timeout=-1, result_ttl=0,
                failure_ttl=int(self._retention_s), description=f"animation {job.id}",
            )  # fmt: skip
        return queued, True

    def status(self, job_id: str) -> JobState | None:
        with _redis_errors(self._where):
            record = self._get(job_id)
        return record.state if record is not None else None

    def cancel(self, job_id: str) -> JobState | None:
        """A queued job ends at once; a running one (on any replica) at its next frame."""

        def cancelled(record: _Record) -> _Record | None:
            if record.state.status is JobStatus.QUEUED:
                return record.finished(
                    JobStatus.CANCELLED, error=error_body(JobCancelledError("cancelled while queued"))
                )
            if record.state.status is JobStatus.RUNNING and not record.cancel:
                return record.model_copy(update={"cancel": True})
            return None

        with _redis_errors(self._where):
            record, changed = self._change(job_id, cancelled)
            if record is None:
                return None
            if changed and record.state.status is JobStatus.CANCELLED:
                self._drop_queued(job_id)
                shutil.rmtree(record.workdir, ignore_errors=True)
        return record.state

    def active_generation_ids(self) -> set[str]:
        """The generation ids of every replica's jobs queued or running now."""
        with _redis_errors(self._where):
            return {_text(value) for value in self._redis.hvals(self._active)}

    def shutdown(self, *, wait: bool = True) -> None:
        """Take no new jobs; leave the queued ones to the other replicas; with ``wait``, let this replica's running
        jobs finish, else stop them at their next frame (cancelled)."""
        self._closed = True
        # The workers' flags first, so that none takes another job once its current one is stopped; this runner's
        # flag before them: _work clears a worker's flag only while it is unset.
        self._stop.set()
        for worker in self._workers:
            worker.stop()
        if not wait:
            with self._lock:
                running = list(self._running)
            for job_id in running:
                try:
                    self.cancel(job_id)
                except AuditStoreError:
                    log.warning("could not cancel job %s at shutdown", job_id, exc_info=True)
        for thread in self._threads:
            thread.join()
        self._redis.close()

    # -- running a job (on a worker thread) --------------------------------------------------------------------

    def run(self, job: AnimationJob) -> None:
        started_at = datetime.now(UTC)

        def start(record: _Record) -> _Record | None:
            if record.state.status is not JobStatus.QUEUED:
                return None  # cancelled while it waited
            return record.changed(status=JobStatus.RUNNING, started_at=started_at).model_copy(
                update={"replica": self.replica}
            )

        record, started = self._change(job.id, start)
        if record is None or not started:
            return
        with self._lock:
            self._running[job.id] = job
        try:
            self._run_started(job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _run_started(self, job: AnimationJob) -> None:
        meter = ProgressMeter()

        def progress(update: Progress) -> None:
            measured = meter(update)
            record, _ = self._change(
                job.id, lambda r: None if r.state.status.finished else r.changed(progress=measured)
            )
            if record is None or record.cancel:
                raise JobCancelledError("cancelled while running")
            if record.state.status.finished:  # ended elsewhere (its lease was taken for lost)
                raise JobCancelledError(f"the job was ended as {record.state.status.value} elsewhere")

        try:
            result = self._execute(job, progress)
        except JobCancelledError as exc:
            self._finish(job.id, JobStatus.CANCELLED, error=error_body(exc))
        except XPError as exc:
            self._finish(job.id, JobStatus.FAILED, error=error_body(exc, job.renames))
        except Exception:
            reference = secrets.token_hex(6)
            log.exception("job %s failed (reference %s)", job.id, reference)
            self._finish(job.id, JobStatus.FAILED, error=internal_error(reference))
        else:
            self._finish(job.id, JobStatus.SUCCEEDED, result=result)

    def _finish(self, job_id: str, status: JobStatus, **state: Any) -> None:
        self._change(job_id, lambda r: None if r.state.status.finished else r.finished(status, **state))

    def _work(self, worker: _ThreadWorker) -> None:
        _WORKER_THREAD.runner = self
        while not self._stop.is_set():
            try:
                worker.work(logging_level="WARNING")
            except Exception:
                log.exception("job worker %s stopped; restarting it", worker.name)
            if not self._stop.wait(1.0):
                # work() returns on a Redis timeout too: register again and go on.
                worker.resume()

    # -- lost replicas and retention (every replica) -----------------------------------------------------------

    def _reconcile_forever(self) -> None:
        while not self._stop.wait(RECONCILE_S):
            try:
                self.reconcile()
            except Exception:  # the thread must outlive one failed pass (Redis or the database briefly away)
                log.exception("the job reconciliation pass failed")

    def reconcile(self, now: float | None = None) -> list[str]:
        """One pass: fail the running jobs whose replica's lease lapsed by ``now`` (default: the present), drop
        expired finished jobs; the ids of the jobs failed."""
        with _redis_errors(self._where):
            StartedJobRegistry(self._queue.name, connection=self._redis, death_penalty_class=TimerDeathPenalty).cleanup(
                timestamp=now
            )
            lost = []
            for raw_id in self._redis.hkeys(self._active):
                job_id = _text(raw_id)
                record = self._get(job_id)
                if record is None:
                    self._redis.hdel(self._active, job_id)
                elif record.state.status is JobStatus.RUNNING and self._lease_lapsed(job_id):
                    self._abandon(record)
                    lost.append(job_id)
            self._sweep()
        return lost

    def _lease_lapsed(self, job_id: str) -> bool:
        with self._lock:
            if job_id in self._running:
                return False
        try:
            status = RQJob.fetch(job_id, connection=self._redis).get_status()
        except NoSuchJobError:
            return True
        return status in (RQJobStatus.FAILED, RQJobStatus.STOPPED, RQJobStatus.CANCELED)

    def _abandon(self, record: _Record) -> None:
        state = record.state
        reason = f"worker_lost: the replica running animation job {state.id} ({record.replica}) stopped answering"
        # The audit record first: a worker that was only paused can then no longer publish its output.
        recorded = fail_abandoned(self._ledger, state.generation_id, reason)
        error = error_body(ReplicaLostError(f"the server running animation job {state.id} stopped before it ended"))
        self._finish(state.id, JobStatus.FAILED, error=error)
        self._drop_queued(state.id)
        shutil.rmtree(record.workdir, ignore_errors=True)
        log.warning(
            "animation job %s lost with its replica %s (generation failed: %s)", state.id, record.replica, recorded
        )

    def _sweep(self) -> None:
        cutoff = time.time() - self._retention_s
        for raw_id in self._redis.zrangebyscore(self._finished, 0, cutoff):
            job_id = _text(raw_id)
            if not self._redis.zrem(self._finished, job_id):
                continue  # another replica swept it
            record = self._get(job_id)
            self._redis.delete(self._job_key(job_id))
            if record is None:
                continue
            if record.idempotency is not None:
                self._redis.delete(record.idempotency)
            if self._on_discard is not None:
                self._on_discard(record.state)

    def _drop_queued(self, job_id: str) -> None:
        """Delete the RQ job (from its queue and registries): it carries the caller's API key, and ends here."""
        with suppress(NoSuchJobError):
            RQJob.fetch(job_id, connection=self._redis).delete()

    # -- records ---------------------------------------------------------------------------------------------

    def _get(self, job_id: str) -> _Record | None:
        raw = self._redis.get(self._job_key(job_id))
        return _Record.model_validate_json(raw) if raw is not None else None

    def _replay(self, idempotency: str, job: AnimationJob) -> JobState | None:
        known = self._redis.get(idempotency)
        record = self._get(_text(known)) if known is not None else None
        if record is None:
            return None
        if record.fingerprint != job.fingerprint:
            raise ConflictError("this Idempotency-Key was used for a different request; use a fresh key for a new job")
        return record.state

    def _change(self, job_id: str, change: Callable[[_Record], _Record | None]) -> tuple[_Record | None, bool]:
        """Apply ``change`` to the job's record atomically (retried when another replica changed it meanwhile);
        (the record as it now is, whether ``change`` changed it). None when there is no such job."""
        key = self._job_key(job_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.unwatch()
                        return None, False
                    record = _Record.model_validate_json(raw)
                    changed = change(record)
                    if changed is None:
                        pipe.unwatch()
                        return record, False
                    pipe.multi()
                    pipe.set(key, changed.model_dump_json())
                    if changed.state.status.finished and not record.state.status.finished:
                        pipe.hdel(self._active, job_id)
                        pipe.zadd(self._finished, {job_id: time.time()})
                    pipe.execute()
                    return changed, True
                except redis.WatchError:
                    continue


def clear(url: str, prefix: str) -> int:
    """Delete every key of ``prefix``'s jobs and limits and its RQ queue (tests, a deployment taken down); the
    number of keys deleted."""
    client = redis.Redis.from_url(url)
    try:
        queue = Queue(f"{prefix}-animations", connection=client)
        patterns = (f"{prefix}:*", f"rq:*:{queue.name}", f"rq:*:{queue.name}:*")
        keys = {key for pattern in patterns for key in client.scan_iter(match=pattern, count=500)}
        job_ids = [_text(key).rpartition(":")[2] for key in keys if key.startswith(f"{prefix}:job:".encode())]
        keys.update(f"rq:{kind}:{job_id}".encode() for job_id in job_ids for kind in ("job", "results", "executions"))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
