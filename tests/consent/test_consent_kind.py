"""A consent's kind, ``verified-video`` or ``attested``, through the product: recorded and shown (SDK, CLI), old rows
read as attested, required per tenant or per purpose by the Cedar policy a deployment adds
(policy/examples/require_verified_video.cedar), and named by every generation's manifest and audit events, to the
callers entitled to the record and to nobody else.

The verified-video consent of the first subject is a real one: a challenge answered by a video (the registered
photo animated by the bare engine, with a real GRID speaker's sentence) through ``xp consents grant --video
--challenge``. The others are recorded through the ledger's challenge path with passing checks, to keep the
module's cost to one examined video.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import ConsentInfo, Store
from audit.models import Consent
from policy import (
    AccessRequest,
    Action,
    ConsentEvaluation,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    Policy,
    Principal,
    evaluate_consent,
)
from policy.face_match import FaceMatch
from tests.cli.helpers import Result, xp
from tests.consent.videos import GRID_SENTENCE, action_template, mux_speech, speech_start
from xp_sdk import Client, ConsentRequiredError, init_deployment
from xp_sdk.consent.challenge import FacialAction, draw_challenge
from xp_sdk.engine import AnimateOptions, animate
from xp_sdk.service import Service
from xp_sdk.verify import Verification, verify

EXAMPLE = Path(__file__).resolve().parents[2] / "policy" / "examples" / "require_verified_video.cedar"
"""The snippet docs/gate.md tells a deployment to copy: tenant "acme" and purpose "advertising" need verified-video."""
SHORT_CLIP = "lp_d1_hist.mp4"  # 16 frames: the cheapest real generation
OPTIONS = AnimateOptions(max_side=400, keep_audio=False)
ACTIONS = (FacialAction.TURN_LEFT, FacialAction.SMILE, FacialAction.BLINK_TWICE, FacialAction.LOOK_UP)
CHECKS = ("face", "liveness", "phrase", "not_generated", "fresh")


# -- the decision, on the policy alone ---------------------------------------------------------------------------

NOW = datetime(2026, 12, 8, tzinfo=UTC)


def _request(tenant: str, kind: ConsentKind, purpose: str | None) -> AccessRequest:
    return AccessRequest(
        principal=Principal(tenant_id=tenant, key_id="k1", scopes=frozenset({"animate"})),
        action=Action.ANIMATE,
        subject_id="s1",
        consent=ConsentEvaluation(ConsentStatus.ACTIVE, "con_1", "consent con_1 is active", kind),
        face=FaceMatch(similarity=0.9, threshold=0.5, matched=True),
        purpose=purpose,
    )


@pytest.mark.parametrize(
    ("tenant", "purpose", "attested_allowed"),
    [
        ("acme", None, False),  # per tenant: every acme animation
        ("acme", "news", False),
        ("beta", None, True),
        ("beta", "news", True),
        ("beta", "advertising", False),  # per purpose: whoever asks
    ],
)
def test_the_example_policy_requires_verified_video_per_tenant_and_per_purpose(
    tenant: str, purpose: str | None, attested_allowed: bool
) -> None:
    required = Policy.load([EXAMPLE])
    attested = required.decide(_request(tenant, ConsentKind.ATTESTED, purpose))
    assert attested.allowed is attested_allowed
    if not attested_allowed:
        assert {r.code for r in attested.reasons} == {"verified_consent_required"}
        assert all("verified-video" in (r.detail or "") for r in attested.reasons)
    assert required.decide(_request(tenant, ConsentKind.VERIFIED_VIDEO, purpose)).allowed
    default = Policy.load()
    for kind in ConsentKind:
        assert default.decide(_request(tenant, kind, purpose)).allowed, "the default policy takes either kind"


def test_an_active_verified_video_consent_is_preferred_to_an_attested_one() -> None:
    def record(consent_id: str, kind: ConsentKind, days: int | None) -> ConsentRecord:
        until = NOW + timedelta(days=days) if days is not None else None
        return ConsentRecord(consent_id, "s1", "acme", frozenset({"animate"}), frozenset(), NOW, until, kind=kind)

    # The attested one lasts longer (even for ever); a policy may need the verified one, so it is named.
    records = [record("con_a", ConsentKind.ATTESTED, None), record("con_v", ConsentKind.VERIFIED_VIDEO, 3)]
    chosen = evaluate_consent(
        records, subject_id="s1", grantee_tenant_id="acme", scope="animate", purpose=None, now=NOW + timedelta(hours=1)
    )
    assert (chosen.status, chosen.consent_id, chosen.kind) == (ConsentStatus.ACTIVE, "con_v", "verified-video")
    # Once the verified one has expired, the attested one is what is left.
    later = evaluate_consent(
        records, subject_id="s1", grantee_tenant_id="acme", scope="animate", purpose=None, now=NOW + timedelta(days=4)
    )
    assert (later.consent_id, later.kind) == ("con_a", "attested")


# -- old rows ----------------------------------------------------------------------------------------------------


def test_a_consent_recorded_before_kinds_existed_reads_as_attested(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    store = Store.open(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parents[2] / "audit" / "migrations"))
    with store.write() as session:
        config.attributes["connection"] = session.connection()
        command.upgrade(config, "0002")
    moment = "2026-01-01 00:00:00"
    with store.write() as session:
        session.execute(text(f"INSERT INTO tenants VALUES ('acme', 'Acme', '{moment}')"))
        session.execute(text(f"INSERT INTO subjects VALUES ('sub_1', 'acme', 'Ann', 0, '{moment}', 'op')"))
        session.execute(
            text(
                "INSERT INTO consents (id, subject_id, grantee_tenant_id, scopes, purposes, valid_from, valid_until, "
                "evidence_sha256, evidence_kind, recorded_by, created_at) VALUES ('con_1', 'sub_1', 'acme', "
                f"'animate', '', '{moment}', NULL, '{'ab' * 32}', 'consent-video', 'op', '{moment}')"
            )
        )
    store.migrate()
    with store.read() as session:
        old = session.get(Consent, "con_1")
        assert old is not None and old.kind == "attested", "a consent-video file recorded before checks is attested"
    store.dispose()


# -- through the product -----------------------------------------------------------------------------------------


class World:
    """Tenants acme (the home's) and beta. Ann (the astronaut) has attested consents for both; Sam (lp_s9) has
    verified-video consents for both, acme's granted through the CLI from a real challenge video."""

    def __init__(self, root: Path, faces: Path) -> None:
        self.root = root
        self.faces = faces
        init = init_deployment(root / "home", tenant="acme")
        self.home = init.home
        self.admin_key = init.api_key.secret
        self.admin = Client(self.admin_key, home=self.home)
        self.ledger = self.admin.deployment.ledger
        self.ledger.create_tenant("beta")
        self.beta_key = self.ledger.create_key("beta", scopes="animate verify audit:read", name="beta").secret
        self.ann_photo = faces / "source" / "skimage_astronaut.png"
        self.sam_photo = faces / "source" / "lp_s9.jpg"
        self.clip = faces / "driving" / SHORT_CLIP
        self.ann = self.admin.subjects.register("Ann", [self.ann_photo]).id
        self.sam = self.admin.subjects.register("Sam", [self.sam_photo]).id
        self.ann_acme = self.admin.consents.grant(self.ann, evidence=b"Ann consents to acme (signed)")
        self.ann_beta = self.admin.consents.grant(self.ann, evidence=b"Ann consents to beta (signed)", tenant="beta")
        self.sam_beta = self.verified_consent(self.sam, "beta")
        self.sam_acme: ConsentInfo | None = None
        self._outputs = 0

    def verified_consent(self, subject: str, tenant: str) -> ConsentInfo:
        """A consent recorded by the ledger's challenge path, as the service records one whose checks passed."""
        challenge = draw_challenge(subject_id=subject, tenant_id="acme")
        self.ledger.issue_consent_challenge(
            challenge.model_dump(mode="json"), tenant_id="acme", subject_id=subject, actor="test"
        )
        now = datetime.now(UTC)
        return self.ledger.grant_consent_for_challenge(
            challenge.id, subject, tenant, evidence_sha256=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            evidence_kind="consent-video", checks={name: {"passed": True} for name in CHECKS},
            valid_from=now, valid_until=now + timedelta(days=30), actor="test",
        )  # fmt: skip

    def client(self, key: str, *, require_verified: bool) -> Client:
        return Client(key, home=self.home, policy_paths=[EXAMPLE] if require_verified else [])

    def out(self) -> Path:
        self._outputs += 1
        return self.root / f"out-{self._outputs}.mp4"

    def cli(self, *args: object, key: str | None = None) -> Result:
        return xp(*args, "--home", self.home, "--api-key", key or self.admin_key)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("consent-kind"), faces)
    yield made
    made.admin.close()


