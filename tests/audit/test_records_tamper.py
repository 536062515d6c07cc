"""Done when: editing, deleting or inserting a row of the record tables (generations, consents, subjects and their
face references, API keys, tenants) directly with SQL, outside the ledger, is caught, on SQLite and on PostgreSQL:
``AuditLog.verify`` raises ``RecordIntegrityError`` naming the table, the record and the field, and the reads that
``xp verify`` and ``xp audit show`` report (``Ledger.generation``, ``find_generation``,
``unfinished_generations``) raise it too instead of returning the edited value.

Every test builds the same records through the ledger (so each row has the events that describe it), checks that
``verify`` and the reads pass (the control), edits one column, and tries again.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, insert, select, update

from audit.checkpoint import LogSigningKey
from audit.errors import LogIntegrityError, RecordIntegrityError
from audit.ledger import Ledger
from audit.log import LogVerification
from audit.models import ApiKey, Consent, FaceReference, Generation, Subject, Tenant
from audit.reconcile import hold_snapshot
from audit.record_reads import check_consents, check_subjects
from audit.store import Store

MODEL = "sface-2021dec"
LATER = timedelta(days=1)
FAR = timedelta(days=3650)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return vector / np.linalg.norm(vector)


@dataclass
class Records:
    """One deployment's records, each written through the ledger with its events."""

    ledger: Ledger
    store: Store
    key: LogSigningKey
    now: datetime
    tenant: str = "acme"
    other_tenant: str = "globex"
    api_key: str = ""
    revoked_key: str = ""
    subject: str = ""
    other_subject: str = ""
    consent: str = ""
    revoked_consent: str = ""
    completed: str = "0123456789abcdef0123456789abcdef"
    failed: str = "fedcba9876543210fedcba9876543210"
    pending: str = "00112233445566778899aabbccddeeff"

    def build(self) -> Records:
        ledger = self.ledger
        ledger.create_tenant(self.tenant)
        ledger.create_tenant(self.other_tenant)
        self.api_key = ledger.create_key(
            self.tenant, scopes="animate verify", expires_at=self.now + timedelta(days=30), rate_limit_per_minute=5
        ).info.id
        self.revoked_key = ledger.create_key(self.tenant, scopes="animate").info.id
        ledger.revoke_key(self.revoked_key, reason="leaked")
        references = [(_vector(1), _sha("photo 1")), (_vector(2), _sha("photo 2"))]
        self.subject = ledger.register_subject(self.tenant, "Ada", references, model=MODEL, actor="op").id
        self.other_subject = ledger.register_subject(
            self.other_tenant, "Grace", [(_vector(3), _sha("photo 3"))], model=MODEL
        ).id
        self.consent = ledger.grant_consent(
            self.subject,
            self.tenant,
            evidence_sha256=_sha("Ada consents"),
            purposes="advertising",
            valid_until=self.now + timedelta(days=30),
            actor="op",
        ).id
        self.revoked_consent = ledger.grant_consent(
            self.subject, self.tenant, evidence_sha256=_sha("Ada consented, then withdrew")
        ).id
        ledger.revoke_consent(self.revoked_consent, reason="withdrawn", actor="op")
        for generation in (self.completed, self.failed, self.pending):
            ledger.record_requested(
                generation,
                tenant_id=self.tenant,
                key_id=self.api_key,
                subject_id=self.subject,
                consent_id=self.consent,
                decision={"decision_id": f"dec_{generation[:6]}", "allowed": True},
                source_sha256=_sha(f"source of {generation}"),
                driving="template:nod",
                request={"fps": 25},
            )
        ledger.record_completed(
            self.completed, output_sha256=_sha("output"), manifest_sha256=_sha("manifest"), data={"frames": 48}
        )
        ledger.record_failed(self.failed, error_code="engine_error", message="the encoder stopped")
        return self

    def sql_update(self, model: Any, record_id: str, **values: Any) -> None:
        """``UPDATE table SET … WHERE id = …``, straight to the database: the ledger and the log never hear of it."""
        table = model.__table__
        with self.store.engine.begin() as connection:
            changed = connection.execute(update(table).where(table.c.id == record_id).values(**values)).rowcount
        assert changed == 1

    def sql(self, statement: Any) -> None:
        with self.store.engine.begin() as connection:
            connection.execute(statement)

    def verify(self) -> LogVerification:
        return self.ledger.log.verify(self.key.public_key)

    def refuted(self) -> RecordIntegrityError:
        with pytest.raises(LogIntegrityError) as caught:
            self.verify()
        assert isinstance(caught.value, RecordIntegrityError), caught.value
        return caught.value


