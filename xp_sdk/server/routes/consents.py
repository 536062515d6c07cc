"""``/v1/consents``: record a subject's consent on uploaded evidence or on a challenge video, revoke it, list them."""

from __future__ import annotations

import os
from datetime import datetime
from functools import partial

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from audit import ConsentInfo
from xp_sdk.consent.challenge import MAX_CHALLENGE_MINUTES, ConsentChallenge
from xp_sdk.errors import InvalidInputError, XPError
from xp_sdk.server.errors import renamed
from xp_sdk.server.schemas import DataList, Revocation, multipart
from xp_sdk.server.state import bearer_key, get_state, well_formed_key
from xp_sdk.server.uploads import FilePart, Form, read_form

router = APIRouter(prefix="/consents", tags=["consents"])


class ChallengeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=64)
    purpose: str | None = Field(default=None, max_length=64)
    expires_in_minutes: int = Field(default=10, ge=1, le=MAX_CHALLENGE_MINUTES)


@router.post(
    "/challenges",
    status_code=201,
    response_model=ConsentChallenge,
    summary="Issue a consent challenge",
    description="A one-time challenge for a subject's consent video: a sentence to say and facial actions to "
    "perform, in order, before `expires_at`. Only the subject's own tenant may ask.",
)
def consent_challenge(request: Request, body: ChallengeRequest) -> ConsentChallenge:
    return get_state(request).service.consent_challenge(
        bearer_key(request), body.subject, purpose=body.purpose, expires_in_minutes=body.expires_in_minutes
    )


@router.post(
    "/video",
    status_code=201,
    response_model=ConsentInfo,
    summary="Record a consent proven by a challenge video",
    openapi_extra=multipart(
        ("subject", "video", "challenge"),
        subject="string",
        video="file",
        challenge="string",
        tenant="string",
        scopes="strings",
        purposes="strings",
        expires="string",
    ),
    description="multipart/form-data: `subject`, `video` (≤ the evidence limit) answering `challenge`, optional "
    "`tenant`, `scopes` and `purposes` (repeated), `expires` (ISO 8601 with a timezone). Refused with "
    "`consent_video_rejected` naming each failed check.",
)
async def grant_consent_by_video(request: Request) -> ConsentInfo:
    state = get_state(request)
    key = await run_in_threadpool(well_formed_key, state, request)
    folder = state.upload_dir()
    form = await read_form(
        request,
        folder,
        {"video": FilePart(state.limits.evidence_bytes)},
        field_bytes=state.limits.field_bytes,
        max_fields=state.limits.max_fields,
    )
    try:
        grant = partial(
            state.service.grant_consent_by_video, key, form.require("subject"), video=form.require_file("video").path,
            challenge=form.require("challenge"), tenant=form.get("tenant") or None,
            scopes=form.values("scopes") or ("animate",), purposes=form.values("purposes"),
            expires=_when(form, "expires"),
        )  # fmt: skip
        return await run_in_threadpool(grant)
    except XPError as exc:
        raise renamed(exc, form.renames()) from None
    finally:
        state.discard(folder)


@router.post(
    "",
    status_code=201,
    response_model=ConsentInfo,
    summary="Record a consent",
    openapi_extra=multipart(
        ("subject", "evidence"),
        subject="string",
        evidence="file",
        evidence_kind="string",
        tenant="string",
        scopes="strings",
        purposes="strings",
        valid_from="string",
        expires="string",
    ),
    description="multipart/form-data: `subject`, `evidence` (≤ 50 MiB; only its SHA-256 is kept), `evidence_kind` "
    "(`bytes` for a statement given as bytes, else `file`: a video name makes it a consent video), optional "
    "`tenant`, `scopes` and `purposes` (repeated), `valid_from` and `expires` (ISO 8601 with a timezone).",
)
async def grant_consent(request: Request) -> ConsentInfo:
    state = get_state(request)
    key = await run_in_threadpool(well_formed_key, state, request)
    folder = state.upload_dir()
    form = await read_form(
        request,
        folder,
        {"evidence": FilePart(state.limits.evidence_bytes)},
        field_bytes=state.limits.field_bytes,
        max_fields=state.limits.max_fields,
    )
    try:
        upload = form.require_file("evidence")
        kind = form.get("evidence_kind") or "file"
        if kind not in ("bytes", "file"):
            raise InvalidInputError("evidence_kind must be 'bytes' or 'file'")
        evidence: str | os.PathLike[str] | bytes = upload.path.read_bytes() if kind == "bytes" else upload.path
        grant = partial(
            state.service.grant_consent, key, form.require("subject"), evidence=evidence,
            tenant=form.get("tenant") or None, scopes=form.values("scopes") or ("animate",),
            purposes=form.values("purposes"), valid_from=_when(form, "valid_from"), expires=_when(form, "expires"),
        )  # fmt: skip
        return await run_in_threadpool(grant)
    except XPError as exc:
        raise renamed(exc, form.renames()) from None
    finally:
        state.discard(folder)


def _when(form: Form, name: str) -> datetime | None:
    value = form.get(name)
    if not value:
        return None
    shown = value if len(value) <= 80 else value[:77] + "…"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be an ISO 8601 date and time, got {shown!r}") from None
    if moment.utcoffset() is None:
        raise InvalidInputError(f"{name} must carry a timezone (e.g. 2027-01-01T00:00:00Z), got {shown!r}")
    return moment


@router.post("/{consent_id}/revoke", response_model=ConsentInfo, summary="Revoke a consent")
def revoke_consent(consent_id: str, request: Request, body: Revocation | None = None) -> ConsentInfo:
    reason = body.reason if body is not None else ""
    return get_state(request).service.revoke_consent(bearer_key(request), consent_id, reason=reason)


@router.get("", response_model=DataList[ConsentInfo], summary="Consents granted to the caller's tenant")
def list_consents(request: Request, subject: str | None = None) -> DataList[ConsentInfo]:
    state = get_state(request)
    return DataList[ConsentInfo](data=state.service.consents(bearer_key(request), subject=subject))
