"""``xp init`` and ``xp config show``: make a deployment, and say how it is configured."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xp_sdk.cli.common import DatabaseUrlOption, HomeOption, JsonFlag, emit
from xp_sdk.config import Settings, mask_password
from xp_sdk.deployment import DEFAULT_TENANT, check_tenant_id, init_deployment
from xp_sdk.home import Home

config_app = typer.Typer(no_args_is_help=True, help="The settings a command would run with.")


def init(
    home: HomeOption = None,
    database_url: DatabaseUrlOption = None,
    tenant: Annotated[str, typer.Option("--tenant", help="The first tenant, which the admin key belongs to.")] = (
        DEFAULT_TENANT
    ),
    organization: Annotated[
        str, typer.Option("--organization", help="Organisation named in the development C2PA CA.")
    ] = "xp-sdk development",
    as_json: JsonFlag = False,
) -> None:
    """Make a deployment: provenance keys, the audit log key, the database, a tenant and its admin API key.

    The admin key's secret is printed once, here, and never again: store it (e.g. in a secret manager) and
    export XP_API_KEY."""
    made = init_deployment(home, database_url=database_url, tenant=check_tenant_id(tenant), organization=organization)
    secret = made.api_key.secret
    data: dict[str, Any] = {
        "home": str(made.home),
        "database_url": mask_password(made.database_url),
        "tenant": made.tenant,
        "key_id": made.api_key.info.id,
        "api_key": secret,
        "scopes": list(made.api_key.info.scopes),
        "log_verifier_key": made.log_verifier_key,
        "trust_anchor": str(made.trust_anchor),
    }

    def human() -> None:
        typer.echo(f"initialized {made.home}")
        typer.echo(f"  database:          {data['database_url']}")
        typer.echo(f"  tenant:            {made.tenant}")
        typer.echo(f"  admin key id:      {made.api_key.info.id} (scopes: {', '.join(made.api_key.info.scopes)})")
        typer.echo(f"  audit log key:     {made.log_verifier_key}")
        typer.echo(f"  C2PA trust anchor: {made.trust_anchor}")
        typer.echo("")
        typer.echo("The admin API key is shown this once and cannot be recovered. Store it now, then:")
        typer.echo(f"  export XP_HOME={made.home}")
        typer.echo(f"  export XP_API_KEY={secret}")

    emit(data, as_json, human)


@config_app.command("show")
def config_show(
    home: HomeOption = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Shown only as set or not (default: $XP_API_KEY).")
    ] = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Every setting after arguments, XP_* variables and the home's config.json; secrets and passwords masked."""
    settings = Settings.resolve(home=home, api_key=api_key, database_url=database_url)
    data = settings.masked()

    def human() -> None:
        width = max(len(k) for k in data)
        for key, value in data.items():
            shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
            typer.echo(f"{key:<{width}}  {shown if shown not in (None, '') else '-'}")
        if not Home(settings.home).audit_key_path.exists():
            typer.echo("(this home is not initialized yet: run `xp init`)")

    emit(data, as_json, human)