def test_one_command_grants_by_video_and_the_consent_is_verified_video(world: World) -> None:
    """``xp consents grant --video V --challenge ID``: the real challenge video, checked, recorded as
    verified-video; the attested ones say so; the CLI's list and show print the kind."""
    challenge = draw_challenge(subject_id=world.sam, tenant_id="acme")
    chosen = challenge.model_copy(update={"phrase": GRID_SENTENCE, "actions": ACTIONS})
    world.ledger.issue_consent_challenge(
        chosen.model_dump(mode="json"), tenant_id="acme", subject_id=world.sam, actor="test"
    )
    silent = world.root / "silent.mp4"
    animate(world.sam_photo, silent, template=action_template(ACTIONS), options=OPTIONS)
    speech = world.faces / "driving" / "grid_bbaf2n.mpg"
    video = mux_speech(silent, speech, world.root / "consent.mp4", at=speech_start(ACTIONS))

    both = world.cli("consents", "grant", "--subject", world.sam, "--evidence", video, "--video", video,
                     "--challenge", chosen.id)  # fmt: skip
    assert both.code == 2 and "either --evidence" in both.stderr

    granted = world.cli("consents", "grant", "--subject", world.sam, "--video", video, "--challenge", chosen.id,
                        "--json").json()  # fmt: skip
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    assert (granted["kind"], granted["evidence_sha256"]) == ("verified-video", digest)
    event = world.admin.audit.query(type="consent.granted", limit=1000).events[-1]
    assert (event.data["consent_id"], event.data["kind"]) == (granted["id"], "verified-video")
    world.sam_acme = next(c for c in world.admin.consents.list(subject=world.sam) if c.id == granted["id"])
    assert world.sam_acme.kind == "verified-video"
    assert world.ann_acme.kind == world.ann_beta.kind == "attested"

    listed = {c["id"]: c["kind"] for c in world.cli("consents", "list", "--json").json()["consents"]}
    assert listed[granted["id"]] == "verified-video" and listed[world.ann_acme.id] == "attested"
    table = world.cli("subjects", "show", world.sam)
    assert table.code == 0 and "verified-video" in table.stdout


