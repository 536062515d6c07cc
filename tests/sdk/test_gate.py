"""The gate through the Client: every refusal raises the right error and leaves its audit event; an allowed
generation leaves "requested" and "completed"; nothing is published without its "completed" event."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from audit import AuditEvent
from audit.models import ApiKey
from tests.conftest import write_shown_clip
from xp_sdk import (
    AccessDeniedError,
    AnimationResult,
    AuthenticationError,
    Client,
    ConsentRequiredError,
    FaceMismatchError,
    PermissionDeniedError,
    PolicyDeniedError,
    RateLimitedError,
    init_deployment,
)
from xp_sdk.engine.images import load_image
from xp_sdk.errors import InvalidInputError, NoFaceError, NotFoundError, UnreadableVideoError

SHORT_CLIP = "lp_d1_hist.mp4"  # 16 frames: the cheapest real generation


class World:
    """One initialized home: an admin, the astronaut (consented), a man with glasses (registered, no consent)."""

    def __init__(self, root: Path, faces: Path) -> None:
        self.root = root
        self.faces = faces
        init = init_deployment(root / "home", tenant="acme")
        self.home = init.home
        self.admin_key = init.api_key.secret
        self.admin = Client(self.admin_key, home=self.home)
        self.astronaut = faces / "source" / "skimage_astronaut.png"
        self.glasses = faces / "source" / "lp_d8.jpg"
        self.woman = faces / "source" / "lp_d30.jpg"
        self.clip = faces / "driving" / SHORT_CLIP
        self.eileen = self.admin.subjects.register("Eileen Collins", [self.astronaut]).id
        self.consent = self.admin.consents.grant(self.eileen, evidence=b"Eileen Collins consents (test)").id
        self.unconsented = self.admin.subjects.register("Man with glasses", [self.glasses]).id
        self.animator_key = self.admin.keys.create(scopes="animate verify", name="animator").secret

    def client(self, key: str | None = None, **kwargs: object) -> Client:
        return Client(key or self.animator_key, home=self.home, **kwargs)  # type: ignore[arg-type]

    def out(self, name: str) -> Path:
        folder = self.root / "out"
        folder.mkdir(exist_ok=True)
        return folder / name

    def events(self, **filters: Any) -> list[AuditEvent]:
        return self.admin.audit.query(limit=1000, **filters).events

    def last_event(self) -> AuditEvent:
        return self.events()[-1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("gate"), faces)
    yield made
    made.admin.close()


def _folder_is_empty_of(world: World, name: str) -> None:
    leftovers = [p.name for p in (world.root / "out").iterdir() if Path(name).stem in p.name]
    assert leftovers == [], f"refused or failed generation left files behind: {leftovers}"


def test_allowed_generation_leaves_requested_then_completed(world: World) -> None:
    out = world.out("allowed.mp4")
    with world.client() as client:
        result = client.animate(world.astronaut, subject=world.eileen, driving=world.clip, out=out)
    assert out.is_file()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result.output_sha256
    events = world.events(generation_id=result.generation_id)
    assert [e.type for e in events] == ["generation.requested", "generation.completed"]
    requested, completed = events
    assert requested.decision == "allow" and requested.subject_id == world.eileen
    decision = requested.data["decision"]
    assert "permit-animate" in decision["policy_ids"] and decision["consent"]["consent_id"] == world.consent
    assert decision["face"]["matched"] is True and decision["face"]["similarity"] >= decision["face"]["threshold"]
    assert completed.data["output_sha256"] == result.output_sha256
    assert completed.data["watermark_id"] == result.watermark_id == result.generation_id
    record = world.admin.deployment.ledger.generation(result.generation_id)
    assert record.status == "completed" and record.consent_id == world.consent


def _assert_refused(world: World, exc: pytest.ExceptionInfo[AccessDeniedError], code: str, out: Path) -> None:
    assert not out.exists()
    _folder_is_empty_of(world, out.name)
    event = world.last_event()
    assert event.type == "generation.denied" and event.decision == "deny"
    reasons = [r["code"] for r in event.data["decision"]["reasons"]]
    assert code in reasons
    assert event.data["decision"]["decision_id"] == exc.value.decision_id


def test_no_consent_is_refused(world: World) -> None:
    out = world.out("no-consent.mp4")
    with world.client() as client, pytest.raises(ConsentRequiredError) as exc:
        client.animate(world.glasses, subject=world.unconsented, driving=world.clip, out=out)
    assert "no consent" in str(exc.value)
    _assert_refused(world, exc, "consent_required", out)


def test_revoked_consent_is_refused(world: World) -> None:
    subject = world.admin.subjects.register("Eileen again", [world.astronaut]).id
    consent = world.admin.consents.grant(subject, evidence=b"consent, later withdrawn").id
    world.admin.consents.revoke(consent, reason="subject withdrew")
    out = world.out("revoked-consent.mp4")
    with world.client() as client, pytest.raises(ConsentRequiredError) as exc:
        client.animate(world.astronaut, subject=subject, driving=world.clip, out=out)
    assert "revoked" in str(exc.value)
    _assert_refused(world, exc, "consent_required", out)


def test_expired_consent_is_refused(world: World) -> None:
    subject = world.admin.subjects.register("Eileen, expired", [world.astronaut]).id
    now = datetime.now(UTC)
    world.admin.consents.grant(
        subject, evidence=b"consent for last week", valid_from=now - timedelta(days=8), expires=now - timedelta(days=1)
    )
    out = world.out("expired-consent.mp4")
    with world.client() as client, pytest.raises(ConsentRequiredError) as exc:
        client.animate(world.astronaut, subject=subject, driving=world.clip, out=out)
    assert "expired" in str(exc.value)
    _assert_refused(world, exc, "consent_required", out)


def test_consent_for_another_purpose_is_refused(world: World) -> None:
    subject = world.admin.subjects.register("Eileen, education only", [world.astronaut]).id
    world.admin.consents.grant(subject, evidence=b"education only", purposes=["education"])
    out = world.out("wrong-purpose.mp4")
    with world.client() as client, pytest.raises(ConsentRequiredError) as exc:
        client.animate(world.astronaut, subject=subject, driving=world.clip, out=out, purpose="advertising")
    _assert_refused(world, exc, "consent_required", out)


def test_another_persons_photo_is_refused(world: World) -> None:
    out = world.out("other-person.mp4")
    with world.client() as client, pytest.raises(FaceMismatchError) as exc:
        client.animate(world.woman, subject=world.eileen, driving=world.clip, out=out)
    assert "must match the consenting subject" in str(exc.value)
    _assert_refused(world, exc, "face_mismatch", out)
    denied = world.events(type="generation.denied")[-1].data
    # No similarity reaches the caller, in the refusal or in its own tenant's log (which an audit:read key of the
    # tenant reads): with it a caller could doctor a photo step by step until it passes.
    assert denied["request"]["facts"]["face"] == {"threshold": world_threshold(world), "matched": False}
    assert "similarity" not in str(denied) and "similarity" not in str(exc.value)
    assert not any(char.isdigit() for _, message, _ in exc.value.reasons for char in message)


def world_threshold(world: World) -> float:
    return world.admin.deployment.settings.face_match_threshold


def test_another_tenants_verification_is_not_in_the_owners_record(world: World) -> None:
    """A rival verifying acme's clip leaves its own event; acme's view of the generation shows acme's events only."""
    out = world.out("verified-by-rival.mp4")
    with world.client() as client:
        made = client.animate(world.astronaut, subject=world.eileen, template="blink", out=out)
    rival = world.admin.keys.create(tenant="rival", scopes="verify", name="rival verifier").secret
    with world.client(rival) as client:
        client.verify(out)
    owner_reader = world.admin.keys.create(scopes="audit:read", name="acme reader").secret
    with world.client(owner_reader) as client:
        shown = client.audit.show(made.generation_id)
    assert {e.tenant_id for e in shown.events} == {"acme"}
    assert "rival" in {e.tenant_id for e in world.events(generation_id=made.generation_id)}


