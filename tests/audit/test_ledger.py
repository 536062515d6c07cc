"""The ledger: records written together with the events that describe them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from audit.api_keys import NewApiKey, RateLimiter, SecretHasher
from audit.checkpoint import LogSigningKey
from audit.errors import (
    AuthenticationError,
    RateLimitedError,
    RecordConflictError,
    RecordNotFoundError,
)
from audit.events import AuditEvent
from audit.ledger import SYSTEM_ACTOR, Ledger
from audit.models import ApiKey, Base, Generation
from audit.store import Store
from tests.audit.conftest import ORIGIN

EVIDENCE = hashlib.sha256(b"signed consent statement").hexdigest()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _events(ledger: Ledger, type_: str) -> list[AuditEvent]:
    return ledger.query(type=type_, limit=1000).events


def _last(ledger: Ledger) -> AuditEvent:
    return ledger.log.get(ledger.log.size() - 1)


def _dump(store: Store) -> str:
    """Every value in every table, as text: what a stolen database would hold."""
    parts: list[str] = []
    with store.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    parts.append(value.hex() if isinstance(value, bytes) else str(value))
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
    return "\n".join(parts)


# -- tenants -------------------------------------------------------------------------------------------------


def test_tenants(ledger: Ledger) -> None:
    created = ledger.create_tenant("acme", "Acme Corp", actor="op")
    assert (created.id, created.name) == ("acme", "Acme Corp")
    assert created.created_at.tzinfo is not None
    assert ledger.tenant("acme") == created
    assert ledger.create_tenant("globex").name == "globex"
    event = _last(ledger)
    assert (event.type, event.tenant_id, event.actor) == ("tenant.created", "globex", SYSTEM_ACTOR)
    assert event.data == {"name": "globex"}
    with pytest.raises(RecordConflictError):
        ledger.create_tenant("acme")
    with pytest.raises(RecordNotFoundError):
        ledger.tenant("initech")
    for bad in ("", "has space", "x" * 65, "semi;colon"):
        with pytest.raises(ValueError):
            ledger.create_tenant(bad)
    assert [e.tenant_id for e in _events(ledger, "tenant.created")] == ["acme", "globex"]


# -- API keys ------------------------------------------------------------------------------------------------


@pytest.fixture
def key(ledger: Ledger) -> NewApiKey:
    ledger.create_tenant("acme")
    return ledger.create_key("acme", scopes="animate, verify", name="ci", actor="op")


def _secret_part(key: NewApiKey) -> str:
    return key.secret.split("_", 2)[2]


def test_a_new_key_is_shown_once_and_never_stored(ledger: Ledger, store: Store, key: NewApiKey) -> None:
    assert key.secret.startswith(f"xp_{key.info.id}_")
    assert len(_secret_part(key)) == 43
    assert key.secret not in repr(key)
    assert (key.info.tenant_id, key.info.name, key.info.scopes) == ("acme", "ci", ("animate", "verify"))
    assert key.info.rate_limit_per_minute > 0
    event = _last(ledger)
    assert (event.type, event.tenant_id, event.actor) == ("key.created", "acme", "op")
    assert event.data["key_id"] == key.info.id and event.data["scopes"] == ["animate", "verify"]

    dump = _dump(store)
    assert key.info.id in dump
    assert _secret_part(key) not in dump
    with store.read() as session:
        stored = session.get(ApiKey, key.info.id)
        assert stored is not None and stored.secret_hash.startswith("$argon2id$")
    assert ledger.keys("acme") == [key.info]
    assert ledger.keys("globex") == []

    with pytest.raises(ValueError, match="scope"):
        ledger.create_key("acme", scopes="")
    with pytest.raises(ValueError, match="past"):
        ledger.create_key("acme", scopes="animate", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(RecordNotFoundError):
        ledger.create_key("globex", scopes="animate")


def test_authenticate(ledger: Ledger, key: NewApiKey) -> None:
    assert ledger.authenticate(key.secret) == key.info
    assert ledger.authenticate(f"  {key.secret}\n") == key.info
    assert _events(ledger, "auth.failed") == []


def _refused(ledger: Ledger, api_key: str | None, match: str) -> AuditEvent:
    before = ledger.log.size()
    with pytest.raises(AuthenticationError, match=match):
        ledger.authenticate(api_key)
    assert ledger.log.size() == before + 1
    event = _last(ledger)
    assert (event.type, event.decision) == ("auth.failed", "deny")
    return event


def test_every_refused_key_is_logged_without_its_secret(ledger: Ledger, store: Store, key: NewApiKey) -> None:
    other_secret = "A" * 43
    cases: list[tuple[str | None, str, str | None, str | None]] = [
        # (presented key, error, logged actor, logged tenant)
        (f"xp_{key.info.id}_{other_secret}", "not valid", key.info.id, "acme"),  # wrong secret
        (f"xp_{'0' * 12}_{_secret_part(key)}", "not valid", "0" * 12, None),  # unknown id, a real secret
        (f"xp_{key.info.id}_{_secret_part(key)[:-1]}", "malformed", None, None),  # truncated
        (_secret_part(key), "malformed", None, None),  # the secret alone
        ("", "no API key", None, None),
        (None, "no API key", None, None),
    ]
    for presented, match, actor, tenant in cases:
        event = _refused(ledger, presented, match)
        assert (event.actor, event.tenant_id) == (actor, tenant), presented
        logged = event.model_dump_json()
        assert _secret_part(key) not in logged and other_secret not in logged
        assert _secret_part(key)[:-1] not in logged
    assert _secret_part(key) not in _dump(store)
    assert other_secret not in _dump(store)
    assert ledger.authenticate(key.secret) == key.info  # failures do not lock the real key out


def test_revocation_takes_effect_at_once(
    ledger: Ledger, store: Store, key: NewApiKey, signing_key: LogSigningKey, cheap_hasher: SecretHasher
) -> None:
    # Another process's ledger over the same database, already past its first successful check.
    elsewhere = Ledger(store, origin=ORIGIN, signing_key=signing_key, checkpoint_every=8, hasher=cheap_hasher)
    assert elsewhere.authenticate(key.secret) == key.info

    revoked = ledger.revoke_key(key.info.id, actor="op", reason="leaked")
    assert revoked.revoked_at is not None
    assert revoked.status(datetime.now(UTC)) == "revoked"
    event = _last(ledger)
    assert (event.type, event.tenant_id, event.actor, event.data) == (
        "key.revoked",
        "acme",
        "op",
        {"key_id": key.info.id, "reason": "leaked"},
    )
    for reader in (ledger, elsewhere):
        event = _refused(reader, key.secret, "revoked")
        assert (event.actor, event.tenant_id) == (key.info.id, "acme")
        assert _secret_part(key) not in event.model_dump_json()
    with pytest.raises(RecordConflictError):
        ledger.revoke_key(key.info.id)
    with pytest.raises(RecordNotFoundError):
        ledger.revoke_key("0" * 12)


def test_an_expired_key_is_refused(ledger: Ledger, store: Store, key: NewApiKey) -> None:
    soon = ledger.create_key("acme", scopes="animate", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert ledger.authenticate(soon.secret).expires_at is not None
    with store.write() as session:  # an hour passes (api_keys is an ordinary table)
        row = session.get(ApiKey, soon.info.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    event = _refused(ledger, soon.secret, "expired")
    assert (event.actor, event.tenant_id) == (soon.info.id, "acme")
    assert _secret_part(soon) not in event.model_dump_json()
    assert ledger.authenticate(key.secret) == key.info


def test_rate_limit(ledger: Ledger, store: Store, signing_key: LogSigningKey, cheap_hasher: SecretHasher) -> None:
    clock = FakeClock()
    limited = Ledger(
        store,
        origin=ORIGIN,
        signing_key=signing_key,
        hasher=cheap_hasher,
        rate_limiter=RateLimiter(clock=clock),
    )
    limited.create_tenant("acme")
    three = limited.create_key("acme", scopes="animate", rate_limit_per_minute=3)
    other = limited.create_key("acme", scopes="animate", rate_limit_per_minute=3)
    for _ in range(3):
        limited.authenticate(three.secret)
    with pytest.raises(RateLimitedError) as caught:
        limited.authenticate(three.secret)
    assert caught.value.retry_after == pytest.approx(20.0)  # one token a 20 s at 3 a minute
    assert caught.value.code == "rate_limited"
    assert limited.authenticate(other.secret).id == other.info.id  # buckets are per key

    clock.now += caught.value.retry_after / 2
    with pytest.raises(RateLimitedError) as again:
        limited.authenticate(three.secret)
    assert 0 < again.value.retry_after <= 10.0 + 1e-9
    clock.now += again.value.retry_after
    limited.authenticate(three.secret)  # one token refilled
    with pytest.raises(RateLimitedError):
        limited.authenticate(three.secret)
    clock.now += 3600  # the bucket refills to its limit, not beyond
    for _ in range(3):
        limited.authenticate(three.secret)
    with pytest.raises(RateLimitedError):
        limited.authenticate(three.secret)


# -- subjects and consent ------------------------------------------------------------------------------------


def _references(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, str]]:
    refs = []
    for i in range(count):
        vector = rng.standard_normal(128).astype(np.float32)
        vector /= np.linalg.norm(vector)
        refs.append((vector, hashlib.sha256(f"photo {i}".encode()).hexdigest()))
    return refs


def test_subjects_and_their_references_round_trip_exactly(ledger: Ledger) -> None:
    ledger.create_tenant("acme")
    rng = np.random.default_rng(7)
    refs = _references(rng, 3)
    # Values a decimal round trip would not keep: subnormal, extremes, negative zero.
    refs[0][0][:4] = np.array([1e-45, -3.4028235e38, -0.0, np.float32(1) / 3], dtype=np.float32)
    subject = ledger.register_subject("acme", "Ada", refs, model="sface-2021dec", actor="op")
    assert subject.id.startswith("sub_")
    assert (subject.tenant_id, subject.name, subject.protected, subject.references) == ("acme", "Ada", False, 3)
    assert ledger.subject(subject.id) == subject
    stored = ledger.face_references(subject.id)
    assert len(stored) == 3
    for (vector, _), back in zip(refs, stored, strict=True):
        assert back.dtype == np.float32
        assert back.tobytes() == vector.tobytes()  # bit for bit, -0.0 included

    # float64 input is stored as float32.
    wide = rng.standard_normal(128)
    other = ledger.register_subject("acme", "Bob", [(wide, "0" * 64)], model="sface-2021dec")
    assert ledger.face_references(other.id)[0].tobytes() == wide.astype(np.float32).tobytes()

    event = ledger.query(subject=subject.id).events[0]
    assert (event.type, event.tenant_id, event.subject_id) == ("subject.registered", "acme", subject.id)
    assert event.actor == "op"
    assert event.data["photos_sha256"] == [sha for _, sha in refs]
    assert event.data["model"] == "sface-2021dec"
    assert [s.id for s in ledger.subjects("acme")] == [subject.id, other.id]
    assert [s.references for s in ledger.subjects("acme")] == [3, 1]

    with pytest.raises(ValueError, match="reference"):
        ledger.register_subject("acme", "Nobody", [], model="sface-2021dec")
    with pytest.raises(RecordNotFoundError):
        ledger.register_subject("globex", "Eve", refs, model="sface-2021dec")
    with pytest.raises(RecordNotFoundError):
        ledger.subject("sub_missing")
    with pytest.raises(RecordNotFoundError):
        ledger.face_references("sub_missing")


def test_protected_references(ledger: Ledger) -> None:
    rng = np.random.default_rng(11)
    ledger.create_tenant("acme")
    ledger.create_tenant("globex")
    vip = ledger.register_subject("acme", "VIP", _references(rng, 2), model="m", protected=True)
    ordinary = ledger.register_subject("acme", "Ordinary", _references(rng, 1), model="m")
    theirs = ledger.register_subject("globex", "Their VIP", _references(rng, 1), model="m", protected=True)

    found = ledger.protected_references("acme")
    assert set(found) == {vip.id}
    assert [v.tobytes() for v in found[vip.id]] == [v.tobytes() for v in ledger.face_references(vip.id)]
    assert set(ledger.protected_references("globex")) == {theirs.id}
    assert ledger.protected_references("initech") == {}
    assert [s.id for s in ledger.subjects("acme", protected=True)] == [vip.id]
    assert [s.id for s in ledger.subjects("acme", protected=False)] == [ordinary.id]
    assert ledger.query(subject=vip.id).events[0].data["protected"] is True


def test_consents(ledger: Ledger) -> None:
    ledger.create_tenant("acme")
    ledger.create_tenant("studio")
    subject = ledger.register_subject("acme", "Ada", _references(np.random.default_rng(3), 1), model="m")
    until = datetime.now(UTC) + timedelta(days=30)
    granted = ledger.grant_consent(
        subject.id,
        "studio",
        evidence_sha256=EVIDENCE,
        scopes="animate",
        purposes=["advertising", "film"],
        valid_until=until,
        actor="op",
    )
    assert granted.id.startswith("con_")
    assert (granted.subject_id, granted.grantee_tenant_id, granted.scopes, granted.purposes) == (
        subject.id,
        "studio",
        ("animate",),
        ("advertising", "film"),
    )
    assert granted.valid_until == until and granted.revoked_at is None
    assert ledger.consent(granted.id) == granted
    event = _last(ledger)
    # The event belongs to the subject's tenant; the grantee is in its data.
    assert (event.type, event.tenant_id, event.subject_id) == ("consent.granted", "acme", subject.id)
    assert event.actor == "op"
    assert (event.data["consent_id"], event.data["grantee"], event.data["evidence_sha256"]) == (
        granted.id,
        "studio",
        EVIDENCE,
    )
    assert ledger.consents(subject_id=subject.id) == [granted]
    assert ledger.consents(grantee_tenant_id="acme") == []

    revoked = ledger.revoke_consent(granted.id, actor="ada", reason="changed my mind")
    assert revoked.revoked_at is not None
    assert (revoked.revoked_by, revoked.revocation_reason) == ("ada", "changed my mind")
    assert ledger.consent(granted.id) == revoked
    event = _last(ledger)
    assert (event.type, event.tenant_id, event.subject_id) == ("consent.revoked", "acme", subject.id)
    assert event.actor == "ada"
    assert event.data == {"consent_id": granted.id, "grantee": "studio", "reason": "changed my mind"}
    size = ledger.log.size()
    with pytest.raises(RecordConflictError, match="already revoked"):
        ledger.revoke_consent(granted.id)
    assert ledger.log.size() == size  # a refused change writes no event
    with pytest.raises(RecordNotFoundError):
        ledger.revoke_consent("con_missing")


@pytest.mark.parametrize(
    ("evidence", "kwargs"),
    [
        (EVIDENCE[:-1], {}),  # 63 digits
        (EVIDENCE + "0", {}),
        ("z" * 64, {}),  # not hex
        ("", {}),
        (EVIDENCE, {"scopes": ""}),  # no scope
        (EVIDENCE, {"valid_from": datetime(2030, 1, 2, tzinfo=UTC), "valid_until": datetime(2030, 1, 1, tzinfo=UTC)}),
    ],
)
def test_invalid_consents_are_refused_before_anything_is_written(
    ledger: Ledger, evidence: str, kwargs: dict[str, Any]
) -> None:
    ledger.create_tenant("acme")
    subject = ledger.register_subject("acme", "Ada", _references(np.random.default_rng(3), 1), model="m")
    size = ledger.log.size()
    with pytest.raises(ValueError):
        ledger.grant_consent(subject.id, "acme", evidence_sha256=evidence, **kwargs)
    assert ledger.log.size() == size
    assert ledger.consents() == []


def test_consent_for_unknown_records(ledger: Ledger) -> None:
    ledger.create_tenant("acme")
    subject = ledger.register_subject("acme", "Ada", _references(np.random.default_rng(3), 1), model="m")
    with pytest.raises(RecordNotFoundError):
        ledger.grant_consent("sub_missing", "acme", evidence_sha256=EVIDENCE)
    with pytest.raises(RecordNotFoundError):
        ledger.grant_consent(subject.id, "initech", evidence_sha256=EVIDENCE)


# -- generations ---------------------------------------------------------------------------------------------


def _request(ledger: Ledger, generation_id: str, subject_id: str | None = "sub_x") -> AuditEvent:
    return ledger.record_requested(
        generation_id,
        tenant_id="acme",
        key_id="k" * 12,
        subject_id=subject_id,
        consent_id="con_1",
        decision={"decision_id": "dec_1", "allowed": True},
        source_sha256="a" * 64,
        driving="template:showcase",
        request={"purpose": "film"},
    )


def test_a_generation_requested_then_completed(ledger: Ledger) -> None:
    ledger.create_tenant("acme")
    requested = _request(ledger, "gen_ok")
    assert (requested.type, requested.decision) == ("generation.requested", "allow")
    assert (requested.tenant_id, requested.subject_id, requested.generation_id, requested.actor) == (
        "acme",
        "sub_x",
        "gen_ok",
        "k" * 12,
    )
    assert requested.data["decision"] == {"decision_id": "dec_1", "allowed": True}
    record = ledger.generation("gen_ok")
    assert (record.status, record.decision_id, record.finished_at) == ("requested", "dec_1", None)

    completed = ledger.record_completed("gen_ok", output_sha256="b" * 64, manifest_sha256="c" * 64, data={"frames": 9})
    assert (completed.type, completed.tenant_id, completed.subject_id, completed.generation_id, completed.actor) == (
        "generation.completed",
        "acme",
        "sub_x",
        "gen_ok",
        "k" * 12,
    )
    assert completed.data == {
        "output_sha256": "b" * 64,
        "manifest_sha256": "c" * 64,
        "watermark_id": "gen_ok",
        "frames": 9,
    }
    record = ledger.generation("gen_ok")
    assert (record.status, record.output_sha256, record.watermark_id) == ("completed", "b" * 64, "gen_ok")
    assert record.finished_at is not None and record.finished_at >= record.created_at

    size = ledger.log.size()
    with pytest.raises(RecordConflictError, match="already completed"):
        ledger.record_completed("gen_ok", output_sha256="d" * 64, manifest_sha256=None, data={})
    with pytest.raises(RecordConflictError, match="already completed"):
        ledger.record_failed("gen_ok", error_code="engine", message="late")
    with pytest.raises(RecordConflictError, match="already exists"):
        _request(ledger, "gen_ok")
    assert ledger.log.size() == size
    assert ledger.generation("gen_ok").output_sha256 == "b" * 64
    assert [e.type for e in ledger.events_for_generation("gen_ok")] == ["generation.requested", "generation.completed"]


def test_a_generation_requested_then_failed(ledger: Ledger) -> None:
    ledger.create_tenant("acme")
    _request(ledger, "gen_bad", subject_id=None)
    failed = ledger.record_failed("gen_bad", error_code="engine_error", message="no face in frame 3")
    assert (failed.type, failed.tenant_id, failed.subject_id, failed.generation_id, failed.decision) == (
        "generation.failed",
        "acme",
        None,
        "gen_bad",
        None,
    )
    assert failed.data == {"error": "engine_error", "message": "no face in frame 3"}
    record = ledger.generation("gen_bad")
    assert (record.status, record.error_code, record.output_sha256) == ("failed", "engine_error", None)
    with pytest.raises(RecordConflictError, match="already failed"):
        ledger.record_completed("gen_bad", output_sha256="b" * 64, manifest_sha256=None, data={})
    with pytest.raises(RecordConflictError, match="already failed"):
        ledger.record_failed("gen_bad", error_code="again", message="")


def test_unknown_generations_and_tenants(ledger: Ledger, store: Store) -> None:
    with pytest.raises(RecordNotFoundError):
        ledger.record_completed("gen_missing", output_sha256="b" * 64, manifest_sha256=None, data={})
    with pytest.raises(RecordNotFoundError):
        ledger.record_failed("gen_missing", error_code="x", message="")
    with pytest.raises(RecordNotFoundError):
        ledger.generation("gen_missing")
    assert ledger.find_generation("gen_missing") is None
    with pytest.raises(RecordNotFoundError, match="tenant"):
        _request(ledger, "gen_orphan")  # a generation needs its tenant; no database error leaks out
    with store.read() as session:
        assert session.get(Generation, "gen_orphan") is None
    assert ledger.log.size() == 0


def test_denied_requests_and_verifications(ledger: Ledger) -> None:
    denied = ledger.record_denied(
        tenant_id="acme",
        key_id="k" * 12,
        action="animate",
        subject_id="sub_x",
        decision={"allowed": False, "reasons": ["no_consent"]},
        request={"purpose": "film"},
    )
    assert (denied.type, denied.decision, denied.tenant_id, denied.subject_id, denied.actor) == (
        "generation.denied",
        "deny",
        "acme",
        "sub_x",
        "k" * 12,
    )
    other = ledger.record_denied(
        tenant_id="acme", key_id="k" * 12, action="audit_read", subject_id=None, decision={}, request={}
    )
    assert (other.type, other.decision, other.data["action"]) == ("access.denied", "deny", "audit_read")
    verified = ledger.record_verification(tenant_id=None, actor=None, generation_id="gen_1", data={"found": True})
    assert (verified.type, verified.decision, verified.generation_id) == ("verification.performed", "allow", "gen_1")
    assert [e.seq for e in ledger.query(decision="deny").events] == [denied.seq, other.seq]


def test_the_log_of_all_this_verifies(ledger: Ledger, key: NewApiKey, signing_key: LogSigningKey) -> None:
    """Records and events were written in the same transactions; the resulting log is a valid chain."""
    ledger.authenticate(key.secret)
    with pytest.raises(AuthenticationError):
        ledger.authenticate("xp_nonsense")
    subject = ledger.register_subject("acme", "Ada", _references(np.random.default_rng(1), 2), model="m")
    consent = ledger.grant_consent(subject.id, "acme", evidence_sha256=EVIDENCE)
    _request(ledger, "gen_1", subject_id=subject.id)
    ledger.record_completed("gen_1", output_sha256="b" * 64, manifest_sha256=None, data={})
    ledger.revoke_consent(consent.id)
    ledger.revoke_key(key.info.id)
    types = [e.type for e in ledger.query(limit=1000).events]
    assert types == [
        "tenant.created",
        "key.created",
        "auth.failed",
        "subject.registered",
        "consent.granted",
        "generation.requested",
        "generation.completed",
        "consent.revoked",
        "key.revoked",
    ]
    assert ledger.log.verify(signing_key.public_key).tree_size == len(types)
