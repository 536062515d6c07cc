"""The ``xp`` command line. Every command that prints data takes ``--json``; errors are one line on stderr.

Commands live in small modules (``deployment``, ``keys``, ``people``, ``media``, ``audit``, ``engine``, ``demo``)
and are wired together here; ``main`` is the console entry point and ``run`` the same thing returning the exit
code, for tests and embedding."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from xp_sdk import errors
from xp_sdk.cli.lazy import LazyGroup
from xp_sdk.errors import XPError
from xp_sdk.variables import environment
from xp_sdk.version import __version__

EXIT_UNEXPECTED = 1
EXIT_INTERRUPTED = 130
USAGE_EXIT_CODE = 2  # click's, and InvalidInputError's


def _exit_codes() -> str:
    """One line per exit code, named by the most general error class that uses it (from ``xp_sdk.errors``)."""
    by_code: dict[int, type[XPError]] = {}
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, XPError) and cls is not XPError:
            current = by_code.get(cls.exit_code)
            if current is None or issubclass(current, cls):
                by_code[cls.exit_code] = cls
    lines = [f"{EXIT_UNEXPECTED:>4}  unexpected failure (a bug: XP_DEBUG=1 shows the traceback)"]
    for code, cls in sorted(by_code.items()):
        lines.append(f"{code:>4}  {cls.code}{' (or a usage error)' if code == USAGE_EXIT_CODE else ''}")
    lines.append(f"{EXIT_INTERRUPTED:>4}  interrupted")
    return "\n".join(lines)


HELP = f"""xp-sdk: provenance-gated portrait animation.

Every animation is authenticated (API key), gated (consent, face match, protected persons, Cedar policy),
audited (tamper-evident log), watermarked and C2PA-signed; `xp verify` reads all of that back.

Settings: --home (else $XP_HOME), --api-key (else $XP_API_KEY; never printed), --database-url (else
$XP_DATABASE_URL, else the home's config.json). Start with `xp init`.

Output: with --json a command prints exactly one JSON document on stdout and nothing else there. Notes and
progress go to stderr. On an error stderr gets one line, "error: <message>", and stdout stays empty, or with
--json holds one JSON object: {{"error": code, "type": class, "message": ..., "exit_code": N}} (and the error's
own fields). The exit code says which kind of error:

\b
   0  ok
{_exit_codes()}

Shell completion: `xp --install-completion` (bash, zsh, fish, PowerShell), or `xp --show-completion` to see it.
"""

app = typer.Typer(cls=LazyGroup, no_args_is_help=True, rich_markup_mode=None, help=HELP)
"""Its commands (``xp_sdk.cli.lazy.COMMANDS``) are imported when one runs, so ``xp --help`` stays fast."""


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"xp-sdk {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print xp-sdk's version and exit."),
    ] = False,
) -> None:
    pass


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``xp`` with ``argv`` (default: the process's arguments) and return its exit code; errors are printed
    as one line on stderr (and as one JSON object on stdout with ``--json``)."""
    arguments = list(argv) if argv is not None else sys.argv[1:]
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's native logging down where it listens
    # OpenCV's DNN warnings ("[ WARN:0@…] … setPreferableTarget …") would otherwise land on stderr next to an error
    # line; its errors still show. The variable is read when cv2 loads, so nothing is imported for it here.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    as_json = "--json" in arguments[: arguments.index("--")] if "--" in arguments else "--json" in arguments
    try:
        result = app(args=arguments, prog_name="xp", standalone_mode=False)
    except XPError as exc:
        return _fail(exc.message, exc.exit_code, as_json, {**exc.to_dict(), "message": _one_line(exc.message)})
    except (typer.Abort, KeyboardInterrupt, EOFError):
        return _fail("interrupted", EXIT_INTERRUPTED, as_json, {"error": "interrupted", "type": "Interrupted"})
    except Exception as exc:
        # Usage errors come from the click that typer bundles, not necessarily the installed `click`; they are
        # recognised by their interface.
        exit_code, format_message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
        if callable(format_message) and isinstance(exit_code, int):
            message = str(format_message())
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(message, err=True)  # a group named alone: its help, as click does
                return exit_code
            command = getattr(getattr(exc, "ctx", None), "command_path", None)
            line = f"{message} (see `{command} --help`)" if command else message
            return _fail(line, exit_code, as_json, {"error": "usage", "type": "UsageError"})
        if environment("debug"):
            raise
        line = f"unexpected {type(exc).__name__}: {exc} (this is a bug; XP_DEBUG=1 shows the traceback)"
        return _fail(line, EXIT_UNEXPECTED, as_json, {"error": "unexpected", "type": type(exc).__name__})
    return result if isinstance(result, int) else 0


def _fail(message: str, exit_code: int, as_json: bool, body: dict[str, Any]) -> int:
    _error(message)
    if as_json:
        typer.echo(json.dumps({"message": _one_line(message), **body, "exit_code": exit_code}, ensure_ascii=False))
    return exit_code


def main() -> None:
    raise SystemExit(run())


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _error(message: str) -> None:
    typer.echo(f"error: {_one_line(message)}", err=True)


__all__ = ["app", "main", "run"]