def test_a_key_without_the_animate_scope_learns_nothing_of_the_subject(world: World) -> None:
    """The scope is checked first: a verify-only key asking to animate a registered subject with a stranger's photo
    (no consent, no match) is told it lacks the scope, and only that; no face is even compared."""
    verify_only = world.admin.keys.create(scopes=["verify"], name="prober").secret
    out = world.out("probe.mp4")
    with world.client(verify_only) as client, pytest.raises(PermissionDeniedError) as exc:
        client.animate(world.woman, subject=world.unconsented, driving=world.clip, out=out)
    assert [code for code, _, _ in exc.value.reasons] == ["missing_scope"]
    for word in ("consent", "face", "similarity", world.unconsented):
        assert word not in str(exc.value)
    event = world.last_event()
    assert event.type == "generation.denied" and "facts" not in event.data["request"]


def test_a_rival_tenant_cannot_grant_itself_another_tenants_subject(world: World) -> None:
    """The critical attack: a key of tenant rival with consents:write grants itself consent for acme's subject,
    then animates her. The grant is refused as for a subject that does not exist, so is the animation."""
    rival = world.admin.keys.create(tenant="rival", scopes="animate consents:write audit:read", name="rival").secret
    with world.client(rival) as client:
        with pytest.raises(NotFoundError) as granted:
            client.consents.grant(world.eileen, evidence=b"I consent, says rival")
        assert str(granted.value) == f"no subject {world.eileen!r}"
        with pytest.raises(NotFoundError):
            client.consents.revoke(world.consent, reason="rival wants her refused")
        with pytest.raises(NotFoundError):
            client.subjects.get(world.eileen)
        out = world.out("rival.mp4")
        with pytest.raises(NotFoundError):
            client.animate(world.astronaut, subject=world.eileen, driving=world.clip, out=out)
    assert not out.exists()
    assert world.admin.deployment.ledger.consent(world.consent).revoked_at is None
    assert {c.grantee_tenant_id for c in world.admin.consents.list(subject=world.eileen)} == {"acme"}


