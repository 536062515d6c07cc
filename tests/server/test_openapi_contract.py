"""The OpenAPI document is an honest contract: every status the server can answer a route with is declared there,
with the schema its body has, and nothing else is.

What the server can answer is derived from the code, not listed by hand: every ``XPError`` subclass loaded once the
app is built (its ``http_status``), FastAPI's 422 for a request it cannot read, the body limit's 413 and the 500 of
an unexpected failure. The live half provokes each of these statuses but the 500 of a bug (400, 401, 403, 404, 409,
413, 422, 429, and the 503 by refusing the server's connections to its own PostgreSQL database) and checks both the
status and the body against what that route declares. tests/server/test_schemathesis.py checks the same of ~900
generated requests."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

import xp_sdk.errors as public
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.errors import XPError
from xp_sdk.server.app import create_app
from xp_sdk.server.errors import CLIENT_SIDE, public_class
from xp_sdk.server.schemas import ERROR_RESPONSES
from xp_sdk.server.serve import BackgroundServer

POSTGRES_URL = os.environ.get("XP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
SUCCESS = {"200", "201", "202"}


def _subclasses(cls: type[XPError]) -> Iterator[type[XPError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _answerable() -> dict[int, set[str]]:
    """Status → the ``type`` its bodies can name, from every error class loaded (the app is built first, so the
    server's own modules are among them), besides what FastAPI and the server add themselves."""
    answers: dict[int, set[str]] = {422: {"InvalidInputError"}, 413: {"InvalidInputError"}, 500: {"XPError"}}
    for cls in _subclasses(XPError):
        if issubclass(cls, CLIENT_SIDE) or cls.__module__ == "xp_sdk.server.jobs":
            continue  # the network's errors are the client's; a job's cancellation is its state, not an answer
        answers.setdefault(cls.http_status, set()).add(public_class(cls).__name__)
    return answers


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = init_deployment(tmp_path_factory.mktemp("contract") / "home", tenant="acme").home
    app = create_app(Settings.resolve(home=home))
    return app.openapi()


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def _schema_name(operation: dict[str, Any], status: int) -> str:
    return str(operation["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]).split("/")[-1]


def test_every_api_route_declares_every_status_the_server_can_answer_and_no_other(openapi: dict[str, Any]) -> None:
    answerable = _answerable()
    expected = {str(status) for status in answerable}
    for method, path, operation in _operations(openapi):
        if not path.startswith("/v1/"):
            continue
        declared = set(operation["responses"])
        successes = declared & SUCCESS
        assert len(successes) == 1, f"{method} {path}: success statuses {sorted(successes)}"
        assert declared - successes == expected, (
            f"{method} {path}: undeclared {sorted(expected - declared)}, declared but never answered "
            f"{sorted(declared - successes - expected)}"
        )
        for status in answerable:
            assert _schema_name(operation, status) == f"Error{status}", f"{method} {path} {status}"


def test_each_error_schema_names_exactly_the_classes_that_answer_with_its_status(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for status, types in _answerable().items():
        schema = schemas[f"Error{status}"]
        named = schema["properties"]["type"]
        assert set(named.get("enum") or [named["const"]]) == types, status
        assert set(schema["required"]) >= {"error", "type", "message"}
        # The exported classes a client imports are all there is to name (server-only classes name their base).
        assert all(isinstance(getattr(public, name, None), type) for name in types)


def test_the_routes_outside_the_api_declare_what_any_request_can_meet(openapi: dict[str, Any]) -> None:
    outside = {(method, path): operation for method, path, operation in _operations(openapi) if path[:4] != "/v1/"}
    assert set(outside) == {("GET", "/healthz"), ("GET", "/readyz")}
    assert set(outside["GET", "/healthz"]["responses"]) == {"200", "413", "500"}
    assert set(outside["GET", "/readyz"]["responses"]) == {"200", "413", "500", "503"}
    assert _schema_name(outside["GET", "/readyz"], 503) == "Readiness"


# -- the live half -----------------------------------------------------------------------------------------------


@dataclass
class Live:
    url: str
    admin_key: str
    database: str
    postgres: Engine
    openapi: dict[str, Any]

    def refuse_connections(self, refused: bool) -> None:
        with self.postgres.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {str(not refused).lower()}'))
            if refused:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": self.database},
                )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    postgres = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with postgres.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        postgres.dispose()
        if os.environ.get("XP_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable ({type(exc).__name__}); set XP_TEST_POSTGRES_URL")
    database = f"xp_contract_{secrets.token_hex(4)}"
    with postgres.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)
    try:
        init = init_deployment(tmp_path_factory.mktemp("contract-live") / "home", tenant="acme", database_url=url)
        with BackgroundServer(create_app(Settings.resolve(home=init.home, database_url=url))) as server:
            schema = httpx.get(f"{server.url}/openapi.json").json()
            yield Live(server.url, init.api_key.secret, database, postgres, schema)
    finally:
        with postgres.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        postgres.dispose()


def _check(live: Live, response: httpx.Response, operation: tuple[str, str], status: int) -> None:
    method, path = operation
    declared = live.openapi["paths"][path][method.lower()]
    assert response.status_code == status, (operation, response.status_code, response.text[:300])
    assert str(status) in declared["responses"], f"{method} {path} answered {status}, which it does not declare"
    model = ERROR_RESPONSES[status]["model"]
    assert _schema_name(declared, status) == model.__name__
    model.model_validate(response.json())  # the body is what the declared schema says


def _declared_too_large(live: Live, path: str, size: int) -> httpx.Response:
    """The answer to a POST that declares ``size`` bytes, read before sending any of them (the server refuses it
    from its headers and closes; a client still sending would see the connection reset instead)."""
    parts = urlsplit(live.url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {live.admin_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(head.encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return httpx.Response(int(status_line.split()[1]), content=body)


def test_each_status_a_request_can_provoke_is_declared_with_its_body(live: Live, tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {live.admin_key}"}
    with Client(live.admin_key, base_url=live.url) as client:
        reader = client.keys.create(scopes="verify", name="contract reader", rate_limit_per_minute=1).secret
        spare = client.keys.create(scopes="verify", name="revoked twice").info.id
        client.keys.revoke(spare)
    not_a_photo = tmp_path / "photo.png"
    not_a_photo.write_bytes(b"not a picture at all")
    with httpx.Client(base_url=live.url, timeout=60) as http:
        _check(live, http.get("/v1/subjects"), ("GET", "/v1/subjects"), 401)
        _check(live, http.get("/v1/keys", headers={"Authorization": f"Bearer {reader}"}), ("GET", "/v1/keys"), 403)
        _check(live, http.get("/v1/keys", headers={"Authorization": f"Bearer {reader}"}), ("GET", "/v1/keys"), 429)
        _check(live, http.get("/v1/subjects/sub_0000", headers=admin), ("GET", "/v1/subjects/{subject_id}"), 404)
        _check(live, http.get("/v1/audit/events?limit=many", headers=admin), ("GET", "/v1/audit/events"), 422)
        with not_a_photo.open("rb") as photo:
            registered = http.post(
                "/v1/subjects", headers=admin, data={"name": "Nobody"}, files={"photos": ("photo.png", photo)}
            )
        _check(live, registered, ("POST", "/v1/subjects"), 400)
        _check(live, _declared_too_large(live, "/v1/keys", 2**21), ("POST", "/v1/keys"), 413)
        again = http.post(f"/v1/keys/{spare}/revoke", headers=admin, json={"reason": "twice"})
        _check(live, again, ("POST", "/v1/keys/{key_id}/revoke"), 409)
        live.refuse_connections(True)
        try:
            unavailable = http.get("/v1/subjects", headers=admin)
            _check(live, unavailable, ("GET", "/v1/subjects"), 503)
            # Refused before the key could be checked: nothing about the database reaches the caller.
            assert unavailable.json()["type"] == "AuditStoreError"
            for private in (live.database, "127.0.0.1", "5432", "psycopg"):
                assert private not in unavailable.text
        finally:
            live.refuse_connections(False)
