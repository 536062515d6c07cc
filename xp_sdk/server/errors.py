"""``XPError`` → HTTP status and a typed JSON body; anything else → 500 with a reference, never a stack trace.

The body is ``{"error": code, "type": ClassName, "message": ...}`` plus ``reasons`` and ``decision_id`` (refusals),
``retry_after`` (rate limits), ``seq`` (a tampered log), ``count`` (several faces) and ``missing`` (weights).
``type`` always names a class in ``xp_sdk.errors``, so ``xp_sdk.remote`` raises the very class local mode would.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import xp_sdk.errors as public
from xp_sdk.errors import (
    AccessDeniedError,
    AlreadyInitializedError,
    AuditIntegrityError,
    AuditStoreError,
    AuthenticationError,
    ConflictError,
    DiffusionWeightsMissingError,
    InvalidInputError,
    MultipleFacesError,
    NotFoundError,
    RateLimitedError,
    UntrustedMediaError,
    XPError,
)
from xp_sdk.server.limits import BodyTooLarge, UploadTooLargeError

log = logging.getLogger("xp_sdk.server")

# First match wins: subclasses before their bases.
_STATUS: tuple[tuple[type[XPError], int], ...] = (
    (AuthenticationError, 401),
    (AccessDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (AlreadyInitializedError, 409),
    (UploadTooLargeError, 413),
    (UntrustedMediaError, 422),
    (InvalidInputError, 400),
    (RateLimitedError, 429),
    (AuditStoreError, 503),
)


def status_for(exc: XPError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def public_type(exc: XPError) -> str:
    """The nearest class a client can import from ``xp_sdk.errors`` (server-only subclasses name their base)."""
    for cls in type(exc).__mro__:
        if getattr(public, cls.__name__, None) is cls:
            return str(cls.__name__)
    return "XPError"


def error_body(exc: XPError, renames: Mapping[str, str] | None = None) -> dict[str, object]:
    """``renames``: server paths (uploads, outputs) → the names the client knows them by."""
    body: dict[str, object] = dict(exc.to_dict())
    body["type"] = public_type(exc)
    body["message"] = scrub(exc.message, renames or {})
    if isinstance(exc, AccessDeniedError):
        body["reasons"] = [
            {"code": code, "message": scrub(message, renames or {}), "policy_id": policy}
            for code, message, policy in exc.reasons
        ]
    if isinstance(exc, RateLimitedError):
        body["retry_after"] = exc.retry_after
    if isinstance(exc, AuditIntegrityError):
        body["seq"] = exc.seq
    if isinstance(exc, MultipleFacesError):
        body["count"] = exc.count
    if isinstance(exc, DiffusionWeightsMissingError):
        body["missing"] = list(exc.missing)
    return body


def scrub(message: str, renames: Mapping[str, str]) -> str:
    # Longest first, so a folder never replaces part of a file path inside it.
    for server_path in sorted(renames, key=len, reverse=True):
        message = message.replace(server_path, renames[server_path])
    return message


def renamed(exc: XPError, renames: Mapping[str, str]) -> XPError:
    """``exc`` with the server's paths in its message replaced by the client's names (changed in place)."""
    exc.message = scrub(exc.message, renames)
    exc.args = (exc.message,)
    if isinstance(exc, AccessDeniedError):
        exc.reasons = tuple((code, scrub(message, renames), policy) for code, message, policy in exc.reasons)
    return exc


def internal_error(reference: str) -> dict[str, object]:
    return {
        "error": "internal_error",
        "type": "XPError",
        "message": f"the server failed to handle this request; its log has the details under reference {reference}",
    }


def error_response(exc: XPError, renames: Mapping[str, str] | None = None) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="xp-sdk"'
    if status == 500:
        log.error("request failed with %s: %s", type(exc).__name__, exc.message)
    return JSONResponse(error_body(exc, renames), status_code=status, headers=headers)


def install(app: FastAPI, server_paths: Mapping[str, str]) -> None:
    """Exception handlers for the app. ``server_paths``: folders whose names must never reach a client."""

    async def on_xp_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, XPError)
        return error_response(exc, server_paths)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors()
        )
        body = error_body(InvalidInputError(f"invalid request: {problems}"))
        return JSONResponse(body, status_code=422)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return error_response(exc.error)
        assert isinstance(exc, StarletteHTTPException)
        mapped: XPError = (
            NotFoundError(f"no such endpoint: {request.method} {request.url.path}")
            if exc.status_code == 404
            else InvalidInputError(str(exc.detail))
        )
        body = error_body(mapped)
        return JSONResponse(body, status_code=exc.status_code, headers=dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        reference = secrets.token_hex(6)
        log.error("unhandled error (reference %s) in %s %s", reference, request.method, request.url.path, exc_info=exc)
        return JSONResponse(internal_error(reference), status_code=500)

    app.add_exception_handler(XPError, on_xp_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
