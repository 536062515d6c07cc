"""A garbage witness note is bad input on every transport: exit 2 from ``xp audit verify --witness``, HTTP 400
from ``POST /v1/audit/verify``, ``InvalidInputError`` from the SDK; never "log tampered" (exit 20, HTTP 500).
A real witness file still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from audit.checkpoint import Checkpoint, LogSigningKey, sign_checkpoint
from tests.cli.helpers import XP_VARIABLES, assert_error, xp
from xp_sdk import Client, init_deployment
from xp_sdk.config import Settings
from xp_sdk.errors import InvalidInputError
from xp_sdk.server.app import create_app
from xp_sdk.server.serve import BackgroundServer


@dataclass(frozen=True)
class Served:
    home: Path
    key: str
    url: str
    notes: list[str]
    """The log's own signed checkpoints."""
    foreign: str
    """A well-formed note over the log's latest root, signed by a key with the log key's name but not its material."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as patch:
        for name in XP_VARIABLES:
            patch.delenv(name, raising=False)
        made = init_deployment(tmp_path_factory.mktemp("witness") / "home", tenant="witness")
        with Client(made.api_key.secret, home=made.home) as client:
            notes = client.audit.checkpoints()
        latest = notes[-1]
        origin, size, _ = latest.partition("\n\n")[0].split("\n")
        signed = sign_checkpoint(
            Checkpoint(origin, int(size), bytes(32)), LogSigningKey.generate(made.log_verifier_key.split("+")[0])
        )
        with BackgroundServer(create_app(Settings.resolve(home=made.home))) as live:
            yield Served(made.home, made.api_key.secret, live.url, notes, signed.to_text())


def _garbage(served: Served) -> dict[str, str]:
    note = served.notes[-1]
    body, _, signatures = note.partition("\n\n")
    origin, size, _root = body.split("\n")
    return {
        "one word": "garbage",
        "text": "this is not a checkpoint\n",
        "truncated": note[:-6] + "\n",
        "altered root": f"{origin}\n{size}\n{'A' * 43}=\n\n{signatures}",
        "another key": served.foreign,
    }


CASES = ["one word", "text", "truncated", "altered root", "another key"]


@pytest.mark.parametrize("case", CASES)
def test_sdk_garbage_witness_is_invalid_input(served: Served, case: str) -> None:
    with Client(served.key, home=served.home) as client, pytest.raises(InvalidInputError) as raised:
        client.audit.verify(witnessed=[_garbage(served)[case]])
    assert "not a signed checkpoint note" in raised.value.message


@pytest.mark.parametrize("case", CASES)
def test_http_garbage_witness_is_a_client_error(served: Served, case: str) -> None:
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"}) as http:
        answer = http.post("/v1/audit/verify", json={"witnessed": [_garbage(served)[case]]})
    # 400, or 422 where the request body's own schema already refuses a malformed note; never 500.
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["type"] == "InvalidInputError"
    message = answer.json()["message"]
    assert "not a" in message and "checkpoint" in message and "signed" in message, message


@pytest.mark.parametrize("case", ["altered root", "another key"])
def test_cli_garbage_witness_file_exits_2(served: Served, tmp_path: Path, case: str) -> None:
    """The notes the CLI's own parser accepts (well formed, not this log's signature) reach the log's check."""
    garbage = tmp_path / "garbage.txt"
    garbage.write_text(_garbage(served)[case], encoding="utf-8")
    result = xp("audit", "verify", "--witness", garbage, "--home", served.home, "--api-key", served.key)
    assert_error(result, InvalidInputError.exit_code, "not a signed checkpoint note")


def test_a_real_witness_file_still_verifies(served: Served, tmp_path: Path) -> None:
    witness = tmp_path / "witness.txt"
    assert xp("audit", "checkpoints", "--out", witness, "--home", served.home, "--api-key", served.key).code == 0
    result = xp("audit", "verify", "--witness", witness, "--home", served.home, "--api-key", served.key, "--json")
    assert result.json()["witnessed"] >= 1
    with Client(served.key, home=served.home) as client:
        assert client.audit.verify(witnessed=served.notes).witnessed == len(served.notes)
