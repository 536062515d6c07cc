"""``HttpOperations``: the ``Operations`` (``xp_sdk.operations``) over HTTP, against ``xp serve``, and
``AsyncHttpOperations``: the same over ``httpx.AsyncClient``.

Same methods, same result types, same exception classes as the embedded ``Service``: each method here is a plan
(``xp_sdk.http_plan``) that says which route it calls with what and reads the answer; ``xp_sdk.transport`` sends
it, with the retries that are safe, and raises the error an answer names. ``HttpOperations`` runs a plan to its
end before returning; ``AsyncHttpOperations`` runs the very same plan awaiting each request.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx
import numpy as np
from PIL import Image

from audit import ApiKeyInfo, ConsentInfo, EventPage, GenerationInfo, LogVerification, NewApiKey, SubjectInfo
from xp_sdk.consent.challenge import ConsentChallenge
from xp_sdk.engine import AnimateOptions, Progress, ProgressCallback
from xp_sdk.engine.images import check_image_array
from xp_sdk.engine.templates import MotionTemplate, resolve_template, template_json
from xp_sdk.errors import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    InvalidInputError,
    UnreadableImageError,
    XPError,
)
from xp_sdk.http_plan import Download, Follow, Json, Plan, Send, arun, interrupted, run
from xp_sdk.results import AnimationResult, ConsistencyProofView, GenerationAudit
from xp_sdk.transport import MAX_RETRY_AFTER, AsyncHttpTransport, FilePart, Files, HttpTransport, error_from_body
from xp_sdk.verification import PublicVerification, Verification

P = ParamSpec("P")
R = TypeVar("R")

PLANS: dict[str, Callable[..., Plan[Any]]] = {}
"""Each operation's plan by name, for ``AsyncHttpOperations``."""


