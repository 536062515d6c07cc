"""Animation jobs: a ``JobRunner`` takes a job (pure data) and reports its status, progress, result or error.

``ThreadJobRunner`` runs jobs on a fixed number of threads in this process. A runner for a cluster (Ray) needs
only the same four methods: a job names its inputs by path and its generation id up front, and
``run_animation`` is the whole of what a worker does with it, so a worker that dies leaves a generation id the
server can mark failed (``fail_abandoned``). Both keep their jobs in a ``JobTable`` (states, queue, idempotency
keys, retention) and differ only in how they run them.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from audit import Ledger, RecordConflictError, RecordNotFoundError
from xp_sdk.engine import AnimateOptions, Progress, ProgressCallback
from xp_sdk.engine.images import load_image
from xp_sdk.engine.templates import MotionTemplate
from xp_sdk.errors import ConflictError, RateLimitedError, XPError
from xp_sdk.results import AnimationResult
from xp_sdk.server.errors import error_body, internal_error
from xp_sdk.service import Service

log = logging.getLogger("xp_sdk.server.jobs")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str | None = None
    done: int = 0
    total: int | None = None
    fps: float | None = None
    """Frames a second so far, in the generate stage."""


class JobState(BaseModel):
    """A snapshot of one job; ``version`` grows with every change, so a watcher can tell what is new."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: JobStatus
    generation_id: str
    """Reserved when the job is created; on the audit record once the gate has allowed the request."""
    tenant_id: str
    key_id: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: JobProgress = JobProgress()
    result: AnimationResult | None = None
    error: dict[str, Any] | None = None
    version: int = 0


@dataclass(frozen=True)
class AnimationJob:
    """Everything a worker needs, as data: uploaded inputs by path, the output path, the caller's key."""

    id: str
    generation_id: str
    api_key: str = field(repr=False)
    tenant_id: str
    key_id: str
    subject: str
    source: Path
    source_is_array: bool
    """The photo was an array on the client, sent as PNG: decode it and pass pixels, as local mode does."""
    out: Path
    workdir: Path
    """The job's uploads; removed when it finishes."""
    driving: Path | None = None
    template: str | MotionTemplate | None = None
    """A built-in template's name, or a template's content (uploaded): never a path."""
    options: AnimateOptions | None = None
    purpose: str | None = None
    fingerprint: str = ""
    """What the request asked for; an idempotency key reused for a different request is refused."""
    renames: dict[str, str] = field(default_factory=dict)
    """Server paths → client names, for error messages."""


def new_job_id() -> str:
    return "job_" + secrets.token_hex(10)


class JobCancelledError(XPError):
    code = "cancelled"


Execute = Callable[[AnimationJob, ProgressCallback], AnimationResult]


class JobRunner(Protocol):
    def submit(self, job: AnimationJob, *, idempotency_key: str | None = None) -> tuple[JobState, bool]:
        """Queue ``job``; (its state, whether it is new). A known ``idempotency_key`` from the same key returns the
        job it started instead."""
        ...

    def status(self, job_id: str) -> JobState | None: ...

    def cancel(self, job_id: str) -> JobState | None:
        """Stop a queued job at once, a running one at its next frame; a finished one is left as it is."""
        ...

    def shutdown(self, *, wait: bool = True) -> None: ...

    def active_generation_ids(self) -> set[str]:
        """The generation ids of the jobs queued or running now."""
        ...


def run_animation(service: Service, job: AnimationJob, progress: ProgressCallback) -> AnimationResult:
    """What a worker does with a job, wherever it runs."""
    try:
        job.out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        source = load_image(job.source) if job.source_is_array else job.source
        return service.animate(
            job.api_key, source, subject=job.subject, out=job.out, driving=job.driving, template=job.template,
            options=job.options, purpose=job.purpose, progress=progress, generation_id=job.generation_id,
        )  # fmt: skip
    finally:
        remove_inputs(job)


def remove_inputs(job: AnimationJob) -> None:
    """The job's uploads, and its output's folder while nothing is in it: what ``run_animation`` leaves behind."""
    shutil.rmtree(job.workdir, ignore_errors=True)
    if job.out.parent.is_dir() and not any(job.out.parent.iterdir()):
        job.out.parent.rmdir()


def fail_abandoned(ledger: Ledger, generation_id: str, reason: str, error_code: str = "worker_lost") -> bool:
    """Mark a generation failed whose worker is gone; False when it never reached "requested" or already ended."""
    try:
        ledger.record_failed(generation_id, error_code=error_code, message=reason[:500])
    except (RecordNotFoundError, RecordConflictError):
        return False
    return True