@pytest.fixture
def records(ledger: Ledger, store: Store, signing_key: LogSigningKey) -> Records:
    built = Records(ledger, store, signing_key, datetime.now(UTC)).build()
    checked = built.verify()  # the control: untouched records agree with their events
    assert checked.records == 2 + 2 + 2 + 3 + 2 + 3  # tenants, keys, subjects, face references, consents, generations
    for generation in (built.completed, built.failed, built.pending):
        assert ledger.generation(generation).id == generation
    assert [g.id for g in ledger.unfinished_generations(requested_before=built.now + FAR)] == [built.pending]
    return built


def _named(error: RecordIntegrityError, table: str, record_id: str, field: str | None) -> None:
    assert (error.table, error.record_id, error.field) == (table, record_id, field), error.message
    assert record_id in error.message
    if field is not None:
        assert field in error.message


# -- the control ---------------------------------------------------------------------------------------------


def test_untouched_records_read_back_as_written(records: Records) -> None:
    completed = records.ledger.generation(records.completed)
    assert (completed.tenant_id, completed.key_id, completed.status) == (records.tenant, records.api_key, "completed")
    assert completed.output_sha256 == _sha("output") and completed.watermark_id == records.completed
    events = records.ledger.events_for_generation(records.completed)
    # The row's moments are its events' moments, exactly: the log vouches for them.
    assert (completed.created_at, completed.finished_at) == (events[0].occurred_at, events[1].occurred_at)
    failed = records.ledger.generation(records.failed)
    assert (failed.status, failed.error_code, failed.output_sha256) == ("failed", "engine_error", None)
    assert records.ledger.find_generation("ffffffffffffffffffffffffffffffff") is None


# -- generations: what `xp verify` and `xp audit show` report --------------------------------------------------


def _generation_edits(r: Records) -> list[tuple[str, str, Any]]:
    """(generation, column, edited value) for every column of a generation's row."""
    return [
        (r.completed, "tenant_id", r.other_tenant),
        (r.completed, "key_id", r.revoked_key),
        (r.completed, "subject_id", r.other_subject),
        (r.completed, "subject_id", None),
        (r.completed, "consent_id", r.revoked_consent),
        (r.completed, "decision_id", "dec_forged"),
        (r.completed, "status", "failed"),
        (r.completed, "source_sha256", _sha("another photo")),
        (r.completed, "driving", "template:shake"),
        (r.completed, "output_sha256", _sha("someone else's clip")),
        (r.completed, "output_sha256", None),
        (r.completed, "manifest_sha256", _sha("another manifest")),
        (r.completed, "watermark_id", r.failed),
        (r.completed, "error_code", "engine_error"),
        (r.completed, "created_at", r.now - LATER),
        (r.completed, "finished_at", r.now + LATER),
        (r.failed, "status", "completed"),
        (r.failed, "error_code", None),
        (r.failed, "output_sha256", _sha("output")),
        (r.failed, "finished_at", None),
        (r.pending, "status", "completed"),
        (r.pending, "created_at", r.now - LATER),
        (r.pending, "finished_at", r.now),
    ]


GENERATION_EDITS = 23


def test_every_generation_column_is_covered(records: Records) -> None:
    """The edit table below touches every column but the key, so a column added later must get its row."""
    edited = {column for _, column, _ in _generation_edits(records)}
    assert edited == {c.name for c in Generation.__table__.columns} - {"id"}
    assert len(_generation_edits(records)) == GENERATION_EDITS


@pytest.mark.parametrize("index", range(GENERATION_EDITS))
def test_editing_a_generation_row(records: Records, index: int) -> None:
    generation, column, value = _generation_edits(records)[index]
    records.sql_update(Generation, generation, **{column: value})
    _named(records.refuted(), "generations", generation, column)
    with pytest.raises(RecordIntegrityError) as read:
        records.ledger.generation(generation)
    _named(read.value, "generations", generation, column)
    with pytest.raises(RecordIntegrityError):
        records.ledger.find_generation(generation)


