"""The log: appending, the hash chain, checkpoints, inclusion and consistency proofs, and queries."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from datetime import timedelta, timezone

import pytest
from sqlalchemy import select

from audit.canonical import canonical_json
from audit.checkpoint import LogSigningKey, verify_checkpoint
from audit.errors import ProofError, RecordNotFoundError
from audit.events import AuditEvent, Decision, EventDraft, EventType
from audit.ledger import Ledger
from audit.log import GENESIS_PREV, AuditLog
from audit.merkle import root_hash, verify_consistency, verify_inclusion
from audit.models import AuditEventRow, CheckpointRow
from audit.query import EventQuery, decode_cursor, encode_cursor
from audit.store import Store
from tests.audit.conftest import CHECKPOINT_EVERY, ORIGIN


def _draft(i: int, **fields: object) -> EventDraft:
    values: dict[str, object] = {"type": EventType.VERIFICATION_PERFORMED, "tenant_id": "acme", "data": {"i": i}}
    values.update(fields)
    return EventDraft.model_validate(values)


def _fill(log: AuditLog, count: int) -> list[AuditEvent]:
    return [log.append(_draft(i)) for i in range(count)]


def _leaves(store: Store) -> list[bytes]:
    with store.read() as session:
        return [bytes.fromhex(h) for h in session.scalars(select(AuditEventRow.leaf_hash).order_by(AuditEventRow.seq))]


# -- appending -----------------------------------------------------------------------------------------------


def test_append_get_and_size(ledger: Ledger) -> None:
    log = ledger.log
    assert log.size() == 0
    draft = EventDraft(
        type=EventType.GENERATION_DENIED,
        tenant_id="acme",
        actor="0123456789ab",
        subject_id="sub_1",
        generation_id="gen_1",
        decision=Decision.DENY,
        data={"reasons": ["no consent"], "nested": {"ü": [1, 2.5, None, True]}},
    )
    first = log.append(draft)
    assert (first.seq, first.type, first.decision) == (0, "generation.denied", "deny")
    assert (first.tenant_id, first.actor, first.subject_id, first.generation_id) == (
        "acme",
        "0123456789ab",
        "sub_1",
        "gen_1",
    )
    assert first.data == draft.data
    assert first.occurred_at.tzinfo is not None
    assert log.get(0) == first
    assert log.size() == 1

    events = [first, *_fill(log, 4)]
    assert log.size() == 5
    assert [log.get(e.seq) for e in events] == events
    with pytest.raises(RecordNotFoundError):
        log.get(5)


def test_each_event_is_hashed_and_linked_to_the_one_before(ledger: Ledger, store: Store) -> None:
    events = _fill(ledger.log, 12)
    assert [e.seq for e in events] == list(range(12))
    assert events[0].prev_hash == GENESIS_PREV
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.leaf_hash
    with store.read() as session:
        rows = session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)).all()
        for row, event in zip(rows, events, strict=True):
            # RFC 6962 leaf hash of the canonical body, and the body names its place and predecessor.
            assert row.leaf_hash == hashlib.sha256(b"\x00" + row.body.encode()).hexdigest() == event.leaf_hash
            body = json.loads(row.body)
            assert canonical_json(body) == row.body
            assert (body["seq"], body["prev"], body["id"]) == (event.seq, event.prev_hash, event.event_id)
    assert len({e.event_id for e in events}) == 12


def test_events_appended_inside_a_write_transaction_commit_or_roll_back_with_it(ledger: Ledger, store: Store) -> None:
    ledger.log.append(_draft(0))
    with pytest.raises(RuntimeError, match="abandon"), store.write() as session:
        ledger.log.append(_draft(1), session=session)
        raise RuntimeError("abandon the transaction")
    assert ledger.log.size() == 1
    with store.write() as session:
        appended = ledger.log.append(_draft(2), session=session)
    assert appended.seq == 1
    assert ledger.log.get(1).data == {"i": 2}


# -- checkpoints ---------------------------------------------------------------------------------------------


def test_checkpoints_every_n_events_and_on_demand(ledger: Ledger, store: Store, signing_key: LogSigningKey) -> None:
    log = ledger.log
    assert log.checkpoint() is None  # nothing to sign yet
    assert log.latest_checkpoint() is None
    _fill(log, 2 * CHECKPOINT_EVERY + 3)
    assert [c.checkpoint.tree_size for c in log.checkpoints()] == [CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY]

    on_demand = log.checkpoint()
    assert on_demand is not None
    size = 2 * CHECKPOINT_EVERY + 3
    assert on_demand.checkpoint.tree_size == size
    again = log.checkpoint()
    assert again is not None and again.to_text() == on_demand.to_text()  # idempotent per size
    assert [c.checkpoint.tree_size for c in log.checkpoints()] == [8, 16, 19]
    latest = log.latest_checkpoint()
    assert latest is not None and latest.to_text() == on_demand.to_text()

    _fill(log, 5)  # the next multiple of N still gets its own
    assert [c.checkpoint.tree_size for c in log.checkpoints()] == [8, 16, 19, 24]

    leaves = _leaves(store)
    for signed in log.checkpoints():
        checkpoint = verify_checkpoint(signed, signing_key.public_key)
        assert checkpoint.origin == ORIGIN
        assert checkpoint.root_hash == root_hash(leaves[: checkpoint.tree_size])
    with store.read() as session:
        for row in session.scalars(select(CheckpointRow)):
            assert row.root_hash == root_hash(leaves[: row.tree_size]).hex()
    with pytest.raises(ProofError):
        verify_checkpoint(log.checkpoints()[0], LogSigningKey.generate("xp-test").public_key)


def test_a_log_without_its_signing_key_appends_but_cannot_sign(store: Store, ledger: Ledger) -> None:
    reader = AuditLog(store, origin=ORIGIN, checkpoint_every=1)
    reader.append(_draft(0))
    assert ledger.log.checkpoints() == []
    with pytest.raises(ValueError, match="signing key"):
        reader.checkpoint()
    with pytest.raises(ValueError, match="at least 1"):
        AuditLog(store, origin=ORIGIN, checkpoint_every=0)


# -- proofs --------------------------------------------------------------------------------------------------


def test_inclusion_proofs_verify_against_the_signed_checkpoint(ledger: Ledger, signing_key: LogSigningKey) -> None:
    log = ledger.log
    events = _fill(log, 2 * CHECKPOINT_EVERY + 5)  # 21 events: checkpoints at 8 and 16, 5 unsigned
    for event in events:
        proof = log.inclusion_proof(event.seq)
        checkpoint = verify_checkpoint(proof.checkpoint, signing_key.public_key)
        assert proof.tree_size == checkpoint.tree_size > event.seq
        assert proof.root_hash == checkpoint.root_hash.hex()
        assert proof.leaf_hash == event.leaf_hash
        verify_inclusion(
            bytes.fromhex(proof.leaf_hash),
            proof.seq,
            checkpoint.tree_size,
            [bytes.fromhex(h) for h in proof.path],
            checkpoint.root_hash,
        )
    # Proving an unsigned event signed the current head: every proof above used the checkpoint at 21.
    assert [c.checkpoint.tree_size for c in log.checkpoints()] == [8, 16, 21]

    older = log.inclusion_proof(3, tree_size=8)
    assert older.tree_size == 8
    checkpoint = verify_checkpoint(older.checkpoint, signing_key.public_key)
    path = [bytes.fromhex(h) for h in older.path]
    verify_inclusion(bytes.fromhex(older.leaf_hash), 3, 8, path, checkpoint.root_hash)
    assert older.to_dict()["path"] == list(older.path)

    # A proof is for its own leaf and position only.
    with pytest.raises(ProofError):
        verify_inclusion(bytes.fromhex(events[4].leaf_hash), 3, 8, path, checkpoint.root_hash)
    with pytest.raises(ProofError):
        verify_inclusion(bytes.fromhex(older.leaf_hash), 2, 8, path, checkpoint.root_hash)

    with pytest.raises(RecordNotFoundError):
        log.inclusion_proof(10, tree_size=8)  # the checkpoint at 8 does not cover event 10
    with pytest.raises(RecordNotFoundError):
        log.inclusion_proof(3, tree_size=9)  # no checkpoint at 9
    with pytest.raises(RecordNotFoundError):
        log.inclusion_proof(len(events))  # no such event


def test_consistency_proofs_verify_between_checkpoints(ledger: Ledger, signing_key: LogSigningKey) -> None:
    log = ledger.log
    _fill(log, 3 * CHECKPOINT_EVERY)
    _fill(log, 3)
    log.checkpoint()
    checkpoints = [verify_checkpoint(c, signing_key.public_key) for c in log.checkpoints()]
    assert [c.tree_size for c in checkpoints] == [8, 16, 24, 27]
    for i, old in enumerate(checkpoints):
        for new in checkpoints[i:]:
            proof = log.consistency_proof(old.tree_size, new.tree_size)
            assert (proof.old_root, proof.new_root) == (old.root_hash.hex(), new.root_hash.hex())
            hashes = [bytes.fromhex(h) for h in proof.path]
            verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, hashes)
            if old.tree_size != new.tree_size:
                forged = hashlib.sha256(old.root_hash).digest()
                with pytest.raises(ProofError):  # the proof binds both roots
                    verify_consistency(old.tree_size, new.tree_size, forged, new.root_hash, hashes)
                with pytest.raises(ProofError):
                    verify_consistency(old.tree_size, new.tree_size, old.root_hash, forged, hashes)
    whole = log.consistency_proof(5)
    assert (whole.new_size, whole.to_dict()["old_size"]) == (27, 5)
    for bad in (0, 28):
        with pytest.raises(ValueError, match="old size"):
            log.consistency_proof(bad)


# -- queries -------------------------------------------------------------------------------------------------


def _populate(ledger: Ledger) -> list[AuditEvent]:
    """A mixed log over two tenants: 31 events of several types, subjects, generations and decisions."""
    log = ledger.log
    for n in range(15):
        tenant = "acme" if n % 3 else "globex"
        subject = f"sub_{n % 4}"
        generation = f"gen_{n:02d}"
        log.append(_draft(n, tenant_id=tenant, subject_id=subject))
        if n % 5 == 4:
            log.append(
                _draft(
                    n,
                    type=EventType.GENERATION_DENIED,
                    tenant_id=tenant,
                    subject_id=subject,
                    generation_id=generation,
                    decision=Decision.DENY,
                )
            )
        else:
            log.append(
                _draft(
                    n,
                    type=EventType.GENERATION_REQUESTED,
                    tenant_id=tenant,
                    subject_id=subject,
                    generation_id=generation,
                    decision=Decision.ALLOW,
                )
            )
            if n % 2:
                log.append(_draft(n, type=EventType.GENERATION_COMPLETED, tenant_id=tenant, generation_id=generation))
    log.append(_draft(99, type=EventType.ACCESS_DENIED, tenant_id="acme", decision=Decision.DENY))
    events = [log.get(seq) for seq in range(log.size())]
    assert len(events) == 15 + 15 + 6 + 1
    return events


def _all(ledger: Ledger, **filters: object) -> list[AuditEvent]:
    """Every matching event, paged 4 at a time; checks the pages neither repeat nor skip."""
    found: list[AuditEvent] = []
    cursor: str | None = None
    while True:
        page = ledger.query(EventQuery.model_validate({**filters, "limit": 4, "cursor": cursor}))
        assert len(page.events) <= 4
        found.extend(page.events)
        if page.next_cursor is None:
            break
        assert len(page.events) == 4
        cursor = page.next_cursor
    seqs = [e.seq for e in found]
    assert seqs == sorted(set(seqs))
    return found


def test_query_filters(ledger: Ledger) -> None:
    events = _populate(ledger)

    def expect(predicate: object, **filters: object) -> None:
        wanted = [e for e in events if predicate(e)]  # type: ignore[operator]
        assert wanted, f"the fixture log has no event for {filters}"
        assert _all(ledger, **filters) == wanted

    expect(lambda e: True)
    expect(lambda e: e.tenant_id == "globex", tenant="globex")
    expect(lambda e: e.subject_id == "sub_2", subject="sub_2")
    expect(lambda e: e.generation_id == "gen_07", generation_id="gen_07")
    expect(lambda e: e.decision == "deny", decision="deny")
    expect(lambda e: e.decision == "allow", decision=Decision.ALLOW)
    expect(lambda e: e.type == "generation.completed", type="generation.completed")
    expect(lambda e: e.type.startswith("generation."), type="generation.")
    expect(lambda e: e.type == "access.denied", type="access.")
    expect(
        lambda e: e.tenant_id == "acme" and e.type.startswith("generation.") and e.decision == "deny",
        tenant="acme",
        type="generation.",
        decision="deny",
    )
    since, until = events[6].occurred_at, events[20].occurred_at
    expect(lambda e: since <= e.occurred_at < until, since=since, until=until)
    expect(lambda e: e.occurred_at >= since, since=since)
    expect(lambda e: e.occurred_at < until, until=until)
    # ISO strings with another zone mean the same instants.
    expect(lambda e: e.occurred_at >= since, since=since.astimezone(timezone(timedelta(hours=5))).isoformat())

    assert _all(ledger, tenant="nobody") == []
    assert _all(ledger, type="generation") == []  # without the dot it is an exact type, and there is none
    assert _all(ledger, type="GENERATION.") == []  # prefixes are case-sensitive on every database
    assert _all(ledger, type="gen%.") == []  # and not LIKE patterns
    assert _all(ledger, since=events[-1].occurred_at + timedelta(seconds=1)) == []
    assert ledger.events_for_generation("gen_03") == [e for e in events if e.generation_id == "gen_03"]


def test_cursor_paging_covers_every_event_once(ledger: Ledger) -> None:
    events = _fill(ledger.log, 24)
    for limit in (1, 5, 8, 24, 25, 1000):
        seen: list[int] = []
        page = ledger.query(limit=limit)
        pages = 1
        seen.extend(e.seq for e in page.events)
        while page.next_cursor is not None:
            page = ledger.query(limit=limit, cursor=page.next_cursor)
            pages += 1
            seen.extend(e.seq for e in page.events)
        assert seen == [e.seq for e in events], limit
        assert pages == max(1, -(-24 // limit)), limit  # an exact multiple ends without an empty page

    # A cursor taken before more events arrive continues with them.
    first = ledger.query(limit=24)
    assert first.next_cursor is None
    _fill(ledger.log, 2)
    later = ledger.query(limit=10, cursor=encode_cursor(first.events[-1].seq))
    assert [e.seq for e in later.events] == [24, 25]
    assert decode_cursor(encode_cursor(123456789)) == 123456789


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        base64.urlsafe_b64encode(b"before:3").decode(),
        base64.urlsafe_b64encode(b"after:three").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "",
    ],
)
def test_an_invalid_cursor_is_a_value_error(ledger: Ledger, cursor: str) -> None:
    _fill(ledger.log, 2)
    with pytest.raises(ValueError, match="invalid cursor"):
        ledger.query(cursor=cursor)


def test_query_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="timezone"):
        EventQuery.model_validate({"since": "2026-11-24T10:00:00"})
    for limit in (0, 1001):
        with pytest.raises(ValueError):
            EventQuery(limit=limit)
    with pytest.raises(ValueError):
        EventQuery.model_validate({"decision": "maybe"})
