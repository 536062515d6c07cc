"""The append-only, hash-linked, Merkle-checkpointed event log.

Each event's body is canonical JSON that names its sequence number and the previous event's leaf hash; its leaf
hash is RFC 6962's SHA-256(0x00 || body). Signed checkpoints (C2SP tlog-checkpoint notes, Ed25519) commit to the
Merkle root of the first N events, so an outside witness holding one can later prove the log was not rewritten.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.canonical import canonical_json, is_canonical
from audit.checkpoint import (
    Checkpoint,
    LogSigningKey,
    LogVerifierKey,
    SignedCheckpoint,
    sign_checkpoint,
    verify_checkpoint,
    verify_witnessed,
)
from audit.errors import LogIntegrityError, ProofError, RecordNotFoundError
from audit.events import AuditEvent, EventDraft
from audit.log_verification import LogVerification as LogVerification
from audit.merkle import MerkleFrontier, consistency_proof, inclusion_proof, leaf_hash, root_hash
from audit.models import AuditEventRow, CheckpointRow
from audit.reconcile import RECORD_EVENTS, Reconciler, hold_snapshot, reconcile_all
from audit.store import Store

BODY_VERSION = 1
GENESIS_PREV = "0" * 64
_VERIFY_BATCH = 5000


@dataclass(frozen=True)
class InclusionProof:
    """Proof that event ``seq`` is leaf ``seq`` of the tree whose root a signed checkpoint commits to."""

    seq: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    path: tuple[str, ...]
    checkpoint: str
    """The signed note of the checkpoint at ``tree_size``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leaf_hash": self.leaf_hash,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "path": list(self.path),
            "checkpoint": self.checkpoint,
        }


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root,
            "new_root": self.new_root,
            "path": list(self.path),
        }


