"""The remote client's retries, against scripted transports: what is retried, how long it waits, what it raises."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import xp_sdk.errors as errors
from xp_sdk.remote import APIConnectionError, APIResponseError, APITimeoutError, HttpOperations, error_from_body
from xp_sdk.server.errors import error_body

KEY = "xp_0123456789ab_" + "k" * 43
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC).isoformat()
SUBJECT = {
    "id": "sub_1", "tenant_id": "acme", "name": "Eileen", "protected": False, "references": 1,
    "created_at": NOW, "created_by": None,
}  # fmt: skip
KEY_INFO = {
    "id": "0123456789ab", "tenant_id": "acme", "name": "", "scopes": ["verify"], "rate_limit_per_minute": 60,
    "created_at": NOW, "created_by": None, "expires_at": None, "revoked_at": None,
}  # fmt: skip
Handler = Callable[[httpx.Request], httpx.Response]


def _script(*steps: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler that answers each request with the next step (raising the exceptions)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = steps[min(len(seen), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step

    return handle, seen


def _ops(handler: Handler, sleeps: list[float], max_retries: int = 2) -> HttpOperations:
    return HttpOperations(
        "http://xp.test", transport=httpx.MockTransport(handler), max_retries=max_retries, sleep=sleeps.append
    )


def _store_down() -> httpx.Response:
    return httpx.Response(503, json=error_body(errors.AuditStoreError("the audit database is locked")))


def test_a_read_is_retried_through_two_503s_with_growing_backoff() -> None:
    handler, seen = _script(_store_down(), _store_down(), httpx.Response(200, json={"data": [SUBJECT]}))
    sleeps: list[float] = []
    subjects = _ops(handler, sleeps).subjects(KEY)
    assert [s.id for s in subjects] == ["sub_1"]
    assert len(seen) == 3 and all(r.headers["authorization"] == f"Bearer {KEY}" for r in seen)
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0  # 0.5 s doubling, up to 25% jitter off


def test_after_the_last_retry_the_servers_error_is_raised() -> None:
    handler, seen = _script(_store_down())
    sleeps: list[float] = []
    with pytest.raises(errors.AuditStoreError, match="locked"):
        _ops(handler, sleeps, max_retries=3).subjects(KEY)
    assert len(seen) == 4 and len(sleeps) == 3 and sleeps[2] <= 2.0


def test_429_waits_as_long_as_retry_after_says() -> None:
    limited = httpx.Response(
        429,
        headers={"Retry-After": "3"},
        json=error_body(errors.RateLimitedError("over the limit", retry_after=2.4)),
    )
    handler, seen = _script(limited, httpx.Response(200, json={"data": []}))
    sleeps: list[float] = []
    assert _ops(handler, sleeps).keys(KEY) == []
    assert sleeps == [3.0] and len(seen) == 2


def test_429_asking_for_longer_than_the_client_waits_is_raised_at_once() -> None:
    limited = httpx.Response(
        429, headers={"Retry-After": "58"}, json=error_body(errors.RateLimitedError("slow down", retry_after=57.3))
    )
    handler, seen = _script(limited)
    sleeps: list[float] = []
    with pytest.raises(errors.RateLimitedError) as caught:
        _ops(handler, sleeps).keys(KEY)
    assert caught.value.retry_after == 57.3 and sleeps == [] and len(seen) == 1


def test_an_unsafe_post_is_not_repeated_after_a_503() -> None:
    handler, seen = _script(_store_down(), httpx.Response(201, json={"info": KEY_INFO, "secret": KEY}))
    with pytest.raises(errors.AuditStoreError):
        _ops(handler, []).create_key(KEY, scopes="verify")
    assert len(seen) == 1


def test_an_unsafe_post_is_repeated_when_it_never_reached_the_server() -> None:
    handler, seen = _script(
        httpx.ConnectError("connection refused"), httpx.Response(201, json={"info": KEY_INFO, "secret": KEY})
    )
    created = _ops(handler, []).create_key(KEY, scopes="verify")
    assert created.secret == KEY and created.info.id == "0123456789ab" and len(seen) == 2


def test_an_unsafe_post_is_not_repeated_when_it_may_have_arrived() -> None:
    handler, seen = _script(httpx.ReadError("connection reset"), httpx.Response(201, json={}))
    with pytest.raises(APIConnectionError):
        _ops(handler, []).create_key(KEY, scopes="verify")
    assert len(seen) == 1


def test_reads_are_repeated_after_timeouts_then_raise_a_timeout() -> None:
    handler, seen = _script(httpx.ReadTimeout("slow"))
    sleeps: list[float] = []
    with pytest.raises(APITimeoutError):
        _ops(handler, sleeps).audit_checkpoints(KEY)
    assert len(seen) == 3 and len(sleeps) == 2


def test_job_creation_is_retried_with_the_same_idempotency_key(tmp_path: Path, faces: Path) -> None:
    job = {"id": "job_1", "status": "failed", "error": error_body(errors.ConsentRequiredError("no consent"))}
    handler, seen = _script(
        httpx.ReadError("reset after the body was sent"), _store_down(), httpx.Response(202, json=job)
    )
    with pytest.raises(errors.ConsentRequiredError):
        _ops(handler, []).animate(
            KEY, faces / "source" / "skimage_astronaut.png", subject="sub_1", template="smile", out=tmp_path / "a.mp4"
        )
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and keys.pop().startswith("xp-")
    # Each attempt carried the whole photo again (a retried upload is not a truncated one).
    photo = (faces / "source" / "skimage_astronaut.png").read_bytes()
    assert all(photo in r.read() for r in seen)
    assert list(tmp_path.iterdir()) == []


def test_a_proxy_error_page_is_an_api_response_error() -> None:
    handler, seen = _script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(APIResponseError) as caught:
        _ops(handler, [], max_retries=1).subjects(KEY)
    assert caught.value.status_code == 502 and "Bad Gateway" in caught.value.message and len(seen) == 2


@pytest.mark.parametrize(
    "original",
    [
        errors.ConsentRequiredError(
            "no consent", reasons=(("consent_required", "none on record", "forbid-no-consent"),), decision_id="d" * 32
        ),
        errors.FaceMismatchError("not her", reasons=(("face_mismatch", "0.03 < 0.5", None),), decision_id="e" * 32),
        errors.PermissionDeniedError("scope", reasons=(("missing_scope", "needs animate", "forbid-scope"),)),
        errors.PolicyDeniedError("protected", reasons=(("protected_person", "a protected person", "p1"),)),
        errors.RateLimitedError("slow down", retry_after=12.5),
        errors.AuditIntegrityError("event 41 was altered", seq=41),
        errors.MultipleFacesError("two faces", 2),
        errors.ProvenanceFailedError("signing failed", code="c2pa_sign_failed"),
        errors.AuthenticationError("API key 0123456789ab was revoked"),
        errors.NotFoundError("no subject sub_x"),
        errors.UnreadableVideoError("not a video"),
        errors.DiffusionWeightsMissingError("no weights", missing=("unet", "vae")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_error_body_comes_back_as_the_same_exception(original: errors.XPError) -> None:
    rebuilt = error_from_body(error_body(original), 400)
    assert type(rebuilt) is type(original)
    assert (rebuilt.code, rebuilt.message) == (original.code, original.message)
    for attribute in ("reasons", "decision_id", "retry_after", "seq", "count", "missing"):
        assert getattr(rebuilt, attribute, None) == getattr(original, attribute, None)


def test_a_server_only_error_comes_back_as_its_public_class_with_its_code() -> None:
    from xp_sdk.server.limits import UploadTooLargeError

    rebuilt = error_from_body(error_body(UploadTooLargeError("the file 'video' is too large")), 413)
    assert type(rebuilt) is errors.InvalidInputError and rebuilt.code == "payload_too_large"
