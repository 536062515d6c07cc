"""Each error class declares its wire format once (``http_status``, ``wire_fields`` / ``from_wire`` in
``xp_sdk.errors``), and both ends derive from it: the server's handlers answer with that status and body, the remote
client raises the very class again with every field, and the OpenAPI document declares every such status."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient

import xp_sdk
import xp_sdk.remote
from tests.cli.helpers import xp
from xp_sdk import errors
from xp_sdk.remote import HttpOperations
from xp_sdk.server.errors import install
from xp_sdk.server.routes import api

PUBLIC = [getattr(errors, name) for name in errors.__all__]

SAMPLES: dict[str, Any] = {
    "reasons": (("consent_required", "none on record", "forbid-no-consent"), ("face_mismatch", "0.03 < 0.5", None)),
    "decision_id": "d" * 32,
    "count": 3,
    "missing": ("unet", "vae"),
    "code": "c2pa_sign_failed",
    "retry_after": 12.5,
    "seq": 41,
    "status_code": 502,
}
"""A value, unlike its default, for each constructor argument an error class takes beside its message."""


def sample(cls: type[errors.XPError]) -> errors.XPError:
    extra = [name for name in inspect.signature(cls).parameters if name != "message"]
    assert set(extra) <= set(SAMPLES), f"{cls.__name__} takes {extra}: give SAMPLES a value for each"
    return cls(f"{cls.__name__} raised on the server", **{name: SAMPLES[name] for name in extra})


@pytest.fixture(scope="module")
def raising() -> Iterator[tuple[HttpOperations, list[errors.XPError]]]:
    """A remote client whose every request reaches the server's error handlers, which answer for the error last
    put in the list."""
    app = FastAPI()
    install(app, {})
    to_raise: list[errors.XPError] = []

    @app.get("/v1/subjects")
    def refuse() -> None:
        raise to_raise[-1]

    server = TestClient(app, raise_server_exceptions=False)

    def relay(request: httpx.Request) -> httpx.Response:
        answer = server.request(request.method, request.url.path, headers=dict(request.headers))
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    ops = HttpOperations("http://xp.test", transport=httpx.MockTransport(relay), max_retries=0)
    yield ops, to_raise
    ops.close()


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_every_public_error_comes_back_from_the_server_as_itself(
    raising: tuple[HttpOperations, list[errors.XPError]], cls: type[errors.XPError]
) -> None:
    ops, to_raise = raising
    original = sample(cls)
    to_raise.append(original)
    with pytest.raises(errors.XPError) as caught:
        ops.subjects("xp_key")
    rebuilt = caught.value
    assert type(rebuilt) is cls
    assert (rebuilt.code, rebuilt.exit_code) == (original.code, cls.exit_code)
    assert rebuilt.message == original.message or (cls is errors.AuditStoreError and _redacted(rebuilt.message))
    assert rebuilt.wire_fields() == original.wire_fields()
    for name in set(inspect.signature(cls).parameters) - {"message"}:
        assert getattr(rebuilt, name) == getattr(original, name), name


def _redacted(message: str) -> bool:
    """The server's word for a store it cannot reach: the store's own message names the database's host and name,
    and stays in the server's log under the reference given."""
    return message.startswith("the audit database is unavailable") and "reference" in message


def test_the_server_answers_each_error_with_its_declared_status_and_body() -> None:
    app = FastAPI()
    install(app, {})
    to_raise: list[errors.XPError] = []

    @app.get("/fail")
    def fail() -> None:
        raise to_raise[-1]

    server = TestClient(app, raise_server_exceptions=False)
    for cls in PUBLIC:
        to_raise.append(sample(cls))
        answer = server.get("/fail")
        assert answer.status_code == cls.http_status, cls.__name__
        body = answer.json()
        if cls is errors.AuditStoreError:
            assert _redacted(body.pop("message"))
            assert body == {name: value for name, value in to_raise[-1].to_dict().items() if name != "message"}
        else:
            assert body == {**to_raise[-1].to_dict(), "type": cls.__name__}


def test_every_status_an_error_answers_with_is_declared_on_every_route() -> None:
    document = get_openapi(title="xp-sdk", version="test", routes=api.routes)
    client_side = (errors.APIConnectionError, errors.APIResponseError)
    answered = {str(cls.http_status) for cls in PUBLIC if not issubclass(cls, client_side)} | {"413", "422"}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            declared = {status for status, answer in operation["responses"].items() if "schemas/Error" in str(answer)}
            assert declared == answered, (method, path)


def test_the_network_errors_are_public_with_their_exit_codes() -> None:
    for name, exit_code in (("APIConnectionError", 21), ("APITimeoutError", 21), ("APIResponseError", 22)):
        cls = getattr(errors, name)
        assert name in errors.__all__ and name in xp_sdk.__all__, name
        assert getattr(xp_sdk, name) is cls and getattr(xp_sdk.remote, name) is cls, name
        assert cls.exit_code == exit_code


def test_xp_help_lists_every_exit_code() -> None:
    shown = xp("--help")
    assert shown.code == 0
    listed = {int(line.split()[0]) for line in shown.stdout.splitlines() if line.strip()[:2].strip().isdigit()}
    assert {cls.exit_code for cls in PUBLIC} <= listed
    assert "21  connection_error" in shown.stdout and "22  bad_response" in shown.stdout
