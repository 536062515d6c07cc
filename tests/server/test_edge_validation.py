"""Inputs that made the server answer 500 (found by the schemathesis run): each is a typed 4xx at the HTTP edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from audit import Checkpoint, LogSigningKey
from audit.checkpoint import sign_checkpoint

from .conftest import Deployed


def _http(deployed: Deployed) -> httpx.Client:
    return httpx.Client(base_url=deployed.url, headers={"Authorization": f"Bearer {deployed.admin_key}"}, timeout=120)


def _refused(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == error_type, response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/audit/abandoned", {"json": {"older_than_s": 1.4796393504984625e308}}),
        ("POST", "/v1/audit/abandoned", {"json": {"older_than_s": 4e9}}),
        ("POST", "/v1/audit/verify", {"json": {"witnessed": [""]}}),
        ("POST", "/v1/audit/verify", {"json": {"witnessed": ["\x05garbage\n"]}}),
        ("POST", "/v1/audit/verify", {"json": {"witnessed": ["xp-sdk\n1\nAAAA\n\n— nobody AAAA\n"]}}),
        ("GET", "/v1/audit/events", {"params": {"since": "2025-01-01T00:00:00"}}),
        ("GET", "/v1/audit/events", {"params": {"until": "2025-01-01T00:00:00"}}),
        ("GET", "/v1/audit/events", {"params": {"limit": str(2**70)}}),
        ("GET", "/v1/audit/events", {"params": {"limit": "0"}}),
        ("GET", "/v1/audit/consistency", {"params": {"old_size": str(2**70)}}),
        ("GET", "/v1/audit/consistency", {"params": {"old_size": "-1"}}),
        ("POST", "/v1/keys", {"json": {"scopes": "verify", "rate_limit_per_minute": 2**40}}),
        ("POST", "/v1/keys", {"json": {"scopes": "verify", "rate_limit_per_minute": -5}}),
        ("POST", "/v1/keys", {"json": {"scopes": "verify", "expires": "2030-01-01T00:00:00"}}),
        ("POST", "/v1/keys", {"json": {"scopes": "verify", "name": "n" * 201}}),
    ],
)
def test_out_of_range_or_malformed_fields_are_422(
    deployed: Deployed, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    with _http(deployed) as http:
        _refused(http.request(method, path, **kwargs), 422, "InvalidInputError")


def test_a_witnessed_checkpoint_from_another_log_is_the_callers_mistake(deployed: Deployed) -> None:
    other = sign_checkpoint(Checkpoint("another log", 1, bytes(32)), LogSigningKey.generate("another-log")).to_text()
    with _http(deployed) as http:
        foreign = http.post("/v1/audit/verify", json={"witnessed": [other]})
    _refused(foreign, 400, "InvalidInputError")
    assert "not a signed checkpoint note of this log" in foreign.json()["message"]


def test_a_witnessed_checkpoint_of_this_log_is_checked(deployed: Deployed) -> None:
    with _http(deployed) as http:
        mine = http.post("/v1/audit/checkpoints").json()["note"]
        witnessed = http.post("/v1/audit/verify", json={"witnessed": [mine]})
    assert witnessed.status_code == 200, witnessed.text
    assert witnessed.json()["witnessed"] == 1


def _verify(http: httpx.Client, name: str, content: bytes, **fields: str) -> httpx.Response:
    return http.post("/v1/verifications", files={"video": (name, content, "application/octet-stream")}, data=fields)


def _log_size(deployed: Deployed) -> int:
    with deployed.local(deployed.admin_key) as client:
        return client.deployment.ledger.log.size()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.mp4", lambda deployed, faces: b"hello, not a video"),
        ("noise.mp4", lambda deployed, faces: bytes(range(256)) * 40),
    ],
)
def test_a_file_that_is_not_a_verifiable_video_is_refused_by_type(
    deployed: Deployed, faces: Path, name: str, content: Any
) -> None:
    before = _log_size(deployed)
    with _http(deployed) as http:
        response = _verify(http, name, content(deployed, faces))
    assert response.status_code == 400, response.text
    assert response.json()["type"] in ("UnsupportedFormatError", "UnreadableVideoError"), response.text
    assert str(deployed.home) not in response.text and "/uploads/" not in response.text
    assert _log_size(deployed) == before + 1  # the service's refusal event


def test_trust_anchors_that_are_not_pem_are_refused(deployed: Deployed) -> None:
    clip = deployed.clip.read_bytes()
    with _http(deployed) as http:
        garbage = _verify(http, "clip.mp4", clip, trust_anchors="\u00e9\u00e9\u00e9 not a certificate")
        empty_pem = _verify(
            http, "clip.mp4", clip, trust_anchors="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"
        )
    _refused(garbage, 400, "InvalidInputError")
    _refused(empty_pem, 400, "InvalidInputError")
    assert "trust_anchors must be PEM CA certificates" in garbage.json()["message"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("expires", "2030-01-01T00:00:00", "must carry a timezone"),
        ("valid_from", "2026-01-01", "must carry a timezone"),
        ("expires", "next tuesday", "ISO 8601"),
    ],
)
def test_consent_dates_need_a_timezone(deployed: Deployed, field: str, value: str, says: str) -> None:
    with _http(deployed) as http:
        response = http.post(
            "/v1/consents",
            data={"subject": deployed.woman_subject, field: value},
            files={"evidence": ("statement.txt", b"I consent", "text/plain")},
        )
    _refused(response, 400, "InvalidInputError")
    assert says in response.json()["message"]


def test_the_openapi_declares_the_error_statuses(deployed: Deployed) -> None:
    schema = httpx.get(f"{deployed.url}/openapi.json").json()
    for path, methods in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in methods.items():
            declared = set(operation["responses"])
            assert {"400", "401", "403", "404", "422", "429"} <= declared, (method, path, declared)
            assert operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error400")
