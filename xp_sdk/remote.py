"""``HttpOperations``: the ``Operations`` (``xp_sdk.operations``) over HTTP, against ``xp serve``.

Same methods, same result types, same exception classes as the embedded ``Service``: each method here says which
route it calls with what; ``xp_sdk.transport`` sends it, with the retries that are safe, and raises the error an
answer names.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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
    AuthenticationError,
    InvalidInputError,
    UnreadableImageError,
    XPError,
)
from xp_sdk.results import AnimationResult, ConsistencyProofView, GenerationAudit
from xp_sdk.transport import MAX_RETRY_AFTER, FilePart, Files, HttpTransport, error_from_body
from xp_sdk.verification import Verification

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

    def close(self) -> None:
        self._http.close()

    # -- generation --------------------------------------------------------------------------------------

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
    ) -> AnimationResult:
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
        job = self._http.json("POST", "/v1/animations", api_key, data=fields, files=files, idempotent=True)
        try:
            job = self._follow(api_key, job, progress)
        except KeyboardInterrupt:
            with contextlib.suppress(XPError, httpx.HTTPError):
                self._http.send("DELETE", f"/v1/animations/{job['id']}", api_key)
            raise
        if job["status"] != "succeeded":
            raise error_from_body(job.get("error") or {}, None)
        result = job["result"]
        self._http.download(job["output_url"], api_key, out_path, result["output_sha256"])
        return AnimationResult.model_validate({**result, "output": str(out_path)})

    def _follow(self, api_key: str | None, job: dict[str, Any], progress: ProgressCallback | None) -> dict[str, Any]:
        """The job once finished, from its stream of changes (``progress`` called as frames advance)."""
        seen: Seen = (None, -1)
        if job["status"] in FINISHED:
            return job
        events = f"/v1/animations/{_segment(job['id'])}/events"
        for job in self._http.follow(events, api_key, finished=lambda j: j.get("status") in FINISHED):
            seen = _report(progress, job, seen)
        return job

    # -- verification ------------------------------------------------------------------------------------

    def verify(
        self, api_key: str | None, path: str | os.PathLike[str], *, trust_anchors: str | None = None
    ) -> Verification:
        if not api_key:
            # Without a key the server answers the public verdict only (PublicVerification), not this report.
            raise AuthenticationError(
                "no API key given: pass api_key= or set XP_API_KEY (without one, the server's page at / and "
                "POST /v1/verifications give the public verdict)"
            )
        file = Path(path)
        if not file.is_file():
            raise InvalidInputError(f"{file} does not exist or is not a file")
        data = {"trust_anchors": trust_anchors} if trust_anchors is not None else {}

        def files(stack: contextlib.ExitStack) -> Files:
            return [("video", _file_part(stack, file, "video/mp4"))]

        # Verifying twice reports the same verdict (and logs that it was asked twice): safe to retry.
        body = self._http.json("POST", "/v1/verifications", api_key, data=data, files=files, safe=True)
        body.pop("still", None)
        return Verification.model_validate({**body, "path": str(file)})

    # -- audit -------------------------------------------------------------------------------------------

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
    ) -> EventPage:
        params = _params(
            tenant=tenant, subject=subject, generation_id=generation_id, decision=decision, type=type,
            since=since, until=until, limit=limit, cursor=cursor,
        )  # fmt: skip
        return EventPage.model_validate(self._http.json("GET", "/v1/audit/events", api_key, params=params))

    def audit_show(self, api_key: str | None, generation_id: str) -> GenerationAudit:
        path = f"/v1/audit/generations/{_segment(generation_id)}"
        return GenerationAudit.model_validate(self._http.json("GET", path, api_key))

    def audit_verify(self, api_key: str | None, *, witnessed: Iterable[str] = ()) -> LogVerification:
        body = self._http.json("POST", "/v1/audit/verify", api_key, json_body={"witnessed": list(witnessed)}, safe=True)
        return LogVerification(
            tree_size=body["tree_size"], root_hash=body["root_hash"], checkpoints=body["checkpoints"],
            latest_checkpoint_size=body["latest_checkpoint_size"], witnessed=body["witnessed"],
            seconds=body["seconds"], records=body.get("records", 0),
        )  # fmt: skip

    def audit_consistency(
        self, api_key: str | None, old_size: int, new_size: int | None = None
    ) -> ConsistencyProofView:
        params = _params(old_size=old_size, new_size=new_size)
        return ConsistencyProofView.model_validate(
            self._http.json("GET", "/v1/audit/consistency", api_key, params=params)
        )

    def audit_abandoned(
        self, api_key: str | None, *, older_than: timedelta = timedelta(hours=1), close: bool = False
    ) -> list[GenerationInfo]:
        body = {"older_than_s": older_than.total_seconds(), "close": close}
        # Closing twice finds nothing left to close the second time: safe to retry.
        found = self._http.json("POST", "/v1/audit/abandoned", api_key, json_body=body, safe=True)["data"]
        return [GenerationInfo.model_validate(g) for g in found]

    def audit_checkpoint(self, api_key: str | None) -> str | None:
        # Signing the same tree head twice is harmless: safe to retry.
        note = self._http.json("POST", "/v1/audit/checkpoints", api_key, safe=True)["note"]
        return str(note) if note is not None else None

    def audit_checkpoints(self, api_key: str | None) -> list[str]:
        return [str(n) for n in self._http.json("GET", "/v1/audit/checkpoints", api_key)["data"]]

    # -- subjects and consent ----------------------------------------------------------------------------

    def register_subject(
        self,
        api_key: str | None,
        name: str,
        photos: Sequence[str | os.PathLike[str] | np.ndarray],
        *,
        protected: bool = False,
    ) -> SubjectInfo:
        if not photos:
            raise InvalidInputError("register a subject with at least one reference photo")
        parts = [_photo_part(photo, "source photo") for photo in photos]

        def files(stack: contextlib.ExitStack) -> Files:
            return [("photos", make(stack)) for make, _ in parts]

        data = {"name": name, "protected": "true" if protected else "false", "photo_kinds": [k for _, k in parts]}
        return SubjectInfo.model_validate(self._http.json("POST", "/v1/subjects", api_key, data=data, files=files))

    def subject(self, api_key: str | None, subject_id: str) -> SubjectInfo:
        return SubjectInfo.model_validate(self._http.json("GET", f"/v1/subjects/{_segment(subject_id)}", api_key))

    def subjects(self, api_key: str | None, *, protected: bool | None = None) -> list[SubjectInfo]:
        body = self._http.json("GET", "/v1/subjects", api_key, params=_params(protected=protected))
        return [SubjectInfo.model_validate(item) for item in body["data"]]

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
    ) -> ConsentInfo:
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
        return ConsentInfo.model_validate(self._http.json("POST", "/v1/consents", api_key, data=data, files=files))

    def revoke_consent(self, api_key: str | None, consent_id: str, *, reason: str = "") -> ConsentInfo:
        path = f"/v1/consents/{_segment(consent_id)}/revoke"
        return ConsentInfo.model_validate(self._http.json("POST", path, api_key, json_body={"reason": reason}))

    def consents(self, api_key: str | None, *, subject: str | None = None) -> list[ConsentInfo]:
        body = self._http.json("GET", "/v1/consents", api_key, params=_params(subject=subject))
        return [ConsentInfo.model_validate(item) for item in body["data"]]

    def consent_challenge(
        self, api_key: str | None, subject: str, *, purpose: str | None = None, expires_in_minutes: int = 10
    ) -> ConsentChallenge:
        body = {"subject": subject, "purpose": purpose, "expires_in_minutes": expires_in_minutes}
        return ConsentChallenge.model_validate(
            self._http.json("POST", "/v1/consents/challenges", api_key, json_body=body)
        )

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
    ) -> ConsentInfo:
        if not Path(video).is_file():
            raise InvalidInputError(f"consent video {Path(video)} does not exist or is not a file")

        def files(stack: contextlib.ExitStack) -> Files:
            return [("video", _file_part(stack, Path(video), "application/octet-stream"))]

        data: dict[str, Any] = {"subject": subject, "challenge": challenge, "scopes": list(scopes)}
        data.update(_params(tenant=tenant, expires=expires))
        if purposes:
            data["purposes"] = list(purposes)
        return ConsentInfo.model_validate(
            self._http.json("POST", "/v1/consents/video", api_key, data=data, files=files)
        )

    # -- API keys ----------------------------------------------------------------------------------------

    def create_key(
        self,
        api_key: str | None,
        *,
        tenant: str | None = None,
        scopes: Iterable[str] | str,
        name: str = "",
        expires: datetime | None = None,
        rate_limit_per_minute: int = 60,
    ) -> NewApiKey:
        body: dict[str, Any] = {
            "tenant": tenant, "scopes": scopes if isinstance(scopes, str) else list(scopes), "name": name,
            "expires": expires.isoformat() if expires is not None else None,
            "rate_limit_per_minute": rate_limit_per_minute,
        }  # fmt: skip
        created = self._http.json("POST", "/v1/keys", api_key, json_body=body)
        return NewApiKey(info=ApiKeyInfo.model_validate(created["info"]), secret=created["secret"])

    def keys(self, api_key: str | None, *, tenant: str | None = None) -> list[ApiKeyInfo]:
        body = self._http.json("GET", "/v1/keys", api_key, params=_params(tenant=tenant))
        return [ApiKeyInfo.model_validate(item) for item in body["data"]]

    def revoke_key(self, api_key: str | None, key_id: str, *, reason: str = "") -> ApiKeyInfo:
        path = f"/v1/keys/{_segment(key_id)}/revoke"
        return ApiKeyInfo.model_validate(self._http.json("POST", path, api_key, json_body={"reason": reason}))


# -- small helpers ----------------------------------------------------------------------------------------------


Seen = tuple[str | None, int]


def _report(progress: ProgressCallback | None, job: dict[str, Any], seen: Seen) -> Seen:
    """Call ``progress`` when the job's stage or frame count moved; the (stage, done) now reported."""
    now = job.get("progress") or {}
    stage, done = now.get("stage"), int(now.get("done") or 0)
    if progress is None or stage is None or (stage, done) == seen:
        return seen
    progress(Progress(stage, done, now.get("total")))
    return stage, done


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
    "HttpOperations",
    "error_from_body",
]
