"""The bad-input corpus: what a careless or hostile caller sends, through the embedded SDK, the remote SDK, the CLI
and raw HTTP, on SQLite and PostgreSQL. Each case asserts the typed error (class, exit code or HTTP status), that no
file appears at the output path and no temporary is left (beside it or in the home's work folder), the number of
audit events it leaves (one for a request that reached the gate; none for one refused in the caller's own process
before any request was made: a CLI usage error, a local file that does not exist), and that `audit verify` still
passes.

The cases came from issue 18 (options out of range, overflowing durations and limits, path-like tenants, names
PostgreSQL refuses, dates without a timezone, an existing folder or an input as the output) and from trying every
argument of every operation with an absurd value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.cli.helpers import xp
from tests.conftest import write_shown_clip
from tests.postgres import postgres_schema
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.engine import AnimateOptions
from xp_sdk.errors import (
    FaceError,
    InvalidInputError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    TemplateError,
    UnreadableImageError,
    UnreadableVideoError,
    UnsupportedFormatError,
    VideoTooLongError,
    XPError,
    error_class,
)
from xp_sdk.server.app import create_app
from xp_sdk.server.errors import status_for
from xp_sdk.server.serve import BackgroundServer

MAX_FRAMES = 48
"""This corpus's deployment accepts driving videos of at most this many frames."""


@dataclass
class World:
    root: Path
    home: Path
    url: str
    key: str
    subject: str
    consent: str
    photo: Path
    clip: Path
    long_clip: Path
    two_faces: Path
    blank: Path
    text_file: Path
    playlist: Path
    deep_json: Path
    evidence: Path
    out_dir: Path

    def out(self, name: str = "clip.mp4") -> Path:
        return self.out_dir / name

    def embedded(self) -> Client:
        return Client(self.key, home=self.home)

    def remote(self) -> Client:
        return Client(self.key, base_url=self.url)

    def cli(self, *args: object) -> Any:
        return xp(*args, "--home", self.home, "--api-key", self.key)

    def http(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def events(self) -> int:
        with self.embedded() as client:
            return client.deployment.ledger.log.size()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, faces: Path, two_face_photo: Any
) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"corpus-{request.param}")
    with ExitStack() as cleanup:
        url = cleanup.enter_context(postgres_schema("xp_bad")) if request.param == "postgresql" else None
        init = init_deployment(root / "home", database_url=url, tenant="acme")
        photo = faces / "source" / "skimage_astronaut.png"
        with Client(init.api_key.secret, home=init.home) as first:
            key = first.keys.create(
                scopes="animate verify audit:read subjects:write consents:write keys:admin", name="corpus",
                rate_limit_per_minute=0,
            ).secret  # fmt: skip
        with Client(key, home=init.home) as admin:
            subject = admin.subjects.register("Eileen Collins", [photo]).id
            consent = admin.consents.grant(subject, evidence=b"Eileen consents (corpus)").id
        Image.fromarray(two_face_photo).save(root / "two.png")
        (root / "clip.m3u8").write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{faces / 'driving' / 'lp_d1_hist.mp4'}\n#EXT-X-ENDLIST\n"
        )
        Image.fromarray(np.full((256, 256, 3), 127, np.uint8)).save(root / "blank.png")
        (root / "deep.json").write_text("[" * 100_000)
        (root / "notes.txt").write_text("not a picture, not a video\n" * 40)
        (root / "consent.txt").write_text("I consent.\n")
        frames = [np.full((64, 64, 3), v % 255, np.uint8) for v in range(MAX_FRAMES + 24)]
        write_shown_clip(root / "long.mp4", frames)
        out_dir = root / "out"
        out_dir.mkdir()
        settings = Settings.resolve(home=init.home, max_driving_frames=MAX_FRAMES)
        app = create_app(settings, workers=1)
        with BackgroundServer(app) as live:
            previous = os.environ.get("XP_MAX_DRIVING_FRAMES")
            os.environ["XP_MAX_DRIVING_FRAMES"] = str(MAX_FRAMES)
            try:
                yield World(
                    root=root, home=init.home, url=live.url, key=key, subject=subject, consent=consent, photo=photo,
                    clip=faces / "driving" / "lp_d1_hist.mp4", long_clip=root / "long.mp4", two_faces=root / "two.png",
                    blank=root / "blank.png", text_file=root / "notes.txt", playlist=root / "clip.m3u8",
                    deep_json=root / "deep.json",
                    evidence=root / "consent.txt",
                    out_dir=out_dir,
                )  # fmt: skip
            finally:
                if previous is None:
                    os.environ.pop("XP_MAX_DRIVING_FRAMES", None)
                else:
                    os.environ["XP_MAX_DRIVING_FRAMES"] = previous


