"""``/v1/audit``: query events, show a generation with its proofs, verify the log, sign and list checkpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from audit import EventPage, GenerationInfo
from xp_sdk.results import ConsistencyProofView, GenerationAudit
from xp_sdk.server.schemas import (
    MAX_AGE_S,
    MAX_PAGE,
    MAX_TREE_SIZE,
    CheckpointNote,
    DataList,
    LogVerificationView,
    WitnessedNotes,
)
from xp_sdk.server.state import bearer_key, get_state

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/events", response_model=EventPage, summary="Query the audit log")
def query_events(
    request: Request,
    tenant: str | None = None,
    subject: str | None = None,
    generation_id: str | None = None,
    decision: str | None = None,
    type_: Annotated[str | None, Query(alias="type", description="an event type, or a prefix ending in '.'")] = None,
    since: Annotated[AwareDatetime | None, Query(description="inclusive; with a timezone")] = None,
    until: Annotated[AwareDatetime | None, Query(description="exclusive; with a timezone")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> EventPage:
    state = get_state(request)
    return state.service.audit_query(
        bearer_key(request), tenant=tenant, subject=subject, generation_id=generation_id, decision=decision,
        type=type_, since=since, until=until, limit=limit, cursor=cursor,
    )  # fmt: skip


@router.get(
    "/generations/{generation_id}",
    response_model=GenerationAudit,
    summary="A generation's record, events and inclusion proofs",
)
def show_generation(generation_id: str, request: Request) -> GenerationAudit:
    return get_state(request).service.audit_show(bearer_key(request), generation_id)


@router.post("/verify", response_model=LogVerificationView, summary="Re-verify every hash, link and signed root")
def verify_log(request: Request, body: WitnessedNotes | None = None) -> LogVerificationView:
    # Notes that do not parse are a 422 here (WitnessedNotes); whether a well-formed note is this log's is the
    # service's to judge, so that refusal is logged like any other.
    witnessed = body.witnessed if body is not None else []
    return LogVerificationView.of(get_state(request).service.audit_verify(bearer_key(request), witnessed=witnessed))


@router.get(
    "/consistency",
    response_model=ConsistencyProofView,
    summary="Prove an older tree (a witness's checkpoint) is a prefix of a signed newer one",
)
def prove_consistency(
    request: Request,
    old_size: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)],
    new_size: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None,
) -> ConsistencyProofView:
    return get_state(request).service.audit_consistency(bearer_key(request), old_size, new_size)


class AbandonedQuery(BaseModel):
    older_than_s: float = Field(
        default=3600.0,
        gt=0,
        le=MAX_AGE_S,
        allow_inf_nan=False,
        description="still requested after this many seconds (at most 100 years)",
    )
    close: bool = Field(default=False, description="write each one's failed event (needs keys:admin)")


@router.post(
    "/abandoned",
    response_model=DataList[GenerationInfo],
    summary="Generations left requested by a process that died; optionally close them as failed",
)
def abandoned(request: Request, body: AbandonedQuery) -> DataList[GenerationInfo]:
    found = get_state(request).service.audit_abandoned(
        bearer_key(request), older_than=timedelta(seconds=body.older_than_s), close=body.close
    )
    return DataList[GenerationInfo](data=found)


@router.post("/checkpoints", response_model=CheckpointNote, summary="Sign the current tree head now")
def sign_checkpoint(request: Request) -> CheckpointNote:
    return CheckpointNote(note=get_state(request).service.audit_checkpoint(bearer_key(request)))


@router.get("/checkpoints", response_model=DataList[str], summary="Every signed checkpoint note, oldest first")
def list_checkpoints(request: Request) -> DataList[str]:
    return DataList[str](data=get_state(request).service.audit_checkpoints(bearer_key(request)))