def planned(plan: Callable[Concatenate[Any, P], Plan[R]]) -> Callable[Concatenate[HttpOperations, P], R]:
    """The operation ``plan`` describes, run over the blocking transport (its signature and documentation are the
    plan's)."""
    PLANS[plan.__name__] = plan

    def perform(self: HttpOperations, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return run(plan(self, *args, **kwargs), self._http)

    functools.update_wrapper(perform, plan)
    return perform


FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class HttpOperations:
    """One connection pool to one server; safe to share across threads. The arguments after ``base_url`` are
    ``HttpTransport``'s."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | httpx.Timeout = 600.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        max_retry_after: float = MAX_RETRY_AFTER,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = HttpTransport(
            base_url, timeout=timeout, max_retries=max_retries, transport=transport, max_retry_after=max_retry_after,
            sleep=sleep,
        )  # fmt: skip
        self.base_url = self._http.base_url

    def with_options(self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None) -> Self:
        """A copy with another timeout or retry count, on the same connection pool."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._http = self._http.with_options(timeout=timeout, max_retries=max_retries)
        return copied

    def close(self) -> None:
        self._http.close()

    # -- generation --------------------------------------------------------------------------------------

    @planned
    def animate(
        self,
        api_key: str | None,
        source: str | os.PathLike[str] | np.ndarray,
        *,
        subject: str,
        out: str | os.PathLike[str],
        driving: str | os.PathLike[str] | None = None,
        template: str | os.PathLike[str] | MotionTemplate | None = None,
        options: AnimateOptions | None = None,
        purpose: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Plan[AnimationResult]:
        """Upload, start a job, follow it (``progress`` as frames advance), then download ``out`` atomically:
        a temporary file beside it, checked against the audited SHA-256, renamed into place.

        ``template``: a built-in template's name is sent as a name; a local template file (or a
        ``MotionTemplate``) is read and checked here and uploaded as ``template_json``, since the server takes no
        paths."""
        if (driving is None) == (template is None):
            raise InvalidInputError("give exactly one of driving= (a video) or template= (a motion template name)")
        out_path = Path(out)
        # Refuse before uploading what the server would only refuse after generating.
        if out_path.suffix.lower() != ".mp4":
            raise InvalidInputError(f"output {out_path} must end in .mp4")
        if not out_path.parent.is_dir():
            raise InvalidInputError(f"the folder for {out_path} does not exist")
        if driving is not None and not Path(driving).is_file():
            raise InvalidInputError(f"driving video {Path(driving)} does not exist or is not a file")
        source_part, source_format = _photo_part(source, "source photo")
        fields: dict[str, str] = {"subject": subject, "out_name": out_path.name, "source_format": source_format}
        resolved = resolve_template(template) if template is not None else None
        if isinstance(resolved, str):
            fields["template"] = resolved
        if purpose is not None:
            fields["purpose"] = purpose
        if options is not None:
            fields["options"] = json.dumps(asdict(options))

        def files(stack: contextlib.ExitStack) -> Files:
            parts = [("source", source_part(stack))]
            if driving is not None:
                parts.append(("driving", _file_part(stack, Path(driving), "video/mp4")))
            if isinstance(resolved, MotionTemplate):
                name = f"{resolved.name}.json" if isinstance(template, MotionTemplate) else str(template)
                parts.append(("template_json", (name, io.BytesIO(template_json(resolved)), "application/json")))
            return parts

        # A retried POST returns the job the first attempt started, never a second generation.
        job = yield Json("POST", "/v1/animations", api_key, data=fields, files=files, idempotent=True)
        if job["status"] not in FINISHED:
            try:
                job = yield Follow(
                    f"/v1/animations/{_segment(job['id'])}/events", api_key,
                    finished=lambda j: j.get("status") in FINISHED, each=_Reporter(progress),
                )  # fmt: skip
            except BaseException as stopped:
                if interrupted(stopped):  # the caller gave up: so does the server, rather than generate for no one
                    with contextlib.suppress(XPError, httpx.HTTPError):
                        yield Send("DELETE", f"/v1/animations/{_segment(job['id'])}", api_key)
                raise
        if job["status"] != "succeeded":
            raise error_from_body(job.get("error") or {}, None)
        result = job["result"]
        yield Download(job["output_url"], api_key, out_path, result["output_sha256"])
        return AnimationResult.model_validate({**result, "output": str(out_path)})

    # -- verification ------------------------------------------------------------------------------------

    @planned
    def verify(
        self, api_key: str | None, path: str | os.PathLike[str], *, trust_anchors: str | None = None
    ) -> Plan[Verification | PublicVerification]:
        """With an API key, the full report; without one, the server's public verdict (``PublicVerification``:
        whether this deployment made the clip, and when), which anyone may ask for."""
        file = Path(path)
        if not file.is_file():
            raise InvalidInputError(f"{file} does not exist or is not a file")
        if not api_key and trust_anchors is not None:
            raise InvalidInputError(
                "trust_anchors needs an API key: without one the server checks the clip against its own anchors "
                "and answers the public verdict"
            )
        data = {"trust_anchors": trust_anchors} if trust_anchors is not None else {}

        def files(stack: contextlib.ExitStack) -> Files:
            return [("video", _file_part(stack, file, "video/mp4"))]

        # Verifying twice reports the same verdict (and logs that it was asked twice): safe to retry.
        body = yield Json("POST", "/v1/verifications", api_key, data=data, files=files, safe=True)
        if not api_key:
            return PublicVerification.model_validate(body)
        body.pop("still", None)
        return Verification.model_validate({**body, "path": str(file)})

    # -- audit -------------------------------------------------------------------------------------------

    @planned
    def audit_query(
        self,
        api_key: str | None,
        *,
        tenant: str | None = None,
        subject: str | None = None,
        generation_id: str | None = None,
        decision: str | None = None,
        type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Plan[EventPage]:
        params = _params(
            tenant=tenant, subject=subject, generation_id=generation_id, decision=decision, type=type,
            since=since, until=until, limit=limit, cursor=cursor,
        )  # fmt: skip
        return EventPage.model_validate((yield Json("GET", "/v1/audit/events", api_key, params=params)))

    @planned
    def audit_show(self, api_key: str | None, generation_id: str) -> Plan[GenerationAudit]:
        path = f"/v1/audit/generations/{_segment(generation_id)}"
        return GenerationAudit.model_validate((yield Json("GET", path, api_key)))

    @planned
    def audit_verify(self, api_key: str | None, *, witnessed: Iterable[str] = ()) -> Plan[LogVerification]:
        body = yield Json("POST", "/v1/audit/verify", api_key, json_body={"witnessed": list(witnessed)}, safe=True)
        return LogVerification(
            tree_size=body["tree_size"], root_hash=body["root_hash"], checkpoints=body["checkpoints"],
            latest_checkpoint_size=body["latest_checkpoint_size"], witnessed=body["witnessed"],
            seconds=body["seconds"], records=body.get("records", 0),
        )  # fmt: skip

    @planned
    def audit_consistency(
        self, api_key: str | None, old_size: int, new_size: int | None = None
    ) -> Plan[ConsistencyProofView]:
        params = _params(old_size=old_size, new_size=new_size)
        return ConsistencyProofView.model_validate((yield Json("GET", "/v1/audit/consistency", api_key, params=params)))

    @planned
    def audit_abandoned(
        self, api_key: str | None, *, older_than: timedelta = timedelta(hours=1), close: bool = False
    ) -> Plan[list[GenerationInfo]]:
        body = {"older_than_s": older_than.total_seconds(), "close": close}
        # Closing twice finds nothing left to close the second time: safe to retry.
        found = (yield Json("POST", "/v1/audit/abandoned", api_key, json_body=body, safe=True))["data"]
        return [GenerationInfo.model_validate(g) for g in found]

    @planned
    def audit_checkpoint(self, api_key: str | None) -> Plan[str | None]:
        # Signing the same tree head twice is harmless: safe to retry.
        note = (yield Json("POST", "/v1/audit/checkpoints", api_key, safe=True))["note"]
        return str(note) if note is not None else None

    @planned
    def audit_checkpoints(self, api_key: str | None) -> Plan[list[str]]:
        return [str(n) for n in (yield Json("GET", "/v1/audit/checkpoints", api_key))["data"]]

    # -- subjects and consent ----------------------------------------------------------------------------

    @planned
    def register_subject(
        self,
        api_key: str | None,
        name: str,
        photos: Sequence[str | os.PathLike[str] | np.ndarray],
        *,
        protected: bool = False,
    ) -> Plan[SubjectInfo]:
        if not photos:
            raise InvalidInputError("register a subject with at least one reference photo")
        parts = [_photo_part(photo, "source photo") for photo in photos]

        def files(stack: contextlib.ExitStack) -> Files:
            return [("photos", make(stack)) for make, _ in parts]

        data = {"name": name, "protected": "true" if protected else "false", "photo_kinds": [k for _, k in parts]}
        return SubjectInfo.model_validate((yield Json("POST", "/v1/subjects", api_key, data=data, files=files)))

    @planned
    def subject(self, api_key: str | None, subject_id: str) -> Plan[SubjectInfo]:
        return SubjectInfo.model_validate((yield Json("GET", f"/v1/subjects/{_segment(subject_id)}", api_key)))

    @planned
    def subjects(self, api_key: str | None, *, protected: bool | None = None) -> Plan[list[SubjectInfo]]:
        body = yield Json("GET", "/v1/subjects", api_key, params=_params(protected=protected))
        return [SubjectInfo.model_validate(item) for item in body["data"]]

    @planned
    def grant_consent(
        self,
        api_key: str | None,
        subject: str,
        *,
        evidence: str | os.PathLike[str] | bytes,
        tenant: str | None = None,
        scopes: Iterable[str] = ("animate",),
        purposes: Iterable[str] = (),
        valid_from: datetime | None = None,
        expires: datetime | None = None,
    ) -> Plan[ConsentInfo]:
        if isinstance(evidence, bytes):
            kind = "bytes"
        else:
            if not Path(evidence).is_file():
                raise InvalidInputError(f"consent evidence {Path(evidence)} does not exist or is not a file")
            kind = "file"

        def files(stack: contextlib.ExitStack) -> Files:
            if isinstance(evidence, bytes):
                return [("evidence", ("evidence.bin", io.BytesIO(evidence), "application/octet-stream"))]
            return [("evidence", _file_part(stack, Path(evidence), "application/octet-stream"))]

        data: dict[str, Any] = {"subject": subject, "evidence_kind": kind, "scopes": list(scopes)}
        data.update(_params(tenant=tenant, valid_from=valid_from, expires=expires))
        if purposes:
            data["purposes"] = list(purposes)
        return ConsentInfo.model_validate((yield Json("POST", "/v1/consents", api_key, data=data, files=files)))

    @planned
    def revoke_consent(self, api_key: str | None, consent_id: str, *, reason: str = "") -> Plan[ConsentInfo]:
        path = f"/v1/consents/{_segment(consent_id)}/revoke"
        return ConsentInfo.model_validate((yield Json("POST", path, api_key, json_body={"reason": reason})))

    @planned
    def consents(self, api_key: str | None, *, subject: str | None = None) -> Plan[list[ConsentInfo]]:
        body = yield Json("GET", "/v1/consents", api_key, params=_params(subject=subject))
        return [ConsentInfo.model_validate(item) for item in body["data"]]

    @planned
    def consent_challenge(
        self, api_key: str | None, subject: str, *, purpose: str | None = None, expires_in_minutes: int = 10
    ) -> Plan[ConsentChallenge]:
        body = {"subject": subject, "purpose": purpose, "expires_in_minutes": expires_in_minutes}
        return ConsentChallenge.model_validate((yield Json("POST", "/v1/consents/challenges", api_key, json_body=body)))

    @planned
    def grant_consent_by_video(
        self,
        api_key: str | None,
        subject: str,
        *,
        video: str | os.PathLike[str],
        challenge: str,
        tenant: str | None = None,
        scopes: Iterable[str] = ("animate",),
        purposes: Iterable[str] = (),
        expires: datetime | None = None,
    ) -> Plan[ConsentInfo]:
        if not Path(video).is_file():
            raise InvalidInputError(f"consent video {Path(video)} does not exist or is not a file")

        def files(stack: contextlib.ExitStack) -> Files:
            return [("video", _file_part(stack, Path(video), "application/octet-stream"))]

        data: dict[str, Any] = {"subject": subject, "challenge": challenge, "scopes": list(scopes)}
        data.update(_params(tenant=tenant, expires=expires))
        if purposes:
            data["purposes"] = list(purposes)
        return ConsentInfo.model_validate((yield Json("POST", "/v1/consents/video", api_key, data=data, files=files)))

    # -- API keys ----------------------------------------------------------------------------------------

    @planned
    def create_key(
        self,
        api_key: str | None,
        *,
        tenant: str | None = None,
        scopes: Iterable[str] | str,
        name: str = "",
        expires: datetime | None = None,
        rate_limit_per_minute: int = 60,
    ) -> Plan[NewApiKey]:
        body: dict[str, Any] = {
            "tenant": tenant, "scopes": scopes if isinstance(scopes, str) else list(scopes), "name": name,
            "expires": expires.isoformat() if expires is not None else None,
            "rate_limit_per_minute": rate_limit_per_minute,
        }  # fmt: skip
        created = yield Json("POST", "/v1/keys", api_key, json_body=body)
        return NewApiKey(info=ApiKeyInfo.model_validate(created["info"]), secret=created["secret"])

    @planned
    def keys(self, api_key: str | None, *, tenant: str | None = None) -> Plan[list[ApiKeyInfo]]:
        body = yield Json("GET", "/v1/keys", api_key, params=_params(tenant=tenant))
        return [ApiKeyInfo.model_validate(item) for item in body["data"]]

    @planned
    def revoke_key(self, api_key: str | None, key_id: str, *, reason: str = "") -> Plan[ApiKeyInfo]:
        path = f"/v1/keys/{_segment(key_id)}/revoke"
        return ApiKeyInfo.model_validate((yield Json("POST", path, api_key, json_body={"reason": reason})))


class AsyncHttpOperations:
    """``HttpOperations``' plans over one ``httpx.AsyncClient`` pool; ``call`` runs the operation it names. The
    arguments after ``base_url`` are ``AsyncHttpTransport``'s."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | httpx.Timeout = 600.0,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retry_after: float = MAX_RETRY_AFTER,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._http = AsyncHttpTransport(
            base_url, timeout=timeout, max_retries=max_retries, transport=transport, max_retry_after=max_retry_after,
            sleep=sleep,
        )  # fmt: skip
        self.base_url = self._http.base_url

    def with_options(self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None) -> Self:
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._http = self._http.with_options(timeout=timeout, max_retries=max_retries)
        return copied

    async def call(self, name: str, api_key: str | None, /, *args: Any, **kwargs: Any) -> Any:
        return await arun(PLANS[name](self, api_key, *args, **kwargs), self._http)

    async def aclose(self) -> None:
        await self._http.aclose()


# -- small helpers ----------------------------------------------------------------------------------------------


class _Reporter:
    """Calls ``progress`` when a job's stage or frame count moved."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self._progress = progress
        self._seen: tuple[str | None, int] = (None, -1)

    def __call__(self, job: dict[str, Any]) -> None:
        now = job.get("progress") or {}
        stage, done = now.get("stage"), int(now.get("done") or 0)
        if self._progress is None or stage is None or (stage, done) == self._seen:
            return
        self._progress(Progress(stage, done, now.get("total")))
        self._seen = (stage, done)


def _params(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            out[name] = value.isoformat()
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = value
    return out


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _file_part(stack: contextlib.ExitStack, path: Path, media_type: str) -> FilePart:
    # The name as given (not only its base name): the server names it back in any error about it.
    return (str(path), stack.enter_context(path.open("rb")), media_type)


def _photo_part(
    photo: str | os.PathLike[str] | np.ndarray, what: str
) -> tuple[Callable[[contextlib.ExitStack], FilePart], str]:
    """A photo as a form part: a file as it is, an array as lossless PNG (the server hashes its pixels, as local
    mode does)."""
    if isinstance(photo, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(check_image_array(photo, name=what)).save(buffer, format="PNG", compress_level=1)
        png = buffer.getvalue()
        return (lambda stack: ("array.png", io.BytesIO(png), "image/png")), "array"
    file = Path(photo)
    if not file.is_file():
        raise UnreadableImageError(f"{what} {file} does not exist or is not a file")
    return (lambda stack: _file_part(stack, file, "application/octet-stream")), "file"


__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APITimeoutError",
    "AsyncHttpOperations",
    "HttpOperations",
    "error_from_body",
]