@dataclass(frozen=True)
class Case:
    name: str
    transport: str
    """embedded, remote, cli or http."""
    call: Callable[[World], object]
    error: type[XPError]
    events: int = 1
    """Audit events the refusal leaves: 1 once the request reached the gate, 0 when refused before any request."""
    output: str | None = None
    """The output file name the call asked for, which must not exist afterwards."""


def _sdk(transport: str, call: Callable[[Client, World], object]) -> Callable[[World], object]:
    def run(world: World) -> object:
        with world.embedded() if transport == "embedded" else world.remote() as client:
            return call(client, world)

    return run


def _animate(**kwargs: Any) -> Callable[[Client, World], object]:
    def call(client: Client, world: World) -> object:
        arguments: dict[str, Any] = {"subject": world.subject, "out": world.out(), "template": "blink"}
        arguments.update({k: (v(world) if callable(v) else v) for k, v in kwargs.items()})
        source = arguments.pop("source", world.photo)
        return client.animate(source, **arguments)

    return call


NAN, HUGE_INT = float("nan"), 2**31
NAIVE = datetime(2031, 1, 1)  # no timezone
LONG_NAME = "n" * 201


# Refused by the server's own schema (FastAPI, before authentication) or routed nowhere (a path-like id): the
# request never reaches the gate, so it leaves no event; in process the same input reaches it and leaves one.
EDGE_REFUSED = {
    "consent expiry without timezone", "revoke a path-like consent id", "key rate limit -1",
    "key rate limit over int32", "key name 201 characters", "audit consistency from -1", "audit witness garbage",
}  # fmt: skip


def sdk_cases() -> Iterator[Case]:
    for case in _sdk_cases():
        what = case.name.split(": ", 1)[1]
        yield Case(case.name, case.transport, case.call, case.error, 0, case.output) if (
            case.transport == "remote" and what in EDGE_REFUSED
        ) else case


