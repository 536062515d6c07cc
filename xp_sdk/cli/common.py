"""What every command shares: the deployment options, JSON or human output, times, progress, the client."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from xp_sdk.client import Client
from xp_sdk.config import Settings, environment
from xp_sdk.errors import AuthenticationError, InvalidInputError, XPError
from xp_sdk.inputs import EARLIEST, LATEST, MAX_OLDER_THAN

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (nothing else goes to stdout).")
]
HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="The deployment's home (default: $XP_HOME, else a per-user folder).", show_default=False
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (default: $XP_API_KEY; prefer the variable, arguments show up in process lists).",
        show_default=False,
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///… or postgresql://… (default: $XP_DATABASE_URL, else the home's setting, else xp.db there).",
        show_default=False,
    ),
]

# ASCII digits only: \d would take "٣d" (an Arabic-Indic three) for three days.
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


# -- output --------------------------------------------------------------------------------------------------


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    """JSON on stdout, or the human rendering."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        human()


def note(message: str) -> None:
    """A remark for the person at the terminal: stderr, one line, never part of the data."""
    typer.echo(f"note: {message}", err=True)


def stdout_console() -> Console:
    """Rich output on stdout; wide enough when piped that ids are not folded."""
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False, highlight=False)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left", show_edge=False, box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None or cell == "" else str(cell) for cell in row))
    console = stdout_console()
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


# -- times ---------------------------------------------------------------------------------------------------


def parse_time(text: str | None, *, option: str, future: bool) -> datetime | None:
    """An ISO 8601 time (UTC when no offset is given) or a duration: ``30d``, ``12h``, ``90m``, ``2w``, ``45s``;
    a duration counts forward from now when ``future`` (expiry), backward otherwise (``--since 1h``). Always
    timezone-aware, in UTC, and between the years the SDK accepts (``xp_sdk.inputs.EARLIEST`` and ``LATEST``)."""
    if text is None:
        return None
    if _DURATION.match(text):
        delta = parse_duration(text, option=option)
        now = datetime.now(UTC)
        value = now + delta if future else now - delta
    else:
        try:
            value = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInputError(
                f"{option} {_shown(text)} is not a time: give ISO 8601 (2027-01-01T00:00Z) or a duration (30d, 12h, "
                "90m)"
            ) from None
        value = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    if not EARLIEST <= value <= LATEST:
        raise InvalidInputError(f"{option} {_shown(text)} is not between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


def parse_duration(text: str, *, option: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s``: at most a hundred years (``xp_sdk.inputs.MAX_OLDER_THAN``)."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInputError(f"{option} {_shown(text)} is not a duration: give e.g. 90m, 12h or 2d")
    digits = match.group(1).lstrip("0") or "0"
    # Twelve digits are more than any duration within the bound has, and int() refuses thousands of them.
    seconds = int(digits) * _UNIT_SECONDS[match.group(2).lower()] if len(digits) <= 12 else math.inf
    if seconds > MAX_OLDER_THAN.total_seconds():
        raise InvalidInputError(f"{option} {_shown(text)} is longer than {MAX_OLDER_THAN.days} days")
    return timedelta(seconds=seconds)


def _shown(text: str) -> str:
    """``text`` quoted for an error line, cut short when it is long."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "…"


def future_time(text: str | None, *, option: str) -> datetime | None:
    value = parse_time(text, option=option, future=True)
    if value is not None and value <= datetime.now(UTC):
        raise InvalidInputError(f"{option} {_shown(text or '')} is in the past")
    return value


def split_list(values: Sequence[str] | None) -> list[str]:
    """``--scope a,b --scope c`` → ``[a, b, c]``."""
    return [item for value in values or () for item in value.replace(",", " ").split()]


# -- the client ----------------------------------------------------------------------------------------------


def api_key_given(home: Path | None, api_key: str | None, database_url: str | None) -> bool:
    """Whether a command would run with an API key: --api-key, XP_API_KEY, or (rarely) the home's config.json."""
    if api_key or environment("api_key"):
        return True
    try:
        return Settings.resolve(home=home, database_url=database_url).api_key is not None
    except XPError:
        return False


@contextmanager
def open_client(home: Path | None, api_key: str | None, database_url: str | None) -> Iterator[Client]:
    """A ``Client`` for one command, closed after it; a missing key is reported in the CLI's own words."""
    client = Client(api_key, home=home, database_url=database_url)
    try:
        yield client
    except AuthenticationError as exc:
        if not api_key_given(home, api_key, database_url):
            raise AuthenticationError(
                "no API key: pass --api-key or set XP_API_KEY (`xp init` printed the first one)"
            ) from exc
        raise
    finally:
        client.close()


# -- progress and the engine's native logging ----------------------------------------------------------------


PHASES = {
    "analyse": "choosing the reference frame",
    "generate": "generating frames",
}
"""The engine's progress stages (``xp_sdk.engine.options.Progress.stage``) in words."""
FINISHING = "watermarking, signing and recording"
"""What follows the last frame before the output appears (the engine reports no frames for it)."""


def phase_description(description: str, progress: Any) -> str:
    """The bar's label for one progress report: ``animating: generating frames``."""
    stage = getattr(progress, "stage", None)
    if stage is None:
        return description
    total = getattr(progress, "total", None)
    if stage == "generate" and total and getattr(progress, "done", 0) >= total:
        return f"{description}: {FINISHING}"
    return f"{description}: {PHASES.get(stage, stage)}"


@contextmanager
def progress_bar(enabled: bool, description: str) -> Iterator[Callable[[Any], None] | None]:
    """A rich progress bar (frames, fps, ETA) on stderr when it is a terminal; nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None, fps=0.0)

        def update(p: Any) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(
                task,
                description=phase_description(description, p),
                completed=p.done,
                total=p.total,
                fps=p.done / elapsed if elapsed > 0 else 0.0,
            )

        yield update


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Drop what native libraries (MediaPipe, TFLite) write straight to file descriptor 2 while the engine runs,
    so stderr carries only the progress bar, notes and errors. Python's own ``sys.stderr`` keeps working.
    ``XP_DEBUG=1`` leaves the descriptor alone."""
    if environment("debug"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    original = sys.stderr
    replacement = open(saved, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    try:
        os.dup2(devnull, 2)
        sys.stderr = replacement
        yield
    finally:
        replacement.flush()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        replacement.close()
