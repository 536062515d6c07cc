"""Done when: editing, deleting, inserting or reordering any audit row directly in the database (triggers dropped
first) is detected by verify, on SQLite and on PostgreSQL.

Every test builds the same log (21 events; checkpoints signed at 8 and 16, so events 16-20 are the unsigned tail),
drops the append-only triggers, checks that ``verify`` passes (the control), tampers, and checks that ``verify``
raises ``LogIntegrityError`` naming the first inconsistent event where one event can be named.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from audit.canonical import canonical_json
from audit.checkpoint import Checkpoint, LogSigningKey, SignedCheckpoint, WitnessNoteError, sign_checkpoint
from audit.errors import LogIntegrityError, RecordIntegrityError
from audit.events import AuditEvent, Decision, EventDraft, EventType
from audit.ledger import Ledger
from audit.log import AuditLog
from audit.merkle import MerkleFrontier
from audit.models import AuditEventRow, CheckpointRow
from audit.store import Store

SIZE = 21
DENIED = 5  # the event whose decision is "deny"


@dataclass
class Row:
    seq: int
    body: dict[str, Any]
    leaf_hash: str
    prev_hash: str


@dataclass
class Tamperer:
    """Direct access to the tables of a log whose append-only triggers are gone."""

    store: Store
    log: AuditLog
    key: LogSigningKey
    events: list[AuditEvent]

    def sql(self, statement: str, **params: Any) -> None:
        with self.store.engine.begin() as connection:
            connection.execute(text(statement), params)

    def rows(self) -> list[Row]:
        with self.store.read() as session:
            return [
                Row(r.seq, json.loads(r.body), r.leaf_hash, r.prev_hash)
                for r in session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq))
            ]

    def row(self, seq: int) -> Row:
        return next(r for r in self.rows() if r.seq == seq)

    def set_body(self, seq: int, body: dict[str, Any], *, recompute_leaf: bool) -> str:
        """Store ``body`` as event ``seq``'s; with ``recompute_leaf`` its leaf hash too (the careful forger)."""
        text_ = canonical_json(body)
        leaf = _leaf(text_)
        if recompute_leaf:
            statement = "UPDATE audit_events SET body = :body, leaf_hash = :leaf WHERE seq = :seq"
            self.sql(statement, body=text_, leaf=leaf, seq=seq)
        else:
            self.sql("UPDATE audit_events SET body = :body WHERE seq = :seq", body=text_, seq=seq)
        return leaf

    def rewrite(self, change: dict[int, dict[str, Any]]) -> None:
        """Rewrite the whole table consistently: apply ``change`` (seq → data) and recompute every hash and link."""
        prev = "0" * 64
        for row in self.rows():
            body = dict(row.body, prev=prev)
            if row.seq in change:
                body["data"] = change[row.seq]
            text_ = canonical_json(body)
            leaf = _leaf(text_)
            self.sql(
                "UPDATE audit_events SET body = :body, leaf_hash = :leaf, prev_hash = :prev WHERE seq = :seq",
                body=text_,
                leaf=leaf,
                prev=prev,
                seq=row.seq,
            )
            prev = leaf

    def forge(self, seq: int, prev: str, data: dict[str, Any]) -> AuditEventRow:
        """A well-formed event at ``seq`` linked to ``prev``, with correct hashes."""
        moment = datetime.now(UTC)
        body = {
            "v": 1,
            "seq": seq,
            "id": uuid.uuid4().hex,
            "type": EventType.CONSENT_GRANTED.value,
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "tenant": "acme",
            "actor": "forger",
            "subject": "sub_victim",
            "generation": None,
            "decision": None,
            "data": data,
            "prev": prev,
        }
        text_ = canonical_json(body)
        return AuditEventRow(
            seq=seq,
            event_id=body["id"],
            event_type=body["type"],
            occurred_at=moment,
            tenant_id="acme",
            actor="forger",
            subject_id="sub_victim",
            generation_id=None,
            decision=None,
            body=text_,
            leaf_hash=_leaf(text_),
            prev_hash=prev,
        )

    def insert(self, row: AuditEventRow) -> None:
        with self.store.write() as session:
            session.add(row)

    def verify(self, **kwargs: Any) -> int:
        return self.log.verify(self.key.public_key, **kwargs).tree_size

    def refuted(self, **kwargs: Any) -> LogIntegrityError:
        with pytest.raises(LogIntegrityError) as caught:
            self.log.verify(self.key.public_key, **kwargs)
        return caught.value


def _leaf(body: str) -> str:
    return hashlib.sha256(b"\x00" + body.encode("utf-8")).hexdigest()