def _sdk_cases() -> Iterator[Case]:
    both = ("embedded", "remote")
    for t in both:
        yield Case(f"{t}: subject name empty", t, _sdk(t, lambda c, w: c.subjects.register("", [w.photo])),
                   InvalidInputError)
        yield Case(f"{t}: subject name 201 characters", t,
                   _sdk(t, lambda c, w: c.subjects.register(LONG_NAME, [w.photo])), InvalidInputError)
        yield Case(f"{t}: subject name with NUL", t,
                   _sdk(t, lambda c, w: c.subjects.register("Eve\x00lyn", [w.photo])), InvalidInputError)
        yield Case(f"{t}: subject name with a right-to-left override", t,
                   _sdk(t, lambda c, w: c.subjects.register("Eve\u202elyn", [w.photo])), InvalidInputError)
        yield Case(f"{t}: subject photo without a face", t,
                   _sdk(t, lambda c, w: c.subjects.register("Blank", [w.blank])), NoFaceError)
        yield Case(f"{t}: consent scope root", t,
                   _sdk(t, lambda c, w: c.consents.grant(w.subject, evidence=b"x", scopes=["root"])),
                   InvalidInputError)
        yield Case(f"{t}: consent for tenant ../x", t,
                   _sdk(t, lambda c, w: c.consents.grant(w.subject, evidence=b"x", tenant="../x")),
                   InvalidInputError)
        yield Case(f"{t}: consent expiry without timezone", t,
                   _sdk(t, lambda c, w: c.consents.grant(w.subject, evidence=b"x", expires=NAIVE)),
                   InvalidInputError)
        yield Case(f"{t}: consent for an unknown subject", t,
                   _sdk(t, lambda c, w: c.consents.grant("sub_0123456789abcdef", evidence=b"x")), NotFoundError)
        yield Case(f"{t}: revoke a path-like consent id", t,
                   _sdk(t, lambda c, w: c.consents.revoke("../../etc/passwd")), NotFoundError)
        yield Case(f"{t}: key rate limit -1", t,
                   _sdk(t, lambda c, w: c.keys.create(scopes="verify", rate_limit_per_minute=-1)), InvalidInputError)
        yield Case(f"{t}: key rate limit over int32", t,
                   _sdk(t, lambda c, w: c.keys.create(scopes="verify", rate_limit_per_minute=HUGE_INT)),
                   InvalidInputError)
        yield Case(f"{t}: key for tenant ../x", t,
                   _sdk(t, lambda c, w: c.keys.create(tenant="../x", scopes="verify")), InvalidInputError)
        yield Case(f"{t}: key scope root", t, _sdk(t, lambda c, w: c.keys.create(scopes="root")), InvalidInputError)
        yield Case(f"{t}: key name 201 characters", t,
                   _sdk(t, lambda c, w: c.keys.create(scopes="verify", name=LONG_NAME)), InvalidInputError)
        yield Case(f"{t}: revoke an unknown key", t, _sdk(t, lambda c, w: c.keys.revoke("0123456789ab")),
                   NotFoundError)
        yield Case(f"{t}: audit show of a malformed id", t, _sdk(t, lambda c, w: c.audit.show("zzz")), NotFoundError)
        yield Case(f"{t}: audit consistency from -1", t, _sdk(t, lambda c, w: c.audit.consistency(-1)),
                   InvalidInputError)
        yield Case(f"{t}: audit witness garbage", t,
                   _sdk(t, lambda c, w: c.audit.verify(witnessed=["not a checkpoint note"])), InvalidInputError)
        yield Case(f"{t}: animate an unknown subject", t,
                   _sdk(t, _animate(subject="sub_0123456789abcdef")), NotFoundError, output="clip.mp4")
        yield Case(f"{t}: animate an unknown template", t, _sdk(t, _animate(template="cartwheel")), TemplateError,
                   events=0, output="clip.mp4")
        yield Case(f"{t}: animate a photo with two faces", t, _sdk(t, _animate(source=lambda w: w.two_faces)),
                   MultipleFacesError, output="clip.mp4")
        yield Case(f"{t}: animate a photo without a face", t, _sdk(t, _animate(source=lambda w: w.blank)),
                   NoFaceError, output="clip.mp4")
        yield Case(f"{t}: animate a driving video too long", t,
                   _sdk(t, _animate(template=None, driving=lambda w: w.long_clip)), VideoTooLongError,
                   output="clip.mp4")
        yield Case(f"{t}: verify a text file", t, _sdk(t, lambda c, w: c.verify(w.text_file)),
                   UnsupportedFormatError)
    e = "embedded"
    yield Case("embedded: a subject id of 100 characters", e, _sdk(e, lambda c, w: c.subjects.get("sub_" + "a" * 96)),
               NotFoundError)
    yield Case("embedded: audit query cursor overflowing", e,
               _sdk(e, lambda c, w: c.audit.query(cursor="YWZ0ZXI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5")), InvalidInputError)
    yield Case("embedded: consent scopes None", e,
               _sdk(e, lambda c, w: c.consents.grant(w.subject, evidence=b"x", scopes=None)),  # type: ignore[arg-type]
               InvalidInputError)
    yield Case("embedded: audit query page of 0", e, _sdk(e, lambda c, w: c.audit.query(limit=0)), InvalidInputError)
    yield Case("embedded: audit query since without timezone", e, _sdk(e, lambda c, w: c.audit.query(since=NAIVE)),
               InvalidInputError)
    yield Case("embedded: audit query subject with NUL", e,
               _sdk(e, lambda c, w: c.audit.query(subject="sub_\x00")), InvalidInputError)
    yield Case("embedded: abandoned older than -1 s", e,
               _sdk(e, lambda c, w: c.audit.abandoned(older_than=timedelta(seconds=-1))), InvalidInputError)
    yield Case("embedded: abandoned older than a million days", e,
               _sdk(e, lambda c, w: c.audit.abandoned(older_than=timedelta(days=10**6))), InvalidInputError)
    yield Case("embedded: consent purpose 'Political Ads!'", e,
               _sdk(e, lambda c, w: c.consents.grant(w.subject, evidence=b"x", purposes=["Political Ads!"])),
               InvalidInputError)
    yield Case("embedded: consent evidence empty", e, _sdk(e, lambda c, w: c.consents.grant(w.subject, evidence=b"")),
               InvalidInputError)
    yield Case("embedded: consent evidence missing", e,
               _sdk(e, lambda c, w: c.consents.grant(w.subject, evidence=w.root / "gone.pdf")), InvalidInputError)
    yield Case("embedded: revoke with a NUL reason", e,
               _sdk(e, lambda c, w: c.consents.revoke(w.consent, reason="\x00")), InvalidInputError)
    yield Case("embedded: subject photo is a text file", e,
               _sdk(e, lambda c, w: c.subjects.register("Notes", [w.text_file])), UnreadableImageError)
    yield Case("embedded: animate out is a folder", e, _sdk(e, _animate(out=lambda w: w.out_dir)), InvalidInputError)
    yield Case("embedded: animate out is the source photo", e, _sdk(e, _animate(out=lambda w: w.photo)),
               InvalidInputError)
    yield Case("embedded: animate out is the driving video", e,
               _sdk(e, _animate(template=None, driving=lambda w: w.clip, out=lambda w: w.clip)), InvalidInputError)
    yield Case("embedded: animate out is .txt", e, _sdk(e, _animate(out=lambda w: w.out("clip.txt"))),
               InvalidInputError, output="clip.txt")
    yield Case("embedded: animate a missing driving video", e,
               _sdk(e, _animate(template=None, driving=lambda w: w.root / "gone.mp4")), InvalidInputError,
               output="clip.mp4")
    yield Case("embedded: animate a text file as driving video", e,
               _sdk(e, _animate(template=None, driving=lambda w: w.text_file)), UnreadableVideoError,
               output="clip.mp4")
    yield Case("embedded: animate with both a video and a template", e, _sdk(e, _animate(driving=lambda w: w.clip)),
               InvalidInputError, output="clip.mp4")
    yield Case("embedded: animate a purpose with spaces", e, _sdk(e, _animate(purpose="for ads")), InvalidInputError,
               output="clip.mp4")
    yield Case("embedded: animate float pixels", e, _sdk(e, _animate(source=np.zeros((64, 64, 3)))),
               InvalidInputError, output="clip.mp4")
    yield Case("embedded: animate a template path /etc/passwd", e, _sdk(e, _animate(template="/etc/passwd")),
               TemplateError, events=0, output="clip.mp4")
    yield Case("embedded: options max_side 0", e, _sdk(e, _animate(options=lambda w: AnimateOptions(max_side=0))),
               InvalidInputError, events=0, output="clip.mp4")
    yield Case("embedded: options crf 999", e, _sdk(e, _animate(options=lambda w: AnimateOptions(crf=999))),
               InvalidInputError, events=0, output="clip.mp4")
    yield Case("embedded: options expression scale -1e308", e,
               _sdk(e, _animate(options=lambda w: AnimateOptions(expression_scale=-1e308))), InvalidInputError,
               events=0, output="clip.mp4")
    yield Case("embedded: options pose scale NaN", e,
               _sdk(e, _animate(options=lambda w: AnimateOptions(pose_scale=NAN))), InvalidInputError, events=0,
               output="clip.mp4")


