"""An API key (or a token, a password) sent in a URL never reaches the server's access log in clear: the log of a
live server is captured while a client sends its key in the query string and in the path."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from xp_sdk import init_deployment
from xp_sdk.config import Settings
from xp_sdk.server.access_log import ACCESS_LOGGER, scrub_request_target
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer

KEY = "xp_0123456789ab_" + "A" * 21 + "-_" + "b" * 20


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Lines]]:
    made = init_deployment(tmp_path_factory.mktemp("access-log") / "home", tenant="logs")
    captured = Lines()
    with BackgroundServer(create_app(Settings.resolve(home=made.home)), log_level="info") as live:
        logging.getLogger(ACCESS_LOGGER).addHandler(captured)
        try:
            yield live.url, made.api_key.secret, captured
        finally:
            logging.getLogger(ACCESS_LOGGER).removeHandler(captured)


@pytest.mark.parametrize(
    "target",
    [
        "/v1/audit/events?api_key={key}",
        "/v1/audit/events?limit=5&api_key={key}&type=generation.completed",
        "/v1/audit/events?q={key}",
        "/v1/audit/events?{key}",
        "/v1/audit/events?token=opaque-token-1234&password=hunter2-pw&key=k3y-value",
        "/v1/subjects/{key}",
        "/v1/audit/events?Api_Key={encoded}",
        "/v1/audit/events?x={encoded}",
    ],
)
def test_a_key_in_the_url_is_not_in_the_access_log(served: tuple[str, str, Lines], target: str) -> None:
    url, key, captured = served
    encoded = key.replace("_", "%5F")
    before = len(captured.lines)
    with httpx.Client(base_url=url) as http:
        status = http.get(target.format(key=key, encoded=encoded), headers={"Authorization": f"Bearer {key}"})
    assert status.status_code < 500
    lines = captured.lines[before:]
    assert lines, "the server logged no access line (is the access log on?)"
    text = "\n".join(lines)
    for secret in (key, encoded, key.split("_")[2], "opaque-token-1234", "hunter2-pw", "k3y-value"):
        assert secret not in text, text
    assert "***" in text
    assert "GET /v1/" in text and f" {status.status_code}" in text  # the rest of the line is kept


@pytest.mark.parametrize(
    ("target", "scrubbed"),
    [
        (f"/v1/audit/events?api_key={KEY}", "/v1/audit/events?api_key=***"),
        (f"/v1/audit/events?limit=5&q={KEY}&type=x", "/v1/audit/events?limit=5&q=***&type=x"),
        ("/v1/x?TOKEN=a&Password=b&keep=c", "/v1/x?TOKEN=***&Password=***&keep=c"),
        (f"/v1/subjects/{KEY}/consents", "/v1/subjects/***/consents"),
        (f"/v1/x?{KEY}", "/v1/x?***"),
        ("/v1/audit/events?limit=5&type=generation.completed", "/v1/audit/events?limit=5&type=generation.completed"),
        ("/healthz", "/healthz"),
    ],
)
def test_scrub_request_target(target: str, scrubbed: str) -> None:
    assert scrub_request_target(target) == scrubbed