def test_a_revoked_consent_no_longer_opens_the_subject_to_its_grantee(world: World) -> None:
    partner = world.admin.keys.create(tenant="partner", scopes="animate audit:read", name="partner").secret
    granted = world.admin.consents.grant(world.eileen, evidence=b"Eileen agrees to partner", tenant="partner").id
    with world.client(partner) as client:
        assert client.subjects.get(world.eileen).id == world.eileen
        world.admin.consents.revoke(granted, reason="partnership ended")
        with pytest.raises(NotFoundError):
            client.subjects.get(world.eileen)


def test_a_photo_on_its_side_matches_its_subject(world: World, tmp_path: Path) -> None:
    """A photo whose orientation was lost: the face match embeds the face from the quarter turn YuNet is surest of
    (it found no face on its side, or one with its landmarks misplaced: similarity 0.03 to Eileen herself)."""
    sideways = tmp_path / "eileen_on_her_side.png"
    Image.fromarray(np.ascontiguousarray(np.rot90(load_image(world.astronaut), 1))).save(sideways)
    out = world.out("on-her-side.mp4")
    with world.client() as client:
        result = client.animate(sideways, subject=world.eileen, driving=world.clip, out=out)
    assert out.is_file()
    face = world.events(generation_id=result.generation_id)[0].data["decision"]["face"]
    assert face["matched"] is True and face["similarity"] > 0.95


def test_missing_scope_is_refused(world: World) -> None:
    verify_only = world.admin.keys.create(scopes=["verify"], name="verify only").secret
    out = world.out("missing-scope.mp4")
    with world.client(verify_only) as client, pytest.raises(PermissionDeniedError) as exc:
        client.animate(world.astronaut, subject=world.eileen, driving=world.clip, out=out)
    assert "animate" in str(exc.value)
    _assert_refused(world, exc, "missing_scope", out)


def test_revoked_key_is_refused_at_once(world: World) -> None:
    created = world.admin.keys.create(scopes="animate verify audit:read", name="soon revoked")
    with world.client(created.secret) as client:
        client.audit.query(limit=1)  # the client held a working key; revocation must bite on its next call
        world.admin.keys.revoke(created.info.id, reason="leaked")
        out = world.out("revoked-key.mp4")
        with pytest.raises(AuthenticationError, match="revoked"):
            client.animate(world.astronaut, subject=world.eileen, driving=world.clip, out=out)
    assert not out.exists()
    event = world.last_event()
    assert event.type == "auth.failed" and event.actor == created.info.id
    assert created.secret.split("_")[-1] not in str(event.data)


def test_expired_key_is_refused(world: World) -> None:
    created = world.admin.keys.create(
        scopes="animate", name="short-lived", expires=datetime.now(UTC) + timedelta(hours=1)
    )
    # Travel past its expiry by moving the expiry, not the clock: the key table is not append-only. The expiry is
    # put back afterwards, since `audit verify` rightly reports a key row that disagrees with its events.
    def set_expiry(moment: datetime | None) -> None:
        with world.admin.deployment.ledger.store.write() as session:
            session.execute(update(ApiKey).where(ApiKey.id == created.info.id).values(expires_at=moment))

    set_expiry(datetime.now(UTC) - timedelta(1))
    try:
        out = world.out("expired-key.mp4")
        with world.client(created.secret) as client, pytest.raises(AuthenticationError, match="expired"):
            client.animate(world.astronaut, subject=world.eileen, driving=world.clip, out=out)
        assert not out.exists()
        assert world.last_event().type == "auth.failed"
    finally:
        set_expiry(created.info.expires_at)


