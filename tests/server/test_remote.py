"""One interface, two transports: the README's code, results and refusals are the same with ``base_url``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import xp_sdk
from tests.test_readme import python_examples
from xp_sdk import (
    AuthenticationError,
    ConsentRequiredError,
    FaceMismatchError,
    PermissionDeniedError,
    RateLimitedError,
)
from xp_sdk.engine.images import load_image
from xp_sdk.errors import NoFaceError, XPError
from xp_sdk.remote import HttpOperations

from .conftest import Deployed


def test_readme_examples_run_unchanged_against_the_server(
    deployed: Deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "photo.jpg", quality=92)
    subject_id = deployed.admin.subjects.register("Eileen Collins (README)", [tmp_path / "photo.jpg"]).id
    deployed.admin.consents.grant(subject_id, evidence=b"Eileen Collins agrees to be animated (README test)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XP_BASE_URL", deployed.url)
    monkeypatch.setenv("XP_API_KEY", deployed.admin_key)
    # No deployment on this side: had any example run in process, it would have failed to open this.
    monkeypatch.setenv("XP_HOME", str(tmp_path / "no-deployment-here"))

    printed = []
    for example in python_examples():
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(example, "README.md", "exec"), {"subject_id": subject_id})
        printed.append(buffer.getvalue())

    animated, verified, audited = printed
    generation_id = animated.split()[0]
    assert re.fullmatch(r"[0-9a-f]{16}", generation_id), animated
    assert animated.split()[1] == "clip.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "photo.jpg"]  # no partial download left
    assert verified.splitlines()[0] == "trusted"
    assert verified.splitlines()[1].startswith(f"True {generation_id} ")
    assert f"id='{generation_id}'" in verified and "status='completed'" in verified
    assert "file_matches_record=True" in verified
    assert "generation.completed" in audited and generation_id in audited
    assert not (tmp_path / "no-deployment-here").exists()


def test_animate_reports_progress_and_the_download_is_the_audited_file(deployed: Deployed) -> None:
    seen: list[tuple[str, int, int | None]] = []
    out = deployed.out("with progress.mp4")
    with deployed.client() as client:
        result = client.animate(
            deployed.astronaut, subject=deployed.eileen, driving=deployed.clip, out=out,
            progress=lambda p: seen.append((p.stage, p.done, p.total)),
        )  # fmt: skip
    assert result.output == out and result.frames == 16
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result.output_sha256
    assert seen and seen[-1] == ("generate", 16, 16)
    # Advancing, never repeated: the reference window's "analyse" stage, then "generate".
    where = [(("analyse", "generate").index(stage), done) for stage, done, _ in seen]
    assert where == sorted(set(where))
    record = deployed.admin.audit.show(result.generation_id)
    assert [e.type for e in record.events] == ["generation.requested", "generation.completed"]
    assert record.generation.output_sha256 == result.output_sha256
    assert record.events[1].data["output_name"] == "with progress.mp4"  # the caller's name, as in local mode


def test_an_array_photo_is_audited_by_its_pixels_as_in_local_mode(deployed: Deployed) -> None:
    pixels = load_image(deployed.astronaut)
    out = deployed.out("array.mp4")
    with deployed.client() as client:
        result = client.animate(pixels, subject=deployed.eileen, template="smile", out=out)
    requested = deployed.admin.audit.show(result.generation_id).generation
    assert requested.source_sha256 == hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result.output_sha256


def _refusal(call: Any) -> XPError:
    with pytest.raises(XPError) as caught:
        call()
    return caught.value


def _same_refusal(local: XPError, remote: XPError) -> None:
    assert type(remote) is type(local)
    assert remote.code == local.code
    strip = re.compile(r"\b[0-9a-f]{32}\b")  # decision ids differ between the two requests
    assert strip.sub("<id>", remote.message) == strip.sub("<id>", local.message)
    assert getattr(remote, "reasons", None) == getattr(local, "reasons", None)


@pytest.mark.parametrize(
    ("case", "expected", "reason"),
    [
        ("no consent", ConsentRequiredError, "consent_required"),
        ("another person's photo", FaceMismatchError, "face_mismatch"),
        ("a key without the animate scope", PermissionDeniedError, "missing_scope"),
    ],
)
def test_refusals_round_trip_as_the_same_exception(
    deployed: Deployed, case: str, expected: type[XPError], reason: str
) -> None:
    key = deployed.animator_key
    photo, subject = deployed.astronaut, deployed.eileen
    if case == "no consent":
        photo, subject = deployed.woman, deployed.woman_subject
    elif case == "another person's photo":
        photo = deployed.woman
    else:
        key = deployed.admin.keys.create(scopes="verify", name="verify only").secret
    out = deployed.out(f"refused-{reason}.mp4")
    with deployed.client(key) as remote, deployed.local(key) as local:
        over_http = _refusal(lambda: remote.animate(photo, subject=subject, driving=deployed.clip, out=out))
        in_process = _refusal(lambda: local.animate(photo, subject=subject, driving=deployed.clip, out=out))
    assert isinstance(over_http, expected)
    assert reason in [code for code, _, _ in over_http.reasons]  # type: ignore[attr-defined]
    _same_refusal(in_process, over_http)
    assert not out.exists()
    denied = deployed.admin.audit.query(type="generation.denied", limit=1000).events
    logged = {e.data["decision"]["decision_id"] for e in denied}
    assert over_http.decision_id in logged and in_process.decision_id in logged  # type: ignore[attr-defined]


def test_a_revoked_key_is_refused_as_in_local_mode(deployed: Deployed) -> None:
    created = deployed.admin.keys.create(scopes="verify audit:read", name="soon revoked")
    with deployed.client(created.secret) as client:
        assert client.audit.query(limit=1).events is not None
        revoked = deployed.admin.keys.revoke(created.info.id, reason="leaked")
        assert revoked.revoked_at is not None
        over_http = _refusal(lambda: client.audit.query(limit=1))
    with deployed.local(created.secret) as local:
        in_process = _refusal(lambda: local.audit.query(limit=1))
    assert isinstance(over_http, AuthenticationError) and "revoked" in over_http.message
    _same_refusal(in_process, over_http)


def test_a_rate_limited_key_gets_retry_after_without_waiting_for_it(deployed: Deployed) -> None:
    key = deployed.admin.keys.create(scopes="audit:read", name="one a minute", rate_limit_per_minute=1).secret
    with deployed.client(key) as client:
        client.audit.query(limit=1)
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as caught:
            client.audit.query(limit=1)
    # A minute is longer than the client will sleep through, so it raises at once with the server's figure.
    assert time.monotonic() - started < 5
    assert 30 < caught.value.retry_after <= 60
    assert caught.value.code == "rate_limited"


def test_a_missing_key_is_an_authentication_error(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XP_API_KEY", raising=False)
    with xp_sdk.Client(base_url=deployed.url) as client, pytest.raises(AuthenticationError, match="no API key"):
        client.subjects.list()  # verify alone is open without one: it answers the public verdict


def test_error_messages_name_the_callers_file_not_the_servers(deployed: Deployed, tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank wall.png"
    Image.fromarray(np.full((320, 320, 3), 200, np.uint8)).save(blank)
    with deployed.client(deployed.admin_key) as remote, deployed.local(deployed.admin_key) as local:
        over_http = _refusal(lambda: remote.subjects.register("Nobody", [blank]))
        in_process = _refusal(lambda: local.subjects.register("Nobody", [blank]))
    assert isinstance(over_http, NoFaceError)
    assert str(blank) in over_http.message and str(deployed.home) not in over_http.message
    _same_refusal(in_process, over_http)


def test_parallel_animations_are_separately_audited(deployed: Deployed) -> None:
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def animate(name: str, client: xp_sdk.Client) -> None:
        try:
            results[name] = client.animate(
                deployed.astronaut, subject=deployed.eileen, driving=deployed.clip, out=deployed.out(name)
            )
        except BaseException as exc:
            errors.append(exc)

    with deployed.client() as shared:  # one Client, shared across threads
        threads = [threading.Thread(target=animate, args=(f"parallel-{n}.mp4", shared)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    ids = {r.generation_id for r in results.values()}
    assert len(ids) == 3
    for name, result in results.items():
        assert hashlib.sha256(deployed.out(name).read_bytes()).hexdigest() == result.output_sha256
        events = deployed.admin.audit.query(generation_id=result.generation_id).events
        assert [e.type for e in events] == ["generation.requested", "generation.completed"]
        assert events[1].data["output_sha256"] == result.output_sha256


def test_verifying_an_unmarked_video_says_so(deployed: Deployed) -> None:
    with deployed.client() as remote, deployed.local() as local:
        over_http = remote.verify(deployed.clip)
        in_process = local.verify(deployed.clip)
    assert over_http.path == str(deployed.clip)
    assert over_http.c2pa.state.value == "absent" and not over_http.watermark.detected
    assert over_http.generation is None and over_http.generation_id is None
    assert over_http.model_dump(exclude={"watermark": {"seconds"}}) == in_process.model_dump(
        exclude={"watermark": {"seconds"}}
    )


class _LoseFirstJobResponse(httpx.BaseTransport):
    """Sends every request to the real server, but loses the answer to the first job creation on its way back:
    the server has started the job, the client cannot know it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.creations: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/animations":
            self.creations.append(request)
            if len(self.creations) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset before the response arrived")
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_retried_job_creation_starts_one_generation(deployed: Deployed) -> None:
    requested_before = len(deployed.admin.audit.query(type="generation.requested", limit=1000).events)
    transport = _LoseFirstJobResponse()
    ops = HttpOperations(deployed.url, transport=transport, sleep=lambda s: None)
    try:
        result = ops.animate(
            deployed.animator_key, deployed.astronaut, subject=deployed.eileen, template="smile",
            out=deployed.out("retried.mp4"),
        )  # fmt: skip
    finally:
        ops.close()
    assert len(transport.creations) == 2
    assert len({r.headers["idempotency-key"] for r in transport.creations}) == 1
    requested = deployed.admin.audit.query(type="generation.requested", limit=1000).events
    assert len(requested) == requested_before + 1 and requested[-1].generation_id == result.generation_id
    assert hashlib.sha256(deployed.out("retried.mp4").read_bytes()).hexdigest() == result.output_sha256
