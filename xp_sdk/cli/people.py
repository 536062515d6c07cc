"""``xp subjects`` and ``xp consents``: who may be animated, and on whose agreement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from audit import ConsentInfo, SubjectInfo
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
from xp_sdk.errors import InvalidInputError

subjects_app = typer.Typer(no_args_is_help=True, help="People who may be animated, and protected persons.")
consents_app = typer.Typer(no_args_is_help=True, help="Consent records: who agreed, for which tenant and purpose.")


def subject_view(info: SubjectInfo) -> dict[str, Any]:
    return info.model_dump(mode="json")


def consent_status(info: ConsentInfo, now: datetime) -> str:
    if info.revoked_at is not None and info.revoked_at <= now:
        return "revoked"
    if info.valid_until is not None and info.valid_until <= now:
        return "expired"
    if info.valid_from > now:
        return "pending"
    return "active"


def consent_view(info: ConsentInfo, now: datetime | None = None) -> dict[str, Any]:
    return {**info.model_dump(mode="json"), "status": consent_status(info, now or datetime.now(UTC))}


# -- subjects ------------------------------------------------------------------------------------------------


@subjects_app.command("register")
def subjects_register(
    name: Annotated[str, typer.Option("--name", help="The person's name.")],
    photos: Annotated[
        list[Path], typer.Option("--photo", help="A reference photo showing their face; repeat for more.")
    ],
    protected: Annotated[
        bool,
        typer.Option("--protected", help="A protected person: nobody in this tenant may animate their face."),
    ] = False,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a person from reference photos (only face embeddings and photo hashes are stored)."""
    with open_client(home, api_key, database_url) as client:
        info = client.subjects.register(name, list(photos), protected=protected)
    kind = "protected person" if info.protected else "subject"
    emit(subject_view(info), as_json, lambda: typer.echo(
        f"registered {kind} {info.id} ({info.name}, {info.references} reference photo"
        f"{'s' if info.references != 1 else ''})"))  # fmt: skip