def test_wrong_or_missing_key_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XP_API_KEY", raising=False)
    forged = world.animator_key[:-4] + ("AAAA" if not world.animator_key.endswith("AAAA") else "BBBB")
    with world.client(forged) as client, pytest.raises(AuthenticationError, match="not valid"):
        client.verify(world.astronaut)
    with Client(home=world.home) as anonymous, pytest.raises(AuthenticationError, match="no API key"):
        anonymous.audit.query()


def test_protected_person_is_refused_even_with_consent(world: World) -> None:
    world.admin.subjects.register("Protected: man with glasses", [world.glasses], protected=True)
    subject = world.admin.subjects.register("Man with glasses, consenting", [world.glasses]).id
    world.admin.consents.grant(subject, evidence=b"he consents, but the platform protects him")
    out = world.out("protected.mp4")
    with world.client() as client, pytest.raises(PolicyDeniedError) as exc:
        client.animate(world.glasses, subject=subject, driving=world.clip, out=out)
    assert [r[0] for r in exc.value.reasons] == ["protected_person"]
    _assert_refused(world, exc, "protected_person", out)


def test_operator_policy_refuses_with_its_own_id(world: World, tmp_path: Path) -> None:
    rule = tmp_path / "no-ads.cedar"
    rule.write_text(
        '@id("operator-no-advertising")\n@reason("advertising_forbidden")\n@message("no advertising with faces")\n'
        'forbid (principal, action == XP::Action::"animate", resource) when { context.purpose == "advertising" };\n'
    )
    subject = world.admin.subjects.register("Eileen, any purpose", [world.astronaut]).id
    world.admin.consents.grant(subject, evidence=b"any purpose")
    out = world.out("operator-policy.mp4")
    with world.client(policy_paths=[rule]) as client, pytest.raises(PolicyDeniedError) as exc:
        client.animate(world.astronaut, subject=subject, driving=world.clip, out=out, purpose="advertising")
    assert exc.value.reasons[0][2] == "operator-no-advertising"
    _assert_refused(world, exc, "advertising_forbidden", out)


def test_photo_without_a_face_is_refused_and_logged(world: World, tmp_path: Path) -> None:
    import numpy as np

    blank = np.full((256, 256, 3), 128, dtype=np.uint8)
    out = world.out("no-face.mp4")
    with world.client() as client, pytest.raises(NoFaceError):
        client.animate(blank, subject=world.eileen, driving=world.clip, out=out)
    event = world.last_event()
    assert event.type == "generation.denied"
    assert event.data["decision"]["reasons"][0]["code"] == "no_face"