class AuditLog:
    """Appends events, writes signed checkpoints, serves proofs and re-verifies everything."""

    def __init__(
        self,
        store: Store,
        *,
        origin: str,
        signing_key: LogSigningKey | None = None,
        checkpoint_every: int = 256,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.store = store
        self.origin = origin
        self._signing_key = signing_key
        self.checkpoint_every = checkpoint_every

    # -- writing ---------------------------------------------------------------------------------------------

    def append(self, draft: EventDraft, *, session: Session | None = None) -> AuditEvent:
        """Append one event. Pass the ``session`` of an open ``store.write()`` to commit it atomically with
        the records it describes; otherwise it gets its own transaction."""
        if session is None:
            with self.store.write() as own:
                return self.append(draft, session=own)
        head = session.execute(
            select(AuditEventRow.seq, AuditEventRow.leaf_hash).order_by(AuditEventRow.seq.desc()).limit(1)
        ).first()
        seq, prev = (0, GENESIS_PREV) if head is None else (head.seq + 1, head.leaf_hash)
        occurred_at = datetime.now(UTC)
        event_id = uuid.uuid4().hex
        body = _body(seq, event_id, occurred_at, draft, prev)
        text = canonical_json(body)
        leaf = leaf_hash(text.encode("utf-8")).hex()
        session.add(
            AuditEventRow(
                seq=seq,
                event_id=event_id,
                event_type=draft.type.value,
                occurred_at=occurred_at,
                tenant_id=draft.tenant_id,
                actor=draft.actor,
                subject_id=draft.subject_id,
                generation_id=draft.generation_id,
                decision=draft.decision.value if draft.decision is not None else None,
                body=text,
                leaf_hash=leaf,
                prev_hash=prev,
            )
        )
        session.flush()
        if self._signing_key is not None and (seq + 1) % self.checkpoint_every == 0:
            self._write_checkpoint(session, seq + 1)
        return _event(body, leaf)

    def checkpoint(self) -> SignedCheckpoint | None:
        """Sign the current tree head now (None when the log is empty). Idempotent per tree size."""
        if self._signing_key is None:
            raise ValueError("this AuditLog was opened without its signing key; it cannot write checkpoints")
        with self.store.write() as session:
            size = session.scalar(select(func.count()).select_from(AuditEventRow)) or 0
            if size == 0:
                return None
            existing = session.get(CheckpointRow, size)
            if existing is not None:
                return SignedCheckpoint.parse(existing.signed_note)
            return self._write_checkpoint(session, size)

    def _write_checkpoint(self, session: Session, size: int) -> SignedCheckpoint:
        assert self._signing_key is not None
        previous = session.execute(
            select(CheckpointRow).where(CheckpointRow.tree_size <= size).order_by(CheckpointRow.tree_size.desc())
        ).scalars().first()
        frontier = (
            MerkleFrontier.from_list(previous.tree_size, [bytes.fromhex(h) for h in json.loads(previous.frontier)])
            if previous is not None
            else MerkleFrontier()
        )
        start = frontier.size
        for (leaf,) in session.execute(
            select(AuditEventRow.leaf_hash).where(AuditEventRow.seq >= start, AuditEventRow.seq < size)
            .order_by(AuditEventRow.seq)
        ):
            frontier.append(bytes.fromhex(leaf))
        if frontier.size != size:
            raise LogIntegrityError(f"the log has a gap below event {size}; run `xp audit verify`", seq=frontier.size)
        signed = sign_checkpoint(Checkpoint(self.origin, size, frontier.root()), self._signing_key)
        session.add(
            CheckpointRow(
                tree_size=size,
                root_hash=frontier.root().hex(),
                signed_note=signed.to_text(),
                frontier=json.dumps([h.hex() for h in frontier.to_list()]),
                created_at=datetime.now(UTC),
            )
        )
        session.flush()
        return signed

    # -- reading ---------------------------------------------------------------------------------------------

    def size(self) -> int:
        with self.store.read() as session:
            return session.scalar(select(func.count()).select_from(AuditEventRow)) or 0

    def get(self, seq: int) -> AuditEvent:
        with self.store.read() as session:
            row = session.get(AuditEventRow, seq)
            if row is None:
                raise RecordNotFoundError(f"no audit event with sequence number {seq}")
            return event_from_row(row)

    def checkpoints(self) -> list[SignedCheckpoint]:
        """Every signed checkpoint, oldest first: what an outside witness should copy."""
        with self.store.read() as session:
            notes = session.scalars(select(CheckpointRow.signed_note).order_by(CheckpointRow.tree_size)).all()
        return [SignedCheckpoint.parse(note) for note in notes]

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self.store.read() as session:
            note = session.scalars(
                select(CheckpointRow.signed_note).order_by(CheckpointRow.tree_size.desc()).limit(1)
            ).first()
        return SignedCheckpoint.parse(note) if note is not None else None

    def inclusion_proof(self, seq: int, *, tree_size: int | None = None) -> InclusionProof:
        """Prove event ``seq`` against the signed checkpoint at ``tree_size`` (default: the latest one that
        covers it, written now when none does yet)."""
        with self.store.read() as session:
            chosen = self._covering_checkpoint(session, seq, tree_size)
        if chosen is None:
            if tree_size is not None:
                raise RecordNotFoundError(f"no signed checkpoint at tree size {tree_size}")
            if not 0 <= seq < self.size():
                raise RecordNotFoundError(f"no audit event with sequence number {seq}")
            self.checkpoint()
            with self.store.read() as session:
                chosen = self._covering_checkpoint(session, seq, None)
            if chosen is None:
                raise RecordNotFoundError(f"no audit event with sequence number {seq}")
        size, note = chosen
        leaves = self._leaves(size)
        path = inclusion_proof(leaves, seq)
        return InclusionProof(
            seq=seq,
            leaf_hash=leaves[seq].hex(),
            tree_size=size,
            root_hash=SignedCheckpoint.parse(note).checkpoint.root_hash.hex(),
            path=tuple(p.hex() for p in path),
            checkpoint=note,
        )

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Prove the first ``old_size`` events are unchanged in the tree of ``new_size`` (default: all)."""
        leaves = self._leaves(new_size)
        new_size = len(leaves)
        if not 1 <= old_size <= new_size:
            raise ValueError(f"old size must be between 1 and {new_size}, got {old_size}")
        path = consistency_proof(leaves, old_size)
        return ConsistencyProof(
            old_size=old_size,
            new_size=new_size,
            old_root=root_hash(leaves[:old_size]).hex(),
            new_root=root_hash(leaves).hex(),
            path=tuple(p.hex() for p in path),
        )

    @staticmethod
    def _covering_checkpoint(session: Session, seq: int, tree_size: int | None) -> tuple[int, str] | None:
        query = select(CheckpointRow.tree_size, CheckpointRow.signed_note)
        if tree_size is not None:
            query = query.where(CheckpointRow.tree_size == tree_size)
        else:
            query = query.order_by(CheckpointRow.tree_size.desc()).limit(1)
        row = session.execute(query).first()
        if row is None or row.tree_size <= seq:
            return None
        return int(row.tree_size), str(row.signed_note)

    def _leaves(self, size: int | None) -> list[bytes]:
        query = select(AuditEventRow.leaf_hash).order_by(AuditEventRow.seq)
        if size is not None:
            query = query.limit(size)
        with self.store.read() as session:
            leaves = [bytes.fromhex(h) for h in session.scalars(query)]
        if size is not None and len(leaves) != size:
            raise RecordNotFoundError(f"the log holds {len(leaves)} events, fewer than {size}")
        return leaves

    # -- verifying -------------------------------------------------------------------------------------------

    def verify(
        self,
        verifier: LogVerifierKey,
        *,
        witnessed: Sequence[SignedCheckpoint | str] = (),
        records: bool = True,
    ) -> LogVerification:
        """Recompute every hash, link and checkpoint root; raise ``LogIntegrityError`` at the first
        inconsistency. ``witnessed`` are checkpoints held outside the database, which the log must still
        contain unchanged (this is what catches a consistent rewrite of the whole table).

        With ``records`` (the default), then check every row of the record tables against the events that
        describe it (``audit.reconcile``): a row edited, inserted or deleted behind the ledger's back raises
        ``RecordIntegrityError`` naming the table, the record and the column. Events and rows are read from one
        snapshot, so writes going on meanwhile are neither half-seen nor mistaken for tampering."""
        started = time.perf_counter()
        external = [verify_witnessed(c, verifier, number) for number, c in enumerate(witnessed, start=1)]
        reconciler = Reconciler() if records else None
        with self.store.read() as session:
            hold_snapshot(session)
            stored = [
                (int(row.tree_size), str(row.root_hash), str(row.signed_note))
                for row in session.execute(
                    select(CheckpointRow.tree_size, CheckpointRow.root_hash, CheckpointRow.signed_note)
                    .order_by(CheckpointRow.tree_size)
                )
            ]
            checks: dict[int, list[tuple[str, Checkpoint]]] = {}
            for size, root, note in stored:
                checkpoint = _verified(note, verifier, f"checkpoint at size {size}")
                if checkpoint.tree_size != size or checkpoint.root_hash.hex() != root:
                    raise LogIntegrityError(
                        f"the checkpoint row at size {size} does not match its own signed note", checkpoint_size=size
                    )
                checks.setdefault(size, []).append(("checkpoint", checkpoint))
            for checkpoint in external:
                checks.setdefault(checkpoint.tree_size, []).append(("witnessed checkpoint", checkpoint))
            frontier = MerkleFrontier()
            prev = GENESIS_PREV
            broken: _BrokenLink | None = None
            for row in _rows(session):
                if broken is not None:
                    raise broken.error(successor_prev=row.prev_hash)
                body = _check_row(row, frontier.size)
                if reconciler is not None and row.event_type in RECORD_EVENTS:
                    reconciler.observe(body)
                if row.prev_hash != prev:
                    # Decided on the next row: was this event rewritten, or the one before it?
                    broken = _BrokenLink(row.seq, row.leaf_hash, row.prev_hash, prev)
                    continue
                prev = row.leaf_hash
                frontier.append(bytes.fromhex(row.leaf_hash))
                for label, checkpoint in checks.pop(frontier.size, []):
                    _check_root(label, checkpoint, frontier, self.origin)
            if broken is not None:
                raise broken.error(successor_prev=None)
            if checks:
                size = min(checks)
                raise LogIntegrityError(
                    f"a {checks[size][0][0]} covers {size} events but the log holds only {frontier.size}: events "
                    "were deleted",
                    seq=frontier.size,
                    checkpoint_size=size,
                )
            # Only now are the events known to be the ones the log wrote, so only now can they judge the rows.
            checked_records = reconcile_all(session, reconciler) if reconciler is not None else 0
        return LogVerification(
            tree_size=frontier.size,
            root_hash=frontier.root().hex(),
            checkpoints=len(stored),
            latest_checkpoint_size=stored[-1][0] if stored else 0,
            witnessed=len(external),
            seconds=time.perf_counter() - started,
            records=checked_records,
        )


def event_from_row(row: AuditEventRow) -> AuditEvent:
    return _event(json.loads(row.body), row.leaf_hash)


def _body(seq: int, event_id: str, occurred_at: datetime, draft: EventDraft, prev: str) -> dict[str, Any]:
    return {
        "v": BODY_VERSION,
        "seq": seq,
        "id": event_id,
        "type": draft.type.value,
        "time": _timestamp(occurred_at),
        "tenant": draft.tenant_id,
        "actor": draft.actor,
        "subject": draft.subject_id,
        "generation": draft.generation_id,
        "decision": draft.decision.value if draft.decision is not None else None,
        "data": draft.data,
        "prev": prev,
    }


def _event(body: dict[str, Any], leaf: str) -> AuditEvent:
    return AuditEvent(
        seq=body["seq"],
        event_id=body["id"],
        type=body["type"],
        occurred_at=datetime.fromisoformat(body["time"]),
        tenant_id=body["tenant"],
        actor=body["actor"],
        subject_id=body["subject"],
        generation_id=body["generation"],
        decision=body["decision"],
        data=body["data"],
        leaf_hash=leaf,
        prev_hash=body["prev"],
    )


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rows(session: Session) -> Iterator[AuditEventRow]:
    last = -1
    while True:
        batch = session.scalars(
            select(AuditEventRow).where(AuditEventRow.seq > last).order_by(AuditEventRow.seq).limit(_VERIFY_BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].seq
        session.expunge_all()


@dataclass(frozen=True)
class _BrokenLink:
    """Event ``seq`` is self-consistent but names ``linked`` as its predecessor, which hashes to ``actual``."""

    seq: int
    leaf: str
    linked: str
    actual: str

    def error(self, successor_prev: str | None) -> LogIntegrityError:
        if successor_prev == self.leaf:
            # The next event still commits to this one unchanged, so this one is intact: its predecessor was
            # rewritten (body edited and its leaf hash recomputed) after this event recorded its hash.
            before = self.seq - 1
            return LogIntegrityError(
                f"event {before}: it hashes to {self.actual[:16]}… but event {self.seq}, written after it, recorded "
                f"{self.linked[:16]}… (edited, with its leaf hash recomputed?)",
                seq=before,
            )
        return LogIntegrityError(
            f"event {self.seq}: it links to {self.linked[:16]}… but event {self.seq - 1} hashes to "
            f"{self.actual[:16]}… (inserted, deleted or reordered?)",
            seq=self.seq,
        )


def check_event_row(row: AuditEventRow) -> dict[str, Any]:
    """Event ``row`` checked against itself alone (canonical body, leaf hash, columns; not its link to the
    previous event nor any checkpoint: ``verify`` does those); its body."""
    return _check_row(row, row.seq)


def _check_row(row: AuditEventRow, expected_seq: int) -> dict[str, Any]:
    """Everything about one stored event that it can be checked against alone (not its link to the previous);
    its parsed body."""
    seq = row.seq
    if seq != expected_seq:
        what = "missing (deleted?)" if seq > expected_seq else "duplicated"
        raise LogIntegrityError(f"event {expected_seq} is {what}: the next stored event is {seq}", seq=expected_seq)
    if not is_canonical(row.body):
        raise LogIntegrityError(f"event {seq}: its body is not the canonical JSON the log writes (edited?)", seq=seq)
    digest = hashlib.sha256(b"\x00" + row.body.encode("utf-8")).hexdigest()
    if digest != row.leaf_hash:
        raise LogIntegrityError(f"event {seq}: its body does not hash to its leaf hash (edited?)", seq=seq)
    body: dict[str, Any] = json.loads(row.body)
    columns = {
        "seq": row.seq,
        "id": row.event_id,
        "type": row.event_type,
        "time": _timestamp(row.occurred_at),
        "tenant": row.tenant_id,
        "actor": row.actor,
        "subject": row.subject_id,
        "generation": row.generation_id,
        "decision": row.decision,
        "prev": row.prev_hash,
    }
    for name, value in columns.items():
        if body.get(name) != value:
            raise LogIntegrityError(
                f"event {seq}: column {name!r} says {value!r} but the hashed body says {body.get(name)!r} (edited?)",
                seq=seq,
            )
    if body.get("v") != BODY_VERSION or not isinstance(body.get("data"), dict):
        raise LogIntegrityError(f"event {seq}: the body is not a version-{BODY_VERSION} event", seq=seq)
    return body


def _verified(note: SignedCheckpoint | str, verifier: LogVerifierKey, label: str) -> Checkpoint:
    try:
        return verify_checkpoint(note, verifier)
    except ProofError as exc:
        raise LogIntegrityError(f"{label}: {exc}") from exc


def _check_root(label: str, checkpoint: Checkpoint, frontier: MerkleFrontier, origin: str) -> None:
    if checkpoint.origin != origin:
        raise LogIntegrityError(
            f"{label} at size {checkpoint.tree_size} is for log {checkpoint.origin!r}, not {origin!r}",
            checkpoint_size=checkpoint.tree_size,
        )
    if frontier.root() != checkpoint.root_hash:
        raise LogIntegrityError(
            f"the first {checkpoint.tree_size} events no longer hash to the root the {label} at that size signed "
            "(rewritten?)",
            seq=checkpoint.tree_size - 1,
            checkpoint_size=checkpoint.tree_size,
        )
