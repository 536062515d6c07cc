"""``xp animate`` and ``xp verify``: make a gated, marked, signed, audited clip; read all of that back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from watermark.reading import ManifestState
from xp_sdk.cli.common import (
    ApiKeyOption,
    DatabaseUrlOption,
    HomeOption,
    JsonFlag,
    api_key_given,
    emit,
    note,
    open_client,
    progress_bar,
    quiet_native_stderr,
)
from xp_sdk.client import Client
from xp_sdk.errors import ForgedMarkError, InvalidInputError, NotInitializedError, UntrustedMediaError
from xp_sdk.variables import environment
from xp_sdk.verification import PublicVerification, Verification, full_report


def animate(
    source: Annotated[Path, typer.Option("--source", help="Portrait photo to animate (it must show the subject).")],
    subject: Annotated[str, typer.Option("--subject", help="The registered subject the photo shows.")],
    out: Annotated[Path, typer.Option("--out", help="Output .mp4 (H.264).")],
    driving: Annotated[Path | None, typer.Option("--driving", help="Driving video.")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Built-in template name or a .json file.")] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="What the clip is for; the consent must cover it.")
    ] = None,
    max_side: Annotated[int, typer.Option(help="Cap on the output's longer side, in pixels.")] = 1024,
    expression_scale: Annotated[float, typer.Option(help="Multiplier on expression motion.")] = 1.0,
    pose_scale: Annotated[float, typer.Option(help="Multiplier on head motion.")] = 1.0,
    shading: Annotated[
        bool, typer.Option("--shading/--no-shading", help="Carry the driver's creases and folds onto the photo.")
    ] = True,
    driver_mouth: Annotated[
        bool,
        typer.Option(
            "--driver-mouth/--painted-mouth",
            help="Show the driver's own teeth and tongue where the photo's closed mouth opens, or a painted interior.",
        ),
    ] = True,
    reference_frame: Annotated[
        int | None, typer.Option(help="Driving frame to measure motion against (default: best match).")
    ] = None,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Keep the driving video's audio.")] = True,
    allow_multiple_faces: Annotated[
        bool, typer.Option(help="Animate the largest face when the photo shows several.")
    ] = False,
    crop_to_face: Annotated[
        bool,
        typer.Option(
            "--crop-to-face/--whole-photo",
            help="Return only the square around the face of a large photo, instead of the whole photo.",
        ),
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="warp (CPU) or diffusion (needs weights in models.toml, a GPU).")
    ] = "warp",
    models: Annotated[
        Path | None, typer.Option("--models", help="models.toml (default: $XP_MODELS_TOML, else the home's).")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Diffusion steps (LCM/TCD).")] = 6,
    strength: Annotated[
        float, typer.Option("--strength", min=0.0, max=1.0, help="How far diffusion may move from the warp.")
    ] = 0.5,
    device: Annotated[str, typer.Option("--device", help="auto, cuda, mps or cpu (diffusion only).")] = "auto",
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Animate a subject's photo with a driving video or a motion template (needs the animate scope).

    The gate checks consent, the face against the subject's references, protected persons and policy; the
    output is watermarked, C2PA-signed and recorded in the audit log before it appears."""
    from xp_sdk.engine import AnimateOptions, ShadingConfig
    from xp_sdk.engine.diffusion import DiffusionConfig

    if engine not in ("warp", "diffusion"):
        raise InvalidInputError(f"--engine must be warp or diffusion, not {engine!r}")
    if (driving is None) == (template is None):
        raise InvalidInputError("give exactly one of --driving (a video) or --template (a motion template)")
    options = AnimateOptions(
        max_side=max_side,
        expression_scale=expression_scale,
        pose_scale=pose_scale,
        shading=ShadingConfig(enabled=shading),
        driver_mouth=driver_mouth,
        reference_frame=reference_frame,
        keep_audio=audio,
        allow_multiple_faces=allow_multiple_faces,
        crop_to_face=crop_to_face,
        engine=engine,  # type: ignore[arg-type]  # checked above
        diffusion=DiffusionConfig(
            models=str(models) if models else None, steps=steps, strength=strength, device=device
        ),
    )
    with (
        open_client(home, api_key, database_url) as client,
        quiet_native_stderr(),
        progress_bar(True, "animating") as progress,
    ):
        result = client.animate(
            source,
            subject=subject,
            out=out,
            driving=driving,
            template=template,
            options=options,
            purpose=purpose,
            progress=progress,
        )
    data = result.model_dump(mode="json")
    emit(data, as_json, lambda: typer.echo(
        f"wrote {result.output} ({result.frames} frames, {result.width}×{result.height}, "
        f"{result.frames / max(result.seconds, 1e-9):.1f} fps end to end)\n"
        f"generation {result.generation_id}: watermarked, C2PA-signed, audit events #{result.audit_seq[0]} "
        f"and #{result.audit_seq[1]} (face similarity {result.face_similarity:.2f}, consent {result.consent_id})"
    ))  # fmt: skip


