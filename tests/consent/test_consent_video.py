"""Consent by challenge video, end to end through the Client on a real home: a challenge is issued and logged; a
video answering it is accepted only when every check holds, and each way of failing is refused with the check it
failed named, a refusal event carrying every check's facts, and no consent recorded.

No person can be filmed here: the accepted video is the registered photo animated by the bare engine
(``xp_sdk.engine.animate``, no watermark) performing the challenge's actions, with a real speaker's GRID sentence as
its sound (tests/consent/videos.py). That it passes every other check is exactly why the watermark check matters:
the same clip made through the product (``Client.animate``) is refused as an attempted forgery.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import write_shown_clip
from tests.consent.videos import GRID_SENTENCE, action_template, mux_speech, speech_start
from xp_sdk import Client, init_deployment
from xp_sdk.consent.challenge import GRID_SLOTS, VOCABULARY, ConsentChallenge, FacialAction, draw_challenge
from xp_sdk.engine import AnimateOptions, animate
from xp_sdk.engine.images import load_image
from xp_sdk.errors import ConsentVideoRejectedError, NotFoundError
from xp_sdk.service import evidence_path

A = FacialAction
ACTIONS = (A.TURN_LEFT, A.SMILE, A.BLINK_TWICE, A.LOOK_UP)
OPTIONS = AnimateOptions(max_side=400, keep_audio=False)


class World:
    def __init__(self, root: Path, faces: Path) -> None:
        self.root = root
        self.faces = faces
        init = init_deployment(root / "home", tenant="acme")
        self.admin = Client(init.api_key.secret, home=init.home)
        self.photo = faces / "source" / "lp_s9.jpg"
        self.other_photo = faces / "source" / "lp_d30.jpg"
        self.speech = faces / "driving" / "grid_bbaf2n.mpg"
        self.subject = self.admin.subjects.register("Subject of lp_s9", [self.photo]).id
        self.count = itertools.count()
        self._silent: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        return self.root / f"{next(self.count)}-{name}"

    def challenge(
        self, actions: Sequence[FacialAction] = ACTIONS, phrase: str = GRID_SENTENCE, *, issued: datetime | None = None
    ) -> ConsentChallenge:
        """A challenge issued as the service issues one, but for the sentence our real speaker says (nobody can be
        asked to read a random one here) and the actions the test chooses."""
        drawn = draw_challenge(subject_id=self.subject, tenant_id="acme", now=issued)
        chosen = drawn.model_copy(update={"phrase": phrase, "actions": tuple(actions)})
        self.admin.deployment.ledger.issue_consent_challenge(
            chosen.model_dump(mode="json"), tenant_id="acme", subject_id=self.subject, actor="test"
        )
        return chosen

    def bare_engine_video(self, photo: Path, actions: Sequence[FacialAction] = ACTIONS) -> Path:
        """``photo`` performing ``actions``, then saying the GRID sentence; a distinct file (and digest) each call."""
        key = f"{photo.name}:{','.join(a.value for a in actions)}"
        if key not in self._silent:
            silent = self.path("silent.mp4")
            animate(photo, silent, template=action_template(actions), options=OPTIONS)
            self._silent[key] = silent
        return mux_speech(self._silent[key], self.speech, self.path("consent.mp4"), at=speech_start(actions),
                          tag=str(next(self.count)))  # fmt: skip

    def grant(self, video: Path, challenge: ConsentChallenge) -> object:
        return self.admin.consents.grant_by_video(self.subject, video=video, challenge=challenge.id)

    def refused(self, video: Path, challenge: ConsentChallenge) -> tuple[set[str], dict[str, object]]:
        """The failed checks' names, and the refusal event's request (with every check's facts)."""
        before = self.admin.consents.list(subject=self.subject)
        with pytest.raises(ConsentVideoRejectedError) as caught:
            self.grant(video, challenge)
        assert self.admin.consents.list(subject=self.subject) == before, "a refused video recorded a consent"
        failed = {code for code, _, _ in caught.value.reasons}
        assert all(name in str(caught.value) for name in failed)
        event = self.admin.audit.query(type="access.denied", limit=1000).events[-1]
        assert event.data["request"]["challenge_id"] == challenge.id
        return failed, event.data["request"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("consent-video"), faces)
    yield made
    made.admin.close()


def test_a_challenge_is_random_one_time_material_and_an_audit_event(world: World) -> None:
    first = world.admin.consents.challenge(world.subject, purpose="advert")
    second = world.admin.consents.challenge(world.subject)
    assert first.id != second.id and first.nonce != second.nonce
    assert (first.phrase, first.actions) != (second.phrase, second.actions)
    for challenge in (first, second):
        words = challenge.phrase.split()
        assert len(words) == 6 and all(w in slot for w, slot in zip(words, GRID_SLOTS, strict=True))
        assert set(words) <= VOCABULARY
        assert 3 <= len(challenge.actions) <= 4 and len(set(challenge.actions)) == len(challenge.actions)
        assert challenge.expires_at - challenge.issued_at == timedelta(minutes=10)
    assert first.purpose == "advert"
    events = world.admin.audit.query(type="consent.challenged", limit=100).events
    assert [e.data["challenge"]["id"] for e in events][-2:] == [first.id, second.id]
    assert events[-1].subject_id == world.subject and events[-1].tenant_id == "acme"


def test_a_video_answering_its_challenge_is_accepted_once(world: World) -> None:
    challenge = world.challenge()
    video = world.bare_engine_video(world.photo)
    consent = world.grant(video, challenge)
    assert consent.evidence_kind == "consent-video"  # type: ignore[attr-defined]
    granted = world.admin.audit.query(type="consent.granted", limit=1000).events[-1]
    assert granted.data["challenge_id"] == challenge.id
    assert {name for name, facts in granted.data["checks"].items() if facts["passed"]} == {
        "face", "liveness", "phrase", "not_generated", "fresh",
    }  # fmt: skip
    assert granted.data["checks"]["phrase"]["heard"] == GRID_SENTENCE
    kept = evidence_path(world.admin.deployment.home.root, consent.evidence_sha256, ".mp4")  # type: ignore[attr-defined]
    assert kept.read_bytes() == video.read_bytes() and kept.stat().st_mode & 0o777 == 0o600
    performed = [p["action"] for p in granted.data["checks"]["liveness"]["performed"]]
    assert [a for a in performed if a in {x.value for x in ACTIONS}] == [a.value for a in ACTIONS]

    # The same challenge again, with another (byte-distinct) take: used.
    failed, _ = world.refused(world.bare_engine_video(world.photo), challenge)
    assert failed == {"fresh"}
    # The same video for a new challenge: its fingerprint is already a consent's evidence.
    failed, request = world.refused(video, world.challenge())
    assert failed == {"fresh"}
    assert "already the evidence" in str(request["checks"]["fresh"])  # type: ignore[index]
    # The challenge events and the consent's event (with its checks) verify as every other record.
    assert world.admin.audit.verify().records >= 2


def test_the_wrong_words_are_refused(world: World) -> None:
    failed, request = world.refused(
        world.bare_engine_video(world.photo), world.challenge(phrase="lay green by q seven soon")
    )
    assert failed == {"phrase"}
    assert request["checks"]["phrase"]["heard"] == GRID_SENTENCE  # type: ignore[index]


def test_the_actions_in_another_order_are_refused(world: World) -> None:
    failed, _ = world.refused(
        world.bare_engine_video(world.photo), world.challenge(actions=(A.SMILE, A.TURN_LEFT, A.BLINK_TWICE, A.LOOK_UP))
    )
    assert failed == {"liveness"}


def test_a_still_photo_made_into_a_video_is_refused(world: World) -> None:
    picture = load_image(world.photo)
    still = write_shown_clip(world.path("still.mp4"), [picture] * 250, rate=25)
    video = mux_speech(still, world.speech, world.path("still-speaking.mp4"), at=speech_start(ACTIONS))
    failed, request = world.refused(video, world.challenge())
    assert failed == {"liveness"}
    assert any("frozen" in p for p in request["checks"]["liveness"]["problems"])  # type: ignore[index]


def test_another_persons_face_is_refused(world: World) -> None:
    failed, _ = world.refused(world.bare_engine_video(world.other_photo), world.challenge())
    assert "face" in failed and "phrase" not in failed


def test_an_expired_challenge_is_refused(world: World) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=11)
    failed, _ = world.refused(world.bare_engine_video(world.photo), world.challenge(issued=long_ago))
    assert failed == {"fresh"}


