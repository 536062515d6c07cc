"""Request and response bodies of the HTTP API that are not already a result type of the SDK."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, create_model

from audit import ApiKeyInfo, LogVerification, NewApiKey, ProofError, SignedCheckpoint
from xp_sdk.results import AnimationResult
from xp_sdk.server.errors import ErrorStatus, error_statuses
from xp_sdk.server.jobs import JobProgress, JobState, JobStatus
from xp_sdk.verify import Verification

T = TypeVar("T")

# Bounds a request is held to before it reaches the service (which checks its own): past these a value is a 422
# here instead of an overflow deeper in (a timedelta, a database integer).
MAX_PAGE = 1000
MAX_TREE_SIZE = 2**62
MAX_AGE_S = 36_500 * 86_400.0
MAX_RATE_LIMIT = 1_000_000
MAX_NAME = 200
MAX_WITNESSED = 1000
MAX_NOTE_CHARS = 16 * 1024


class DataList(BaseModel, Generic[T]):
    data: list[T]


class AnimationJobView(BaseModel):
    """An animation job as a client sees it; ``result.output`` is the output's file name."""

    object: Literal["animation.job"] = "animation.job"
    id: str
    status: JobStatus
    generation_id: str
    tenant_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: JobProgress
    result: AnimationResult | None
    error: dict[str, Any] | None = Field(description="the typed error body, when the job failed or was cancelled")
    output_url: str | None = Field(description="where to download the output, once the job has succeeded")
    version: int

    @classmethod
    def of(cls, job: JobState) -> AnimationJobView:
        result = job.result.model_copy(update={"output": Path(job.result.output.name)}) if job.result else None
        return cls(
            id=job.id, status=job.status, generation_id=job.generation_id, tenant_id=job.tenant_id,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, progress=job.progress,
            result=result, error=job.error, version=job.version,
            output_url=f"/v1/animations/{job.id}/output" if job.status is JobStatus.SUCCEEDED else None,
        )  # fmt: skip


class VerificationView(Verification):
    still: str | None = Field(default=None, description="a JPEG of the middle frame as a data: URL (?still=true)")


class NewKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(default=None, max_length=64)
    scopes: list[str] | str
    name: str = Field(default="", max_length=MAX_NAME)
    expires: AwareDatetime | None = None
    rate_limit_per_minute: int = Field(
        default=60, ge=0, le=MAX_RATE_LIMIT, description="requests a minute; 0 is no limit"
    )


class NewKeyView(BaseModel):
    info: ApiKeyInfo
    secret: str = Field(description="shown once, never again")

    @classmethod
    def of(cls, key: NewApiKey) -> NewKeyView:
        return cls(info=key.info, secret=key.secret)


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


def _signed_note(note: str) -> str:
    try:
        SignedCheckpoint.parse(note)
    except ProofError as exc:
        raise ValueError(f"not a signed checkpoint note: {exc}") from None
    return note


SignedNote = Annotated[str, Field(max_length=MAX_NOTE_CHARS), AfterValidator(_signed_note)]


class WitnessedNotes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    witnessed: list[SignedNote] = Field(
        default_factory=list,
        max_length=MAX_WITNESSED,
        description="signed checkpoint notes kept outside the server (C2SP signed-note text)",
    )


class LogVerificationView(BaseModel):
    tree_size: int
    root_hash: str
    checkpoints: int
    latest_checkpoint_size: int
    unsigned_tail: int
    witnessed: int
    seconds: float
    records: int = 0
    """Record rows (tenants, keys, subjects, consents, generations) found to agree with their events."""

    @classmethod
    def of(cls, checked: LogVerification) -> LogVerificationView:
        return cls.model_validate(checked.to_dict())


class CheckpointNote(BaseModel):
    note: str | None = Field(description="the signed note (C2SP), or None when the log is empty")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: ``type`` names a class in ``xp_sdk.errors``."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="a stable code, e.g. invalid_input")
    type: str
    message: str
    reasons: list[dict[str, Any]] | None = Field(default=None, description="refusals: each failed check")
    decision_id: str | None = None
    retry_after: float | None = Field(default=None, description="rate limits: seconds to wait")
    seq: int | None = Field(default=None, description="a tampered log: the first inconsistent event, if known")
    count: int | None = Field(default=None, description="several faces: how many")
    missing: list[str] | None = Field(default=None, description="diffusion weights: those not configured or found")


def _error_model(entry: ErrorStatus) -> type[ErrorBody]:
    """``ErrorBody`` narrowed to what a body of one status holds: its ``type`` (and, where the set is closed, its
    ``error``) among the values the error classes of that status give."""
    literal = cast(Any, Literal)
    fields: dict[str, Any] = {
        "type": (literal[entry.types], Field(description="the class in xp_sdk.errors a client raises for it"))
    }
    if entry.codes is not None:
        fields["error"] = (literal[entry.codes], Field(description="the class's stable code"))
    model: type[ErrorBody] = create_model(
        f"Error{entry.status}", __base__=ErrorBody, __doc__=f"A {entry.status} answer: {entry.description}.", **fields
    )
    return model


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    entry.status: {"model": _error_model(entry), "description": entry.description} for entry in error_statuses()
}
"""The statuses ``server.errors`` answers with (each error class's ``http_status``), for every ``/v1`` route."""

ANY_ROUTE_STATUSES = (413, 500)
"""What any route can answer before or beside its own work: a body over the limit (``limits.BodyLimit``, every
method and path) and an unexpected failure."""
ANY_ROUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in ANY_ROUTE_STATUSES
}


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


CheckState = Literal["ok", "unavailable"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, CheckState] = Field(description='each dependency checked: "database", and "redis" if configured')


def multipart(required: tuple[str, ...], **fields: str) -> dict[str, Any]:
    """OpenAPI for a multipart body read by ``uploads.read_form`` (FastAPI cannot see it): each field is
    ``"file"``, ``"files"`` (repeated), ``"string"`` or ``"strings"`` (repeated)."""
    shapes: dict[str, dict[str, Any]] = {
        "file": {"type": "string", "format": "binary"},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "string": {"type": "string"},
        "strings": {"type": "array", "items": {"type": "string"}},
    }
    schema = {"type": "object", "properties": {name: shapes[kind] for name, kind in fields.items()}}
    if required:
        schema["required"] = list(required)
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}
