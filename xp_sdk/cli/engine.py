"""Engine tools that need no deployment: ``xp eval`` and ``xp templates``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xp_sdk.cli.common import JsonFlag, emit, quiet_native_stderr
from xp_sdk.errors import InvalidInputError

templates_app = typer.Typer(no_args_is_help=True, help="Built-in and recorded motion templates.")


def evaluate(
    output: Annotated[Path, typer.Argument(help="The generated video to score.")],
    source: Annotated[Path, typer.Option("--source", help="The photo that was animated.")],
    driving: Annotated[Path, typer.Option("--driving", help="The driving video that was used.")],
    as_json: JsonFlag = False,
) -> None:
    """Score an animation: expression, identity, pose and jitter, each next to the static-photo baseline."""
    from xp_sdk.engine.evaluate import evaluate_files

    with quiet_native_stderr():
        report = evaluate_files(source, driving, output)
    emit(report.model_dump(), as_json, lambda: typer.echo(report.to_table()))


@templates_app.command("list")
def templates_list(as_json: JsonFlag = False) -> None:
    """List the built-in templates."""
    from xp_sdk.engine import builtin_names, load_template

    items = [{"name": n, "duration": (t := load_template(n)).duration, "description": t.description}
             for n in builtin_names()]  # fmt: skip

    def human() -> None:
        for i in items:
            typer.echo(f"{i['name']:<10} {i['duration']:>5.1f} s  {i['description']}")

    emit({"templates": items}, as_json, human)


@templates_app.command("record")
def templates_record(
    video: Annotated[Path, typer.Argument(help="Driving video to record.")],
    out: Annotated[Path, typer.Argument(help="Template JSON to write.")],
    name: Annotated[str | None, typer.Option(help="Template name (default: the output file's stem).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a motion template from a driving video."""
    from xp_sdk.engine.driving import record_template
    from xp_sdk.engine.templates import dump_template

    if not out.parent.is_dir():  # said before the video is analysed, not after
        raise InvalidInputError(f"the folder {out.parent} for {out.name} does not exist; create it first")
    with quiet_native_stderr():
        tpl = record_template(video, name=name or out.stem)
    try:
        out.write_text(dump_template(tpl), encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {out}: {exc.strerror or exc}") from None
    data = {"output": str(out), "name": tpl.name, "keyframes": len(tpl.keyframes), "duration": tpl.duration}
    emit(data, as_json, lambda: typer.echo(f"wrote {out} ({len(tpl.keyframes)} keyframes, {tpl.duration:.2f} s)"))