def _drop_triggers(store: Store) -> None:
    with store.engine.begin() as connection:
        for table in ("audit_events", "audit_checkpoints"):
            if store.dialect == "sqlite":
                connection.execute(text(f"DROP TRIGGER {table}_no_update"))
                connection.execute(text(f"DROP TRIGGER {table}_no_delete"))
            else:
                connection.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
                connection.execute(text(f"DROP TRIGGER {table}_no_truncate ON {table}"))


@pytest.fixture
def t(ledger: Ledger, store: Store, signing_key: LogSigningKey) -> Tamperer:
    log = ledger.log
    ledger.create_tenant("acme")
    for i in range(1, SIZE):
        if i == DENIED:
            log.append(
                EventDraft(
                    type=EventType.GENERATION_DENIED,
                    tenant_id="acme",
                    actor="0123456789ab",
                    subject_id="sub_1",
                    decision=Decision.DENY,
                    data={"reason": "no consent"},
                )
            )
        else:
            log.append(EventDraft(type=EventType.VERIFICATION_PERFORMED, tenant_id="acme", data={"i": i}))
    events = [log.get(seq) for seq in range(SIZE)]
    assert [c.checkpoint.tree_size for c in log.checkpoints()] == [8, 16]
    _drop_triggers(store)
    tamperer = Tamperer(store, log, signing_key, events)
    assert tamperer.verify() == SIZE  # the control: the untouched log verifies
    return tamperer


def test_the_triggers_are_really_gone(t: Tamperer) -> None:
    t.sql("UPDATE audit_events SET actor = actor")
    t.sql("UPDATE audit_checkpoints SET frontier = frontier")
    assert t.verify() == SIZE


# -- editing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 3, 15, SIZE - 1])
def test_editing_a_body_keeping_its_hashes(t: Tamperer, seq: int) -> None:
    body = t.row(seq).body
    t.set_body(seq, dict(body, data={"i": "edited"}), recompute_leaf=False)
    assert t.refuted().seq == seq


def test_editing_a_body_into_non_canonical_json(t: Tamperer) -> None:
    original = canonical_json(t.row(4).body)
    t.sql("UPDATE audit_events SET body = :body WHERE seq = 4", body=original.replace(",", ", ", 1))
    error = t.refuted()
    assert error.seq == 4
    assert "canonical" in error.message


@pytest.mark.parametrize("seq", [3, 7, 12])
def test_editing_a_body_and_recomputing_its_leaf_hash(t: Tamperer, seq: int) -> None:
    """The edited event is self-consistent; its successor's link (or the checkpoint over it) no longer is, and
    verify names the edited event, not the intact one after it."""
    t.set_body(seq, dict(t.row(seq).body, data={"i": "rewritten"}), recompute_leaf=True)
    assert t.refuted().seq == seq


@pytest.mark.parametrize("seq", [12, SIZE - 1])
def test_relinking_an_event_and_recomputing_its_leaf_hash(t: Tamperer, seq: int) -> None:
    """Here the event pointing the wrong way is the rewritten one (its successor, if any, no longer matches it
    either), so verify names it rather than its intact predecessor."""
    wrong = t.row(seq - 2).leaf_hash
    leaf = t.set_body(seq, dict(t.row(seq).body, prev=wrong), recompute_leaf=True)
    t.sql("UPDATE audit_events SET prev_hash = :prev WHERE seq = :seq", prev=wrong, seq=seq)
    assert t.row(seq).leaf_hash == leaf
    assert t.refuted().seq == seq


def test_editing_the_last_signed_event_and_recomputing_its_leaf_hash(t: Tamperer) -> None:
    t.set_body(15, dict(t.row(15).body, data={"i": "rewritten"}), recompute_leaf=True)
    error = t.refuted()
    # The checkpoint at 16 is checked right after event 15, before event 16's link.
    assert (error.seq, error.checkpoint_size) == (15, 16)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("decision", "allow"),
        ("tenant_id", "globex"),
        ("subject_id", "sub_2"),
        ("event_type", "generation.requested"),
        ("actor", "someone-else"),
        ("prev_hash", "ab" * 32),
        ("event_id", "f" * 32),
    ],
)
def test_editing_a_query_column_only(t: Tamperer, column: str, value: str) -> None:
    assert t.events[DENIED].decision == "deny"
    t.sql(f"UPDATE audit_events SET {column} = :value WHERE seq = :seq", value=value, seq=DENIED)
    assert t.refuted().seq == DENIED


