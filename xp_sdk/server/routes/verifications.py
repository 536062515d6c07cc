"""``/v1/verifications``: upload a video, get its C2PA state, watermark and audited generation (and a still)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from xp_sdk.errors import XPError
from xp_sdk.server.errors import renamed
from xp_sdk.server.schemas import VerificationView, multipart
from xp_sdk.server.state import bearer_key, get_state, well_formed_key
from xp_sdk.server.still import middle_frame_jpeg
from xp_sdk.server.uploads import FilePart, read_form
from xp_sdk.verify import PublicVerification

router = APIRouter(prefix="/verifications", tags=["verify"])


@router.post(
    "",
    response_model=VerificationView | PublicVerification,
    summary="Verify a video",
    openapi_extra=multipart(("video",), video="file", trust_anchors="string"),
    description="multipart/form-data: `video` (≤ 200 MiB) and optional `trust_anchors` (PEM). `?still=true` adds a "
    "JPEG of the middle frame. `Authorization: Bearer <API key>` with the verify scope gives the full report (and "
    "the generation's record to its own tenant). Without an `Authorization` header anyone may verify: the answer "
    "is the public verdict only (C2PA state, whether this deployment's watermark is present, and a plain "
    "statement), rate-limited per client address.",
)
async def create_verification(
    request: Request, still: Annotated[bool, Query(description="include a still of the middle frame")] = False
) -> VerificationView | PublicVerification:
    state = get_state(request)
    if bearer_key(request) is None:
        return await _verify_anonymously(request)
    key = await run_in_threadpool(well_formed_key, state, request)
    folder = state.upload_dir()
    form = await read_form(
        request,
        folder,
        {"video": FilePart(state.limits.video_bytes)},
        field_bytes=state.limits.field_bytes,
        max_fields=state.limits.max_fields,
    )
    try:
        video = form.require_file("video")
        anchors = form.get("trust_anchors") or None
        check = partial(state.service.verify, key, video.path, trust_anchors=anchors)
        report = await anyio.to_thread.run_sync(check, limiter=state.heavy)
        frame = await anyio.to_thread.run_sync(middle_frame_jpeg, video.path, limiter=state.heavy) if still else None
    except XPError as exc:
        raise renamed(exc, form.renames()) from None
    finally:
        state.discard(folder)
    return VerificationView(**{**report.model_dump(), "path": video.client_name, "still": frame})


async def _verify_anonymously(request: Request) -> PublicVerification:
    state = get_state(request)
    folder = state.upload_dir()
    form = await read_form(
        request,
        folder,
        {"video": FilePart(state.limits.video_bytes)},
        field_bytes=state.limits.field_bytes,
        max_fields=state.limits.max_fields,
    )
    address = request.client.host if request.client else "unknown"
    try:
        video = form.require_file("video")
        check = partial(state.service.verify_anonymous, video.path, client_address=address)
        return await anyio.to_thread.run_sync(check, limiter=state.heavy)
    except XPError as exc:
        raise renamed(exc, form.renames()) from None
    finally:
        state.discard(folder)