def test_a_broken_driving_video_is_refused_before_anything_is_requested(world: World, tmp_path: Path) -> None:
    """Its header is read before the gate: refused as input, one "generation.denied" event, no generation."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000)
    out = world.out("broken.mp4")
    with world.client() as client, pytest.raises(UnreadableVideoError):
        client.animate(world.astronaut, subject=world.eileen, driving=broken, out=out)
    assert not out.exists()
    refused = world.last_event()
    assert refused.type == "generation.denied" and refused.generation_id is None
    assert refused.data["decision"]["reasons"][0]["code"] == "unreadable_video"


def test_failure_after_request_leaves_failed_event_and_no_file(world: World, tmp_path: Path) -> None:
    """A driving video with no face in it passes the gate (its header is fine) and fails in the engine."""
    faceless = write_shown_clip(tmp_path / "faceless.mp4", [np.full((96, 96, 3), 90, np.uint8)] * 12)
    out = world.out("failed.mp4")
    with world.client() as client, pytest.raises(NoFaceError):
        client.animate(world.astronaut, subject=world.eileen, driving=faceless, out=out)
    assert not out.exists()
    _folder_is_empty_of(world, out.name)
    failed = world.last_event()
    assert failed.type == "generation.failed"
    assert failed.data["error"] == "no_face"
    types = [e.type for e in world.events(generation_id=failed.generation_id)]
    assert types == ["generation.requested", "generation.failed"]
    assert failed.generation_id is not None
    assert world.admin.deployment.ledger.generation(failed.generation_id).status == "failed"


def test_rate_limit_applies_per_key(world: World) -> None:
    limited = world.admin.keys.create(scopes="verify audit:read", name="limited", rate_limit_per_minute=2).secret
    with world.client(limited) as client:
        client.audit.query(limit=1)
        client.audit.query(limit=1)
        with pytest.raises(RateLimitedError) as exc:
            client.audit.query(limit=1)
    assert exc.value.retry_after > 0
    refused = world.last_event()
    assert refused.type == "access.denied" and refused.data["reason"] == "rate_limited"


def test_bad_arguments_are_refused_before_anything_runs(world: World) -> None:
    with world.client() as client:
        with pytest.raises(InvalidInputError, match="exactly one"):
            client.animate(world.astronaut, subject=world.eileen, out=world.out("x.mp4"))
        with pytest.raises(InvalidInputError, match="does not exist"):
            client.animate(
                world.astronaut, subject=world.eileen, driving=world.root / "nope.mp4", out=world.out("y.mp4")
            )


def test_parallel_generations_are_separately_audited(world: World) -> None:
    outs = [world.out(f"parallel-{i}.mp4") for i in range(3)]
    results: list[AnimationResult | None] = [None] * len(outs)
    errors: list[BaseException] = []
    with world.client() as client:

        def run(index: int) -> None:
            try:
                results[index] = client.animate(
                    world.astronaut, subject=world.eileen, driving=world.clip, out=outs[index]
                )
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(outs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    made = [r for r in results if r is not None]
    ids = {r.generation_id for r in made}
    assert len(ids) == len(outs)
    for result, out in zip(made, outs, strict=True):
        assert hashlib.sha256(out.read_bytes()).hexdigest() == result.output_sha256
        types = [e.type for e in world.events(generation_id=result.generation_id)]
        assert types == ["generation.requested", "generation.completed"]
    world.admin.audit.verify()


def test_verify_finds_the_audited_generation(world: World) -> None:
    out = world.out("to-verify.mp4")
    with world.client() as client:
        made = client.animate(world.astronaut, subject=world.eileen, driving=world.clip, out=out)
        report = client.verify(out)
    assert report.watermark.detected and report.watermark.payload == made.generation_id
    assert report.generation is not None and report.generation.status == "completed"
    assert report.generation.file_matches_record is True
    assert world.last_event().type == "verification.performed"
    shown = world.admin.audit.show(made.generation_id)
    assert [e.type for e in shown.events][:2] == ["generation.requested", "generation.completed"]
    assert all(p["tree_size"] > p["seq"] for p in shown.proofs)


def test_every_allowed_decision_is_logged_with_its_policy_ids(world: World) -> None:
    subject = world.admin.subjects.register("Eileen, for the record", [world.astronaut])
    registered = world.events(subject=subject.id)[0]
    assert registered.type == "subject.registered"
    decision = registered.data["decision"]
    assert decision["allowed"] is True and "permit-register-subject" in decision["policy_ids"]
    assert decision["policy_digest"] == world.admin.deployment.policy.digest

    world.admin.audit.query(subject=subject.id, limit=5)
    read = world.last_event()
    assert read.type == "access.allowed" and read.actor == world.admin.deployment.ledger.keys()[0].id
    assert read.data["request"]["operation"] == "audit.query"
    assert read.data["request"]["subject"] == subject.id
    assert "permit-audit-read" in read.data["decision"]["policy_ids"]


def test_a_witness_checks_consistency_from_its_old_checkpoint(world: World) -> None:
    from audit import LogVerifierKey, verify_checkpoint
    from audit.merkle import verify_consistency

    verifier = LogVerifierKey.from_vkey(world.admin.deployment.log_verifier.to_vkey())
    kept = verify_checkpoint(world.admin.audit.checkpoint() or "", verifier)  # what a witness stores today
    world.admin.subjects.register("Eileen, later", [world.astronaut])  # the log grows
    world.admin.audit.checkpoint()
    proof = world.admin.audit.consistency(kept.tree_size)
    signed = verify_checkpoint(proof.checkpoint, verifier)
    assert proof.new_size == signed.tree_size > kept.tree_size
    assert proof.old_root == kept.root_hash.hex() and proof.new_root == signed.root_hash.hex()
    verify_consistency(
        proof.old_size, proof.new_size, kept.root_hash, signed.root_hash, [bytes.fromhex(h) for h in proof.path]
    )
    with pytest.raises(InvalidInputError, match="no signed checkpoint"):
        world.admin.audit.consistency(1, proof.new_size + 10_000)
