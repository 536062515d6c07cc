"""Red team, 2026-12-08: the attacks an attacker holding one tenant's key (``rival``), or no key at all, tries on
the surfaces added that day (Redis jobs and limits, anonymous verification, consent kinds, health and docs, the
SDK's paging and errors). Two real ``xp serve`` replicas on PostgreSQL and Redis; every test tries the attack for
real and asserts that it fails, except the xfail(strict=True) ones, which document what still works."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import socket
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis

from tests.postgres import postgres_schema
from tests.server.test_replicas import REDIS_URL, SHORT_CLIP, Replica, _require_redis, _start
from xp_sdk import AsyncClient, Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.server.app import create_app
from xp_sdk.server.limits import Limits
from xp_sdk.server.redis_jobs import clear
from xp_sdk.server.serve import BackgroundServer

ALL_BUT_ADMIN = "animate verify audit:read subjects:write consents:write"
FINISHED = ("succeeded", "failed", "cancelled")
JOB_TIMEOUT_S = 400.0  # a bound against a hang on a busy machine, not a measurement


@dataclass
class Tenants:
    home: Path
    prefix: str
    database_url: str
    replicas: list[Replica]
    admin_key: str  # the operator's
    acme_key: str  # tenant acme, no keys:admin
    rival_key: str  # tenant rival, no keys:admin: the attacker
    eileen: str  # acme's consented subject
    rival_subject: str
    astronaut: Path
    faces: Path
    acme_job: dict[str, Any]
    acme_idempotency: str

    def http(self, n: int, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.replicas[n].url, headers=headers, timeout=120)


def _animation_form(tenants: Tenants, subject: str) -> dict[str, Any]:
    return {
        "data": {"subject": subject, "out_name": "clip.mp4"},
        "files": {
            "source": ("astronaut.png", tenants.astronaut.read_bytes(), "image/png"),
            "driving": (SHORT_CLIP, (tenants.faces / "driving" / SHORT_CLIP).read_bytes(), "video/mp4"),
        },
    }


def _wait_finished(tenants: Tenants, key: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        with tenants.http(0, key) as http:
            job: dict[str, Any] = http.get(f"/v1/animations/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Tenants]:
    _require_redis()
    root = tmp_path_factory.mktemp("redteam")
    prefix = f"xp-redteam-{secrets.token_hex(5)}"
    with postgres_schema("xp_redteam") as database_url:
        init = init_deployment(root / "home", tenant="acme", database_url=database_url)
        astronaut = faces / "source" / "skimage_astronaut.png"
        with Client(init.api_key.secret, home=init.home) as first:
            admin_key = first.keys.create(
                scopes=ALL_BUT_ADMIN + " keys:admin", name="admin", rate_limit_per_minute=6000
            ).secret
        with Client(admin_key, home=init.home) as admin:
            acme_key = admin.keys.create(scopes=ALL_BUT_ADMIN, name="acme", rate_limit_per_minute=6000).secret
            rival_key = admin.keys.create(
                tenant="rival", scopes=ALL_BUT_ADMIN, name="rival", rate_limit_per_minute=6000
            ).secret
        with Client(acme_key, home=init.home) as acme:
            eileen = acme.subjects.register("Eileen Collins", [astronaut]).id
            acme.consents.grant(eileen, evidence=b"Eileen Collins consents (red team)")
        with Client(rival_key, home=init.home) as rival:
            rival_subject = rival.subjects.register("Rival's own subject", [astronaut]).id
        replicas = [_start(init.home, prefix, root / f"replica-{n}.log") for n in range(2)]
        try:
            tenants = Tenants(
                init.home, prefix, database_url, replicas, admin_key, acme_key, rival_key, eileen, rival_subject,
                astronaut, faces, {}, "acme-" + secrets.token_hex(8),
            )  # fmt: skip
            with tenants.http(0, acme_key) as http:
                started = http.post(
                    "/v1/animations",
                    headers={"Idempotency-Key": tenants.acme_idempotency},
                    **_animation_form(tenants, eileen),
                )
            assert started.status_code == 202, started.text
            tenants.acme_job = started.json()
            yield tenants
        finally:
            for replica in replicas:
                if replica.alive():
                    replica.process.send_signal(signal.SIGINT)
                    try:
                        replica.process.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        replica.process.kill()
                        replica.process.wait()
            clear(REDIS_URL, prefix)


# -- jobs across tenants and replicas ------------------------------------------------------------------------------


def test_rival_cannot_poll_watch_cancel_or_download_acme_job_on_either_replica(tenants: Tenants) -> None:
    job_id = tenants.acme_job["id"]
    for n in (0, 1):
        with tenants.http(n, tenants.rival_key) as http:
            answers = [
                http.get(f"/v1/animations/{job_id}"),
                http.get(f"/v1/animations/{job_id}/events"),
                http.get(f"/v1/animations/{job_id}/output"),
                http.delete(f"/v1/animations/{job_id}"),
            ]
        assert [a.status_code for a in answers] == [404] * 4, [a.text for a in answers]
        assert all(tenants.eileen not in a.text and "acme" not in a.text for a in answers)
    finished = _wait_finished(tenants, tenants.acme_key, job_id)
    assert finished["status"] == "succeeded", finished  # the rival's DELETE cancelled nothing
    for n in (0, 1):
        with tenants.http(n, tenants.rival_key) as http:
            assert http.get(f"/v1/animations/{job_id}/output").status_code == 404
        with tenants.http(n, tenants.acme_key) as http:
            assert http.get(f"/v1/animations/{job_id}/output").status_code == 200


def test_rival_replaying_acme_idempotency_key_gets_no_acme_job_and_does_not_block_acme(tenants: Tenants) -> None:
    job_id = tenants.acme_job["id"]
    with tenants.http(1, tenants.rival_key) as http:
        # The same key and the very same request (acme's subject) as acme sent, through the other replica.
        replay = http.post(
            "/v1/animations",
            headers={"Idempotency-Key": tenants.acme_idempotency},
            **_animation_form(tenants, tenants.eileen),
        )
    assert replay.status_code == 202 and replay.json()["id"] != job_id, replay.text
    assert replay.headers.get("Idempotent-Replayed") is None
    rival_job = _wait_finished(tenants, tenants.rival_key, replay.json()["id"])
    assert rival_job["status"] == "failed"  # acme's subject is not the rival's to animate
    with tenants.http(1, tenants.acme_key) as http:
        again = http.post(
            "/v1/animations",
            headers={"Idempotency-Key": tenants.acme_idempotency},
            **_animation_form(tenants, tenants.eileen),
        )
    assert again.json()["id"] == job_id and again.headers.get("Idempotent-Replayed") == "true", again.text


def test_a_key_cannot_dodge_its_limit_by_spelling_its_header_differently_across_replicas(tenants: Tenants) -> None:
    with Client(tenants.admin_key, home=tenants.home) as admin:
        limited = admin.keys.create(tenant="rival", scopes="audit:read", name="five", rate_limit_per_minute=5).secret
    spellings = [f"Bearer {limited}", f"bearer {limited}", f"BEARER   {limited}", f"bEaReR {limited}"]
    codes = []
    for n in range(12):
        with httpx.Client(base_url=tenants.replicas[n % 2].url, timeout=60) as http:
            response = http.get("/v1/audit/checkpoints", headers={"Authorization": spellings[n % len(spellings)]})
        codes.append(response.status_code)
    assert sum(code == 200 for code in codes) == 5 and set(codes) == {200, 429}, codes


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def test_no_api_key_secret_is_left_in_redis_once_a_job_has_ended(tenants: Tenants) -> None:
    """While a job waits or runs, RQ's job hash holds the caller's API key (pickled: the Redis must be private and
    writable by the deployment alone, as docs/server.md says); once it ends, succeeded or failed, nothing of it is
    left. The rival's job (test_rival_replaying_...) failed; acme's succeeded."""
    _wait_finished(tenants, tenants.acme_key, tenants.acme_job["id"])
    client = redis.Redis.from_url(REDIS_URL)
    try:
        found = []
        for key in client.scan_iter(match="*", count=1000):
            name = _raw(key).decode(errors="replace")
            if tenants.prefix not in name and "rq:" not in name:
                continue
            kind = _raw(client.type(key)).decode()
            values: list[bytes] = []
            if kind == "string":
                values = [_raw(client.get(key) or b"")]
            elif kind == "hash":
                values = [_raw(v) for v in client.hgetall(key).values()]
            for value in values:
                with contextlib.suppress(zlib.error):
                    value = zlib.decompress(value)  # RQ compresses a job's pickled call
                if any(secret.encode() in value for secret in (tenants.acme_key, tenants.rival_key)):
                    found.append(name)
    finally:
        client.close()
    assert not found, found


# -- consents -------------------------------------------------------------------------------------------------------


def test_a_plain_grant_cannot_be_made_verified_video_by_its_fields(tenants: Tenants) -> None:
    video = (tenants.faces / "driving" / SHORT_CLIP).read_bytes()
    with tenants.http(0, tenants.rival_key) as http:
        for extra in (
            {"kind": "verified-video"},
            {"evidence_kind": "consent-video"},
            {"evidence_kind": "verified-video"},
            {"checks": json.dumps({"face": {"passed": True}})},
            {"challenge": "ch_" + "0" * 24},
        ):
            response = http.post(
                "/v1/consents",
                data={"subject": tenants.rival_subject, **extra},
                files={"evidence": ("consent.mp4", video, "video/mp4")},
            )
            if response.status_code == 201:
                assert response.json()["kind"] == "attested", (extra, response.text)
            else:
                assert response.status_code in (400, 422), (extra, response.text)
        listed = http.get("/v1/consents", params={"subject": tenants.rival_subject}).json()["data"]
    assert listed and {c["kind"] for c in listed} == {"attested"}


def test_rival_cannot_answer_acme_challenge_nor_learn_acme_consents(tenants: Tenants) -> None:
    with tenants.http(1, tenants.acme_key) as http:
        issued = http.post("/v1/consents/challenges", json={"subject": tenants.eileen})
    assert issued.status_code == 201, issued.text
    challenge = issued.json()["id"]
    video = (tenants.faces / "driving" / SHORT_CLIP).read_bytes()
    with tenants.http(0, tenants.rival_key) as http:
        answers = [
            # acme's challenge on the rival's own subject, then on acme's subject
            http.post(
                "/v1/consents/video",
                data={"subject": tenants.rival_subject, "challenge": challenge},
                files={"video": ("me.mp4", video, "video/mp4")},
            ),
            http.post(
                "/v1/consents/video",
                data={"subject": tenants.eileen, "challenge": challenge},
                files={"video": ("me.mp4", video, "video/mp4")},
            ),
            http.post("/v1/consents/challenges", json={"subject": tenants.eileen}),
            http.get("/v1/consents", params={"subject": tenants.eileen}),
        ]
        listed = http.get("/v1/consents").json()["data"]
    assert [a.status_code for a in answers] == [404] * 4, [a.text for a in answers]
    assert all(challenge not in a.text.replace(f"'{challenge}'", "") for a in answers[2:])
    assert all(c["subject_id"] != tenants.eileen for c in listed)


# -- anonymous verification ----------------------------------------------------------------------------------------


def test_anonymous_verification_of_acme_clip_says_the_verdict_and_nothing_of_acme(
    tenants: Tenants, tmp_path: Path
) -> None:
    job = _wait_finished(tenants, tenants.acme_key, tenants.acme_job["id"])
    with tenants.http(0, tenants.acme_key) as http:
        clip = http.get(f"/v1/animations/{job['id']}/output").content
    with Client(tenants.admin_key, home=tenants.home) as admin:
        keys = [k.id for k in admin.keys.list(tenant="acme")]
    private = [tenants.eileen, "acme", "Eileen", tenants.acme_job["generation_id"], *keys, str(tenants.home)]
    for n in (0, 1):
        with tenants.http(n, None) as http:
            answer = http.post("/v1/verifications", files={"video": ("clip.mp4", clip, "video/mp4")})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["verdict"] == "ai-generated" and set(body) <= {
            "verdict", "statement", "deployment", "c2pa", "watermark_present", "generated_on"
        }, body  # fmt: skip
        assert not [p for p in private if p in answer.text or p in str(answer.headers)], answer.text
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    with Client(base_url=tenants.replicas[1].url) as anonymous:
        public = anonymous.verify(path)
    assert not [p for p in private if p in public.model_dump_json()]


def test_an_address_that_is_no_trusted_proxy_cannot_spoof_x_forwarded_for_past_its_limit(tmp_path: Path) -> None:
    init = init_deployment(tmp_path / "home", tenant="acme")
    app = create_app(Settings.resolve(home=init.home), workers=1, limits=Limits(requests_per_minute_per_client=3))
    codes = []
    with BackgroundServer(app) as live:
        # From 127.0.0.2: a peer uvicorn does not trust with forwarded headers (it trusts 127.0.0.1 by default).
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=live.url, transport=transport, timeout=60) as http:
            for n in range(6):
                response = http.post(
                    "/v1/verifications",
                    headers={"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"},
                    files={"video": ("x.mp4", b"not a video", "video/mp4")},
                )
                codes.append(response.status_code)
    assert codes[3:] == [429] * 3, codes


def test_a_loopback_client_cannot_spoof_x_forwarded_for_past_its_limit(tmp_path: Path) -> None:
    init = init_deployment(tmp_path / "home", tenant="acme")
    app = create_app(Settings.resolve(home=init.home), workers=1, limits=Limits(requests_per_minute_per_client=3))
    codes = []
    with BackgroundServer(app) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        for n in range(6):
            response = http.post(
                "/v1/verifications",
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                files={"video": ("x.mp4", b"not a video", "video/mp4")},
            )
            codes.append(response.status_code)
    assert codes[3:] == [429] * 3, codes


def test_a_proxy_the_operator_names_is_believed(tmp_path: Path) -> None:
    """The other side of the default: behind a proxy named with --forwarded-allow-ips, clients are told apart."""
    init = init_deployment(tmp_path / "home", tenant="acme")
    app = create_app(Settings.resolve(home=init.home), workers=1, limits=Limits(requests_per_minute_per_client=3))
    codes = []
    with BackgroundServer(app, forwarded_allow_ips="127.0.0.1") as live, httpx.Client(base_url=live.url) as http:
        for n in range(6):
            response = http.post(
                "/v1/verifications",
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                files={"video": ("x.mp4", b"not a video", "video/mp4")},
            )
            codes.append(response.status_code)
    assert 429 not in codes, codes


# -- health, readiness, docs ---------------------------------------------------------------------------------------


def test_health_readiness_and_docs_reveal_nothing_private(tenants: Tenants) -> None:
    private = [str(tenants.home), tenants.prefix, REDIS_URL, "6379", "5432", "postgresql", tenants.database_url,
               "acme", "rival", tenants.eileen]  # fmt: skip
    for n in (0, 1):
        with tenants.http(n, None) as http:
            for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"):
                response = http.get(path)
                assert response.status_code == 200, (path, response.text[:300])
                leaked = [p for p in private if p in response.text or p in str(response.headers)]
                assert not leaked, (path, leaked)
            assert set(http.get("/readyz").json()["checks"]) == {"database", "redis"}


# -- the SDK: errors and paging -----------------------------------------------------------------------------------


def test_a_server_side_error_names_no_server_path_nor_secret_in_either_client(tenants: Tenants, tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"this is no video at all")
    private = [str(tenants.home), tenants.rival_key, tenants.acme_key, "/tmp/", tenants.database_url]
    messages = []
    with Client(tenants.rival_key, base_url=tenants.replicas[0].url) as rival:
        for attempt in (
            lambda: rival.verify(fake),
            lambda: rival.consents.grant_by_video(tenants.rival_subject, video=fake, challenge="ch_" + "1" * 24),
            lambda: rival.with_options(max_retries=0).animate(
                fake, subject=tenants.rival_subject, out=tmp_path / "o.mp4", driving=fake
            ),
        ):
            try:
                attempt()
            except Exception as exc:  # any error: its text is what is checked
                messages.append(str(exc))

    async def remote() -> None:
        async with AsyncClient(tenants.rival_key, base_url=tenants.replicas[1].url) as rival:
            try:
                await rival.with_options(timeout=60).verify(fake)
            except Exception as exc:
                messages.append(str(exc))

    anyio.run(remote)
    assert len(messages) >= 3, messages
    leaked = [(m, p) for m in messages for p in private if p in m.replace(str(tmp_path), "<mine>")]
    assert not leaked, leaked


def test_auto_paging_and_a_foreign_cursor_stay_in_the_callers_tenant(tenants: Tenants) -> None:
    with Client(tenants.acme_key, base_url=tenants.replicas[0].url) as acme:
        acme_page = acme.audit.query(limit=2)
        acme_cursor = acme_page.next_cursor
    with Client(tenants.rival_key, base_url=tenants.replicas[1].url) as rival:
        walked = list(rival.audit.query(limit=2))
        assert walked and {e.tenant_id for e in walked} <= {"rival", None}, {e.tenant_id for e in walked}
    if acme_cursor is not None:
        with tenants.http(1, tenants.rival_key) as http:
            page = http.get("/v1/audit/events", params={"cursor": acme_cursor, "limit": 100})
        assert page.status_code in (200, 400), page.text
        if page.status_code == 200:
            assert {e["tenant_id"] for e in page.json()["events"]} <= {"rival", None}

    async def walk() -> set[str | None]:
        async with AsyncClient(tenants.rival_key, base_url=tenants.replicas[0].url) as rival:
            return {e.tenant_id async for e in await rival.audit.query(limit=3)}

    assert anyio.run(walk) <= {"rival", None}


def test_anonymous_and_keyed_uploads_over_the_video_limit_are_refused_before_reading(tenants: Tenants) -> None:
    declared = 300 * 1024 * 1024  # over the video's 200 MiB and the form's overhead
    host, port = tenants.replicas[0].url.removeprefix("http://").split(":")
    for key in (None, tenants.rival_key):
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        head = (
            f"POST /v1/verifications HTTP/1.1\r\nHost: {host}\r\n{auth}"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=60) as conn:
            conn.sendall(head.encode() + b"x" * 1024)  # then nothing more: the answer must come without the rest
            received = b""
            while chunk := conn.recv(65536):  # the server closes the connection after its 413
                received += chunk
            answer = received.decode(errors="replace")
        assert answer.startswith("HTTP/1.1 413") and "payload_too_large" in answer, answer[:500]


def test_rival_cannot_learn_whether_a_video_is_another_tenants_consent_evidence(tenants: Tenants) -> None:
    # A clip no other test here gives the rival's tenant as evidence (its own use would rightly fail 'fresh').
    clip = tenants.faces / "driving" / "lp_d18.mp4"
    with Client(tenants.acme_key, base_url=tenants.replicas[0].url) as acme:
        acme.consents.grant(tenants.eileen, evidence=clip)  # acme's attested consent: this very video
    other = tenants.faces / "driving" / "lp_d5_hist.mp4"
    failed: dict[str, list[str]] = {}
    with tenants.http(1, tenants.rival_key) as http:
        for video in (clip, other):
            issued = http.post("/v1/consents/challenges", json={"subject": tenants.rival_subject}).json()["id"]
            refused = http.post(
                "/v1/consents/video",
                data={"subject": tenants.rival_subject, "challenge": issued},
                files={"video": ("me.mp4", video.read_bytes(), "video/mp4")},
            )
            assert refused.status_code in (400, 403), refused.text
            failed[video.name] = [reason["code"] for reason in refused.json()["reasons"]]
    assert ("fresh" in failed[clip.name]) == ("fresh" in failed[other.name]), failed


def test_a_rival_job_on_another_tenants_subject_fails_as_one_on_no_subject_at_all(tenants: Tenants) -> None:
    """The job's error must not tell the rival that acme's subject id exists (nor whose it is)."""
    made_up = tenants.eileen[:-4] + ("0000" if not tenants.eileen.endswith("0000") else "1111")
    errors = {}
    for subject in (tenants.eileen, made_up):
        with tenants.http(0, tenants.rival_key) as http:
            started = http.post("/v1/animations", **_animation_form(tenants, subject))
        assert started.status_code == 202, started.text
        job = _wait_finished(tenants, tenants.rival_key, started.json()["id"])
        assert job["status"] == "failed", job
        errors[subject] = job["error"]
    shown = {s: {**e, "message": e["message"].replace(s, "<subject>")} for s, e in errors.items()}
    assert shown[tenants.eileen] == shown[made_up], errors
    assert "acme" not in json.dumps(errors) and "Eileen" not in json.dumps(errors)
