"""``xp models check``: are the diffusion engine's weights where models.toml says, with the pinned hashes?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xp_sdk.cli.common import JsonFlag, emit
from xp_sdk.errors import ModelError

models_app = typer.Typer(no_args_is_help=True, help="The diffusion engine's weights (models.toml).")


@models_app.command("check")
def check(
    models: Annotated[
        Path | None, typer.Option("--models", help="models.toml (default: $XP_MODELS_TOML, else the home's).")
    ] = None,
    no_hash: Annotated[bool, typer.Option("--no-hash", help="Check presence only; skip the sha256 pins.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Say exactly which weights are missing, unpinned or wrong, and where they belong (exit 4 unless all ok)."""
    from xp_sdk.engine.diffusion import check_weights

    report = check_weights(models, verify=not no_hash)
    emit(report.to_dict(), as_json, lambda: typer.echo(report.describe()))
    if not report.ok:
        raise typer.Exit(ModelError.exit_code)
