"""The consent challenge and the video grant over HTTP (the remote Client) and the CLI: the same challenge, the
same refusal with its failed checks named, the same audit events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import xp
from tests.conftest import write_shown_clip
from tests.consent.videos import mux_speech
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.engine.images import load_image
from xp_sdk.errors import ConsentVideoRejectedError
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer


@dataclass
class Served:
    home: Path
    key: str
    url: str
    subject: str
    still_video: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("consent-transports")
    init = init_deployment(root / "home", tenant="acme")
    photo = faces / "source" / "lp_s9.jpg"
    with Client(init.api_key.secret, home=init.home) as admin:
        subject = admin.subjects.register("Subject of lp_s9", [photo]).id
    still = write_shown_clip(root / "still.mp4", [load_image(photo)] * 100, rate=25)
    video = mux_speech(still, faces / "driving" / "grid_bbaf2n.mpg", root / "still-speaking.mp4", at=0.5)
    with BackgroundServer(create_app(Settings.resolve(home=init.home), workers=1)) as live:
        yield Served(init.home, init.api_key.secret, live.url, subject, video)


def test_over_http_a_challenge_is_issued_and_a_still_video_refused_naming_liveness(served: Served) -> None:
    with Client(served.key, base_url=served.url) as remote:
        challenge = remote.consents.challenge(served.subject, expires_in_minutes=5)
        assert challenge.subject_id == served.subject and len(challenge.phrase.split()) == 6
        with pytest.raises(ConsentVideoRejectedError) as caught:
            remote.consents.grant_by_video(served.subject, video=served.still_video, challenge=challenge.id)
        failed = {code for code, _, _ in caught.value.reasons}
        assert {"liveness", "phrase"} <= failed and "face" not in failed and "fresh" not in failed
        assert remote.consents.list(subject=served.subject) == []
        denied = remote.audit.query(type="access.denied", limit=100).events[-1]
        assert denied.data["request"]["challenge_id"] == challenge.id
        assert denied.data["request"]["checks"]["liveness"]["passed"] is False


def test_the_cli_issues_a_challenge_and_names_the_failed_checks(served: Served) -> None:
    common = ["--home", served.home, "--api-key", served.key, "--json"]
    issued = xp("consents", "challenge", "--subject", served.subject, *common)
    assert issued.code == 0, issued.stderr
    shown = json.loads(issued.stdout)
    assert shown["phrase"] in shown["instructions"] and 3 <= len(shown["actions"]) <= 4
    # One command grants either way: --video with --challenge is the video grant (grant-video is its alias).
    refused = xp(
        "consents", "grant", "--subject", served.subject, "--video", served.still_video,
        "--challenge", shown["id"], *common,
    )  # fmt: skip
    assert refused.code == ConsentVideoRejectedError.exit_code
    assert json.loads(refused.stdout)["type"] == "ConsentVideoRejectedError"  # --json: the error as one object
    assert "liveness" in refused.stderr
    alias = xp(
        "consents", "grant-video", "--subject", served.subject, "--video", served.still_video,
        "--challenge", shown["id"], *common,
    )  # fmt: skip
    assert alias.code == ConsentVideoRejectedError.exit_code and "liveness" in alias.stderr
    half = xp("consents", "grant", "--subject", served.subject, "--video", served.still_video, *common)
    assert half.code == 2 and "--challenge" in half.stderr


def test_over_http_a_consent_shows_its_kind(served: Served) -> None:
    with Client(served.key, base_url=served.url) as remote:
        granted = remote.consents.grant(served.subject, evidence=b"a signed statement, attested by the operator")
        assert granted.kind == "attested"
        assert {c.id: c.kind for c in remote.consents.list(subject=served.subject)}[granted.id] == "attested"
        remote.consents.revoke(granted.id, reason="test over")
    raw = httpx.get(f"{served.url}/v1/consents", headers={"Authorization": f"Bearer {served.key}"})
    assert raw.status_code == 200 and {c["kind"] for c in raw.json()["data"]} == {"attested"}
