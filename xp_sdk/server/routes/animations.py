"""``/v1/animations``: an animation is a job. Create it (upload), watch it (status, or a stream of changes),
cancel it, and download its output once the audit log holds the generation's "completed" event."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from policy import Action, Scope
from watermark import Payload
from xp_sdk.deployment import audit_errors
from xp_sdk.engine import AnimateOptions
from xp_sdk.engine.templates import (
    MAX_TEMPLATE_BYTES,
    MotionTemplate,
    builtin_template,
    parse_template,
    template_ref,
)
from xp_sdk.engine.video import check_driving_limits
from xp_sdk.errors import ConflictError, InvalidInputError, NotFoundError, XPError
from xp_sdk.gate import Caller
from xp_sdk.server.jobs import AnimationJob, JobState, JobStatus, new_job_id
from xp_sdk.server.schemas import AnimationJobView, multipart
from xp_sdk.server.state import ServerState, bearer_key, get_state
from xp_sdk.server.uploads import FilePart, Form, read_form, safe_name

router = APIRouter(prefix="/animations", tags=["animations"])

_OPTIONS = TypeAdapter(AnimateOptions)
HEARTBEAT_S = 5.0
"""A stream sends the job at least this often, so a client's read timeout never fires on a live job."""
MIN_INTERVAL_S = 0.25
"""Progress is sent at most this often (the end of a job at once)."""

AUTH_DOC = "`Authorization: Bearer <API key>`."