def cli_cases() -> Iterator[Case]:
    def cli(*args: object, error: type[XPError], events: int = 1, output: str | None = None, name: str) -> Case:
        return Case(f"cli: {name}", "cli", lambda w: w.cli(*[a(w) if callable(a) else a for a in args]), error,
                    events, output)  # fmt: skip

    out = lambda w: w.out()  # noqa: E731
    base = ("animate", "--source", lambda w: w.photo, "--subject", lambda w: w.subject, "--out", out)
    yield cli(*base, "--template", "blink", "--max-side", "0", error=InvalidInputError, events=0, output="clip.mp4",
              name="--max-side 0")
    yield cli(*base, "--template", "blink", "--max-side", "-5", error=InvalidInputError, events=0,
              output="clip.mp4", name="--max-side -5")
    yield cli(*base, "--template", "blink", "--expression-scale", "nan", error=InvalidInputError, events=0,
              output="clip.mp4", name="--expression-scale nan")
    yield cli(*base, "--template", "blink", "--pose-scale", "inf", error=InvalidInputError, events=0,
              output="clip.mp4", name="--pose-scale inf")
    yield cli(*base, "--template", "cartwheel", error=TemplateError, events=0, output="clip.mp4",
              name="unknown template")
    yield cli(*base, "--driving", lambda w: w.root / "gone.mp4", error=InvalidInputError, output="clip.mp4",
              name="missing driving video")
    yield cli("animate", "--source", lambda w: w.photo, "--subject", lambda w: w.subject, "--out",
              lambda w: w.out_dir, "--template", "blink", error=InvalidInputError, name="--out is a folder")
    yield cli("consents", "grant", "--subject", lambda w: w.subject, "--evidence", lambda w: w.evidence,
              "--expires", "99999999999d", error=InvalidInputError, events=0, name="--expires overflowing")
    yield cli("consents", "grant", "--subject", lambda w: w.subject, "--evidence", lambda w: w.evidence,
              "--scope", "root", error=InvalidInputError, name="consent --scope root")
    yield cli("keys", "create", "--scopes", "verify", "--rate-limit", str(2**40), error=InvalidInputError,
              events=0, name="--rate-limit over int32")
    yield cli("keys", "create", "--scopes", "verify", "--expires", "99999999999d", error=InvalidInputError,
              events=0, name="key --expires overflowing")
    yield cli("keys", "create", "--scopes", "verify", "--tenant", "../x", error=InvalidInputError,
              name="--tenant ../x")
    yield cli("audit", "abandoned", "--older-than", "99999999999d", error=InvalidInputError, events=0,
              name="--older-than overflowing")
    yield cli("audit", "show", "zzz", error=NotFoundError, name="audit show of a malformed id")
    yield cli("subjects", "show", "sub_0123456789abcdef", error=NotFoundError, name="unknown subject")
    yield cli("subjects", "register", "--name", LONG_NAME, "--photo", lambda w: w.photo, error=InvalidInputError,
              name="subject name 201 characters")
    yield cli("verify", lambda w: w.text_file, error=UnsupportedFormatError, name="verify a text file")


