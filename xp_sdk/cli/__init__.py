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
keys_app = typer.Typer(no_args_is_help=True, help="The deployment's provenance keys (watermark key, C2PA signer).")
app.add_typer(keys_app, name="keys")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
HomeOption = Annotated[
    Path | None, typer.Option("--home", help="The deployment's home (default: $XP_HOME, else a per-user folder).")
]


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
    home: HomeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Animate a photo with a driving video or a motion template; the output is watermarked and C2PA-signed."""
    from xp_sdk.engine import AnimateOptions
    from xp_sdk.generate import generate
    from xp_sdk.home import Home
    from xp_sdk.provenance import load_provenance_keys

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
    keys = load_provenance_keys(Home.resolve(home))
    with _progress(not as_json, "animating") as progress:
        generation = generate(
            source, out, keys=keys, driving=driving, template=template, options=options, progress=progress
        )
    result = generation.animation
    data = {
        "generation_id": generation.generation_id,
        "watermark_id": generation.generation_id,
        "output": str(generation.output),
        "output_sha256": generation.output_sha256,
        "manifest": generation.manifest_label,
        "frames": result.frames,
        "fps": result.fps,
        "width": result.width,
        "height": result.height,
        "reference_frame": result.reference_frame,
        "frames_without_face": result.frames_without_face,
        "seconds": round(result.seconds, 3),
    }
    _emit(data, as_json, lambda: typer.echo(
        f"wrote {generation.output} ({result.frames} frames, {result.width}×{result.height}, "
        f"{result.frames / max(result.seconds, 1e-9):.1f} fps end to end), generation {generation.generation_id}, "
        "watermarked and C2PA-signed"))  # fmt: skip


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="The video to check.")],
    home: HomeOption = None,
    trust_anchors: Annotated[
        Path | None, typer.Option(help="PEM file of CA certificates to trust (default: the home's anchor).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a video's C2PA manifest and invisible watermark, and say which generation it came from."""
    from xp_sdk.errors import NotInitializedError
    from xp_sdk.home import Home
    from xp_sdk.provenance import load_provenance_keys
    from xp_sdk.verify import verify as run_verify

    try:
        keys = load_provenance_keys(Home.resolve(home))
    except NotInitializedError:
        keys = None  # an outside analyst: the manifest can still be checked against --trust-anchors
    anchors = trust_anchors.read_text(encoding="ascii") if trust_anchors else None
    result = run_verify(file, keys=keys, trust_anchors=anchors)

    def human() -> None:
        c2pa, mark = result.c2pa, result.watermark
        codes = f" ({', '.join(c2pa.codes)})" if c2pa.codes else ""
        typer.echo(f"c2pa:       {c2pa.state.value}{codes}")
        if not mark.checked:
            typer.echo("watermark:  not checked (no watermark key in this home)")
        elif mark.detected:
            typer.echo(f"watermark:  detected, payload {mark.payload}, p = {mark.p_value:.1e} ({mark.frames} frames)")
        else:
            typer.echo(f"watermark:  not detected (p = {mark.p_value:.2g})")
        typer.echo(f"generation: {result.generation_id or 'unknown'}")
        if result.consistent is False:
            typer.echo("warning:    the watermark and the manifest name different generations")

    _emit(result.model_dump(mode="json"), as_json, human)


@keys_app.command("init")
def keys_init(
    home: HomeOption = None,
    organization: Annotated[str, typer.Option(help="Organisation named in the development CA.")] = "xp-sdk development",
    as_json: JsonFlag = False,
) -> None:
    """Create the watermark key and a development C2PA CA and signer in the home (owner-only permissions)."""
    from xp_sdk.home import Home
    from xp_sdk.provenance import init_provenance_keys

    resolved = Home.resolve(home)
    init_provenance_keys(resolved, organization=organization)
    data = {
        "home": str(resolved.root),
        "watermark_key": str(resolved.watermark_key_path),
        "trust_anchor": str(resolved.signing_dir / "ca.pem"),
        "signer": str(resolved.signing_dir / "signer.pem"),
    }
    _emit(data, as_json, lambda: typer.echo(f"created provenance keys in {resolved.keys_dir}"))


@keys_app.command("anchor")
def keys_anchor(home: HomeOption = None) -> None:
    """Print the trust anchor (PEM) that makes this deployment's manifests read Trusted."""
    from xp_sdk.home import Home
    from xp_sdk.provenance import load_provenance_keys

    typer.echo(load_provenance_keys(Home.resolve(home)).trust_anchors, nl=False)


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