@router.post(
    "",
    status_code=202,
    response_model=AnimationJobView,
    summary="Start an animation job",
    openapi_extra=multipart(
        ("source", "subject"),
        source="file",
        driving="file",
        template="string",
        template_json="file",
        subject="string",
        purpose="string",
        options="string",
        out_name="string",
        source_format="string",
    ),
    description=(
        "multipart/form-data: `source` (the photo, ≤ 20 MiB) and one of `driving` (a video, ≤ 200 MiB), "
        "`template` (a built-in motion template's name; never a path) or `template_json` (a motion template's JSON, "
        "≤ 8 MiB); `subject`, optional `purpose`, `options` (JSON of AnimateOptions), `out_name` (the output's file "
        "name, .mp4) and `source_format` (`array` when the photo was pixels on the client). "
        "Send an `Idempotency-Key` header to make a retry return the job the first attempt started. " + AUTH_DOC
    ),
)
async def create_animation(
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> AnimationJobView:
    state = get_state(request)
    caller = await run_in_threadpool(state.service.caller, bearer_key(request))
    # Scope first, as in process: a key that may not animate is told that and nothing about its upload.
    await run_in_threadpool(partial(state.service.gate.require_scope, caller, Action.ANIMATE))
    job_id = new_job_id()
    workdir = state.uploads / job_id
    limits = state.limits
    try:
        form = await read_form(
            request,
            workdir,
            {
                "source": FilePart(limits.photo_bytes),
                "driving": FilePart(limits.video_bytes),
                "template_json": FilePart(MAX_TEMPLATE_BYTES),
            },
            field_bytes=limits.field_bytes,
            max_fields=limits.max_fields,
        )
        job = _job(state, caller, job_id, bearer_key(request) or "", form, workdir)
    except XPError as exc:
        # Refused at the edge (an upload too large, a template that is a path, bad options): one event, as the
        # same refusal in process leaves.
        state.discard(workdir)
        await run_in_threadpool(state.service.record_refusal, caller, Action.ANIMATE, exc, {"job": job_id})
        raise
    except BaseException:
        state.discard(workdir)
        raise
    try:
        current, created = state.runner.submit(job, idempotency_key=idempotency_key)
    except BaseException:
        state.discard(workdir)
        raise
    if not created:
        state.discard(workdir)
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/animations/{current.id}"
    return AnimationJobView.of(current)


def _job(state: ServerState, caller: Caller, job_id: str, api_key: str, form: Form, workdir: Path) -> AnimationJob:
    source = form.require_file("source")
    driving = form.file("driving")
    template = _template(form)
    if (driving is None) == (template is None):
        raise InvalidInputError(
            "give exactly one of driving (a video), template (a built-in template's name) or template_json (a "
            "template's JSON)"
        )
    if driving is not None:
        # Read from its header now (no decoding), so a video that is no video, or too long, is a 400 here rather
        # than a job that fails later.
        settings = state.service.deployment.settings
        check_driving_limits(
            driving.path, max_seconds=settings.max_driving_seconds, max_frames=settings.max_driving_frames
        )
    subject = form.require("subject")
    out_name = safe_name(form.get("out_name") or "animation.mp4", "animation.mp4")
    source_format = form.get("source_format") or "file"
    if source_format not in ("file", "array"):
        raise InvalidInputError("source_format must be 'file' or 'array'")
    raw_options = form.get("options")
    try:
        options = _OPTIONS.validate_json(raw_options) if raw_options else None
    except ValidationError as exc:
        raise InvalidInputError(f"invalid options: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    if options is not None and options.engine == "diffusion":
        # Which weight files and device the server uses is the operator's choice (its models.toml), never a
        # caller's: a path from a request could point the server at any file it can read.
        options = dataclasses.replace(
            options, diffusion=dataclasses.replace(options.diffusion, models=None, device="auto")
        )
    generation_id = Payload.new().hex
    out = state.outputs / generation_id / out_name
    asked: dict[str, Any] = {
        "subject": subject, "template": template_ref(template) if template is not None else None,
        "purpose": form.get("purpose"), "options": raw_options, "out_name": out_name, "source": source.sha256,
        "source_format": source_format, "driving": driving.sha256 if driving else None,
    }  # fmt: skip
    renames = {
        **form.renames(), str(out): out_name, str(out.parent): "the server's output folder",
        str(state.root.parent): "<server home>",
    }  # fmt: skip
    return AnimationJob(
        id=job_id, generation_id=generation_id, api_key=api_key, tenant_id=caller.tenant_id, key_id=caller.key.id,
        subject=subject, source=source.path, source_is_array=source_format == "array", out=out,
        workdir=workdir, driving=driving.path if driving else None, template=template,
        options=options, purpose=form.get("purpose") or None,
        fingerprint=hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest(), renames=renames,
    )  # fmt: skip


def _template(form: Form) -> str | MotionTemplate | None:
    """A built-in template's name, or an uploaded template's content: never a path on this server."""
    name = form.get("template") or None
    upload = form.file("template_json")
    text = form.get("template_json") or None
    if sum(given is not None for given in (name, upload, text)) > 1:
        raise InvalidInputError("send a template once: its built-in name (template) or its JSON (template_json)")
    if name is not None:
        builtin_template(name)
        return name
    if upload is not None:
        return parse_template(upload.path.read_bytes(), origin=f"the uploaded template {upload.client_name!r}")
    if text is not None:
        return parse_template(text, origin="the template_json field")
    return None


def _visible(state: ServerState, caller: Caller, job_id: str) -> JobState:
    """The job, if the caller's tenant owns it (or the caller administers keys); otherwise it does not exist."""
    job = state.runner.status(job_id)
    if job is None or (job.tenant_id != caller.tenant_id and Scope.KEYS_ADMIN.value not in caller.key.scopes):
        raise NotFoundError(f"no animation job {job_id}")
    return job


@router.get("/{job_id}", response_model=AnimationJobView, summary="An animation job's status and progress")
def get_animation(job_id: str, request: Request) -> AnimationJobView:
    state = get_state(request)
    return AnimationJobView.of(_visible(state, state.service.caller(bearer_key(request)), job_id))


@router.delete("/{job_id}", response_model=AnimationJobView, summary="Cancel an animation job")
def cancel_animation(job_id: str, request: Request) -> AnimationJobView:
    state = get_state(request)
    _visible(state, state.service.caller(bearer_key(request)), job_id)
    cancelled = state.runner.cancel(job_id)
    if cancelled is None:
        raise NotFoundError(f"no animation job {job_id}")
    return AnimationJobView.of(cancelled)


@router.get(
    "/{job_id}/events",
    summary="Watch an animation job",
    description="application/x-ndjson: the job (as in GET /v1/animations/{id}) each time it changes, at least "
    f"every {HEARTBEAT_S:g} s, ending with its final state.",
    response_class=StreamingResponse,
)
async def watch_animation(job_id: str, request: Request) -> StreamingResponse:
    state = get_state(request)
    caller = await run_in_threadpool(state.service.caller, bearer_key(request))
    _visible(state, caller, job_id)
    return StreamingResponse(
        _changes(state, job_id),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _changes(state: ServerState, job_id: str) -> AsyncIterator[str]:
    # Polling the runner's snapshot costs a dict lookup; a thread blocked per watcher would cost a pool slot.
    sent_version, sent_at = -1, 0.0
    while True:
        job = state.runner.status(job_id)
        if job is None:
            return
        now = time.monotonic()
        changed = job.version != sent_version and (job.status.finished or now - sent_at >= MIN_INTERVAL_S)
        if changed or now - sent_at >= HEARTBEAT_S:
            yield AnimationJobView.of(job).model_dump_json() + "\n"
            sent_version, sent_at = job.version, now
            if job.status.finished:
                return
        await anyio.sleep(0.05)


@router.get(
    "/{job_id}/output",
    response_class=FileResponse,
    summary="Download an animation job's output",
    description="video/mp4, once the job has succeeded and the audit log holds its generation's completed event. "
    "`X-Content-SHA256` carries the audited hash.",
    responses={200: {"content": {"video/mp4": {}}}},
)
def download_output(job_id: str, request: Request) -> FileResponse:
    state = get_state(request)
    job = _visible(state, state.service.caller(bearer_key(request)), job_id)
    if job.status is not JobStatus.SUCCEEDED or job.result is None:
        raise ConflictError(f"animation job {job_id} is {job.status.value}; its output exists once it has succeeded")
    with audit_errors():
        record = state.service.deployment.ledger.generation(job.generation_id)
    if record.status != "completed" or record.output_sha256 != job.result.output_sha256:
        raise ConflictError(f"generation {job.generation_id} is not completed on the audit record")
    path = job.result.output
    if not path.is_file():
        raise NotFoundError(f"the output of animation job {job_id} is no longer kept on the server")
    return FileResponse(
        path,
        media_type="video/mp4",
        filename=path.name,
        headers={"X-Content-SHA256": record.output_sha256, "Cache-Control": "no-store"},
    )