def http_cases() -> Iterator[Case]:
    def http(method: str, path: str, error: type[XPError], *, name: str, events: int = 1, **kwargs: Any) -> Case:
        def call(world: World) -> httpx.Response:
            files = kwargs.get("files")
            opened = {k: (n, Path(p(world)).read_bytes(), t) for k, (n, p, t) in files.items()} if files else None
            data = {k: (v(world) if callable(v) else v) for k, v in kwargs.get("data", {}).items()}
            return world.http(method, path, files=opened, data=data or None, params=kwargs.get("params"),
                              json=kwargs.get("json"), headers=kwargs.get("headers", {}))  # fmt: skip

        return Case(f"http: {name}", "http", call, error, events)

    photo = {"source": ("photo.png", lambda w: w.photo, "image/png")}
    yield http("POST", "/v1/animations", TemplateError, name="template=/etc/passwd", files=photo,
               data={"subject": lambda w: w.subject, "template": "/etc/passwd"})
    yield http("POST", "/v1/animations", InvalidInputError, name="options max_side -1", files=photo,
               data={"subject": lambda w: w.subject, "template": "blink", "options": '{"max_side": -1}'})
    yield http("POST", "/v1/verifications", UnsupportedFormatError, name="verify a text upload",
               files={"video": ("notes.mp4", lambda w: w.text_file, "video/mp4")})
    yield http("GET", "/v1/subjects/sub_0123456789abcdef", NotFoundError, name="unknown subject")
    yield http("GET", "/v1/audit/generations/0123456789abcdef", NotFoundError, name="unknown generation")
    yield http("GET", "/v1/subjects/sub_" + "a" * 96, NotFoundError, name="a subject id of 100 characters")
    yield http("POST", "/v1/animations", TemplateError, name="template JSON nested 100 000 deep", files={
        **photo, "template_json": ("t.json", lambda w: w.deep_json, "application/json")},
        data={"subject": lambda w: w.subject})
    yield http("POST", "/v1/animations", UnreadableVideoError, name="an HLS playlist as driving video", files={
        **photo, "driving": ("clip.m3u8", lambda w: w.playlist, "application/vnd.apple.mpegurl")},
        data={"subject": lambda w: w.subject})
    yield http("GET", "/v1/audit/events", InvalidInputError, name="page of 0", params={"limit": 0}, events=0)
    yield http("POST", "/v1/keys", InvalidInputError, name="rate limit -1", events=0,
               json={"scopes": ["verify"], "rate_limit_per_minute": -1})


