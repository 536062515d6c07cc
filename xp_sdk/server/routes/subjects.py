"""``/v1/subjects``: register a person from reference photos (uploads), get one, list them."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from audit import SubjectInfo
from xp_sdk.engine.images import load_image
from xp_sdk.errors import InvalidInputError, XPError
from xp_sdk.server.errors import renamed
from xp_sdk.server.schemas import DataList, multipart
from xp_sdk.server.state import bearer_key, get_state, well_formed_key
from xp_sdk.server.uploads import FilePart, read_form
from xp_sdk.service import PhotoInput

router = APIRouter(prefix="/subjects", tags=["subjects"])


@router.post(
    "",
    status_code=201,
    response_model=SubjectInfo,
    summary="Register a subject",
    openapi_extra=multipart(
        ("name", "photos"), name="string", protected="string", photos="files", photo_kinds="strings"
    ),
    description="multipart/form-data: `name`, `protected` (true/false), one or more `photos` (each ≤ 20 MiB) and "
    "`photo_kinds` (`file` or `array`, one per photo, in order).",
)
async def register_subject(request: Request) -> SubjectInfo:
    state = get_state(request)
    key = await run_in_threadpool(well_formed_key, state, request)
    folder = state.upload_dir()
    form = await read_form(
        request,
        folder,
        {"photos": FilePart(state.limits.photo_bytes, state.limits.max_photos)},
        field_bytes=state.limits.field_bytes,
        max_fields=state.limits.max_fields,
    )
    try:
        uploaded = form.files.get("photos", [])
        kinds = form.values("photo_kinds") or ["file"] * len(uploaded)
        if len(kinds) != len(uploaded) or any(kind not in ("file", "array") for kind in kinds):
            raise InvalidInputError("photo_kinds must give 'file' or 'array' for each photo, in order")
        # A photo that was pixels on the client is passed on as pixels, so its hash is of the pixels there too.
        photos: list[PhotoInput] = [
            load_image(photo.path) if kind == "array" else photo.path
            for photo, kind in zip(uploaded, kinds, strict=True)
        ]
        protected = (form.get("protected") or "false").lower() in ("true", "1", "yes")
        register = partial(state.service.register_subject, key, form.get("name") or "", photos, protected=protected)
        return await anyio.to_thread.run_sync(register, limiter=state.heavy)
    except XPError as exc:
        raise renamed(exc, form.renames()) from None
    finally:
        state.discard(folder)


@router.get("", response_model=DataList[SubjectInfo], summary="List the tenant's subjects")
def list_subjects(
    request: Request, protected: Annotated[bool | None, Query(description="only protected, or only not")] = None
) -> DataList[SubjectInfo]:
    state = get_state(request)
    return DataList[SubjectInfo](data=state.service.subjects(bearer_key(request), protected=protected))


@router.get("/{subject_id}", response_model=SubjectInfo, summary="One subject")
def get_subject(subject_id: str, request: Request) -> SubjectInfo:
    return get_state(request).service.subject(bearer_key(request), subject_id)
