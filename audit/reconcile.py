"""Records against the log: each row of tenants, api_keys, subjects (with their face references), consents and
generations must say what the events that describe it say.

The ledger writes a row and its event in one transaction, so the two agree unless someone changed the database
behind the ledger's back. The log is tamper-evident (hashes, links, signed checkpoints); the record tables are
not, and the gate and the readers trust them. ``Reconciler`` replays the record events, in log order, into the
state each row must be in, and compares it with the row, column by column.

What the log vouches for, per column:

* everything the events carry (ids, tenants, names, scopes, validity, hashes, statuses, error codes), exactly;
* a generation's ``created_at`` and ``finished_at``: exactly its "requested" and final events' times (the
  ledger stamps the row with them);
* the other tables' moments (``created_at``, ``revoked_at``): the row took them in the same transaction, just
  before its event, so the row's moment may not be later than the event's. A moment moved later (a revocation
  put off into the future, which would revive the key or consent) is caught; one moved earlier is not;
* not an API key's ``secret_hash`` (no event records it) nor a face reference's embedding (the event records the
  SHA-256 of the photo it came from, and the model, not the vector).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from audit.errors import RecordIntegrityError
from audit.events import EventType
from audit.models import ApiKey, Consent, FaceReference, Generation, Subject, Tenant

TENANTS = "tenants"
API_KEYS = "api_keys"
SUBJECTS = "subjects"
CONSENTS = "consents"
GENERATIONS = "generations"
FACE_REFERENCES = "face_references"
"""Not a table of its own here: a subject's references are one field of the subject's record."""

_NOUN = {
    TENANTS: "tenant",
    API_KEYS: "API key",
    SUBJECTS: "subject",
    CONSENTS: "consent",
    GENERATIONS: "generation",
}
_MODELS: dict[str, Any] = {
    TENANTS: Tenant,
    API_KEYS: ApiKey,
    SUBJECTS: Subject,
    CONSENTS: Consent,
    GENERATIONS: Generation,
}
RECORD_EVENTS = frozenset(
    {
        EventType.TENANT_CREATED,
        EventType.KEY_CREATED,
        EventType.KEY_REVOKED,
        EventType.SUBJECT_REGISTERED,
        EventType.CONSENT_GRANTED,
        EventType.CONSENT_REVOKED,
        EventType.GENERATION_REQUESTED,
        EventType.GENERATION_COMPLETED,
        EventType.GENERATION_FAILED,
    }
)
GENERATION_FINAL_EVENTS = (EventType.GENERATION_COMPLETED.value, EventType.GENERATION_FAILED.value)


@dataclass(frozen=True)
class _Claim:
    """What event ``seq`` says one column holds. ``not_after``: the value is that event's time, and the row's
    moment, taken just before the event in the same transaction, may be earlier but never later."""

    value: Any
    seq: int
    not_after: bool = False

    def admits(self, actual: Any) -> bool:
        if not self.not_after:
            return bool(actual == self.value)
        return isinstance(actual, datetime) and actual <= self.value


@dataclass
class _Expected:
    seq: int
    """The event that created the record."""
    claims: dict[str, _Claim] = field(default_factory=dict)


class Reconciler:
    """Feed it event bodies in log order (``observe``); then ``check`` rows against the state they describe."""

    def __init__(self) -> None:
        self._expected: dict[str, dict[str, _Expected]] = {table: {} for table in _NOUN}

    def observe(self, body: Mapping[str, Any]) -> None:
        """One event, as its verified body. Events that describe no record are ignored."""
        kind = body.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            data = body.get("data")
            handler(self, body, data if isinstance(data, dict) else {})

    def expects(self, table: str, record_id: str) -> bool:
        return record_id in self._expected[table]

    def check(self, table: str, record_id: str, row: Mapping[str, Any] | None) -> None:
        """Raise ``RecordIntegrityError`` unless ``row`` (its columns by name; None when there is no row) is what
        the log says record ``record_id`` of ``table`` is."""
        expected = self._expected[table].get(record_id)
        noun = _NOUN[table]
        if expected is None:
            if row is None:
                return
            raise RecordIntegrityError(
                f"{noun} {record_id}: its row is described by no event in the audit log (inserted behind the "
                "ledger's back?)",
                table=table,
                record_id=record_id,
                field=None,
            )
        if row is None:
            raise RecordIntegrityError(
                f"{noun} {record_id}: the audit log records it (event {expected.seq}) but its row is gone "
                "(deleted behind the ledger's back?)",
                table=table,
                record_id=record_id,
                field=None,
                seq=expected.seq,
            )
        for name, claim in expected.claims.items():
            if claim.admits(row[name]):
                continue
            # Neither value goes into the message: it may reach a caller of another tenant (`xp verify` of their
            # clip), and the operator who must look into it can read both in the database and the log.
            said = "is later than the time of" if claim.not_after else "disagrees with"
            raise RecordIntegrityError(
                f"{noun} {record_id}: its row's {name} {said} audit event {claim.seq}; the row was changed behind "
                "the ledger's back",
                table=table,
                record_id=record_id,
                field=name,
                seq=claim.seq,
            )

    def unseen(self, table: str, seen: set[str]) -> str | None:
        """A record of ``table`` the log describes that is not in ``seen`` (the first by id), if any."""
        missing = sorted(set(self._expected[table]) - seen)
        return missing[0] if missing else None

    # -- what each event says ----------------------------------------------------------------------------------

    def _create(
        self, table: str, record_id: Any, body: Mapping[str, Any], claims: dict[str, Any], *, taken_before: str = ""
    ) -> None:
        """Record ``record_id`` as event ``body`` creates it; ``taken_before`` names the row's moment column that
        was taken just before this event (no later than its time)."""
        seq = int(body["seq"])
        if not isinstance(record_id, str) or record_id in self._expected[table]:
            raise RecordIntegrityError(
                f"event {seq} creates {_NOUN[table]} {record_id!r}, which the audit log already holds or cannot "
                "name: the log contradicts itself",
                table=table,
                record_id=str(record_id),
                field=None,
                seq=seq,
            )
        expected = _Expected(seq, {name: _Claim(v, seq) for name, v in claims.items()})
        if taken_before:
            expected.claims[taken_before] = _Claim(_time(body), seq, not_after=True)
        self._expected[table][record_id] = expected

    def _update(self, table: str, record_id: Any, body: Mapping[str, Any], claims: dict[str, _Claim]) -> None:
        seq = int(body["seq"])
        expected = self._expected[table].get(record_id) if isinstance(record_id, str) else None
        if expected is None:
            raise RecordIntegrityError(
                f"event {seq} ({body.get('type')}) names {_NOUN[table]} {record_id!r}, which no earlier event "
                "created: the log contradicts itself",
                table=table,
                record_id=str(record_id),
                field=None,
                seq=seq,
            )
        expected.claims.update(claims)

    def _tenant_created(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        self._create(TENANTS, body.get("tenant"), body, {"name": data.get("name")}, taken_before="created_at")

    def _key_created(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        self._create(
            API_KEYS,
            data.get("key_id"),
            body,
            {
                "tenant_id": body.get("tenant"),
                "name": data.get("name"),
                "scopes": _words(data.get("scopes")),
                "rate_limit_per_minute": data.get("rate_limit_per_minute"),
                "created_by": body.get("actor"),
                "expires_at": _moment(data.get("expires_at")),
                "revoked_at": None,
            },
            taken_before="created_at",
        )

    def _key_revoked(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        seq = int(body["seq"])
        self._update(API_KEYS, data.get("key_id"), body, {"revoked_at": _Claim(_time(body), seq, not_after=True)})

    def _subject_registered(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        photos = data.get("photos_sha256")
        model = data.get("model")
        references = sorted((str(p), model) for p in photos) if isinstance(photos, list) else None
        self._create(
            SUBJECTS,
            body.get("subject"),
            body,
            {
                "tenant_id": body.get("tenant"),
                "name": data.get("name"),
                "protected": data.get("protected"),
                "created_by": body.get("actor"),
                FACE_REFERENCES: references,
            },
            taken_before="created_at",
        )

    def _consent_granted(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        self._create(
            CONSENTS,
            data.get("consent_id"),
            body,
            {
                "subject_id": body.get("subject"),
                "grantee_tenant_id": data.get("grantee"),
                "scopes": _words(data.get("scopes")),
                "purposes": _words(data.get("purposes")),
                "valid_from": _moment(data.get("valid_from")),
                "valid_until": _moment(data.get("valid_until")),
                "evidence_sha256": data.get("evidence_sha256"),
                "evidence_kind": data.get("evidence_kind"),
                # Events from before consents had kinds were all the operator's word.
                "kind": data.get("kind", "attested"),
                "recorded_by": body.get("actor"),
                "revoked_at": None,
                "revoked_by": None,
                "revocation_reason": None,
            },
            taken_before="created_at",
        )

    def _consent_revoked(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        seq = int(body["seq"])
        reason = data.get("reason")
        self._update(
            CONSENTS,
            data.get("consent_id"),
            body,
            {
                "revoked_at": _Claim(_time(body), seq, not_after=True),
                "revoked_by": _Claim(body.get("actor"), seq),
                "revocation_reason": _Claim(reason or None, seq),
            },
        )

    def _generation_requested(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        decision = data.get("decision")
        self._create(
            GENERATIONS,
            body.get("generation"),
            body,
            {
                "tenant_id": body.get("tenant"),
                "key_id": body.get("actor"),
                "subject_id": body.get("subject"),
                "consent_id": data.get("consent_id"),
                "decision_id": str(decision.get("decision_id", "")) if isinstance(decision, dict) else None,
                "status": "requested",
                "source_sha256": data.get("source_sha256"),
                "driving": data.get("driving"),
                "output_sha256": None,
                "manifest_sha256": None,
                "watermark_id": None,
                "error_code": None,
                "created_at": _time(body),
                "finished_at": None,
            },
        )

    def _generation_finished(self, body: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        seq = int(body["seq"])
        generation = body.get("generation")
        expected = self._expected[GENERATIONS].get(generation) if isinstance(generation, str) else None
        if expected is not None and expected.claims["status"].value != "requested":
            raise RecordIntegrityError(
                f"event {seq} ends generation {generation}, which event {expected.claims['status'].seq} already "
                "ended: the log contradicts itself",
                table=GENERATIONS,
                record_id=str(generation),
                field="status",
                seq=seq,
            )
        completed = body.get("type") == EventType.GENERATION_COMPLETED.value
        outcome = {
            "status": "completed" if completed else "failed",
            "output_sha256": data.get("output_sha256") if completed else None,
            "manifest_sha256": data.get("manifest_sha256") if completed else None,
            "watermark_id": data.get("watermark_id") if completed else None,
            "error_code": None if completed else data.get("error"),
            "finished_at": _time(body),
        }
        self._update(GENERATIONS, generation, body, {name: _Claim(v, seq) for name, v in outcome.items()})


_HANDLERS = {
    EventType.TENANT_CREATED.value: Reconciler._tenant_created,
    EventType.KEY_CREATED.value: Reconciler._key_created,
    EventType.KEY_REVOKED.value: Reconciler._key_revoked,
    EventType.SUBJECT_REGISTERED.value: Reconciler._subject_registered,
    EventType.CONSENT_GRANTED.value: Reconciler._consent_granted,
    EventType.CONSENT_REVOKED.value: Reconciler._consent_revoked,
    EventType.GENERATION_REQUESTED.value: Reconciler._generation_requested,
    EventType.GENERATION_COMPLETED.value: Reconciler._generation_finished,
    EventType.GENERATION_FAILED.value: Reconciler._generation_finished,
}


def hold_snapshot(session: Session) -> None:
    """Make ``session``'s transaction read one snapshot of the database: rows and their events as of the same
    moment. Call it first, before any other statement. SQLite's read transactions already do (WAL); PostgreSQL's
    default, READ COMMITTED, would let a generation that finishes between two statements look tampered with."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


