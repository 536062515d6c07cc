"""The HTTP API itself: its schema, typed error bodies, upload limits, jobs and idempotent job creation."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from xp_sdk.server.limits import MiB

from .conftest import Deployed


def _http(deployed: Deployed, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or deployed.animator_key}"}
    return httpx.Client(base_url=deployed.url, headers=headers, timeout=60)


def test_the_openapi_schema_lists_every_route(deployed: Deployed) -> None:
    schema = httpx.get(f"{deployed.url}/openapi.json").json()
    routes = {(path, method) for path, methods in schema["paths"].items() for method in methods}
    assert routes >= {
        ("/v1/animations", "post"),
        ("/v1/animations/{job_id}", "get"),
        ("/v1/animations/{job_id}", "delete"),
        ("/v1/animations/{job_id}/events", "get"),
        ("/v1/animations/{job_id}/output", "get"),
        ("/v1/verifications", "post"),
        ("/v1/audit/events", "get"),
        ("/v1/audit/generations/{generation_id}", "get"),
        ("/v1/audit/verify", "post"),
        ("/v1/audit/checkpoints", "get"),
        ("/v1/audit/checkpoints", "post"),
        ("/v1/subjects", "post"),
        ("/v1/subjects", "get"),
        ("/v1/subjects/{subject_id}", "get"),
        ("/v1/consents", "post"),
        ("/v1/consents", "get"),
        ("/v1/consents/{consent_id}/revoke", "post"),
        ("/v1/keys", "post"),
        ("/v1/keys", "get"),
        ("/v1/keys/{key_id}/revoke", "post"),
        ("/healthz", "get"),
    }
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "AnimationJobView" in schema["components"]["schemas"]


def test_errors_are_typed_bodies_with_the_right_status(deployed: Deployed) -> None:
    anonymous = httpx.get(f"{deployed.url}/v1/subjects")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["type"] == "AuthenticationError"
    with _http(deployed) as http:
        forbidden = http.get("/v1/keys")  # the animator has no keys:admin
        missing = http.get("/v1/animations/job_00000000000000000000")
        nowhere = http.get("/v1/no-such-thing")
        invalid = http.get("/v1/audit/events", params={"limit": "many"})
    assert forbidden.status_code == 403
    body = forbidden.json()
    assert body["type"] == "PermissionDeniedError" and body["error"] == "permission_denied"
    assert [r["code"] for r in body["reasons"]] == ["missing_scope"] and len(body["decision_id"]) == 32
    assert missing.status_code == 404 and missing.json()["type"] == "NotFoundError"
    assert nowhere.status_code == 404 and nowhere.json()["type"] == "NotFoundError"
    assert invalid.status_code == 422 and invalid.json()["type"] == "InvalidInputError"
    for response in (anonymous, forbidden, missing, nowhere, invalid):
        assert "Traceback" not in response.text and str(deployed.home) not in response.text


def _raw_post(url: str, path: str, key: str, body_size: int, chunks: Any) -> tuple[int, int]:
    """POST ``body_size`` declared bytes from ``chunks`` until the server answers; (status, bytes sent)."""
    parts = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=xx\r\nContent-Length: {body_size}\r\n\r\n"
    )
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(head.encode())
        for chunk in chunks:
            if select.select([conn], [], [], 0)[0]:
                break  # the server has answered: stop sending
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        conn.settimeout(30)
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), sent


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(deployed: Deployed) -> None:
    started = time.monotonic()
    status, sent = _raw_post(deployed.url, "/v1/verifications", deployed.animator_key, 300 * MiB, iter(()))
    assert status == 413 and sent == 0
    assert time.monotonic() - started < 5


def test_a_file_over_its_limit_is_stopped_while_it_streams(deployed: Deployed) -> None:
    """A 60 MiB "photo" in a request whose total is within the subjects cap: the 20 MiB photo limit stops it."""
    total = 60 * MiB
    preamble = b'--xx\r\nContent-Disposition: form-data; name="photos"; filename="huge.jpg"\r\n\r\n'

    def body() -> Any:
        yield preamble
        block = b"\xff" * (256 * 1024)
        for _ in range((total - len(preamble)) // len(block)):
            yield block

    status, sent = _raw_post(deployed.url, "/v1/subjects", deployed.admin_key, total, body())
    assert status == 413
    assert sent < 40 * MiB, f"the server read {sent / MiB:.0f} MiB before refusing"
    assert list((deployed.home / "server" / "uploads").iterdir()) == []  # the partial upload is gone


def test_a_chunked_json_body_over_its_limit_is_a_413(deployed: Deployed) -> None:
    def body() -> Any:
        yield b'{"scopes": "verify", "name": "'
        for _ in range(3 * 16):
            yield b"x" * 65536
        yield b'"}'

    with _http(deployed, deployed.admin_key) as http:
        refused = http.post("/v1/keys", content=body(), headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    assert refused.json()["type"] == "InvalidInputError" and refused.json()["error"] == "payload_too_large"


def _start_job(http: httpx.Client, deployed: Deployed, key: str | None = None, **fields: str) -> httpx.Response:
    with deployed.astronaut.open("rb") as photo, deployed.clip.open("rb") as clip:
        return http.post(
            "/v1/animations",
            data={"subject": deployed.eileen, "out_name": "job.mp4", **fields},
            files={"source": (deployed.astronaut.name, photo, "image/png"), "driving": (deployed.clip.name, clip)},
            headers={"Idempotency-Key": key} if key else {},
        )


def _wait(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/v1/animations/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_job_has_status_progress_a_stream_and_an_output(deployed: Deployed) -> None:
    with _http(deployed) as http:
        created = _start_job(http, deployed)
        assert created.status_code == 202
        job = created.json()
        assert created.headers["location"] == f"/v1/animations/{job['id']}"
        assert job["status"] in ("queued", "running") and job["output_url"] is None
        with http.stream("GET", f"/v1/animations/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("application/x-ndjson")
            seen = [json.loads(line) for line in stream.iter_lines() if line.strip()]
        done = _wait(http, job["id"])
        output = http.get(done["output_url"])
    assert [s["version"] for s in seen] == sorted({s["version"] for s in seen})
    assert seen[-1]["status"] == "succeeded" and seen[-1]["progress"]["done"] == 16
    assert done["progress"]["stage"] == "generate" and done["progress"]["total"] == 16
    assert done["progress"]["fps"] > 0
    result = done["result"]
    assert result["output"] == "job.mp4" and result["generation_id"] == job["generation_id"]
    assert output.status_code == 200 and output.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(output.content).hexdigest() == result["output_sha256"] == output.headers["x-content-sha256"]
    # The server keeps it under its home, named by the generation, and only that.
    kept = deployed.home / "server" / "outputs" / job["generation_id"] / "job.mp4"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == result["output_sha256"]


def test_another_tenant_cannot_see_a_job(deployed: Deployed) -> None:
    stranger = deployed.admin.keys.create(tenant="globex", scopes="animate verify", name="stranger").secret
    with _http(deployed) as http:
        job = _start_job(http, deployed).json()
        with _http(deployed, stranger) as other:
            assert other.get(f"/v1/animations/{job['id']}").status_code == 404
            assert other.get(f"/v1/animations/{job['id']}/output").status_code == 404
            assert other.delete(f"/v1/animations/{job['id']}").status_code == 404
        assert _wait(http, job["id"])["status"] == "succeeded"


def test_the_same_idempotency_key_returns_the_same_job_and_one_generation(deployed: Deployed) -> None:
    key = "retry-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:16]
    with _http(deployed) as http:
        first = _start_job(http, deployed, key)
        again = _start_job(http, deployed, key)
        different = _start_job(http, deployed, key, purpose="advertising")
        job = _wait(http, first.json()["id"])
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert different.status_code == 409 and different.json()["type"] == "ConflictError"
    assert job["status"] == "succeeded"
    tenant_events = deployed.admin.audit.query(type="generation.requested", limit=1000).events
    assert [e.generation_id for e in tenant_events].count(job["generation_id"]) == 1
    assert deployed.admin.audit.query(generation_id=job["generation_id"]).events[-1].type == "generation.completed"
    outputs = deployed.home / "server" / "outputs"
    assert all(any(folder.iterdir()) for folder in outputs.iterdir())  # the replays left no empty output folders


def test_a_job_that_is_refused_fails_with_the_typed_error(deployed: Deployed) -> None:
    with _http(deployed) as http:
        with deployed.woman.open("rb") as photo:
            created = http.post(
                "/v1/animations",
                data={"subject": deployed.eileen, "template": "smile", "out_name": "refused.mp4"},
                files={"source": (deployed.woman.name, photo, "image/jpeg")},
            )
        job = _wait(http, created.json()["id"])
        no_output = http.get(f"/v1/animations/{job['id']}/output")
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["type"] == "FaceMismatchError" and job["error"]["reasons"][0]["code"] == "face_mismatch"
    assert no_output.status_code == 409 and no_output.json()["type"] == "ConflictError"
    assert not (deployed.home / "server" / "outputs" / job["generation_id"]).exists()


def test_a_running_job_can_be_cancelled_and_its_generation_is_logged_failed(deployed: Deployed) -> None:
    with _http(deployed) as http:
        job = _start_job(http, deployed).json()
        deadline = time.monotonic() + 60
        while http.get(f"/v1/animations/{job['id']}").json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancelled = http.delete(f"/v1/animations/{job['id']}")
        final = _wait(http, job["id"])
    assert cancelled.status_code == 200
    if final["status"] == "succeeded":
        pytest.skip("the 16-frame job finished before the cancel reached it")
    assert final["status"] == "cancelled" and final["error"]["error"] == "cancelled"
    events = deployed.admin.audit.query(generation_id=job["generation_id"]).events
    assert [e.type for e in events] in ([], ["generation.requested", "generation.failed"])
    assert not any((deployed.home / "server" / "outputs" / job["generation_id"]).glob("*"))


def test_health_needs_no_key(deployed: Deployed) -> None:
    health = httpx.get(f"{deployed.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_uploads_leave_nothing_behind(deployed: Deployed) -> None:
    with _http(deployed) as http, deployed.clip.open("rb") as clip:
        verified = http.post("/v1/verifications", files={"video": ("clip.mp4", clip)}, params={"still": "true"})
    assert verified.status_code == 200
    body = verified.json()
    assert body["path"] == "clip.mp4" and body["still"].startswith("data:image/jpeg;base64,")
    assert list((deployed.home / "server" / "uploads").iterdir()) == []
