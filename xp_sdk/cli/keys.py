"""``xp keys``: API keys (create, list, revoke) and the C2PA trust anchor."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from audit import ApiKeyInfo
from xp_sdk.cli.common import (
    ApiKeyOption,
    DatabaseUrlOption,
    HomeOption,
    JsonFlag,
    emit,
    future_time,
    open_client,
    print_table,
    split_list,
    when,
)
from xp_sdk.config import environment
from xp_sdk.errors import NotInitializedError
from xp_sdk.home import Home
from xp_sdk.inputs import MAX_RATE_LIMIT
from xp_sdk.provenance import ProvenanceKeys, load_provenance_keys

keys_app = typer.Typer(no_args_is_help=True, help="API keys, and the C2PA trust anchor.")

TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="The tenant (default: the calling key's).", show_default=False)
]


def key_view(info: ApiKeyInfo, now: datetime | None = None) -> dict[str, Any]:
    """A key as printed: everything but its secret, and its status now."""
    return {
        "id": info.id,
        "tenant": info.tenant_id,
        "name": info.name,
        "scopes": list(info.scopes),
        "status": info.status(now or datetime.now(UTC)),
        "rate_limit_per_minute": info.rate_limit_per_minute,
        "created_at": info.created_at.isoformat(),
        "created_by": info.created_by,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }


@keys_app.command("create")
def keys_create(
    scopes: Annotated[
        list[str],
        typer.Option(
            "--scopes",
            "--scope",
            help="Comma-separated scopes: animate, verify, audit:read, subjects:write, consents:write, keys:admin.",
        ),
    ],
    tenant: TenantOption = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", help="When the key stops working: 2027-01-01T00:00Z, or 30d, 12h.", show_default=False
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for people reading `xp keys list`.")] = "",
    rate_limit: Annotated[
        int, typer.Option("--rate-limit", min=0, max=MAX_RATE_LIMIT, help="Requests a minute (0: unlimited).")
    ] = 60,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Mint an API key (needs keys:admin). Its secret is printed this once and never again."""
    expires_at = future_time(expires, option="--expires")
    with open_client(home, api_key, database_url) as client:
        made = client.keys.create(
            tenant=tenant,
            scopes=split_list(scopes),
            name=name,
            expires=expires_at,
            rate_limit_per_minute=rate_limit,
        )
    data = {**key_view(made.info), "api_key": made.secret}

    def human() -> None:
        info = made.info
        expiry = f"expires {when(info.expires_at)} UTC" if info.expires_at else "no expiry"
        typer.echo(f"created key {info.id} for tenant {info.tenant_id} ({', '.join(info.scopes)}; {expiry})")
        typer.echo("The secret is shown this once and cannot be recovered; store it now:")
        typer.echo(f"  export XP_API_KEY={made.secret}")

    emit(data, as_json, human)


@keys_app.command("list")
def keys_list(
    tenant: TenantOption = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List API keys (never their secrets): id, tenant, scopes, status active/revoked/expired."""
    with open_client(home, api_key, database_url) as client:
        keys = client.keys.list(tenant=tenant)
    now = datetime.now(UTC)
    views = [key_view(k, now) for k in keys]
    emit({"keys": views}, as_json, lambda: print_table(
        None,
        ("id", "tenant", "name", "scopes", "status", "rate/min", "created", "expires"),
        [(v["id"], v["tenant"], v["name"], ",".join(v["scopes"]), v["status"], v["rate_limit_per_minute"],
          when(k.created_at), when(k.expires_at)) for k, v in zip(keys, views, strict=True)],
    ))  # fmt: skip


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (as `xp keys list` shows it).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")] = "",
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key; it stops working at once."""
    with open_client(home, api_key, database_url) as client:
        info = client.keys.revoke(key_id, reason=reason)
    emit(key_view(info), as_json, lambda: typer.echo(f"revoked key {info.id} (tenant {info.tenant_id})"))


@keys_app.command("anchor")
def keys_anchor(
    home: HomeOption = None,
    path: Annotated[bool, typer.Option("--path", help="Print the PEM file's path instead of its contents.")] = False,
) -> None:
    """Print the trust anchor (PEM) that makes this deployment's manifests read Trusted."""
    keys, anchor_file = home_provenance(home)
    if path:
        typer.echo(str(anchor_file))
    else:
        typer.echo(keys.trust_anchors, nl=False)


def home_provenance(home: Path | None) -> tuple[ProvenanceKeys, Path]:
    """The home's provenance keys and the file their trust anchor came from."""
    resolved = Home.resolve(home)
    try:
        keys = load_provenance_keys(resolved)
    except NotInitializedError:
        raise NotInitializedError(f"{resolved.root} has no provenance keys; run `xp init` (or set XP_HOME)") from None
    return keys, Path(environment("trust_anchors") or resolved.signing_dir / "ca.pem")
