"""Reads of record rows that the log vouches for: each row is checked against the events that describe it before
anyone is told what it says, so an edit behind the ledger's back is reported (``RecordIntegrityError``) instead
of believed.

Each function takes the session of a ``store.read()`` whose first statement was ``hold_snapshot(session)``, so
rows and events are read as of one moment. The events a read relies on are checked against themselves (body,
hash, columns); their links and the signed checkpoints over them are ``AuditLog.verify``'s to check, as is every
row no read happens to touch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, aliased

from audit.events import EventType
from audit.log import check_event_row
from audit.models import AuditEventRow, Consent, FaceReference, Generation, Subject
from audit.reconcile import CONSENTS, GENERATION_FINAL_EVENTS, GENERATIONS, SUBJECTS, Reconciler, row_values

_GENERATION_EVENTS = (EventType.GENERATION_REQUESTED.value, *GENERATION_FINAL_EVENTS)
_CONSENT_EVENTS = (EventType.CONSENT_GRANTED.value, EventType.CONSENT_REVOKED.value)


def checked_generation(session: Session, generation_id: str) -> Generation | None:
    """Generation ``generation_id``'s row, None when neither a row nor an event knows it. Raises
    ``RecordIntegrityError`` when the row disagrees with its events, is missing though its events say it was
    made, or exists though no event says so."""
    row = session.get(Generation, generation_id)
    reconciler = _replay(
        session,
        select(AuditEventRow).where(
            AuditEventRow.generation_id == generation_id, AuditEventRow.event_type.in_(_GENERATION_EVENTS)
        ),
    )
    reconciler.check(GENERATIONS, generation_id, row_values(row) if row is not None else None)
    return row


def unfinished_generation_ids(session: Session, requested_before: datetime) -> list[str]:
    """Generations that may be "requested" and older than ``requested_before``: those the log says are (a
    "requested" event before then and no final event) together with those whose rows say so, so that a row edited
    to hide a stuck generation or to expose a live one is among them, and its check reports it."""
    finished = aliased(AuditEventRow)
    from_log = select(AuditEventRow.generation_id).where(
        AuditEventRow.event_type == EventType.GENERATION_REQUESTED.value,
        AuditEventRow.occurred_at < requested_before,
        ~exists().where(
            finished.generation_id == AuditEventRow.generation_id, finished.event_type.in_(GENERATION_FINAL_EVENTS)
        ),
    )
    from_rows = select(Generation.id).where(Generation.status == "requested", Generation.created_at < requested_before)
    found = {str(g) for g in session.scalars(from_log) if g is not None}
    found.update(session.scalars(from_rows))
    return sorted(found)


def check_consents(session: Session, rows: Iterable[Consent]) -> None:
    """Raise ``RecordIntegrityError`` unless every consent row agrees with the consent events of its subject.

    For the gate: a consent row inserted, re-pointed at another subject or tenant, extended or un-revoked behind
    the ledger's back must not be acted on. One query for all the rows' subjects."""
    chosen = list(rows)
    if not chosen:
        return
    subjects = sorted({row.subject_id for row in chosen})
    reconciler = _replay(
        session,
        select(AuditEventRow).where(
            AuditEventRow.subject_id.in_(subjects), AuditEventRow.event_type.in_(_CONSENT_EVENTS)
        ),
    )
    for row in chosen:
        reconciler.check(CONSENTS, row.id, row_values(row))


def check_subjects(session: Session, rows: Sequence[Subject]) -> None:
    """Raise ``RecordIntegrityError`` unless every subject row, with its face references (photo hashes and model;
    not the embeddings, which no event records), agrees with its "subject.registered" event."""
    if not rows:
        return
    ids = sorted({row.id for row in rows})
    reconciler = _replay(
        session,
        select(AuditEventRow).where(
            AuditEventRow.subject_id.in_(ids), AuditEventRow.event_type == EventType.SUBJECT_REGISTERED.value
        ),
    )
    references: dict[str, list[tuple[str, str]]] = {}
    for subject_id, photo_sha256, model in session.execute(
        select(FaceReference.subject_id, FaceReference.photo_sha256, FaceReference.model).where(
            FaceReference.subject_id.in_(ids)
        )
    ):
        references.setdefault(subject_id, []).append((photo_sha256, model))
    for row in rows:
        reconciler.check(SUBJECTS, row.id, row_values(row, references=references.get(row.id, [])))


def _replay(session: Session, events: Select[AuditEventRow]) -> Reconciler:
    """A reconciler fed the events ``events`` (a select of ``AuditEventRow``) selects, in log order, each checked
    against itself first."""
    reconciler = Reconciler()
    for event in session.scalars(events.order_by(AuditEventRow.seq)):
        reconciler.observe(check_event_row(event))
    return reconciler
