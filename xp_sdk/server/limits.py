"""Request size and rate limits, enforced as the bytes arrive rather than after a body has been read.

``BodyLimit`` refuses a request whose declared ``Content-Length`` is over its route's cap before reading a byte,
and stops a chunked upload at the first byte past the cap; the multipart reader (``uploads.py``) holds each
file part to its own limit (a photo, a video, consent evidence). ``ClientRateLimit`` bounds what one address
may send before it is even authenticated, so a flood of bad keys cannot flood the audit log with failures.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from audit import RateLimitedError as AuditRateLimitedError
from audit import RateLimiter
from audit.errors import StoreError
from audit.rate_limits import KeyRateLimiter
from xp_sdk.errors import AuditStoreError, InvalidInputError, RateLimitedError

MiB = 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UploadTooLargeError(InvalidInputError):
    """A request body, or one file in it, is over its limit (HTTP 413)."""

    code = "payload_too_large"
    http_status = 413


class BodyTooLarge(HTTPException):
    """``UploadTooLargeError`` raised from inside a body read: FastAPI turns any other exception there into a 400
    "error parsing the body", but lets an HTTPException through."""

    def __init__(self, error: UploadTooLargeError) -> None:
        super().__init__(413, error.message)
        self.error = error


@dataclass(frozen=True)
class Limits:
    photo_bytes: int = 20 * MiB
    video_bytes: int = 200 * MiB
    evidence_bytes: int = 50 * MiB
    field_bytes: int = 64 * 1024
    """Any form field that is not a file (subject id, options JSON, PEM trust anchors)."""
    max_fields: int = 32
    max_photos: int = 10
    """Reference photos in one subject registration."""
    json_bytes: int = 1 * MiB
    """Every request that is not an upload."""
    requests_per_minute_per_client: int = 1200
    """Per client address, before authentication; 0 turns it off (each key has its own limit as well)."""

    def form_overhead(self) -> int:
        # Part headers and boundaries are small; 64 KiB covers a few dozen parts with long file names.
        return self.max_fields * self.field_bytes + 64 * 1024

    def body_limit(self, method: str, path: str) -> int:
        """The most bytes a request to ``path`` may carry in all: its files at their limits plus its fields."""
        if method != "POST":
            return self.json_bytes
        files = {
            "/v1/animations": self.photo_bytes + self.video_bytes,
            "/v1/verifications": self.video_bytes,
            "/v1/subjects": self.photo_bytes * self.max_photos,
            "/v1/consents": self.evidence_bytes,
        }.get(path.rstrip("/"))
        return self.json_bytes if files is None else files + self.form_overhead()


def too_large(what: str, limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"{what} is larger than the server's limit of {_size(limit)}")


def _size(limit: int) -> str:
    return f"{limit / MiB:g} MiB" if limit >= MiB else f"{limit / 1024:g} KiB"


def error_json(exc: InvalidInputError | RateLimitedError | AuditStoreError) -> JSONResponse:
    """The status and body ``errors.py`` answers with (the error's own), for the refusals made here, outside the
    app's exception handlers."""
    body = {**exc.to_dict(), "type": _public_type(exc)}
    headers = {"Connection": "close"} if isinstance(exc, UploadTooLargeError) else {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def _public_type(exc: Exception) -> str:
    return "InvalidInputError" if isinstance(exc, UploadTooLargeError) else type(exc).__name__


class BodyLimit:
    """ASGI middleware: a request over its route's cap is refused (413) without reading the rest of it."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.body_limit(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await error_json(too_large("the request body", limit))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read, so the app's handler answers 413.
                    raise BodyTooLarge(too_large("the request body", limit))
            return message

        await self.app(scope, limited, send)


class ClientRateLimit:
    """ASGI middleware: a limit per client address over every ``/v1`` request; ``buckets`` shared by every replica
    (Redis), or by default a token bucket in this process's memory."""

    def __init__(self, app: ASGIApp, per_minute: int, buckets: KeyRateLimiter | None = None) -> None:
        self.app = app
        self.per_minute = per_minute
        self.buckets: KeyRateLimiter = buckets or RateLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.per_minute > 0 and scope["path"].startswith("/v1/"):
            client = scope.get("client")
            address = client[0] if client else "unknown"
            try:
                self.buckets.acquire(f"client:{address}", self.per_minute)
            except AuditRateLimitedError as exc:
                refused = RateLimitedError(
                    f"too many requests from {address}; retry in {exc.retry_after:.1f} s", retry_after=exc.retry_after
                )
                await error_json(refused)(scope, receive, send)
                return
            except StoreError as exc:
                await error_json(AuditStoreError(exc.message))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