def test_editing_the_time_column_only(t: Tamperer) -> None:
    with t.store.write() as session:
        row = session.get(AuditEventRow, 9)
        assert row is not None
        row.occurred_at = datetime(2020, 1, 1, tzinfo=UTC)
    assert t.refuted().seq == 9


def test_editing_a_leaf_hash_only(t: Tamperer) -> None:
    t.sql("UPDATE audit_events SET leaf_hash = :leaf WHERE seq = 11", leaf="00" * 32)
    assert t.refuted().seq == 11


# -- deleting ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 1, 10, 16])
def test_deleting_a_row_in_the_middle(t: Tamperer, seq: int) -> None:
    t.sql("DELETE FROM audit_events WHERE seq = :seq", seq=seq)
    assert t.refuted().seq == seq


@pytest.mark.parametrize("first_deleted", [15, 14, 9])
def test_deleting_the_last_rows_below_a_checkpoint(t: Tamperer, first_deleted: int) -> None:
    """Every later row goes too, so no gap shows: the signed checkpoints say how many there were."""
    t.sql("DELETE FROM audit_events WHERE seq >= :seq", seq=first_deleted)
    error = t.refuted()
    assert error.seq == first_deleted
    assert error.checkpoint_size == (8 if first_deleted < 8 else 16)


def test_deleting_the_unsigned_tail_and_the_checkpoint_that_signed_it(t: Tamperer) -> None:
    """What the database alone cannot show is shown by a checkpoint a witness copied out."""
    witnessed = t.log.checkpoint()
    assert witnessed is not None and witnessed.checkpoint.tree_size == SIZE
    t.sql("DELETE FROM audit_events WHERE seq >= 16")
    t.sql("DELETE FROM audit_checkpoints WHERE tree_size > 16")
    assert t.verify() == 16  # consistent with itself: the tail is simply not there
    error = t.refuted(witnessed=[witnessed.to_text()])
    assert (error.seq, error.checkpoint_size) == (16, SIZE)


# -- inserting -----------------------------------------------------------------------------------------------


def test_inserting_a_forged_row_spliced_into_the_middle(t: Tamperer) -> None:
    """The forged row 10 links correctly to event 9 and hashes correctly, so the first inconsistency is the
    displaced original: stored at 11 now, its hashed body still says it is event 10."""
    t.sql("UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 10")  # two steps: the key must stay unique
    t.sql("UPDATE audit_events SET seq = -seq WHERE seq < 0")
    t.insert(t.forge(10, t.row(9).leaf_hash, {"consent_id": "con_forged"}))
    error = t.refuted()
    assert error.seq == 11
    assert "'seq'" in error.message


def test_inserting_a_forged_row_with_a_wrong_link(t: Tamperer) -> None:
    t.insert(t.forge(SIZE, t.row(SIZE - 2).leaf_hash, {"consent_id": "con_forged"}))
    assert t.refuted().seq == SIZE


def test_inserting_a_forged_row_with_a_wrong_hash(t: Tamperer) -> None:
    row = t.forge(SIZE, t.row(SIZE - 1).leaf_hash, {"consent_id": "con_forged"})
    row.leaf_hash = "ab" * 32
    t.insert(row)
    assert t.refuted().seq == SIZE


def test_a_well_formed_append_at_the_end_is_not_detectable_by_hashes_alone(t: Tamperer) -> None:
    """The limit of a hash chain: a correct-looking event appended past every checkpoint is indistinguishable from
    an honest append, forged or not. Witnessed checkpoints must keep accepting honest growth."""
    witnessed = t.log.latest_checkpoint()
    assert witnessed is not None and witnessed.checkpoint.tree_size == 16
    t.insert(t.forge(SIZE, t.row(SIZE - 1).leaf_hash, {"consent_id": "con_forged"}))
    assert t.verify(records=False) == SIZE + 1
    # The records cross-check does notice this one: it grants a consent that no consents row holds.
    assert isinstance(t.refuted(), RecordIntegrityError)
    t.log.append(EventDraft(type=EventType.VERIFICATION_PERFORMED, tenant_id="acme", data={"honest": True}))
    t.log.checkpoint()
    assert t.verify(witnessed=[witnessed], records=False) == SIZE + 2
    assert t.verify(witnessed=[c.to_text() for c in t.log.checkpoints()], records=False) == SIZE + 2


def test_rewriting_the_whole_table_is_caught_by_the_stored_signed_checkpoints(t: Tamperer) -> None:
    t.rewrite({2: {"i": "rewritten"}})
    rows = t.rows()
    assert all(b.prev_hash == a.leaf_hash for a, b in itertools.pairwise(rows))  # a consistent chain
    error = t.refuted()
    assert error.checkpoint_size == 8  # the first signed root over event 2
    assert error.seq == 7