def test_a_deleted_generation_row_is_not_reported_as_never_made(records: Records) -> None:
    records.sql(delete(Generation).where(Generation.id == records.completed))
    _named(records.refuted(), "generations", records.completed, None)
    # Not "no such generation": the log says it was made.
    with pytest.raises(RecordIntegrityError) as read:
        records.ledger.find_generation(records.completed)
    _named(read.value, "generations", records.completed, None)


def test_an_inserted_generation_row_is_refused(records: Records) -> None:
    """A row no event describes: a clip "on record" that the gate never allowed."""
    forged = "deadbeefdeadbeefdeadbeefdeadbeef"
    records.sql(
        insert(Generation).values(
            id=forged, tenant_id=records.tenant, key_id=records.api_key, subject_id=records.subject,
            consent_id=records.consent, decision_id="dec_forged", status="completed",
            source_sha256=_sha("a"), driving="template:nod", output_sha256=_sha("forged clip"),
            manifest_sha256=None, watermark_id=forged, error_code=None, created_at=records.now, finished_at=records.now,
        )
    )  # fmt: skip
    _named(records.refuted(), "generations", forged, None)
    with pytest.raises(RecordIntegrityError) as read:
        records.ledger.find_generation(forged)
    _named(read.value, "generations", forged, None)


@pytest.mark.parametrize(
    ("column", "value"), [("status", "completed"), ("status", "failed"), ("created_at", "an hour later")]
)
def test_the_abandoned_list_reports_an_edited_row(records: Records, column: str, value: Any) -> None:
    """Hiding a stuck generation (marking it finished, or younger) or exposing a live one (older) is caught."""
    if value == "an hour later":
        value = records.now + timedelta(hours=1)
    records.sql_update(Generation, records.pending, **{column: value})
    with pytest.raises(RecordIntegrityError) as read:
        records.ledger.unfinished_generations(requested_before=records.now + FAR)
    _named(read.value, "generations", records.pending, column)


def test_the_abandoned_list_reports_a_live_generation_made_to_look_old(records: Records) -> None:
    records.sql_update(Generation, records.pending, created_at=records.now - LATER)
    with pytest.raises(RecordIntegrityError) as read:
        records.ledger.unfinished_generations(requested_before=records.now - timedelta(hours=1))
    _named(read.value, "generations", records.pending, "created_at")


# -- the records the gate decides on -------------------------------------------------------------------------


def _record_edits(r: Records) -> list[tuple[Any, str, str, Any]]:
    """(model, record, column, edited value): what an operator with the database might change, and why."""
    return [
        # Consents: widen who may animate the person, for how long, for what.
        (Consent, r.consent, "grantee_tenant_id", r.other_tenant),
        (Consent, r.consent, "subject_id", r.other_subject),
        (Consent, r.consent, "valid_until", r.now + FAR),
        (Consent, r.consent, "valid_until", None),
        (Consent, r.consent, "valid_from", r.now - FAR),
        (Consent, r.consent, "scopes", "animate verify"),
        (Consent, r.consent, "purposes", ""),
        (Consent, r.consent, "evidence_sha256", _sha("other evidence")),
        (Consent, r.consent, "evidence_kind", "video"),
        (Consent, r.consent, "kind", "verified-video"),  # an attested consent passed off as a checked video
        (Consent, r.consent, "recorded_by", "someone"),
        (Consent, r.consent, "created_at", r.now + LATER),
        (Consent, r.consent, "revoked_at", r.now),
        (Consent, r.revoked_consent, "revoked_at", None),
        (Consent, r.revoked_consent, "revoked_at", r.now + FAR),
        (Consent, r.revoked_consent, "revoked_by", "someone"),
        (Consent, r.revoked_consent, "revocation_reason", None),
        # Subjects: move a person to another tenant, or off or on the protected list.
        (Subject, r.subject, "tenant_id", r.other_tenant),
        (Subject, r.subject, "name", "Eve"),
        (Subject, r.subject, "protected", True),
        (Subject, r.subject, "created_by", "someone"),
        (Subject, r.subject, "created_at", r.now + LATER),
        # API keys: another tenant, more scopes, no expiry, unrevoked, unlimited.
        (ApiKey, r.api_key, "tenant_id", r.other_tenant),
        (ApiKey, r.api_key, "scopes", "animate keys:admin verify"),
        (ApiKey, r.api_key, "expires_at", None),
        (ApiKey, r.api_key, "expires_at", r.now + FAR),
        (ApiKey, r.api_key, "rate_limit_per_minute", 0),
        (ApiKey, r.api_key, "name", "renamed"),
        (ApiKey, r.api_key, "created_by", "someone"),
        (ApiKey, r.api_key, "created_at", r.now + LATER),
        (ApiKey, r.api_key, "revoked_at", r.now),
        (ApiKey, r.revoked_key, "revoked_at", None),
        (ApiKey, r.revoked_key, "revoked_at", r.now + FAR),
        # Tenants.
        (Tenant, r.tenant, "name", "Evil Corp"),
        (Tenant, r.tenant, "created_at", r.now + LATER),
    ]