def test_with_the_rule_on_acme_is_refused_an_attested_consent(world: World) -> None:
    acme = world.client(world.admin_key, require_verified=True)
    before = len(world.admin.audit.query(type="generation.denied", limit=1000).events)
    with pytest.raises(ConsentRequiredError) as refused:
        acme.animate(world.ann_photo, subject=world.ann, driving=world.clip, out=world.out(), options=OPTIONS)
    assert "verified_consent_required" in {code for code, _, _ in refused.value.reasons}
    assert "verified-video consent is needed" in str(refused.value)
    assert world.ann_acme.id in str(refused.value) and "attested" in str(refused.value)
    denied = world.admin.audit.query(type="generation.denied", limit=1000).events
    assert len(denied) == before + 1
    assert denied[-1].data["request"]["facts"]["consent"]["kind"] == "attested"
    acme.close()


def test_with_the_rule_on_beta_is_refused_an_attested_consent_for_advertising_only(world: World) -> None:
    beta = world.client(world.beta_key, require_verified=True)
    with pytest.raises(ConsentRequiredError, match="verified-video consent is needed"):
        beta.animate(world.ann_photo, subject=world.ann, driving=world.clip, out=world.out(), options=OPTIONS,
                     purpose="advertising")  # fmt: skip
    plain = beta.animate(world.ann_photo, subject=world.ann, driving=world.clip, out=world.out(), options=OPTIONS)
    assert plain.consent_id == world.ann_beta.id
    advert = beta.animate(world.sam_photo, subject=world.sam, driving=world.clip, out=world.out(), options=OPTIONS,
                          purpose="advertising")  # fmt: skip
    assert advert.consent_id == world.sam_beta.id
    beta.close()