@subjects_app.command("list")
def subjects_list(
    protected: Annotated[
        bool | None, typer.Option("--protected/--not-protected", help="Only protected persons, or only others.")
    ] = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List this tenant's subjects."""
    with open_client(home, api_key, database_url) as client:
        subjects = client.subjects.list(protected=protected)
    emit({"subjects": [subject_view(s) for s in subjects]}, as_json, lambda: print_table(
        None, ("id", "name", "protected", "references", "registered"),
        [(s.id, s.name, "yes" if s.protected else "no", s.references, when(s.created_at)) for s in subjects],
    ))  # fmt: skip


@subjects_app.command("show")
def subjects_show(
    subject_id: Annotated[str, typer.Argument(metavar="ID", help="The subject's id.")],
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """One subject, with the consents this tenant holds for them."""
    with open_client(home, api_key, database_url) as client:
        info = client.subjects.get(subject_id)
        consents = client.consents.list(subject=subject_id)
    now = datetime.now(UTC)
    data = {**subject_view(info), "consents": [consent_view(c, now) for c in consents]}

    def human() -> None:
        typer.echo(f"subject    {info.id}")
        typer.echo(f"name       {info.name}")
        typer.echo(f"tenant     {info.tenant_id}")
        typer.echo(f"protected  {'yes' if info.protected else 'no'}")
        typer.echo(f"references {info.references}")
        typer.echo(f"registered {when(info.created_at)} UTC by {info.created_by or '-'}")
        if consents:
            _consent_table(consents, now)
        else:
            typer.echo("consents   none for this tenant")

    emit(data, as_json, human)


# -- consents ------------------------------------------------------------------------------------------------


# The options both ways of granting a consent take.
GranteeOption = Annotated[
    str | None, typer.Option("--tenant", help="Who may animate (default: the calling key's tenant).")
]
ConsentExpiresOption = Annotated[
    str | None,
    typer.Option("--expires", help="When the consent lapses: 2027-01-01T00:00Z, or 30d, 12h.", show_default=False),
]
ConsentScopesOption = Annotated[
    list[str] | None, typer.Option("--scope", help="What it allows; repeat or comma-separate (default: animate).")
]


@consents_app.command("grant")
def consents_grant(
    subject: Annotated[str, typer.Option("--subject", help="The subject's id.")],
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="A signed statement or other file, recorded by its SHA-256 as an attested consent (the operator's "
            "word). Or give --video and --challenge instead.",
            show_default=False,
        ),
    ] = None,
    video: Annotated[
        Path | None,
        typer.Option(
            "--video",
            help="The subject's video answering --challenge: checked (face, actions, phrase, not generated, fresh) "
            "and recorded as a verified-video consent.",
            show_default=False,
        ),
    ] = None,
    challenge: Annotated[
        str | None,
        typer.Option("--challenge", help="The challenge --video answers (xp consents challenge).", show_default=False),
    ] = None,
    tenant: GranteeOption = None,
    expires: ConsentExpiresOption = None,
    purposes: Annotated[
        list[str] | None,
        typer.Option(
            "--purpose",
            help="A purpose it covers; repeat for more (default: any purpose; with --video, the challenge's).",
        ),
    ] = None,
    scopes: ConsentScopesOption = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a subject's consent to be animated by a tenant: verified by a challenge video (--video, --challenge)
    or attested by an evidence file (--evidence)."""
    if (evidence is None) == (video is None) or (video is None) != (challenge is None):
        raise InvalidInputError(
            "give either --evidence FILE (an attested consent) or --video V with --challenge ID (a verified-video "
            "consent; xp consents challenge issues the challenge)"
        )
    if video is not None and challenge is not None:
        _grant_by_video(subject, video, challenge, tenant, expires, purposes, scopes, home, api_key, database_url,
                        as_json)  # fmt: skip
        return
    assert evidence is not None
    until = future_time(expires, option="--expires")
    with open_client(home, api_key, database_url) as client:
        info = client.consents.grant(
            subject,
            evidence=evidence,
            tenant=tenant,
            scopes=split_list(scopes) or ["animate"],
            purposes=split_list(purposes),
            expires=until,
        )

    def human() -> None:
        lapse = f"until {when(info.valid_until)} UTC" if info.valid_until else "until revoked"
        purposes_text = ", ".join(info.purposes) or "any purpose"
        typer.echo(
            f"granted {info.kind} consent {info.id}: {info.subject_id} → tenant {info.grantee_tenant_id} "
            f"({', '.join(info.scopes)}; {purposes_text}; {lapse}); evidence sha256 {info.evidence_sha256[:16]}…"
        )

    emit(consent_view(info), as_json, human)


@consents_app.command("challenge")
def consents_challenge(
    subject: Annotated[str, typer.Option("--subject", help="The subject's id.")],
    purpose: Annotated[str | None, typer.Option("--purpose", help="The purpose the consent will cover.")] = None,
    expires_in_minutes: Annotated[
        int, typer.Option("--expires-in-minutes", help="How long the challenge may be answered.")
    ] = 10,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue a one-time challenge for a consent video: a sentence to say and facial actions to perform."""
    with open_client(home, api_key, database_url) as client:
        challenge = client.consents.challenge(subject, purpose=purpose, expires_in_minutes=expires_in_minutes)

    def human() -> None:
        typer.echo(f"challenge {challenge.id} for {challenge.subject_id}, until {when(challenge.expires_at)} UTC:")
        typer.echo(f"  {challenge.instructions()}")

    emit({**challenge.model_dump(mode="json"), "instructions": challenge.instructions()}, as_json, human)


@consents_app.command("grant-video")
def consents_grant_video(
    subject: Annotated[str, typer.Option("--subject", help="The subject's id.")],
    video: Annotated[Path, typer.Option("--video", help="The subject's video answering the challenge.")],
    challenge: Annotated[str, typer.Option("--challenge", help="The challenge's id (xp consents challenge).")],
    tenant: GranteeOption = None,
    expires: ConsentExpiresOption = None,
    purposes: Annotated[
        list[str] | None,
        typer.Option("--purpose", help="A purpose it covers; repeat for more (default: the challenge's)."),
    ] = None,
    scopes: ConsentScopesOption = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The same as xp consents grant --video V --challenge ID (kept for scripts that call it)."""
    _grant_by_video(subject, video, challenge, tenant, expires, purposes, scopes, home, api_key, database_url, as_json)


def _grant_by_video(
    subject: str,
    video: Path,
    challenge: str,
    tenant: str | None,
    expires: str | None,
    purposes: list[str] | None,
    scopes: list[str] | None,
    home: Path | None,
    api_key: str | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """A consent proven by a video answering a challenge (face, actions, phrase, not generated, fresh); a refusal
    names each failed check."""
    until = future_time(expires, option="--expires")
    with open_client(home, api_key, database_url) as client:
        info = client.consents.grant_by_video(
            subject, video=video, challenge=challenge, tenant=tenant,
            scopes=split_list(scopes) or ["animate"], purposes=split_list(purposes), expires=until,
        )  # fmt: skip

    def human() -> None:
        typer.echo(
            f"granted {info.kind} consent {info.id}: {info.subject_id} → tenant {info.grantee_tenant_id}; "
            f"video sha256 {info.evidence_sha256[:16]}…"
        )

    emit(consent_view(info), as_json, human)


@consents_app.command("revoke")
def consents_revoke(
    consent_id: Annotated[str, typer.Argument(metavar="ID", help="The consent's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")] = "",
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a consent; animations that relied on it are refused from now on."""
    with open_client(home, api_key, database_url) as client:
        info = client.consents.revoke(consent_id, reason=reason)
    emit(consent_view(info), as_json, lambda: typer.echo(f"revoked consent {info.id} ({info.subject_id})"))


@consents_app.command("list")
def consents_list(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject's consents.")] = None,
    home: HomeOption = None,
    api_key: ApiKeyOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List the consents granted to this tenant."""
    with open_client(home, api_key, database_url) as client:
        consents = client.consents.list(subject=subject)
    now = datetime.now(UTC)
    emit({"consents": [consent_view(c, now) for c in consents]}, as_json, lambda: _consent_table(consents, now))


def _consent_table(consents: list[ConsentInfo], now: datetime) -> None:
    print_table(
        None,
        ("consent", "kind", "subject", "tenant", "scopes", "purposes", "status", "granted", "until"),
        [
            (c.id, c.kind, c.subject_id, c.grantee_tenant_id, ",".join(c.scopes), ",".join(c.purposes) or "any",
             consent_status(c, now), when(c.created_at), when(c.valid_until))
            for c in consents
        ],
    )  # fmt: skip