RECORD_EDITS = 35


def test_every_gate_column_is_covered(records: Records) -> None:
    """Every column but the key and the key's secret hash (which no event records) has an edit below."""
    edits = _record_edits(records)
    assert len(edits) == RECORD_EDITS
    assert {m for m, *_ in edits[:GATE_READ_EDITS]} == {Consent, Subject}
    assert {m for m, *_ in edits[GATE_READ_EDITS:]}.isdisjoint({Consent, Subject})
    for model in (Consent, Subject, ApiKey, Tenant):
        edited = {column for m, _, column, _ in edits if m is model}
        uncovered = {"id", "secret_hash"} if model is ApiKey else {"id"}
        assert edited == {c.name for c in model.__table__.columns} - uncovered, model.__tablename__


@pytest.mark.parametrize("index", range(RECORD_EDITS))
def test_editing_a_gate_record(records: Records, index: int) -> None:
    model, record_id, column, value = _record_edits(records)[index]
    records.sql_update(model, record_id, **{column: value})
    _named(records.refuted(), model.__tablename__, record_id, column)


GATE_READ_EDITS = 22
"""The first edits above, those of consents and subjects: what the gate reads before it decides."""


@pytest.mark.parametrize("index", range(GATE_READ_EDITS))
def test_the_gates_reads_refuse_an_edited_consent_or_subject(records: Records, index: int) -> None:
    """``check_consents`` and ``check_subjects``, for the gate's reads: each row is checked against the events of
    its subject before it is acted on. (Read alone, a consent moved to another subject is reported as a row no
    event describes: its event is filed under the subject it was granted for.)"""
    model, record_id, column, value = _record_edits(records)[index]
    records.sql_update(model, record_id, **{column: value})
    subjects = (records.subject, records.other_subject)
    with records.store.read() as session, pytest.raises(RecordIntegrityError) as read:
        hold_snapshot(session)
        if model is Consent:
            check_consents(session, session.scalars(select(Consent).where(Consent.subject_id.in_(subjects))).all())
        else:
            check_subjects(session, session.scalars(select(Subject).where(Subject.id.in_(subjects))).all())
    _named(read.value, model.__tablename__, record_id, column)


def test_the_gates_reads_pass_untouched_records(records: Records) -> None:
    with records.store.read() as session:
        hold_snapshot(session)
        check_consents(session, session.scalars(select(Consent)).all())
        check_subjects(session, session.scalars(select(Subject)).all())
        check_consents(session, [])
        check_subjects(session, [])


def test_an_inserted_consent_row_is_refused(records: Records) -> None:
    """The most useful forgery: a consent the person never gave, so the gate lets another tenant animate them."""
    records.sql(
        insert(Consent).values(
            id="con_forged", subject_id=records.other_subject, grantee_tenant_id=records.tenant, scopes="animate",
            purposes="", valid_from=records.now, valid_until=None, evidence_sha256=_sha("nothing"),
            evidence_kind="signed-statement", recorded_by="op", created_at=records.now,
        )
    )  # fmt: skip
    _named(records.refuted(), "consents", "con_forged", None)
    with records.store.read() as session, pytest.raises(RecordIntegrityError) as read:
        hold_snapshot(session)
        check_consents(session, session.scalars(select(Consent).where(Consent.id == "con_forged")).all())
    _named(read.value, "consents", "con_forged", None)