def test_with_the_rule_off_both_kinds_are_allowed(world: World) -> None:
    acme = world.client(world.admin_key, require_verified=False)
    attested = acme.animate(world.ann_photo, subject=world.ann, driving=world.clip, out=world.out(), options=OPTIONS)
    assert attested.consent_id == world.ann_acme.id
    manifest = verify(attested.output, keys=world.admin.deployment.provenance).c2pa.summary
    assert manifest is not None and manifest.generation is not None
    assert (manifest.generation.consent_id, manifest.generation.consent_kind) == (world.ann_acme.id, "attested")
    assert manifest.generation.consent_evidence_sha256 == world.ann_acme.evidence_sha256
    acme.close()


def test_a_generation_names_its_consent_to_those_entitled_and_to_nobody_else(world: World) -> None:
    """With the rule on, acme animates Sam on the verified-video consent: the manifest, the "requested" and
    "completed" events and acme's verification name its id, kind and evidence digest; beta's verification of the
    same clip shows no record, and the public verdict nothing of the consent."""
    assert world.sam_acme is not None, "needs the consent granted by test_one_command_grants_by_video"
    consent = world.sam_acme
    named = (consent.id, "verified-video", consent.evidence_sha256)
    acme = world.client(world.admin_key, require_verified=True)
    result = acme.animate(world.sam_photo, subject=world.sam, driving=world.clip, out=world.out(), options=OPTIONS)
    assert result.consent_id == consent.id

    report = acme.verify(result.output)
    assert isinstance(report, Verification)
    generation = report.c2pa.summary.generation if report.c2pa.summary is not None else None
    assert generation is not None
    assert (generation.consent_id, generation.consent_kind, generation.consent_evidence_sha256) == named
    events = {e.type: e for e in world.admin.audit.query(generation_id=result.generation_id, limit=10).events}
    for stage in ("generation.requested", "generation.completed"):
        data = events[stage].data
        assert (data["consent_id"], data["consent_kind"], data["consent_evidence_sha256"]) == named, stage
    assert report.generation is not None
    record = report.generation
    assert (record.consent_id, record.consent_kind, record.consent_evidence_sha256) == named

    beta = world.client(world.beta_key, require_verified=True)
    rival_report = beta.verify(result.output)
    assert isinstance(rival_report, Verification)
    rival = rival_report.generation
    assert rival is not None and rival.id == result.generation_id
    assert (rival.consent_id, rival.consent_kind, rival.consent_evidence_sha256) == (None, None, None)
    beta.close()

    public = Service(world.admin.deployment).verify_anonymous(result.output, client_address="203.0.113.9")
    assert public.verdict == "ai-generated"
    shown = json.dumps(public.model_dump(mode="json"))
    for private in (*named, "attested", "consent"):
        assert private not in shown, f"the public verdict reveals {private!r}"
    acme.close()


def test_a_video_given_as_evidence_is_still_only_attested(world: World) -> None:
    """Handing the plain grant a video file (or a real consent video) checks nothing, so it proves nothing more."""
    given = world.admin.consents.grant(world.sam, evidence=world.clip)
    try:
        assert (given.evidence_kind, given.kind) == ("consent-video", "attested")
    finally:
        world.admin.consents.revoke(given.id, reason="test over")


def test_the_ledger_records_verified_video_only_with_every_check_passed(world: World) -> None:
    challenge = draw_challenge(subject_id=world.ann, tenant_id="acme")
    world.ledger.issue_consent_challenge(
        challenge.model_dump(mode="json"), tenant_id="acme", subject_id=world.ann, actor="test"
    )
    now = datetime.now(UTC)
    passed = {name: {"passed": True} for name in CHECKS}
    before = world.ledger.consents(subject_id=world.ann)
    for checks in ({}, {**passed, "liveness": {"passed": False}}, {**passed, "face": {"passed": "yes"}}):
        with pytest.raises(ValueError, match="every check"):
            world.ledger.grant_consent_for_challenge(
                challenge.id, world.ann, "acme", evidence_sha256="cd" * 32, evidence_kind="consent-video",
                checks=checks, valid_from=now, valid_until=now + timedelta(days=1), actor="test",
            )  # fmt: skip
    assert world.ledger.consents(subject_id=world.ann) == before
