"""``HttpOperations``: the ``Operations`` of ``xp_sdk.client`` over HTTP, against ``xp serve``.

Same methods, same result types, same exception classes as the embedded ``Service``: the server's error body
names a class of ``xp_sdk.errors`` and this module raises it, with its reasons, decision id, retry-after or
sequence number (each class's ``from_wire``). What only a network adds has its own classes in ``xp_sdk.errors``:
``APIConnectionError`` (the server could not be reached, after every retry), ``APITimeoutError`` and
``APIResponseError`` (an answer that is not the server's).

Retries follow openai-python: exponential backoff with jitter (0.5 s doubling to 8 s), ``Retry-After``
honoured, on connection failures, 429 and 502/503/504. A request that may have had an effect is retried only
when that is safe: reads, verification, and job creation, which carries an ``Idempotency-Key`` so a retried
POST returns the job the first one started instead of starting a second generation.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import io
import json
import os
import random
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
from PIL import Image

from audit import ApiKeyInfo, ConsentInfo, EventPage, GenerationInfo, LogVerification, NewApiKey, SubjectInfo
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
    error_class,
)
from xp_sdk.results import AnimationResult, ConsistencyProofView, GenerationAudit
from xp_sdk.verify import Verification

DEFAULT_CONNECT_TIMEOUT = 10.0
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 20.0
"""A 429 asking for a longer wait than this is raised, not slept through."""
RETRYABLE_STATUS = frozenset({502, 503, 504})
FINISHED = frozenset({"succeeded", "failed", "cancelled"})

Files = list[tuple[str, tuple[str, IO[bytes], str]]]
FilesFactory = Callable[[contextlib.ExitStack], Files]


class HttpOperations:
    """One connection pool to one server; safe to share across threads (httpx.Client is)."""

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
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"base_url must start with http:// or https://, got {base_url!r}")
        chosen = (
            timeout
            if isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT))
        )
        from xp_sdk.version import __version__

        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=chosen,
            transport=transport,
            # Drop idle connections before a server does (uvicorn: after 5 s), so a request is never written
            # to a connection the server is closing, where it could not tell whether to retry.
            limits=httpx.Limits(keepalive_expiry=4.0),
            headers={"User-Agent": f"xp-sdk-python/{__version__}", "Accept": "application/json"},
        )

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

        # One key for every attempt: a retried POST returns the job the first attempt started.
        idempotency = {"Idempotency-Key": f"xp-{uuid.uuid4()}"}
        job = self._json("POST", "/v1/animations", api_key, data=fields, files=files, headers=idempotency, safe=True)
        try:
            job = self._follow(api_key, job, progress)
        except KeyboardInterrupt:
            self._cancel_quietly(api_key, job["id"])
            raise
        if job["status"] != "succeeded":
            raise error_from_body(job.get("error") or {}, None)
        result = job["result"]
        self._download(api_key, job["output_url"], out_path, result["output_sha256"])
        return AnimationResult.model_validate({**result, "output": str(out_path)})

    def _follow(self, api_key: str | None, job: dict[str, Any], progress: ProgressCallback | None) -> dict[str, Any]:
        """Read the job's stream of changes to its end, reconnecting (with backoff) when it breaks."""
        seen: tuple[str | None, int] = (None, -1)
        failures = 0
        while job["status"] not in FINISHED:
            try:
                events = f"/v1/animations/{job['id']}/events"
                with contextlib.closing(self._send("GET", events, api_key, safe=True, stream=True)) as r:
                    for line in r.iter_lines():
                        if not line.strip():
                            continue
                        job = json.loads(line)
                        failures = 0
                        seen = _report(progress, job, seen)
            except httpx.TransportError as exc:  # the stream broke after it began: pick it up again
                failures += 1
                if failures > self.max_retries:
                    raise APIConnectionError(f"lost the job {job['id']} on {self.base_url}: {exc}") from exc
                self._sleep(_backoff(failures - 1))
            except ValueError as exc:
                raise APIResponseError(f"the job stream of {job['id']} is not JSON lines: {exc}") from exc
        return job

    def _download(self, api_key: str | None, url: str, out: Path, sha256: str) -> None:
        attempt = 0
        while True:
            partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
            try:
                digest = hashlib.sha256()
                response = self._send("GET", url, api_key, safe=True, stream=True)
                with contextlib.closing(response), partial.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                        digest.update(chunk)
                if digest.hexdigest() != sha256:
                    raise APIResponseError(f"the downloaded output does not match its audited SHA-256 {sha256}")
                os.replace(partial, out)
                return
            except httpx.TransportError as exc:
                partial.unlink(missing_ok=True)
                if attempt >= self.max_retries:
                    raise APIConnectionError(f"the download of {url} broke: {exc}") from exc
                self._sleep(_backoff(attempt))
                attempt += 1
            except BaseException:
                partial.unlink(missing_ok=True)
                raise

    def _cancel_quietly(self, api_key: str | None, job_id: str) -> None:
        with contextlib.suppress(XPError, httpx.HTTPError):
            self._send("DELETE", f"/v1/animations/{job_id}", api_key, safe=True)

    # -- verification ------------------------------------------------------------------------------------

    def verify(
        self, api_key: str | None, path: str | os.PathLike[str], *, trust_anchors: str | None = None
    ) -> Verification:
        file = Path(path)
        if not file.is_file():
            raise InvalidInputError(f"{file} does not exist or is not a file")
        data = {"trust_anchors": trust_anchors} if trust_anchors is not None else {}

        def files(stack: contextlib.ExitStack) -> Files:
            return [("video", _file_part(stack, file, "video/mp4"))]

        # Verifying twice reports the same verdict (and logs that it was asked twice): safe to retry.
        body = self._json("POST", "/v1/verifications", api_key, data=data, files=files, safe=True)
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
        return EventPage.model_validate(self._json("GET", "/v1/audit/events", api_key, params=params))

    def audit_show(self, api_key: str | None, generation_id: str) -> GenerationAudit:
        path = f"/v1/audit/generations/{_segment(generation_id)}"
        return GenerationAudit.model_validate(self._json("GET", path, api_key))

    def audit_verify(self, api_key: str | None, *, witnessed: Iterable[str] = ()) -> LogVerification:
        body = self._json("POST", "/v1/audit/verify", api_key, json_body={"witnessed": list(witnessed)}, safe=True)
        return LogVerification(
            tree_size=body["tree_size"], root_hash=body["root_hash"], checkpoints=body["checkpoints"],
            latest_checkpoint_size=body["latest_checkpoint_size"], witnessed=body["witnessed"],
            seconds=body["seconds"], records=body.get("records", 0),
        )  # fmt: skip

    def audit_consistency(
        self, api_key: str | None, old_size: int, new_size: int | None = None
    ) -> ConsistencyProofView:
        params = _params(old_size=old_size, new_size=new_size)
        return ConsistencyProofView.model_validate(self._json("GET", "/v1/audit/consistency", api_key, params=params))

    def audit_abandoned(
        self, api_key: str | None, *, older_than: timedelta, close: bool = False
    ) -> list[GenerationInfo]:
        body = {"older_than_s": older_than.total_seconds(), "close": close}
        # Closing twice finds nothing left to close the second time: safe to retry.
        found = self._json("POST", "/v1/audit/abandoned", api_key, json_body=body, safe=True)["data"]
        return [GenerationInfo.model_validate(g) for g in found]

    def audit_checkpoint(self, api_key: str | None) -> str | None:
        # Signing the same tree head twice is harmless: safe to retry.
        note = self._json("POST", "/v1/audit/checkpoints", api_key, safe=True)["note"]
        return str(note) if note is not None else None

    def audit_checkpoints(self, api_key: str | None) -> list[str]:
        return [str(n) for n in self._json("GET", "/v1/audit/checkpoints", api_key)["data"]]

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
        return SubjectInfo.model_validate(self._json("POST", "/v1/subjects", api_key, data=data, files=files))

    def subject(self, api_key: str | None, subject_id: str) -> SubjectInfo:
        return SubjectInfo.model_validate(self._json("GET", f"/v1/subjects/{_segment(subject_id)}", api_key))

    def subjects(self, api_key: str | None, *, protected: bool | None = None) -> list[SubjectInfo]:
        body = self._json("GET", "/v1/subjects", api_key, params=_params(protected=protected))
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
        return ConsentInfo.model_validate(self._json("POST", "/v1/consents", api_key, data=data, files=files))

    def revoke_consent(self, api_key: str | None, consent_id: str, *, reason: str = "") -> ConsentInfo:
        path = f"/v1/consents/{_segment(consent_id)}/revoke"
        return ConsentInfo.model_validate(self._json("POST", path, api_key, json_body={"reason": reason}))

    def consents(self, api_key: str | None, *, subject: str | None = None) -> list[ConsentInfo]:
        body = self._json("GET", "/v1/consents", api_key, params=_params(subject=subject))
        return [ConsentInfo.model_validate(item) for item in body["data"]]

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
        created = self._json("POST", "/v1/keys", api_key, json_body=body)
        return NewApiKey(info=ApiKeyInfo.model_validate(created["info"]), secret=created["secret"])

    def keys(self, api_key: str | None, *, tenant: str | None = None) -> list[ApiKeyInfo]:
        body = self._json("GET", "/v1/keys", api_key, params=_params(tenant=tenant))
        return [ApiKeyInfo.model_validate(item) for item in body["data"]]

    def revoke_key(self, api_key: str | None, key_id: str, *, reason: str = "") -> ApiKeyInfo:
        path = f"/v1/keys/{_segment(key_id)}/revoke"
        return ApiKeyInfo.model_validate(self._json("POST", path, api_key, json_body={"reason": reason}))

    # -- the wire ----------------------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        api_key: str | None,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: FilesFactory | None = None,
        headers: dict[str, str] | None = None,
        safe: bool | None = None,
    ) -> dict[str, Any]:
        response = self._send(
            method, path, api_key, params=params, json_body=json_body, data=data, files=files, headers=headers,
            safe=safe,
        )  # fmt: skip
        try:
            body = response.json()
        except ValueError as exc:
            raise APIResponseError(
                f"{method} {path} answered {response.status_code} with something that is not JSON",
                response.status_code,
            ) from exc
        if not isinstance(body, dict):
            raise APIResponseError(f"{method} {path} answered with JSON that is not an object", response.status_code)
        return body

    def _send(
        self,
        method: str,
        path: str,
        api_key: str | None,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: FilesFactory | None = None,
        headers: dict[str, str] | None = None,
        safe: bool | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """A successful response (read, unless ``stream``: then close it), after the retries this request allows.

        ``safe``: the request may be repeated without a second effect (default: GET and DELETE). An unsafe one
        is retried only when it cannot have reached the server (a refused connection) or was turned away
        before any work (429)."""
        idempotent = safe if safe is not None else method in ("GET", "HEAD", "DELETE")
        sent_headers = {**(headers or {})}
        if api_key:
            sent_headers["Authorization"] = f"Bearer {api_key}"
        attempt = 0
        while True:
            with contextlib.ExitStack() as stack:
                request = self._http.build_request(
                    method, path, params=params, json=json_body, data=data,
                    files=files(stack) if files is not None else None, headers=sent_headers,
                )  # fmt: skip
                try:
                    # The whole body is sent before send() returns, so the files may close after it.
                    response = self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                    if attempt < self.max_retries and (idempotent or never_sent):
                        self._sleep(_backoff(attempt))
                        attempt += 1
                        continue
                    if isinstance(exc, httpx.TimeoutException):
                        raise APITimeoutError(f"{method} {path} on {self.base_url} timed out: {exc}") from exc
                    raise APIConnectionError(f"{method} {path} on {self.base_url} failed: {exc}") from exc
            if response.is_success:
                if not stream:
                    try:
                        response.read()
                    finally:
                        response.close()
                return response
            try:
                response.read()
            except httpx.TransportError:
                pass  # the status line is what decides; a body cut short only loses the details
            finally:
                response.close()
            delay = self._retry_delay(response, attempt, idempotent)
            if delay is None:
                raise error_from_response(response)
            self._sleep(delay)
            attempt += 1

    def _retry_delay(self, response: httpx.Response, attempt: int, idempotent: bool) -> float | None:
        if attempt >= self.max_retries:
            return None
        if response.status_code == 429:
            wait = _retry_after(response)
            if wait is None:
                return _backoff(attempt)
            return wait if wait <= self.max_retry_after else None
        if response.status_code in RETRYABLE_STATUS and idempotent:
            wait = _retry_after(response)
            return wait if wait is not None and wait <= self.max_retry_after else _backoff(attempt)
        return None


# -- errors, from the body back to the class ----------------------------------------------------------------


def error_from_response(response: httpx.Response) -> XPError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "type" not in body:
        text = response.text.strip().replace("\n", " ")[:200]
        status = response.status_code
        return APIResponseError(f"HTTP {status} from the server: {text or 'no body'}", status)
    if response.status_code == 429 and body.get("retry_after") is None:
        body["retry_after"] = _retry_after(response) or 1.0
    return error_from_body(body, response.status_code)


def error_from_body(body: dict[str, Any], status: int | None) -> XPError:
    """The exception local mode would have raised, rebuilt from ``{"error", "type", "message", ...}`` by the class
    the body names (``XPError.from_wire``)."""
    cls = error_class(str(body.get("type", "")))
    message = str(body.get("message") or ("the server refused the request" + (f" (HTTP {status})" if status else "")))
    exc = cls.from_wire(message, body)
    code = body.get("error")
    if isinstance(code, str) and code != exc.code:
        exc.code = code  # a server-side subclass (payload_too_large) keeps its own code under its public class
    return exc


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


def _backoff(attempt: int) -> float:
    delay: float = min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``; None when absent or bad."""
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    value = response.headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    when = email.utils.parsedate_to_datetime(value) if value else None
    if when is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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


def _file_part(stack: contextlib.ExitStack, path: Path, media_type: str) -> tuple[str, IO[bytes], str]:
    # The name as given (not only its base name): the server names it back in any error about it.
    return (str(path), stack.enter_context(path.open("rb")), media_type)


def _photo_part(
    photo: str | os.PathLike[str] | np.ndarray, what: str
) -> tuple[Callable[[contextlib.ExitStack], tuple[str, IO[bytes], str]], str]:
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
    "error_from_response",
]