def test_an_inserted_api_key_row_is_refused(records: Records) -> None:
    records.sql(
        insert(ApiKey).values(
            id="0badc0ffee00", tenant_id=records.tenant, name="backdoor", secret_hash="$argon2id$forged",
            scopes="animate keys:admin verify", rate_limit_per_minute=0, created_at=records.now,
        )
    )  # fmt: skip
    _named(records.refuted(), "api_keys", "0badc0ffee00", None)


@pytest.mark.parametrize(("model", "attribute"), [(Consent, "consent"), (ApiKey, "api_key"), (Generation, "pending")])
def test_a_deleted_row_is_refused(records: Records, model: Any, attribute: str) -> None:
    """Deleting a consent row revokes it, and deleting a key row forgets it, without an event."""
    record_id = getattr(records, attribute)
    records.sql(delete(model).where(model.id == record_id))
    _named(records.refuted(), model.__tablename__, record_id, None)


def test_an_inserted_tenant_row_is_refused(records: Records) -> None:
    records.sql(insert(Tenant).values(id="initech", name="Initech", created_at=records.now))
    _named(records.refuted(), "tenants", "initech", None)


# -- face references: covered by their photo's hash and model, not by the embedding -----------------------------


@pytest.mark.parametrize("edit", ["photo_sha256", "model", "subject_id", "deleted", "inserted"])
def test_editing_a_subjects_face_references(records: Records, edit: str) -> None:
    with records.store.read() as session:
        reference_id = min(session.scalars(select(FaceReference.id).where(FaceReference.subject_id == records.subject)))
    where = FaceReference.id == reference_id
    statements = {
        "photo_sha256": update(FaceReference).where(where).values(photo_sha256=_sha("another photo")),
        "model": update(FaceReference).where(where).values(model="another-model"),
        "subject_id": update(FaceReference).where(where).values(subject_id=records.other_subject),
        "deleted": delete(FaceReference).where(where),
        "inserted": insert(FaceReference).values(
            subject_id=records.subject, embedding=_vector(9).tobytes(), model=MODEL, photo_sha256=_sha("photo 9"),
            created_at=records.now,
        ),
    }  # fmt: skip
    records.sql(statements[edit])
    error = records.refuted()
    # A reference moved to another person changes both; either may be reported first.
    moved_to = records.other_subject if edit == "subject_id" and error.record_id != records.subject else None
    _named(error, "subjects", moved_to or records.subject, "face_references")


def test_an_edited_embedding_is_not_covered(records: Records) -> None:
    """What the log does not hold it cannot vouch for: the event records each reference photo's SHA-256, not the
    embedding computed from it, so replacing an embedding is not caught (SECURITY.md says so)."""
    records.sql(
        update(FaceReference).where(FaceReference.subject_id == records.subject).values(embedding=_vector(9).tobytes())
    )
    assert records.verify().records > 0


# -- no false alarms -----------------------------------------------------------------------------------------


def test_reads_and_verify_agree_with_concurrent_writers(records: Records) -> None:
    """Rows and events are read from one snapshot: a generation finishing or a consent being revoked while a
    read or ``verify`` runs is never mistaken for tampering (on PostgreSQL, READ COMMITTED would see the row and
    its events at different moments)."""
    ledger = records.ledger
    stop = threading.Event()
    failures: list[BaseException] = []
    written: list[str] = []

    def write() -> None:
        try:
            for n in range(60):
                generation = f"{n:032x}"
                ledger.record_requested(
                    generation, tenant_id=records.tenant, key_id=records.api_key, subject_id=records.subject,
                    consent_id=records.consent, decision={"decision_id": f"dec_{n}"}, source_sha256=_sha(str(n)),
                    driving="template:nod", request={},
                )  # fmt: skip
                written.append(generation)
                ledger.record_completed(generation, output_sha256=_sha(f"out {n}"), manifest_sha256=None, data={})
                consent = ledger.grant_consent(records.subject, records.tenant, evidence_sha256=_sha(f"c {n}"))
                ledger.revoke_consent(consent.id)
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    try:
        while not stop.is_set():
            if written:
                ledger.generation(written[-1])
            ledger.unfinished_generations(requested_before=records.now + FAR)
            if reads % 10 == 0:
                records.verify()
            reads += 1
    finally:
        writer.join()
    assert failures == []
    assert len(written) == 60 and reads > 0
    assert records.verify().records == 2 + 2 + 2 + 3 + 2 + 60 + 3 + 60
