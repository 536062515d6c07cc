"""A password in the database URL, in its user info or as a ``?password=`` parameter, is shown by no command and
named by no error: ``xp config show`` masks it, and a URL the real PostgreSQL server refuses is reported without
it."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.store import redact_url, scrub_url_secrets
from tests.cli.helpers import XP_VARIABLES, xp
from xp_sdk import Client
from xp_sdk.errors import AuditStoreError

SECRET = "S3cret-Pa55"
# The real server on 127.0.0.1:5432 refuses each of these (no such role, database or SSL); the password must not
# show however the URL carries it.
WRONG_URLS = [
    f"postgresql://xp_nobody:{SECRET}@127.0.0.1:5432/no_such_db",
    f"postgresql://xp_nobody@127.0.0.1:5432/no_such_db?password={SECRET}",
    f"postgresql://xp_nobody@127.0.0.1:5432/test?sslmode=require&sslpassword={SECRET}",
    f"postgresql://xp_nobody@127.0.0.1:5432/test?password={SECRET}&no_such_option=1",
    f"postgresql://xp_nobody@127.0.0.1:99999/test?password={SECRET}",
    "postgresql://xp_nobody@127.0.0.1:5432/no_such_db?password=S3cret%40Pa55",
    f"postgresql+psycopg://xp_nobody:{SECRET}@127.0.0.1:5432/test?password={SECRET}&sslmode=require",
]


@pytest.fixture(autouse=True)
def _no_xp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in XP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def leaks(text: str) -> bool:
    return any(piece in text for piece in (SECRET, "S3cret@Pa55", "S3cret%40Pa55", "S3cret", "Pa55"))


@pytest.mark.parametrize("url", WRONG_URLS)
def test_config_show_masks_the_password(tmp_path: Path, url: str) -> None:
    shown = xp("config", "show", "--home", tmp_path, "--database-url", url, "--json")
    assert "***" in shown.json()["database_url"]
    assert not leaks(shown.stdout + shown.stderr)
    human = xp("config", "show", "--home", tmp_path, "--database-url", url)
    assert human.code == 0 and not leaks(human.stdout + human.stderr)


@pytest.mark.parametrize("url", WRONG_URLS)
def test_init_with_a_wrong_url_names_no_password(tmp_path: Path, url: str) -> None:
    result = xp("init", "--home", tmp_path / "home", "--database-url", url)
    assert result.code == AuditStoreError.exit_code, result.stderr
    assert "cannot open the audit database" in result.stderr and "***" in result.stderr
    assert not leaks(result.stdout + result.stderr), result.stderr


@pytest.mark.parametrize("url", WRONG_URLS[:3])
def test_a_client_on_a_wrong_url_names_no_password(tmp_path: Path, url: str) -> None:
    made = xp("init", "--home", tmp_path / "home", "--json").json()
    with pytest.raises(AuditStoreError) as raised:
        Client(made["api_key"], home=made["home"], database_url=url)
    assert not leaks(str(raised.value)), raised.value


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://h:5432/db?sslmode=require&PassWord=a@b", "postgresql://h:5432/db?sslmode=require&PassWord=***"),
        ("postgresql://u:p@ss@h/db?sslpassword=x;token=y", "postgresql://u:***@h/db?sslpassword=***;token=***"),
        ("sqlite:////home/me/xp.db", "sqlite:////home/me/xp.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_removes_the_secrets_as_written_and_decoded() -> None:
    url = "postgresql://u:hunter2@h/db?password=pa%40ss%2Fword"
    message = 'password "hunter2" and "pa@ss/word" and "pa%40ss%2Fword" and host "ss/word"'
    scrubbed = scrub_url_secrets(message, url)
    assert "hunter2" not in scrubbed and "pa@ss" not in scrubbed and "pa%40" not in scrubbed
    assert "ss/word" not in scrubbed