CASES = [*sdk_cases(), *cli_cases(), *http_cases()]


def _leftovers(world: World) -> set[str]:
    files = {str(p.relative_to(world.root)) for p in world.out_dir.rglob("*")}
    work = world.home / "work"
    return files | ({str(p.relative_to(world.root)) for p in work.rglob("*")} if work.is_dir() else set())


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert {case.transport for case in CASES} == {"embedded", "remote", "cli", "http"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(world: World, case: Case) -> None:
    photo_before = world.photo.read_bytes()
    left_before = _leftovers(world)
    before = world.events()
    raised: type[XPError] | None = None
    outcome: object = None
    try:
        outcome = case.call(world)
    except XPError as exc:
        raised = type(exc)
    if case.transport == "cli":
        assert outcome.code == case.error.exit_code, f"exit {outcome.code}: {outcome.stderr}"  # type: ignore[attr-defined]
        assert outcome.stdout == "" and outcome.stderr.startswith("error: ")  # type: ignore[attr-defined]
        assert len(outcome.stderr.strip().splitlines()) == 1  # type: ignore[attr-defined]
    elif case.transport == "http":
        assert isinstance(outcome, httpx.Response)
        body = outcome.json()
        assert outcome.status_code in (status_for(case.error("x")), 422) and outcome.status_code < 500, body
        assert issubclass(error_class(body["type"]), case.error), body
    else:
        assert raised is not None and issubclass(raised, case.error), f"raised {raised}, wanted {case.error}"
    assert world.events() == before + case.events, "audit events left by the refusal"
    if case.output is not None:
        assert not world.out(case.output).exists()
    assert _leftovers(world) == left_before, "a refused request left files behind"
    assert world.photo.read_bytes() == photo_before
    with world.embedded() as client:
        client.audit.verify()


def test_face_errors_are_face_errors() -> None:
    """Exit 3 is what a script branches on for 'fix the photo': several faces are not a face mismatch."""
    assert issubclass(MultipleFacesError, FaceError) and MultipleFacesError.exit_code == 3