class ProgressMeter:
    """Engine progress as ``JobProgress``, one job's worth; its frame rate counts from the first frame on, since
    the analysis before it would make the rate look low."""

    def __init__(self) -> None:
        self._first_frame: tuple[float, int] | None = None

    def __call__(self, update: Progress) -> JobProgress:
        now = time.perf_counter()
        fps = None
        if update.stage == "generate":
            self._first_frame = self._first_frame or (now, update.done)
            since, done = self._first_frame
            fps = round((update.done - done) / (now - since), 2) if update.done > done else None
        return JobProgress(stage=update.stage, done=update.done, total=update.total, fps=fps)


@dataclass
class JobEntry:
    """One job in a ``JobTable``; a runner subclasses it for what it tracks of a job while it runs."""

    job: AnimationJob
    state: JobState
    cancel: threading.Event = field(default_factory=threading.Event)
    idempotency: tuple[str, str] | None = None


_E = TypeVar("_E", bound=JobEntry)


class JobTable(Generic[_E]):
    """The part of a runner that lives in the server's process, however it runs jobs: the jobs and their states,
    the queue (at most ``max_queued`` waiting), the idempotency keys, and the retention of finished jobs
    (``retention_s`` seconds, then dropped with ``on_discard``).

    A runner's worker threads take jobs with ``take``. ``update`` and ``finish``, and any change to an entry,
    happen under ``lock``."""

    def __init__(
        self,
        new_entry: Callable[[AnimationJob, JobState], _E],
        *,
        max_queued: int,
        retention_s: float,
        on_discard: Callable[[JobState], None] | None,
    ) -> None:
        self.lock = threading.Lock()
        self._new_entry = new_entry
        self._max_queued = max_queued
        self._retention_s = retention_s
        self._on_discard = on_discard
        self._entries: dict[str, _E] = {}
        self._by_idempotency: dict[tuple[str, str], str] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()  # job ids; None stops a worker thread
        self._closed = False

    def submit(self, job: AnimationJob, *, idempotency_key: str | None = None) -> tuple[JobState, bool]:
        self.sweep()
        with self.lock:
            if self._closed:
                raise ConflictError("the server is shutting down; submit the job again later")
            remembered = (job.key_id, idempotency_key) if idempotency_key else None
            if remembered is not None and remembered in self._by_idempotency:
                existing = self._entries[self._by_idempotency[remembered]]
                if existing.job.fingerprint != job.fingerprint:
                    raise ConflictError(
                        "this Idempotency-Key was used for a different request; use a fresh key for a new job"
                    )
                return existing.state, False
            waiting = sum(1 for e in self._entries.values() if e.state.status is JobStatus.QUEUED)
            if waiting >= self._max_queued:
                raise RateLimitedError(f"{waiting} jobs are already waiting; retry in a few seconds", retry_after=5.0)
            queued = JobState(
                id=job.id, status=JobStatus.QUEUED, generation_id=job.generation_id, tenant_id=job.tenant_id,
                key_id=job.key_id, created_at=datetime.now(UTC),
            )  # fmt: skip
            entry = self._new_entry(job, queued)
            entry.idempotency = remembered
            self._entries[job.id] = entry
            if remembered is not None:
                self._by_idempotency[remembered] = job.id
        self._queue.put(job.id)
        return entry.state, True

    def active_generation_ids(self) -> set[str]:
        with self.lock:
            return {e.job.generation_id for e in self._entries.values() if not e.state.status.finished}

    def get(self, job_id: str) -> _E | None:
        """The caller holds ``lock``."""
        return self._entries.get(job_id)

    def status(self, job_id: str) -> JobState | None:
        with self.lock:
            entry = self._entries.get(job_id)
            return entry.state if entry is not None else None

    def cancel(self, job_id: str) -> JobState | None:
        """Finish a queued job as cancelled; for a running one, set its ``cancel`` for the runner to act on."""
        with self.lock:
            entry = self._entries.get(job_id)
            if entry is None:
                return None
            if entry.state.status is JobStatus.QUEUED:
                self.finish(entry, JobStatus.CANCELLED, error=error_body(JobCancelledError("cancelled while queued")))
                shutil.rmtree(entry.job.workdir, ignore_errors=True)
            elif entry.state.status is JobStatus.RUNNING:
                entry.cancel.set()
            return entry.state

    def close(self, *, wait: bool) -> bool:
        """Refuse new jobs and cancel the queued ones; without ``wait``, set the running ones' ``cancel`` too.
        False, having done nothing, when the table was closed already."""
        with self.lock:
            if self._closed:
                return False
            self._closed = True
            for entry in self._entries.values():
                if entry.state.status is JobStatus.QUEUED:
                    self.finish(entry, JobStatus.CANCELLED, error=error_body(JobCancelledError("server shut down")))
                elif entry.state.status is JobStatus.RUNNING and not wait:
                    entry.cancel.set()
            return True

    def stop(self, workers: int) -> None:
        """Make ``take`` return None to ``workers`` threads, once each, after the jobs queued before."""
        for _ in range(workers):
            self._queue.put(None)

    def take(self) -> _E | None:
        """Wait for a queued job and mark it running; None when this worker thread is to stop."""
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return None
            with self.lock:
                entry = self._entries.get(job_id)
                # Cancelled while it waited, or dropped since.
                if entry is None or entry.state.status is not JobStatus.QUEUED:
                    continue
                self.update(entry, status=JobStatus.RUNNING, started_at=datetime.now(UTC))
                return entry

    def update(self, entry: _E, **changes: Any) -> None:
        entry.state = entry.state.model_copy(update={**changes, "version": entry.state.version + 1})

    def finish(self, entry: _E, status: JobStatus, **changes: Any) -> None:
        self.update(entry, status=status, finished_at=datetime.now(UTC), **changes)
        entry.job = replace(entry.job, api_key="")  # a finished job has no use for the caller's secret

    def sweep(self) -> None:
        """Drop the jobs finished more than ``retention_s`` ago."""
        cutoff = time.time() - self._retention_s
        with self.lock:
            expired = [
                e for e in self._entries.values()
                if e.state.finished_at is not None and e.state.finished_at.timestamp() < cutoff
            ]  # fmt: skip
            for entry in expired:
                del self._entries[entry.job.id]
                if entry.idempotency is not None:
                    self._by_idempotency.pop(entry.idempotency, None)
        for entry in expired:
            if self._on_discard is not None:
                self._on_discard(entry.state)


