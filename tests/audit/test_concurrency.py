"""Done when: 8 writers (threads and processes) appending concurrently for 10 s lose no event and leave a valid
chain, on SQLite and on PostgreSQL.

4 threads share one ``Ledger``; 4 processes (spawned, so nothing is inherited but their arguments) each open their
own store on the same database. All 8 start together at a barrier and append for ``XP_STRESS_SECONDS`` (default
10), each event tagged with its writer and a counter, each counting the appends that returned.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select

from audit.checkpoint import LogSigningKey
from audit.events import EventDraft, EventType
from audit.log import AuditLog
from audit.models import AuditEventRow
from audit.store import Store
from tests.audit.conftest import ORIGIN, Database

THREADS = 4
PROCESSES = 4
CHECKPOINT_EVERY = 64
BARRIER_TIMEOUT_S = 120


def _append_until(log: AuditLog, writer: int, start: Any, seconds: float) -> int:
    """Wait for every writer, then append for ``seconds``; the number of appends acknowledged."""
    start.wait(timeout=BARRIER_TIMEOUT_S)
    deadline = time.monotonic() + seconds
    acknowledged = 0
    while time.monotonic() < deadline:
        log.append(
            EventDraft(
                type=EventType.VERIFICATION_PERFORMED,
                actor=f"writer-{writer}",
                data={"writer": writer, "n": acknowledged},
            )
        )
        acknowledged += 1
    return acknowledged


def _process_writer(
    url: str, schema: str | None, key_path: str, writer: int, start: Any, seconds: float, results: Any
) -> None:
    """A writer process: its own store, its own copy of the signing key."""
    try:
        store = Store.open(url, schema=schema)
        try:
            log = AuditLog(
                store, origin=ORIGIN, signing_key=LogSigningKey.load(key_path), checkpoint_every=CHECKPOINT_EVERY
            )
            results.put((writer, _append_until(log, writer, start, seconds), None))
        finally:
            store.dispose()
    except BaseException:
        start.abort()  # the others stop waiting for this one
        results.put((writer, 0, traceback.format_exc()))


def test_eight_writers_lose_nothing_and_leave_a_valid_chain(
    database: Database, store: Store, signing_key: LogSigningKey, tmp_path: Path
) -> None:
    seconds = float(os.environ.get("XP_STRESS_SECONDS", "10"))
    key_path = tmp_path / "log.key"
    signing_key.save(key_path)
    log = AuditLog(store, origin=ORIGIN, signing_key=signing_key, checkpoint_every=CHECKPOINT_EVERY)

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(THREADS + PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_writer,
            args=(database.url, database.schema, str(key_path), writer, start, seconds, results),
            name=f"audit-writer-{writer}",
        )
        for writer in range(THREADS, THREADS + PROCESSES)
    ]
    for process in processes:
        process.start()
    acknowledged: dict[int, int] = {}
    errors: list[str] = []
    try:
        with ThreadPoolExecutor(THREADS, thread_name_prefix="audit-writer") as pool:
            futures = {w: pool.submit(_append_until, log, w, start, seconds) for w in range(THREADS)}
            for writer, future in futures.items():
                try:
                    acknowledged[writer] = future.result(timeout=BARRIER_TIMEOUT_S + seconds + 60)
                except threading.BrokenBarrierError:
                    errors.append(f"thread writer {writer}: a process writer never reached the start")
                except Exception:
                    start.abort()
                    errors.append(f"thread writer {writer}:\n{traceback.format_exc()}")
        for _ in processes:
            try:
                writer, count, error = results.get(timeout=BARRIER_TIMEOUT_S + seconds + 60)
            except queue.Empty:
                errors.append("a process writer reported nothing")
                break
            if error is not None:
                errors.append(f"process writer {writer}:\n{error}")
            else:
                acknowledged[writer] = count
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    assert sorted(acknowledged) == list(range(THREADS + PROCESSES))
    assert all(count > 0 for count in acknowledged.values()), acknowledged

    # Nothing lost, nothing doubled: exactly the acknowledged (writer, counter) pairs, each once.
    total = sum(acknowledged.values())
    assert log.size() == total
    with store.read() as session:
        bodies = session.scalars(select(AuditEventRow.body).order_by(AuditEventRow.seq)).all()
    tags = [(json.loads(b)["data"]["writer"], json.loads(b)["data"]["n"]) for b in bodies]
    counts = Counter(tags)
    assert max(counts.values()) == 1
    assert set(counts) == {(w, n) for w, count in acknowledged.items() for n in range(count)}
    # Each writer's events are in its own order, and the writers really did interleave.
    for writer in acknowledged:
        assert [n for w, n in tags if w == writer] == list(range(acknowledged[writer]))
    switches = sum(1 for a, b in itertools.pairwise(tags) if a[0] != b[0])
    assert switches >= THREADS + PROCESSES, switches

    # The chain and every checkpoint the writers signed along the way verify.
    verified = log.verify(signing_key.public_key)
    assert verified.tree_size == total
    assert [c.checkpoint.tree_size for c in log.checkpoints()] == list(
        range(CHECKPOINT_EVERY, total + 1, CHECKPOINT_EVERY)
    )
    assert verified.checkpoints == total // CHECKPOINT_EVERY