def test_rewriting_the_whole_table_and_its_checkpoints_is_caught_by_a_witness(t: Tamperer) -> None:
    witnessed = [c.to_text() for c in t.log.checkpoints()]
    t.rewrite({12: {"i": "rewritten"}})
    t.sql("DELETE FROM audit_checkpoints")
    assert t.verify() == SIZE  # nothing in the database contradicts it any more
    error = t.refuted(witnessed=witnessed[-1:])
    assert error.checkpoint_size == 16
    assert "witnessed" in error.message
    assert t.verify(witnessed=witnessed[:1]) == SIZE  # the rewrite left the first 8 events as they were


# -- reordering ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(3, 6), (9, 10), (0, SIZE - 1)])
def test_swapping_two_rows_sequence_numbers(t: Tamperer, a: int, b: int) -> None:
    t.sql("UPDATE audit_events SET seq = -1 WHERE seq = :a", a=a)
    t.sql("UPDATE audit_events SET seq = :a WHERE seq = :b", a=a, b=b)
    t.sql("UPDATE audit_events SET seq = :b WHERE seq = -1", b=b)
    assert t.refuted().seq == a


# -- checkpoints ---------------------------------------------------------------------------------------------


def test_editing_a_checkpoint_rows_root(t: Tamperer) -> None:
    t.sql("UPDATE audit_checkpoints SET root_hash = :root WHERE tree_size = 8", root="00" * 32)
    assert t.refuted().checkpoint_size == 8


def test_editing_a_checkpoint_rows_root_and_its_note(t: Tamperer) -> None:
    """Swapping the root inside the signed note breaks its signature."""
    with t.store.read() as session:
        note = session.scalars(select(CheckpointRow.signed_note).where(CheckpointRow.tree_size == 16)).one()
    signed = SignedCheckpoint.parse(note)
    forged_root = hashlib.sha256(b"another tree").digest()
    forged = SignedCheckpoint(Checkpoint(signed.checkpoint.origin, 16, forged_root), signed.signatures)
    t.sql(
        "UPDATE audit_checkpoints SET root_hash = :root, signed_note = :note WHERE tree_size = 16",
        root=forged_root.hex(),
        note=forged.to_text(),
    )
    error = t.refuted()
    assert "checkpoint at size 16" in error.message


def test_a_checkpoint_signed_by_another_key(t: Tamperer) -> None:
    """Correct size and root, but signed by a key with the log key's name and other material."""
    impostor = LogSigningKey.generate(t.key.name)
    frontier = MerkleFrontier.from_leaves(bytes.fromhex(r.leaf_hash) for r in t.rows())
    signed = sign_checkpoint(Checkpoint(t.log.origin, SIZE, frontier.root()), impostor)
    with t.store.write() as session:
        session.add(
            CheckpointRow(
                tree_size=SIZE,
                root_hash=frontier.root().hex(),
                signed_note=signed.to_text(),
                frontier=json.dumps([h.hex() for h in frontier.to_list()]),
                created_at=datetime.now(UTC),
            )
        )
    error = t.refuted()
    assert "no signature by" in error.message
    # Offered as a witness, it is refused as a note this log never signed: the input is at fault, not the log.
    t.sql("DELETE FROM audit_checkpoints WHERE tree_size = :size", size=SIZE)
    assert t.verify() == SIZE
    with pytest.raises(WitnessNoteError, match="witnessed note 1 is not a signed checkpoint note of this log"):
        t.log.verify(t.key.public_key, witnessed=[signed])


def test_a_rewrite_with_checkpoints_re_signed_by_another_key(t: Tamperer) -> None:
    """The forger rewrites the table and re-signs every checkpoint with a key of their own."""
    impostor = LogSigningKey.generate("xp-forger")
    t.rewrite({1: {"i": "rewritten"}})
    leaves = [bytes.fromhex(r.leaf_hash) for r in t.rows()]
    for size in (8, 16):
        frontier = MerkleFrontier.from_leaves(leaves[:size])
        note = sign_checkpoint(Checkpoint(t.log.origin, size, frontier.root()), impostor).to_text()
        t.sql(
            "UPDATE audit_checkpoints SET root_hash = :root, signed_note = :note WHERE tree_size = :size",
            root=frontier.root().hex(),
            note=note,
            size=size,
        )
    assert t.log.verify(impostor.public_key).tree_size == SIZE  # consistent under the forger's key...
    assert "no signature by xp-test" in t.refuted().message  # ...but not under the log's