class TableRunner(Generic[_E]):
    """The ``JobRunner`` methods its ``JobTable`` answers alone; a runner adds ``shutdown`` and how it runs jobs."""

    _jobs: JobTable[_E]

    def submit(self, job: AnimationJob, *, idempotency_key: str | None = None) -> tuple[JobState, bool]:
        return self._jobs.submit(job, idempotency_key=idempotency_key)

    def status(self, job_id: str) -> JobState | None:
        return self._jobs.status(job_id)

    def cancel(self, job_id: str) -> JobState | None:
        return self._jobs.cancel(job_id)

    def active_generation_ids(self) -> set[str]:
        return self._jobs.active_generation_ids()


@dataclass
class _Entry(JobEntry):
    meter: ProgressMeter = field(default_factory=ProgressMeter)


class ThreadJobRunner(TableRunner[_Entry]):
    """``workers`` threads; at most ``max_queued`` jobs waiting; finished jobs kept ``retention_s`` seconds, then
    dropped with ``on_discard`` (the server deletes their outputs there)."""

    def __init__(
        self,
        execute: Execute,
        *,
        workers: int = 1,
        max_queued: int = 64,
        retention_s: float = 3600.0,
        on_discard: Callable[[JobState], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a job runner needs at least one worker")
        self._execute = execute
        self._jobs = JobTable(_Entry, max_queued=max_queued, retention_s=retention_s, on_discard=on_discard)
        self._threads = [threading.Thread(target=self._work, name=f"xp-job-{n}", daemon=True) for n in range(workers)]
        for thread in self._threads:
            thread.start()

    # -- the JobRunner interface -----------------------------------------------------------------------------

    def shutdown(self, *, wait: bool = True) -> None:
        """Cancel what is queued; with ``wait``, let running jobs finish, else stop them at their next frame."""
        self._jobs.close(wait=wait)
        self._jobs.stop(len(self._threads))
        for thread in self._threads:
            thread.join()

    # -- workers ---------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while (entry := self._jobs.take()) is not None:
            self._run(entry)

    def _run(self, entry: _Entry) -> None:
        def progress(update: Progress) -> None:
            measured = entry.meter(update)
            with self._jobs.lock:
                self._jobs.update(entry, progress=measured)
            if entry.cancel.is_set():
                raise JobCancelledError("cancelled while running")

        try:
            result = self._execute(entry.job, progress)
        except JobCancelledError as exc:
            with self._jobs.lock:
                self._jobs.finish(entry, JobStatus.CANCELLED, error=error_body(exc))
        except XPError as exc:
            with self._jobs.lock:
                self._jobs.finish(entry, JobStatus.FAILED, error=error_body(exc, entry.job.renames))
        except Exception:
            reference = secrets.token_hex(6)
            log.exception("job %s failed (reference %s)", entry.job.id, reference)
            with self._jobs.lock:
                self._jobs.finish(entry, JobStatus.FAILED, error=internal_error(reference))
        else:
            with self._jobs.lock:
                self._jobs.finish(entry, JobStatus.SUCCEEDED, result=result)
