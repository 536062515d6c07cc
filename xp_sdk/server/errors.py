"""``XPError`` → HTTP status and a typed JSON body; anything else → 500 with a reference, never a stack trace.

The status and the body are what each error class declares in ``xp_sdk.errors`` (``http_status``, and
``to_dict``: ``{"error": code, "type": ClassName, "message": ...}`` plus its ``wire_fields``). ``type`` always
names a class in ``xp_sdk.errors``, so ``xp_sdk.remote`` raises the very class local mode would.
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
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    XPError,
)
from xp_sdk.server.limits import BodyTooLarge, UploadTooLargeError

log = logging.getLogger("xp_sdk.server")

SERVER_ERRORS: tuple[type[XPError], ...] = (UploadTooLargeError,)
"""Errors only the server raises whose status none of ``xp_sdk.errors`` has."""
VALIDATION_STATUS = 422
"""A request FastAPI cannot read into its declared types (an ``InvalidInputError`` body)."""


def status_for(exc: XPError) -> int:
    return exc.http_status


def declared_statuses() -> dict[int, str]:
    """Every status an error answers with, each described by the most general classes that answer it: what the
    OpenAPI document declares for every ``/v1`` route (``server.schemas.ERROR_RESPONSES``)."""
    classes = [getattr(public, name) for name in public.__all__] + list(SERVER_ERRORS)
    client_side = (public.APIConnectionError, public.APIResponseError)
    roots: dict[int, list[str]] = {}
    for cls in classes:
        if issubclass(cls, client_side):
            continue
        bases = [b for b in cls.__mro__[1:] if issubclass(b, XPError)]
        if not bases or bases[0].http_status != cls.http_status:
            roots.setdefault(cls.http_status, []).append(f"{cls.__name__} ({cls.code})")
    roots.setdefault(VALIDATION_STATUS, []).append("a request field of the wrong type or out of its bounds")
    return {status: ", ".join(sorted(names)) for status, names in sorted(roots.items())}


def public_type(exc: XPError) -> str:
    """The nearest class a client can import from ``xp_sdk.errors`` (server-only subclasses name their base)."""
    for cls in type(exc).__mro__:
        if getattr(public, cls.__name__, None) is cls:
            return str(cls.__name__)
    return "XPError"


def error_body(exc: XPError, renames: Mapping[str, str] | None = None) -> dict[str, object]:
    """``renames``: server paths (uploads, outputs) → the names the client knows them by, wherever the body
    holds them (the message, a refusal's reasons, any other field)."""
    body = {name: _scrubbed(value, renames or {}) for name, value in exc.to_dict().items()}
    body["type"] = public_type(exc)
    return body


def _scrubbed(value: object, renames: Mapping[str, str]) -> object:
    if isinstance(value, str):
        return scrub(value, renames)
    if isinstance(value, list):
        return [_scrubbed(item, renames) for item in value]
    if isinstance(value, dict):
        return {key: _scrubbed(item, renames) for key, item in value.items()}
    return value


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
