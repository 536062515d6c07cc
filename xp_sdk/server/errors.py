"""``XPError`` → HTTP status and a typed JSON body; anything else → 500 with a reference, never a stack trace.

The status and the body are what each error class declares in ``xp_sdk.errors`` (``http_status``, and
``to_dict``: ``{"error": code, "type": ClassName, "message": ...}`` plus its ``wire_fields``). ``type`` always
names a class in ``xp_sdk.errors``, so ``xp_sdk.remote`` raises the very class local mode would.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import xp_sdk.errors as public
from xp_sdk.errors import (
    AccessDeniedError,
    AuditStoreError,
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
CLIENT_SIDE: tuple[type[XPError], ...] = (public.APIConnectionError, public.APIResponseError)
"""Raised by a remote client about the network, never answered by a server."""
VALIDATION_STATUS = 422
"""A request FastAPI cannot read into its declared types (an ``InvalidInputError`` body)."""
INTERNAL_ERROR_CODE = "internal_error"
"""The code of a failure no error class describes (a bug): its body names a reference in the server's log."""


@dataclass(frozen=True)
class ErrorStatus:
    """One status the server answers errors with, and what its bodies can hold."""

    status: int
    types: tuple[str, ...]
    """The ``type`` a body of this status names: classes a client can import from ``xp_sdk.errors``."""
    codes: tuple[str, ...] | None
    """The ``error`` codes a body of this status carries; None where the set is open (a provenance failure
    carries the provenance package's own code)."""
    description: str


def server_error_classes() -> list[type[XPError]]:
    """Every error class the server can answer with: the public ones and the server's own, less the network's."""
    classes = [getattr(public, name) for name in public.__all__] + list(SERVER_ERRORS)
    return [cls for cls in classes if not issubclass(cls, CLIENT_SIDE)]


def error_statuses() -> list[ErrorStatus]:
    """Every status an error answers with, from the classes' ``http_status`` (plus FastAPI's 422 for a request it
    cannot read, and the 500 of an unexpected failure): what the OpenAPI document declares for every ``/v1`` route
    (``server.schemas.ERROR_RESPONSES``), each with the types and codes its bodies carry."""
    types: dict[int, set[str]] = {VALIDATION_STATUS: {"InvalidInputError"}, 500: {"XPError"}}
    codes: dict[int, set[str] | None] = {VALIDATION_STATUS: {"invalid_input"}, 500: {INTERNAL_ERROR_CODE}}
    roots: dict[int, list[str]] = {VALIDATION_STATUS: ["a request field of the wrong type or out of its bounds"]}
    for cls in server_error_classes():
        status = cls.http_status
        types.setdefault(status, set()).add(public_class(cls).__name__)
        known = codes.setdefault(status, set())
        if known is not None:
            codes[status] = None if issubclass(cls, public.ProvenanceFailedError) else known | {cls.code}
        bases = [b for b in cls.__mro__[1:] if issubclass(b, XPError)]
        if not bases or bases[0].http_status != status:
            roots.setdefault(status, []).append(f"{cls.__name__} ({cls.code})")
    return [
        ErrorStatus(
            status=status,
            types=tuple(sorted(types[status])),
            codes=tuple(sorted(found)) if (found := codes[status]) is not None else None,
            description=", ".join(sorted(roots.get(status, ["an unexpected failure (a reference to the log)"]))),
        )
        for status in sorted(types)
    ]


def declared_statuses() -> dict[int, str]:
    """Each status of ``error_statuses`` and the most general classes that answer it."""
    return {entry.status: entry.description for entry in error_statuses()}


def status_for(exc: XPError) -> int:
    return exc.http_status


def public_class(cls: type[XPError]) -> type[XPError]:
    """The nearest class a client can import from ``xp_sdk.errors`` (server-only subclasses name their base)."""
    for candidate in cls.__mro__:
        if issubclass(candidate, XPError) and getattr(public, candidate.__name__, None) is candidate:
            found: type[XPError] = candidate
            return found
    return XPError


def public_type(exc: XPError) -> str:
    """The name of ``public_class`` for an error: what its body's ``type`` says."""
    return public_class(type(exc)).__name__


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
    # The client's own names are paths too, and may hold spaces: error_response must not take them for the server's.
    vars(exc)[_CLIENT_NAMES] = (*getattr(exc, _CLIENT_NAMES, ()), *renames.values())
    if isinstance(exc, AccessDeniedError):
        exc.reasons = tuple((code, scrub(message, renames), policy) for code, message, policy in exc.reasons)
    return exc


def internal_error(reference: str) -> dict[str, object]:
    return {
        "error": INTERNAL_ERROR_CODE,
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
    if isinstance(exc, AuditStoreError):
        # Its message names the database's host and name, and the caller may not even be authenticated yet.
        reference = secrets.token_hex(6)
        log.error("the audit store is unavailable (reference %s): %s", reference, exc.message)
        exc = AuditStoreError(
            f"the audit database is unavailable; retry later (the server's log has the details under reference "
            f"{reference})"
        )
    keep = (*(renames or {}).values(), *getattr(exc, _CLIENT_NAMES, ()))
    body = without_server_paths(error_body(exc, renames), keep=keep)
    return JSONResponse(body, status_code=status, headers=headers)


_CLIENT_NAMES = "_xp_client_names"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[\w.~+@%-]+(?:/[\w.~+@%-]*)*")
REDACTED_PATH = "<server path>"


def without_server_paths(body: dict[str, object], keep: Iterable[str] = ()) -> dict[str, object]:
    """``body`` with every absolute path left in its strings after the renames (a models.toml, a home, a
    configured file) replaced by ``REDACTED_PATH``: the full message goes to the server's log under a reference
    the client's message names. API paths (``/v1/...``) and ``keep`` (the client's own file names the renames put
    back, which may hold spaces the pattern stops at) stay."""
    found: list[str] = []
    kept = [name for name in keep if name]

    def inside_kept(match: re.Match[str]) -> bool:
        for name in kept:
            start = match.string.find(name)
            while start != -1:
                if start <= match.start() and match.end() <= start + len(name):
                    return True
                start = match.string.find(name, start + 1)
        return False

    def redact(match: re.Match[str]) -> str:
        text = match.group(0)
        if inside_kept(match):
            return text
        path = text.rstrip(".")
        if path.startswith("/v1/") or not any(c.isalpha() for c in path):
            return text
        found.append(path)
        return REDACTED_PATH + text[len(path) :]

    cleaned = {name: _redacted(value, redact) for name, value in body.items()}
    if found:
        reference = secrets.token_hex(6)
        log.warning("server paths redacted from an error's body (reference %s): %s", reference, body)
        cleaned["message"] = f"{cleaned['message']} (a server path is not shown; the server's log has it: {reference})"
    return cleaned


def _redacted(value: object, redact: Callable[[re.Match[str]], str]) -> object:
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(redact, value)
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item, redact) for key, item in value.items()}
    return value


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
