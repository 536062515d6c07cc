"""The ``xp`` command line. Every command that prints data takes ``--json``; errors are one line on stderr.

Commands live in small modules (``deployment``, ``keys``, ``people``, ``media``, ``audit``, ``engine``, ``demo``)
and are wired together here; ``main`` is the console entry point and ``run`` the same thing returning the exit
code, for tests and embedding."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import typer

from xp_sdk import errors
from xp_sdk.cli.audit import audit_app
from xp_sdk.cli.common import progress_bar
from xp_sdk.cli.demo import demo
from xp_sdk.cli.deployment import config_app, init
from xp_sdk.cli.engine import evaluate, templates_app
from xp_sdk.cli.keys import keys_app
from xp_sdk.cli.media import animate, verify
from xp_sdk.cli.models import models_app
from xp_sdk.cli.people import consents_app, subjects_app
from xp_sdk.cli.serve import serve
from xp_sdk.config import environment
from xp_sdk.errors import XPError

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
progress go to stderr. On an error stdout stays empty (with --json too) and stderr gets one line,
"error: <message>"; the exit code says which kind of error:

\b
   0  ok
{_exit_codes()}
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help=HELP)
app.command("init")(init)
app.command("animate")(animate)
app.command("verify")(verify)
app.add_typer(keys_app, name="keys")
app.add_typer(subjects_app, name="subjects")
app.add_typer(consents_app, name="consents")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(templates_app, name="templates")
app.add_typer(models_app, name="models")
app.command("eval")(evaluate)
app.command("demo")(demo)
app.command("serve")(serve)

# Kept importable under its old name for code that drives the progress bar itself.
_progress = progress_bar


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``xp`` with ``argv`` (default: the process's arguments) and return its exit code; errors are printed
    as one line on stderr."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's native logging down where it listens
    _quiet_opencv()
    try:
        result = app(args=list(argv) if argv is not None else None, prog_name="xp", standalone_mode=False)
    except XPError as exc:
        _error(exc.message)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt, EOFError):
        _error("interrupted")
        return EXIT_INTERRUPTED
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
            _error(f"{message} (see `{command} --help`)" if command else message)
            return exit_code
        if environment("debug"):
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (this is a bug; XP_DEBUG=1 shows the traceback)")
        return EXIT_UNEXPECTED
    return result if isinstance(result, int) else 0


def main() -> None:
    raise SystemExit(run())


def _quiet_opencv() -> None:
    """OpenCV's DNN warnings (``[ WARN:0@…] … setPreferableTarget …``) would otherwise land on stderr next to an
    error line; its errors still show."""
    import cv2

    with contextlib.suppress(AttributeError, cv2.error):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _error(message: str) -> None:
    text = " ".join(message.split())  # one line, whatever the message held
    typer.echo(f"error: {text}", err=True)


__all__ = ["app", "main", "run"]
