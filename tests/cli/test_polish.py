"""The command line's finish: ``--version``, shell completion, ``--json`` errors on stdout, option types in words,
named progress phases, and an ``xp --help`` that imports none of the heavy libraries (what made it take seconds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xp_sdk.cli.common import FINISHING, phase_description
from xp_sdk.cli.lazy import COMMANDS, load, words
from xp_sdk.engine.options import Progress
from xp_sdk.version import __version__

from .helpers import assert_error, assert_json_error, xp

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "scipy", "cv2", "sqlalchemy", "alembic", "fastapi", "httpx", "c2pa", "mediapipe", "audit",
         "xp_sdk.client", "xp_sdk.config", "xp_sdk.engine", "rich")  # fmt: skip
"""What ``xp --help`` took seconds to import before its commands were loaded lazily."""


def _process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XP_", "_XP_", "COMP_"))}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, env={**clean, **(env or {})},
        timeout=120, check=False,
    )  # fmt: skip


def test_version() -> None:
    shown = xp("--version")
    assert (shown.code, shown.stdout, shown.stderr) == (0, f"xp-sdk {__version__}\n", "")


def test_help_imports_no_command_module_nor_heavy_library() -> None:
    probe = (
        "import sys\nfrom xp_sdk.cli import run\ncode = run(['--help'])\n"
        "print(repr((code, sorted(name for name in sys.modules))), file=sys.stderr)"
    )
    ran = _process("-c", probe)
    code, modules = eval(ran.stderr.strip().splitlines()[-1])
    assert code == 0 and "Commands:" in ran.stdout
    for name in COMMANDS:
        assert f"  {name} " in ran.stdout
    loaded = [m for m in modules if any(m == heavy or m.startswith(heavy + ".") for heavy in HEAVY)]
    assert loaded == []
    assert not [m for m in modules if m.startswith("xp_sdk.cli.") and m != "xp_sdk.cli.lazy"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_summary_is_the_commands_own(name: str) -> None:
    assert load(name).get_short_help_str(10_000) == COMMANDS[name].summary


def _every_command() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, sub_name])

    for name in COMMANDS:
        walk(load(name), [name])
    return paths


def test_every_help_names_option_types_in_words_not_python_types() -> None:
    python_types = re.compile(r"<(str|int|float|bool|Path|datetime|list\[[^>]*\]|[a-z]+ range)>")
    for path in _every_command():
        shown = xp(*path, "--help")
        assert shown.code == 0, (path, shown.stderr)
        assert not python_types.findall(shown.stdout), (path, python_types.findall(shown.stdout))
    animate = xp("animate", "--help").stdout
    for option, kind in (("--source", "<path>"), ("--subject", "<text>"), ("--max-side", "<integer>"),
                         ("--strength", "<number>")):  # fmt: skip
        assert re.search(rf"{option} {re.escape(kind)}", animate), option
    assert re.search(r"GENERATION_ID <text>", xp("audit", "show", "--help").stdout)


def test_words() -> None:
    assert [words(label) for label in ("<str>", "<int range>", "<float>", "<list[str]>", "<allow|deny>")] == [
        "<text>", "<integer>", "<number>", "<text>...", "<allow|deny>",
    ]  # fmt: skip


def test_json_errors_are_also_one_object_on_stdout(tmp_path: Path) -> None:
    missing = tmp_path / "no home"
    failed = xp("keys", "list", "--json", "--home", missing)
    body = assert_json_error(failed)
    assert (body["type"], body["error"], body["exit_code"]) == ("NotInitializedError", "not_initialized", 7)
    assert str(missing) in body["message"]
    # Without --json, stdout stays empty: the stderr line is the whole error.
    assert_error(xp("keys", "list", "--home", missing), 7, "not an xp-sdk home")
    assert xp("keys", "list", "--home", missing).stdout == ""
    usage = xp("keys", "list", "--json", "--no-such-option")
    assert assert_json_error(usage)["type"] == "UsageError" and usage.code == 2
    # After `--`, "--json" is an argument, not the flag.
    assert xp("keys", "revoke", "--home", missing, "--", "--json").stdout == ""


def test_completion_offers_commands_and_options() -> None:
    def complete(*words: str) -> list[str]:
        environment = {
            "_XP_COMPLETE": "complete_bash",
            "COMP_WORDS": " ".join(words),
            "COMP_CWORD": str(len(words) - 1),
        }
        ran = _process("-m", "xp_sdk.cli", env=environment)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.split()

    assert complete("xp", "au") == ["audit"]
    assert complete("xp", "audit", "q") == ["query"]
    assert "--subject" in complete("xp", "animate", "--su")
    shown = _process("-m", "xp_sdk.cli", "--show-completion", "bash")
    assert shown.returncode == 0 and "_XP_COMPLETE" in shown.stdout


def test_progress_phases_are_named() -> None:
    assert phase_description("animating", Progress("analyse", 3, 30)) == "animating: choosing the reference frame"
    assert phase_description("animating", Progress("generate", 5, 16)) == "animating: generating frames"
    assert phase_description("animating", Progress("generate", 16, 16)) == f"animating: {FINISHING}"
    assert phase_description("animating", object()) == "animating"