def test_a_consent_video_made_through_the_product_is_refused_as_an_attempted_forgery(world: World) -> None:
    """The deepfaked consent: the subject's photo animated by xp-sdk itself (so it carries this deployment's
    watermark) to perform the challenge and say the sentence. Everything else about it passes."""
    world.admin.consents.grant(world.subject, evidence=b"an attested consent, to let the product animate")
    # No smile: the product's clip of this photo smiles less than the bare engine's (not measured why), and this
    # test is about the one check that must stop it even when all the others pass.
    actions = (A.TURN_LEFT, A.BLINK_TWICE, A.LOOK_UP)
    silent = world.path("product.mp4")
    world.admin.animate(
        world.photo, subject=world.subject, template=action_template(actions), out=silent, options=OPTIONS
    )
    video = mux_speech(silent, world.speech, world.path("forged.mp4"), at=speech_start(actions))
    failed, request = world.refused(video, world.challenge(actions))
    assert failed == {"not_generated"}
    assert request["checks"]["not_generated"]["deployment_watermark"] is True  # type: ignore[index]
    assert "attempted_forgery" in request


def test_a_challenge_never_issued_is_not_found(world: World) -> None:
    with pytest.raises(NotFoundError):
        world.admin.consents.grant_by_video(world.subject, video=world.speech, challenge="chl_0123456789abcdef")
