"""The ``xp`` command line. Every command that prints data takes ``--json``; errors are one line on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from xp_sdk.errors import XPError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="xp-sdk: provenance-gated portrait animation.")
templates_app = typer.Typer(no_args_is_help=True, help="Built-in and recorded motion templates.")
app.add_typer(templates_app, name="templates")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _emit(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=1, default=str))
    else:
        human()


@contextmanager
def _progress(enabled: bool, description: str) -> Iterator[Callable[[Any], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None, fps=0.0)

        def update(p: Any) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=p.done, total=p.total, fps=p.done / elapsed if elapsed > 0 else 0.0)

        yield update


@app.command()
def animate(
    source: Annotated[Path, typer.Option("--source", help="Portrait photo to animate.")],
    out: Annotated[Path, typer.Option("--out", help="Output .mp4 (H.264).")],
    driving: Annotated[Path | None, typer.Option("--driving", help="Driving video.")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Built-in template name or a .json file.")] = None,
    max_side: Annotated[int, typer.Option(help="Cap on the output's longer side, in pixels.")] = 1024,
    expression_scale: Annotated[float, typer.Option(help="Multiplier on expression motion.")] = 1.0,
    pose_scale: Annotated[float, typer.Option(help="Multiplier on head motion.")] = 1.0,
    reference_frame: Annotated[
        int | None, typer.Option(help="Driving frame to measure motion against (default: best match).")
    ] = None,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Keep the driving video's audio.")] = True,
    allow_multiple_faces: Annotated[
        bool, typer.Option(help="Animate the largest face when the photo shows several.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Animate a photo with a driving video or a motion template."""
    from xp_sdk.engine import AnimateOptions
    from xp_sdk.engine import animate as run_animate

    if (driving is None) == (template is None):
        raise typer.BadParameter("give exactly one of --driving or --template")
    options = AnimateOptions(
        max_side=max_side,
        expression_scale=expression_scale,
        pose_scale=pose_scale,
        reference_frame=reference_frame,
        keep_audio=audio,
        allow_multiple_faces=allow_multiple_faces,
    )
    with _progress(not as_json, "animating") as progress:
        result = run_animate(source, out, driving=driving, template=template, options=options, progress=progress)
    data = {
        "output": str(result.output),
        "frames": result.frames,
        "fps": result.fps,
        "width": result.width,
        "height": result.height,
        "reference_frame": result.reference_frame,
        "frames_without_face": result.frames_without_face,
        "seconds": round(result.seconds, 3),
    }
    _emit(data, as_json, lambda: typer.echo(
        f"wrote {result.output} ({result.frames} frames, {result.width}×{result.height}, "
        f"{result.frames / max(result.seconds, 1e-9):.1f} fps end to end)"))  # fmt: skip


@app.command("eval")
def evaluate(
    output: Annotated[Path, typer.Argument(help="The generated video to score.")],
    source: Annotated[Path, typer.Option("--source", help="The photo that was animated.")],
    driving: Annotated[Path, typer.Option("--driving", help="The driving video that was used.")],
    as_json: JsonFlag = False,
) -> None:
    """Score an animation: expression, identity, pose and jitter, each next to the static-photo baseline."""
    from xp_sdk.engine.evaluate import evaluate_files

    report = evaluate_files(source, driving, output)
    _emit(report.model_dump(), as_json, lambda: typer.echo(report.to_table()))


@templates_app.command("list")
def templates_list(as_json: JsonFlag = False) -> None:
    """List the built-in templates."""
    from xp_sdk.engine import builtin_names, load_template

    items = [{"name": n, "duration": (t := load_template(n)).duration, "description": t.description}
             for n in builtin_names()]  # fmt: skip

    def human() -> None:
        for i in items:
            typer.echo(f"{i['name']:<10} {i['duration']:>5.1f} s  {i['description']}")

    _emit({"templates": items}, as_json, human)


@templates_app.command("record")
def templates_record(
    video: Annotated[Path, typer.Argument(help="Driving video to record.")],
    out: Annotated[Path, typer.Argument(help="Template JSON to write.")],
    name: Annotated[str | None, typer.Option(help="Template name (default: the output file's stem).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a motion template from a driving video."""
    from xp_sdk.engine.driving import record_template

    tpl = record_template(video, name=name or out.stem)
    from xp_sdk.engine.templates import dump_template

    out.write_text(dump_template(tpl), encoding="utf-8")
    data = {"output": str(out), "name": tpl.name, "keyframes": len(tpl.keyframes), "duration": tpl.duration}
    _emit(data, as_json, lambda: typer.echo(f"wrote {out} ({len(tpl.keyframes)} keyframes, {tpl.duration:.2f} s)"))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo outputs.")] = Path("out/demo"),
    as_json: JsonFlag = False,
) -> None:
    """Animate the astronaut portrait (shipped with scikit-image) with the showcase template."""
    from xp_sdk.cli.demo import run_demo

    report = run_demo(out, show_progress=not as_json)
    _emit(report, as_json, lambda: typer.echo("\n".join(f"{k}: {v}" for k, v in report.items())))


def main() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's native logging off the terminal
    try:
        app(standalone_mode=False)
    except XPError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:
        # Usage errors come from the click that typer bundles, not necessarily the installed `click`; they are
        # recognised by their interface.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            raise SystemExit(exit_code) from None
        raise
