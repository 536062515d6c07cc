"""What the tamper-evident audit log costs, on SQLite and PostgreSQL side by side.

    .venv/bin/python bench/audit.py [--events 5000] [--postgres-url URL] [--threads 4] [--json [PATH]]

For each database, in a fresh SQLite file and a fresh PostgreSQL schema (dropped afterwards):

* append/s through ``AuditLog.append`` by one writer (each event its own transaction: the writers' lock, the head
  lookup, canonical JSON, SHA-256 and the link, a signed checkpoint every 256 events), against
* raw INSERT/s of the very same rows, one transaction each through the same engine, into a plain table with the
  same columns and indexes and none of that work (no hashing, no lock, no head lookup, no trigger);
* append/s with ``--threads`` writer threads sharing one ``AuditLog`` (``--events`` in all);
* rows verified per second by ``AuditLog.verify`` over everything appended (2 × ``--events``), the log alone
  (``records=False``: these events describe no rows);
* the time of one inclusion proof against the checkpoint at that final size (median of 5);
* in another fresh store, ``--generations`` generations made through ``Ledger`` (requested and completed, one
  tenant, key, subject and consent): ``AuditLog.verify`` of the log alone against the log plus the records
  cross-check (every row against its events, ``audit.reconcile``), best of 3 each; and one ``Ledger.generation``
  (its row checked against its events) against reading the bare row, median of 200;

and, once, policy decisions per second of ``policy.Policy.load().decide(...)`` (an allowed animate request and a
denied one, alternately), which involves no database.

The PostgreSQL column is left out, with the reason, when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sqlalchemy import Column, Index, MetaData, Table, create_engine, insert, select, text  # noqa: E402

from audit.checkpoint import LogSigningKey  # noqa: E402
from audit.events import Decision, EventDraft, EventType  # noqa: E402
from audit.ledger import Ledger  # noqa: E402
from audit.log import AuditLog  # noqa: E402
from audit.models import AuditEventRow, Base, Generation  # noqa: E402
from audit.records import GenerationInfo  # noqa: E402
from audit.store import Store, sqlite_url  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql+psycopg://127.0.0.1:5432/test"
ORIGIN = "xp-sdk.bench/log"
CHECKPOINT_EVERY = 256
PLAIN_TABLE = "bench_plain_events"


@dataclass
class Result:
    database: str
    version: str
    append_per_s: float
    raw_insert_per_s: float
    threads: int
    threaded_append_per_s: float
    verify_rows: int
    verify_rows_per_s: float
    proof_ms: float
    proof_tree_size: int

    @property
    def append_vs_raw(self) -> float:
        return self.append_per_s / self.raw_insert_per_s


def drafts(count: int, salt: str) -> list[EventDraft]:
    """Events shaped like a gate's: a generation request with its decision and hashes (~600 bytes of body)."""
    return [
        EventDraft(
            type=EventType.GENERATION_REQUESTED,
            tenant_id="bench",
            actor="0123456789ab",
            subject_id=f"sub_{i % 50:04d}",
            generation_id=uuid.uuid4().hex,
            decision=Decision.ALLOW,
            data={
                "consent_id": f"con_{i % 50:04d}",
                "decision": {"decision_id": f"dec_{salt}_{i}", "allowed": True, "policy_ids": ["permit-animate"]},
                "source_sha256": secrets.token_hex(32),
                "driving": "template:showcase",
                "request": {"purpose": "marketing", "fps": 25, "size": 512},
            },
        )
        for i in range(count)
    ]