def reconcile_all(session: Session, reconciler: Reconciler) -> int:
    """Check every row of every record table against ``reconciler`` (fed the whole log); the number of rows
    checked (face references counted one by one). Raises ``RecordIntegrityError`` at the first disagreement."""
    references: dict[str, list[tuple[str, str]]] = {}
    for subject_id, photo_sha256, model in session.execute(
        select(FaceReference.subject_id, FaceReference.photo_sha256, FaceReference.model)
    ):
        references.setdefault(subject_id, []).append((photo_sha256, model))
    checked = sum(len(group) for group in references.values())
    for table, model in _MODELS.items():
        seen: set[str] = set()
        columns = model.__table__.columns
        for row in session.execute(select(*columns).order_by(columns["id"])):
            values = dict(row._mapping)
            record_id = str(values["id"])
            if table == SUBJECTS:
                values[FACE_REFERENCES] = sorted(references.pop(record_id, []))
            reconciler.check(table, record_id, values)
            seen.add(record_id)
        missing = reconciler.unseen(table, seen)
        if missing is not None:
            reconciler.check(table, missing, None)
        checked += len(seen)
    for orphan in sorted(references):
        # Unreachable while the foreign key holds; a database without it must not hide references this way.
        raise RecordIntegrityError(
            f"face references name subject {orphan}, which has no row",
            table=SUBJECTS,
            record_id=orphan,
            field=FACE_REFERENCES,
        )
    return checked


def row_values(row: Any, *, references: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
    """An ORM row's columns by name (and a subject's face references, as (photo SHA-256, model) pairs)."""
    values = {column.name: getattr(row, column.key) for column in row.__table__.columns}
    if references is not None:
        values[FACE_REFERENCES] = sorted(references)
    return values


def _words(value: Any) -> str | None:
    """A list as the row stores it: its items joined by single spaces."""
    return " ".join(str(v) for v in value) if isinstance(value, list) else None


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _time(body: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(body["time"]))
