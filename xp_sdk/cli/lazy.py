"""The ``xp`` command group, whose commands are imported only when one runs (or its help is asked for).

``xp --help`` names every command with its one-line summary from ``COMMANDS`` alone, so it imports none of the
command modules (they bring in the engine, the database, the provenance libraries: seconds of imports).
``tests/cli/test_polish.py`` checks each summary against the command's own help, so the two cannot drift.

Every command, once loaded, shows its options' value types in words (``<text>``, ``<integer>``, ``<file or
folder>``) instead of Python's type names."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import typer
import typer.core
import typer.main


@dataclass(frozen=True)
class LazyCommand:
    module: str
    attribute: str
    """A command function, or a ``typer.Typer`` of subcommands."""
    summary: str
    """The first sentence of its help, as ``xp --help`` lists it."""


COMMANDS: dict[str, LazyCommand] = {
    "init": LazyCommand(
        "xp_sdk.cli.deployment", "init",
        "Make a deployment: provenance keys, the audit log key, the database, a tenant and its admin API key.",
    ),
    "animate": LazyCommand(
        "xp_sdk.cli.media", "animate",
        "Animate a subject's photo with a driving video or a motion template (needs the animate scope).",
    ),
    "verify": LazyCommand(
        "xp_sdk.cli.media", "verify",
        "Check a video's C2PA manifest and invisible watermark, and find the generation it came from.",
    ),
    "eval": LazyCommand(
        "xp_sdk.cli.engine", "evaluate",
        "Score an animation: expression, identity, pose and jitter, each next to the static-photo baseline.",
    ),
    "demo": LazyCommand(
        "xp_sdk.cli.demo", "demo",
        "Run the whole product on the astronaut portrait (shipped with xp-sdk): init a deployment, register her, "
        "record consent, animate, verify, show the audit trail and re-verify the log.",
    ),
    "serve": LazyCommand(
        "xp_sdk.cli.serve", "serve", "Serve the Client's operations over HTTP, with the verification page at /."
    ),
    "keys": LazyCommand("xp_sdk.cli.keys", "keys_app", "API keys, and the C2PA trust anchor."),
    "subjects": LazyCommand("xp_sdk.cli.people", "subjects_app", "People who may be animated, and protected persons."),
    "consents": LazyCommand(
        "xp_sdk.cli.people", "consents_app", "Consent records: who agreed, for which tenant and purpose."
    ),
    "audit": LazyCommand("xp_sdk.cli.audit", "audit_app", "The audit log: query, show, verify, checkpoints."),
    "config": LazyCommand("xp_sdk.cli.deployment", "config_app", "The settings a command would run with."),
    "templates": LazyCommand("xp_sdk.cli.engine", "templates_app", "Built-in and recorded motion templates."),
    "models": LazyCommand("xp_sdk.cli.models", "models_app", "The diffusion engine's weights (models.toml)."),
}  # fmt: skip


class _LoadedOnUse(dict[str, Any]):
    """A group's commands by name, each of ``COMMANDS`` loaded when first looked up (``commands[name]``) or when
    the commands themselves are asked for (``items()``, ``values()``); names alone load nothing."""

    def __missing__(self, name: str) -> Any:
        if name not in COMMANDS:
            raise KeyError(name)
        command = self[name] = load(name)
        return command

    def _names(self) -> list[str]:
        return [*COMMANDS, *(name for name in dict.__iter__(self) if name not in COMMANDS)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or super().__contains__(name)

    def keys(self) -> Any:
        return self._names()

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default  # noqa: SIM401 (this is get: self.get would recurse)

    def values(self) -> Any:
        return [self[name] for name in self._names()]

    def items(self) -> Any:
        return [(name, self[name]) for name in self._names()]


class LazyGroup(typer.core.TyperGroup):
    """``xp``'s group: ``COMMANDS`` are listed from the table and imported on first use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LoadedOnUse(self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _short(COMMANDS[name].summary, limit)) for name in names if name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _short(summary: str, limit: int) -> str:
    """``summary`` cut as click cuts a command's help for a group's list."""
    from typer._click.utils import make_default_short_help

    return str(make_default_short_help(summary, limit))


def load(name: str) -> Any:
    """The click command ``name`` names, built by typer as ``app.command``/``app.add_typer`` would have."""
    entry = COMMANDS[name]
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    holder.callback()(_nothing)  # a callback keeps typer from collapsing a one-command app into that command
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    command = typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]
    in_words(command)
    return command


def _nothing() -> None:
    pass


_WORDS = {
    "str": "text",
    "int": "integer",
    "float": "number",
    "bool": "yes|no",
    "path": "path",
    "file": "file",
    "directory": "folder",
    "datetime": "time",
    "uuid": "id",
}


def words(label: str) -> str:
    """A typer type label (``<str>``, ``<int range>``, ``<list[str]>``, ``<float range>``) in words (``<text>``,
    ``<integer>``, ``<text>``, ``<number>``): the range itself is in the option's help already."""
    inner = label.strip("<>")
    repeated = inner.startswith("list[")
    inner = re.sub(r"^list\[(.*)\]$", r"\1", inner).removesuffix(" range")
    named = "|".join(_WORDS.get(part.lower(), part) for part in inner.split("|"))
    return f"<{named}>" + ("..." if repeated else "")


def in_words(command: Any) -> None:
    """Every option of ``command`` and its subcommands shows its value type in words (its metavar)."""
    for param in command.params:
        if isinstance(param, typer.core.TyperOption) and param.metavar is None and not param.is_flag:
            display = param.display_type(_CONTEXT)
            if display:
                param.metavar = words(display)
        elif isinstance(param, typer.core.TyperArgument):
            # An argument's name is its metavar, so its type label is replaced where it is made.
            setattr(param, "display_type", partial(_label, words(param.display_type(_CONTEXT))))  # noqa: B010
    for sub in getattr(command, "commands", {}).values():
        in_words(sub)


def _label(label: str, ctx: Any) -> str:
    return label


_CONTEXT: Any = None
"""``display_type`` reads its context only for a choice's case folding, which the words keep as they are."""