def plain_table() -> Table:
    """``audit_events``' columns, key, unique and indexes under another name, and nothing else."""
    source = Base.metadata.tables[AuditEventRow.__tablename__]
    columns = [
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=False, unique=c.unique)
        for c in source.columns
    ]
    table = Table(PLAIN_TABLE, MetaData(), *columns)
    for index in source.indexes:
        Index(f"{index.name}_plain", *(table.c[c.name] for c in index.columns))
    return table


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_database(name: str, store: Store, events: int, threads: int) -> Result:
    key = LogSigningKey.generate("xp-bench")
    log = AuditLog(store, origin=ORIGIN, signing_key=key, checkpoint_every=CHECKPOINT_EVERY)

    # 1. One writer through the log.
    batch = drafts(events, "single")
    started = time.perf_counter()
    for draft in batch:
        log.append(draft)
    append_per_s = rate(events, time.perf_counter() - started)

    # 2. The same rows, inserted raw into a plain copy of the table: one transaction each, same engine.
    plain = plain_table()
    plain.create(store.engine)
    with store.read() as session:
        rows = [dict(row._mapping) for row in session.execute(select(AuditEventRow.__table__))]
    started = time.perf_counter()
    for row in rows:
        with store.engine.begin() as connection:
            connection.execute(insert(plain), row)
    raw_insert_per_s = rate(len(rows), time.perf_counter() - started)

    # 3. Several writer threads through one log.
    per_thread = [events // threads + (1 if t < events % threads else 0) for t in range(threads)]
    batches = [drafts(n, f"thread{t}") for t, n in enumerate(per_thread)]
    start = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def writer(mine: list[EventDraft]) -> None:
        start.wait()
        try:
            for draft in mine:
                log.append(draft)
        except BaseException as exc:  # reported after the join, not lost in the thread
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(b,)) for b in batches]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    threaded_append_per_s = rate(events, time.perf_counter() - started)
    if failures:
        raise failures[0]

    # 4. Verify everything (the log alone: these events describe no rows).
    verification = log.verify(key.public_key, records=False)
    if verification.tree_size != 2 * events:
        raise RuntimeError(f"{name}: the log holds {verification.tree_size} events, expected {2 * events}")
    verify_rows_per_s = rate(verification.tree_size, verification.seconds)

    # 5. Inclusion proofs against the checkpoint at the final size.
    signed = log.checkpoint()
    assert signed is not None
    size = signed.checkpoint.tree_size
    timings = []
    for seq in (0, size // 3, size // 2, 2 * size // 3, size - 1):
        started = time.perf_counter()
        proof = log.inclusion_proof(seq, tree_size=size)
        timings.append(time.perf_counter() - started)
        assert proof.tree_size == size
    return Result(
        database=name,
        version=_version(store),
        append_per_s=append_per_s,
        raw_insert_per_s=raw_insert_per_s,
        threads=threads,
        threaded_append_per_s=threaded_append_per_s,
        verify_rows=verification.tree_size,
        verify_rows_per_s=verify_rows_per_s,
        proof_ms=statistics.median(timings) * 1000,
        proof_tree_size=size,
    )


@dataclass
class RecordsResult:
    database: str
    generations: int
    events: int
    records: int
    verify_log_ms: float
    verify_records_ms: float
    read_checked_ms: float
    read_raw_ms: float

    @property
    def cross_check_ratio(self) -> float:
        return self.verify_records_ms / self.verify_log_ms

    @property
    def read_ratio(self) -> float:
        return self.read_checked_ms / self.read_raw_ms


def bench_records(name: str, store: Store, generations: int) -> RecordsResult:
    """What checking the record rows against their events costs, on a log of ``generations`` generations."""
    key = LogSigningKey.generate("xp-bench")
    ledger = Ledger(store, origin=ORIGIN, signing_key=key, checkpoint_every=CHECKPOINT_EVERY)
    ledger.create_tenant("bench")
    api_key = ledger.create_key("bench", scopes="animate verify").info.id
    vector = np.ones(128, dtype=np.float32) / np.sqrt(128)
    subject = ledger.register_subject("bench", "Ada", [(vector, "0" * 64)], model="sface-2021dec").id
    consent = ledger.grant_consent(subject, "bench", evidence_sha256="1" * 64).id
    ids = [uuid.uuid4().hex for _ in range(generations)]
    for generation in ids:
        ledger.record_requested(
            generation, tenant_id="bench", key_id=api_key, subject_id=subject, consent_id=consent,
            decision={"decision_id": uuid.uuid4().hex, "allowed": True, "policy_ids": ["permit-animate"]},
            source_sha256=secrets.token_hex(32), driving="template:nod",
            request={"purpose": "marketing", "fps": 25, "size": 512},
        )  # fmt: skip
        ledger.record_completed(
            generation, output_sha256=secrets.token_hex(32), manifest_sha256=secrets.token_hex(32), data={}
        )

    def best_of_3(records: bool) -> tuple[float, int]:
        runs = [ledger.log.verify(key.public_key, records=records) for _ in range(3)]
        return min(r.seconds for r in runs) * 1000, runs[0].records

    verify_log_ms, _ = best_of_3(False)
    verify_records_ms, records = best_of_3(True)
    sample = ids[:: max(1, len(ids) // 200)][:200]
    checked, raw = [], []
    for generation in sample:
        started = time.perf_counter()
        ledger.generation(generation)
        checked.append(time.perf_counter() - started)
        started = time.perf_counter()
        with store.read() as session:
            GenerationInfo.model_validate(session.get(Generation, generation), from_attributes=True)
        raw.append(time.perf_counter() - started)
    return RecordsResult(
        database=name,
        generations=generations,
        events=ledger.log.size(),
        records=records,
        verify_log_ms=verify_log_ms,
        verify_records_ms=verify_records_ms,
        read_checked_ms=statistics.median(checked) * 1000,
        read_raw_ms=statistics.median(raw) * 1000,
    )


def _version(store: Store) -> str:
    if store.dialect == "sqlite":
        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"
    with store.engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar_one()
        sync = connection.execute(text("SHOW synchronous_commit")).scalar_one()
        fsync = connection.execute(text("SHOW fsync")).scalar_one()
    return f"PostgreSQL {version} (synchronous_commit={sync}, fsync={fsync})"


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="xp-bench-audit-") as folder:
        store = Store.open(sqlite_url(Path(folder) / "audit.db"))
        try:
            yield store
        finally:
            store.dispose()


@contextmanager
def postgres_store(url: str) -> Iterator[Store]:
    schema = f"xp_bench_{secrets.token_hex(6)}"
    store = Store.open(url, schema=schema)
    try:
        yield store
    finally:
        store.dispose()
        engine = create_engine(store.engine.url)
        try:
            with engine.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            engine.dispose()


def postgres_unavailable(url: str) -> str | None:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # whatever the driver raised, the column is left out with it
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    finally:
        engine.dispose()
    return None


def bench_policy(seconds: float = 2.0) -> dict[str, Any]:
    """Decisions per second of the default policy set, allowed and denied requests alternately."""
    from policy import (
        AccessRequest,
        Action,
        ConsentEvaluation,
        ConsentStatus,
        FaceMatch,
        Policy,
        Principal,
    )

    policy = Policy.load()
    principal = Principal(tenant_id="bench", key_id="0123456789ab", scopes=frozenset({"animate"}))
    allowed = AccessRequest(
        principal=principal,
        action=Action.ANIMATE,
        subject_id="sub_0001",
        consent=ConsentEvaluation(ConsentStatus.ACTIVE, "con_0001", "active"),
        face=FaceMatch(similarity=0.71, threshold=0.5, matched=True),
        purpose="marketing",
    )
    denied = AccessRequest(
        principal=principal,
        action=Action.ANIMATE,
        subject_id="sub_0001",
        consent=ConsentEvaluation(ConsentStatus.REVOKED, "con_0001", "revoked"),
        face=FaceMatch(similarity=0.21, threshold=0.5, matched=False),
    )
    if not policy.decide(allowed).allowed or policy.decide(denied).allowed:
        raise RuntimeError("the default policy set no longer decides the benchmark's requests as expected")
    decisions = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for request in (allowed, denied) * 50:
            policy.decide(request)
        decisions += 100
    elapsed = time.perf_counter() - started
    return {"decisions": decisions, "seconds": elapsed, "decisions_per_s": rate(decisions, elapsed)}


def render(
    results: list[Result],
    records: list[RecordsResult],
    skipped: dict[str, str],
    policy: dict[str, Any],
    events: int,
) -> str:
    names = [r.database for r in results]
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("append/s, 1 writer (AuditLog.append)", lambda r: f"{r.append_per_s:,.0f}"),
        ("raw INSERT/s, 1 writer (plain table)", lambda r: f"{r.raw_insert_per_s:,.0f}"),
        ("  append / raw", lambda r: f"{r.append_vs_raw:.2f}×"),
        (f"append/s, {results[0].threads if results else '?'} threads", lambda r: f"{r.threaded_append_per_s:,.0f}"),
        ("verify, rows/s", lambda r: f"{r.verify_rows_per_s:,.0f}"),
        ("  rows verified", lambda r: f"{r.verify_rows:,}"),
        ("inclusion proof, ms (median of 5)", lambda r: f"{r.proof_ms:.1f}"),
        ("  at tree size", lambda r: f"{r.proof_tree_size:,}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    column = 14
    lines = [f"audit log, --events {events}", ""]
    lines.append("".ljust(width) + "".join(n.rjust(column) for n in names))
    for label, cell in rows:
        lines.append(label.ljust(width) + "".join(cell(r).rjust(column) for r in results))
    if records:
        record_rows: list[tuple[str, Callable[[RecordsResult], str]]] = [
            ("verify, log alone, ms (best of 3)", lambda r: f"{r.verify_log_ms:,.0f}"),
            ("verify + records cross-check, ms", lambda r: f"{r.verify_records_ms:,.0f}"),
            ("  cross-check / log alone", lambda r: f"{r.cross_check_ratio:.2f}×"),
            ("  events / rows checked", lambda r: f"{r.events:,} / {r.records:,}"),
            ("Ledger.generation (checked), ms", lambda r: f"{r.read_checked_ms:.2f}"),
            ("bare row read, ms (median of 200)", lambda r: f"{r.read_raw_ms:.2f}"),
            ("  checked / bare", lambda r: f"{r.read_ratio:.2f}×"),
        ]
        lines.append("")
        lines.append(f"records against the log, {records[0].generations:,} generations")
        for label, record_cell in record_rows:
            lines.append(label.ljust(width) + "".join(record_cell(r).rjust(column) for r in records))
    lines.append("")
    lines.append(f"policy decisions/s (Policy.decide, no database): {policy['decisions_per_s']:,.0f}")
    lines.append("")
    for r in results:
        lines.append(f"{r.database}: {r.version}")
    for name, reason in skipped.items():
        lines.append(f"{name}: left out: {reason}")
    lines.append(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000, help="events per phase (default 5000)")
    parser.add_argument("--postgres-url", default=os.environ.get("XP_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--threads", type=int, default=4, help="concurrent writer threads (default 4)")
    parser.add_argument(
        "--generations", type=int, default=1000, help="generations for the records cross-check (default 1000)"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="PATH", help="write JSON to PATH (or stdout: '-')"
    )
    args = parser.parse_args()
    if args.events < args.threads or args.threads < 1:
        parser.error("--events must be at least --threads, and --threads at least 1")

    load_before = os.getloadavg()
    results: list[Result] = []
    records: list[RecordsResult] = []
    skipped: dict[str, str] = {}
    with sqlite_store() as store:
        results.append(bench_database("sqlite", store, args.events, args.threads))
    with sqlite_store() as store:
        records.append(bench_records("sqlite", store, args.generations))
    reason = postgres_unavailable(args.postgres_url)
    if reason is None:
        with postgres_store(args.postgres_url) as store:
            results.append(bench_database("postgresql", store, args.events, args.threads))
        with postgres_store(args.postgres_url) as store:
            records.append(bench_records("postgresql", store, args.generations))
    else:
        skipped["postgresql"] = reason
    policy = bench_policy()
    load_after = os.getloadavg()

    report = {
        "events": args.events,
        "threads": args.threads,
        "results": [{**r.__dict__, "append_vs_raw": r.append_vs_raw} for r in results],
        "records": [
            {**r.__dict__, "cross_check_ratio": r.cross_check_ratio, "read_ratio": r.read_ratio} for r in records
        ],
        "skipped": skipped,
        "policy": policy,
        "load_average": {"before": load_before, "after": load_after},
    }
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return
    print(render(results, records, skipped, policy, args.events))
    print(f"load average (1 min): {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.json is not None:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