def verify(
    file: Annotated[Path, typer.Argument(help="The video to check.")],
    trust_anchors: Annotated[
        Path | None, typer.Option(help="PEM file of CA certificates to trust (default: the home's anchor).")
    ] = None,
    require_trusted: Annotated[
        bool,
        typer.Option(
            "--require-trusted",
            help="Fail (exit code 8) unless the manifest is Trusted and agrees with the watermark.",
        ),
    ] = False,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a video's C2PA manifest and invisible watermark, and find the generation it came from.

    With an API key (verify scope) the generation record is looked up in the audit log and the check is itself
    audited. Without one: against a server (XP_BASE_URL), its public verdict (whether that deployment made the clip,
    and when, never whose face or for whom); otherwise the home's keys (when there is a home) check the watermark
    offline, and --trust-anchors alone is enough to check the manifest."""
    from xp_sdk.verify import require_trusted as check_trusted

    anchors = _read_anchors(trust_anchors)
    server = environment("base_url")
    if api_key_given(home, api_key, database_url):
        with open_client(home, api_key, database_url) as client:
            report = full_report(client.verify(file, trust_anchors=anchors))
    elif server is not None:
        with Client(base_url=server) as anonymous:
            public = anonymous.verify(file, trust_anchors=anchors)
        if isinstance(public, PublicVerification):  # a server that answered a key it was not sent is not believed
            if require_trusted:
                _check_public(public)
            emit(public.model_dump(mode="json"), as_json, lambda: _print_public(public))
            return
        report = public
    else:
        report, remark = _verify_offline(file, home, anchors)
        if require_trusted:
            check_trusted(report)
        note(remark)  # after the check, so that a failure stays one line on stderr
        emit(report.model_dump(mode="json"), as_json, lambda: _print_verification(report, False))
        return
    if require_trusted:
        check_trusted(report)
    emit(report.model_dump(mode="json"), as_json, lambda: _print_verification(report, True))


def _check_public(public: PublicVerification) -> None:
    """--require-trusted on the public verdict: a Trusted manifest and a mark bound to what this deployment made."""
    if public.verdict == "forged-mark":
        raise ForgedMarkError(public.statement)
    if public.c2pa is not ManifestState.TRUSTED or public.verdict != "ai-generated":
        raise UntrustedMediaError(f"C2PA manifest {public.c2pa.value}: {public.statement}")


def _print_public(public: PublicVerification) -> None:
    typer.echo(f"verdict:    {public.verdict}")
    typer.echo(f"statement:  {public.statement}")
    typer.echo(f"c2pa:       {public.c2pa.value}")
    typer.echo(f"watermark:  {'present' if public.watermark_present else 'not found'} ({public.deployment}'s)")
    typer.echo("record:     not shown (the public verdict; an API key of the owning tenant sees the record)")


def _read_anchors(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the trust anchors {path}: {exc}") from None


def _verify_offline(file: Path, home: Path | None, anchors: str | None) -> tuple[Verification, str]:
    """The report from the home's keys (or from the manifest alone without a home), and a note saying so."""
    from xp_sdk.home import Home
    from xp_sdk.provenance import load_provenance_keys
    from xp_sdk.verify import verify as run_verify

    try:
        keys = load_provenance_keys(Home.resolve(home))
    except NotInitializedError:
        keys = None
    if keys is None:
        remark = (
            "no API key and no home: only the C2PA manifest was checked (the watermark needs the home's key) "
            "and the generation record was not looked up"
        )
    else:
        remark = (
            "no API key (--api-key or XP_API_KEY): checked offline with the home's keys; the generation record "
            "was not looked up"
        )
    return run_verify(file, keys=keys, trust_anchors=anchors), remark


def _print_verification(report: Verification, looked_up: bool) -> None:
    c2pa, mark = report.c2pa, report.watermark
    codes = f" ({', '.join(c2pa.codes)})" if c2pa.codes else ""
    typer.echo(f"c2pa:       {c2pa.state.value}{codes}")
    if not mark.checked:
        typer.echo("watermark:  not checked (that needs the deployment's watermark key, kept in its home)")
    elif mark.detected:
        typer.echo(f"watermark:  detected, payload {mark.payload}, p = {mark.p_value:.1e} ({mark.frames} frames)")
    else:
        typer.echo(f"watermark:  not detected (p = {mark.p_value:.2g})")
    typer.echo(f"generation: {report.generation_id or 'unknown'}")
    if report.consistent is False:
        typer.echo("warning:    the watermark and the manifest name different generations")
    record = report.generation
    if not looked_up:
        typer.echo("record:     not looked up (no API key)")
    elif record is None:
        typer.echo("record:     none in this deployment's audit log")
    else:
        matches = record.file_matches_record
        shown = {"status": record.status, "tenant_id": record.tenant_id, "subject_id": record.subject_id,
                 "created_at": record.created_at}  # fmt: skip
        details = ", ".join(f"{k} {v}" for k, v in shown.items() if v)
        typer.echo(f"record:     {details}")
        typer.echo(
            "file:       "
            + (
                "identical to the recorded output"
                if matches
                else "differs from the recorded output (re-encoded or edited)"
            )
        )
