"""Running ``xp`` in process (``xp_sdk.cli.run``: the entry point's own code, exit code and all) and checking
the CLI's output contract."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xp_sdk.config import VARIABLES

# Every XP_* setting a developer's shell may hold; none may leak into (or out of) the tests' own deployments.
XP_VARIABLES = tuple(VARIABLES.values())


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"exit {self.code}: {self.stderr}"
        return json.loads(self.stdout)

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def xp(*args: object) -> Result:
    """``xp ARGS`` in this process: its exit code, stdout and stderr."""
    from xp_sdk.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def assert_json_error(result: Result) -> dict[str, Any]:
    """With ``--json``, an error's stdout is one JSON object: its code, class and exit code, and the very message
    of the one stderr line."""
    body = json.loads(result.stdout)
    assert isinstance(body, dict) and {"error", "type", "message", "exit_code"} <= set(body), body
    assert body["exit_code"] == result.code, body
    assert result.stderr == f"error: {body['message']}\n", (result.stderr, body)
    return body


def assert_error(result: Result, exit_code: int, *words: str) -> str:
    """The CLI's error contract: the class's exit code, exactly one ``error: …`` stderr line, and on stdout
    nothing, or (``--json``) the error as one JSON object."""
    assert result.code == exit_code, f"expected exit {exit_code}, got {result.code}: {result.stderr!r}"
    if result.stdout:
        assert_json_error(result)
    lines = result.stderr_lines
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
    return lines[0]


@dataclass
class Deployment:
    """A home made by ``xp init`` with a subject, a consent and one animation in it."""

    root: Path
    home: Path
    init: dict[str, Any]
    photo: Path
    evidence: Path
    subject_id: str = ""
    consent_id: str = ""
    animation: dict[str, Any] = field(default_factory=dict)

    @property
    def admin_key(self) -> str:
        return str(self.init["api_key"])

    def xp(self, *args: object, key: str | None = None, home: bool = True) -> Result:
        """``xp ARGS --home HOME --api-key KEY`` (the admin key unless another is given; ``key=""`` for none)."""
        extra: list[object] = ["--home", self.home] if home else []
        chosen = self.admin_key if key is None else key
        if chosen:
            extra += ["--api-key", chosen]
        return xp(*args, *extra)


def key_secrets_in(text: str) -> list[str]:
    """API key secrets (``xp_<12 hex>_<43 chars>``) that appear in ``text``."""
    return re.findall(r"xp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", text)
