"""``HttpTransport``: one connection pool to one ``xp serve``, and the retries a request may safely have.

Retries follow openai-python: exponential backoff with jitter (0.5 s doubling to 8 s), ``Retry-After``
honoured, on connection failures, 429 and 502/503/504. A request that may have had an effect is retried only
when that is safe: reads, verification, and requests sent with an ``Idempotency-Key`` (job creation), so that a
retried POST returns the job the first one started instead of starting a second generation.

An error answer becomes the exception its body names (``error_from_body``: the class in ``xp_sdk.errors`` with its
``from_wire`` fields); what only a network adds is ``APIConnectionError`` (the server could not be reached, after
every retry), ``APITimeoutError`` and ``APIResponseError`` (an answer that is not the server's).
"""

from __future__ import annotations

import contextlib
import copy
import email.utils
import hashlib
import json
import os
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self

import httpx

from xp_sdk.errors import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    InvalidInputError,
    XPError,
    error_class,
)

DEFAULT_CONNECT_TIMEOUT = 10.0
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 20.0
"""A 429 asking for a longer wait than this is raised, not slept through."""
RETRYABLE_STATUS = frozenset({502, 503, 504})

FilePart = tuple[str, IO[bytes], str]
Files = list[tuple[str, FilePart]]
FilesFactory = Callable[[contextlib.ExitStack], Files]
"""Opens a request's file parts afresh for each attempt (closed when the attempt has been sent)."""


class _Retrying:
    """What both transports share: where the server is, how long a request may take, and when to try again."""

    base_url: str
    timeout: httpx.Timeout
    max_retries: int
    max_retry_after: float

    def _configure(
        self, base_url: str, timeout: float | httpx.Timeout, max_retries: int, max_retry_after: float
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = _timeout(timeout)
        self.max_retries = _retries(max_retries)
        self.max_retry_after = max_retry_after

    def with_options(self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None) -> Self:
        """A copy with another timeout or retry count, sharing this one's connection pool (closing either closes
        it)."""
        copied = copy.copy(self)
        if timeout is not None:
            copied.timeout = _timeout(timeout)
        if max_retries is not None:
            copied.max_retries = _retries(max_retries)
        return copied

    @staticmethod
    def _headers(api_key: str | None, idempotent: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if idempotent:
            headers["Idempotency-Key"] = f"xp-{uuid.uuid4()}"
        return headers

    def _transport_failure(
        self, exc: httpx.TransportError, method: str, path: str, attempt: int, retry_safe: bool
    ) -> float:
        """The wait before trying again after ``exc``, or the error to raise when no retry is allowed."""
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if attempt < self.max_retries and (retry_safe or never_sent):
            return backoff(attempt)
        if isinstance(exc, httpx.TimeoutException):
            raise APITimeoutError(f"{method} {path} on {self.base_url} timed out: {exc}") from exc
        raise APIConnectionError(f"{method} {path} on {self.base_url} failed: {exc}") from exc

    def _retry_delay(self, response: httpx.Response, attempt: int, retry_safe: bool) -> float | None:
        if attempt >= self.max_retries:
            return None
        if response.status_code == 429:
            wait = retry_after(response)
            if wait is None:
                return backoff(attempt)
            return wait if wait <= self.max_retry_after else None
        if response.status_code in RETRYABLE_STATUS and retry_safe:
            wait = retry_after(response)
            return wait if wait is not None and wait <= self.max_retry_after else backoff(attempt)
        return None


class HttpTransport(_Retrying):
    """Safe to share across threads (httpx.Client is)."""

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
        self._configure(base_url, timeout, max_retries, max_retry_after)
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.base_url, transport=transport, **_client_settings())

    def close(self) -> None:
        self._http.close()

    def json(
        self,
        method: str,
        path: str,
        api_key: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: FilesFactory | None = None,
        safe: bool | None = None,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """The JSON object a successful answer holds (see ``send`` for the retries)."""
        response = self.send(
            method, path, api_key, params=params, json_body=json_body, data=data, files=files, safe=safe,
            idempotent=idempotent,
        )  # fmt: skip
        return json_object(response, method, path)

    def send(
        self,
        method: str,
        path: str,
        api_key: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: FilesFactory | None = None,
        safe: bool | None = None,
        idempotent: bool = False,
        stream: bool = False,
    ) -> httpx.Response:
        """A successful response (read, unless ``stream``: then the caller closes it), after the retries this
        request allows; an error answer raises the exception its body names.

        ``safe``: the request may be repeated without a second effect (default: GET, HEAD and DELETE). An unsafe
        one is retried only when it cannot have reached the server (a refused connection) or was turned away
        before any work (429). ``idempotent``: every attempt carries one ``Idempotency-Key``, so the server does
        the work once however often it is asked; such a request is safe."""
        retry_safe = idempotent or (safe if safe is not None else method in ("GET", "HEAD", "DELETE"))
        headers = self._headers(api_key, idempotent)
        attempt = 0
        while True:
            with contextlib.ExitStack() as stack:
                request = self._http.build_request(
                    method, path, params=params, json=json_body, data=data,
                    files=files(stack) if files is not None else None, headers=headers, timeout=self.timeout,
                )  # fmt: skip
                try:
                    # The whole body is sent before send() returns, so the files may close after it.
                    response = self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    self._sleep(self._transport_failure(exc, method, path, attempt, retry_safe))
                    attempt += 1
                    continue
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
            delay = self._retry_delay(response, attempt, retry_safe)
            if delay is None:
                raise error_from_response(response)
            self._sleep(delay)
            attempt += 1

    def follow(
        self, path: str, api_key: str | None, *, finished: Callable[[dict[str, Any]], bool]
    ) -> Iterator[dict[str, Any]]:
        """Each object of a JSON-lines stream (GET ``path``) until one is ``finished``, picking the stream up
        again (with backoff) when it breaks, or at once when it ends early."""
        failures = 0
        while True:
            try:
                with contextlib.closing(self.send("GET", path, api_key, safe=True, stream=True)) as response:
                    for line in response.iter_lines():
                        item = json_line(line, path)
                        if item is None:
                            continue
                        failures = 0
                        yield item
                        if finished(item):
                            return
            except httpx.TransportError as exc:  # the stream broke after it began
                failures += 1
                self._sleep(self._stream_broke(exc, path, failures))

    def download(self, path: str, api_key: str | None, out: Path, sha256: str) -> None:
        """GET ``path`` into ``out`` atomically: a temporary file beside it, checked against ``sha256``, renamed
        into place; a download that breaks starts again (with backoff), and nothing is left when it fails."""
        attempt = 0
        while True:
            partial = partial_path(out)
            try:
                digest = hashlib.sha256()
                response = self.send("GET", path, api_key, safe=True, stream=True)
                with contextlib.closing(response), partial.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                        digest.update(chunk)
                finish_download(partial, out, digest.hexdigest(), sha256)
                return
            except httpx.TransportError as exc:
                partial.unlink(missing_ok=True)
                self._sleep(self._download_broke(exc, path, attempt))
                attempt += 1
            except BaseException:
                partial.unlink(missing_ok=True)
                raise

    def _stream_broke(self, exc: httpx.TransportError, path: str, failures: int) -> float:
        if failures > self.max_retries:
            raise APIConnectionError(f"lost the stream {path} on {self.base_url}: {exc}") from exc
        return backoff(failures - 1)

    def _download_broke(self, exc: httpx.TransportError, path: str, attempt: int) -> float:
        if attempt >= self.max_retries:
            raise APIConnectionError(f"the download of {path} broke: {exc}") from exc
        return backoff(attempt)


class AsyncHttpTransport(_Retrying):
    """``HttpTransport`` on ``httpx.AsyncClient``: the same retries, errors and atomic downloads, awaited."""

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
        self._configure(base_url, timeout, max_retries, max_retry_after)
        if sleep is None:
            import anyio

            sleep = anyio.sleep
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, **_client_settings())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def json(
        self,
        method: str,
        path: str,
        api_key: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: FilesFactory | None = None,
        safe: bool | None = None,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        response = await self.send(
            method, path, api_key, params=params, json_body=json_body, data=data, files=files, safe=safe,
            idempotent=idempotent,
        )  # fmt: skip
        return json_object(response, method, path)

    async def send(
        self,
        method: str,
        path: str,
        api_key: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: FilesFactory | None = None,
        safe: bool | None = None,
        idempotent: bool = False,
        stream: bool = False,
    ) -> httpx.Response:
        """As ``HttpTransport.send``."""
        retry_safe = idempotent or (safe if safe is not None else method in ("GET", "HEAD", "DELETE"))
        headers = self._headers(api_key, idempotent)
        attempt = 0
        while True:
            with contextlib.ExitStack() as stack:
                request = self._http.build_request(
                    method, path, params=params, json=json_body, data=data,
                    files=files(stack) if files is not None else None, headers=headers, timeout=self.timeout,
                )  # fmt: skip
                try:
                    response = await self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    await self._sleep(self._transport_failure(exc, method, path, attempt, retry_safe))
                    attempt += 1
                    continue
            if response.is_success:
                if not stream:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                return response
            try:
                await response.aread()
            except httpx.TransportError:
                pass  # the status line is what decides; a body cut short only loses the details
            finally:
                await response.aclose()
            delay = self._retry_delay(response, attempt, retry_safe)
            if delay is None:
                raise error_from_response(response)
            await self._sleep(delay)
            attempt += 1

    async def follow(
        self,
        path: str,
        api_key: str | None,
        *,
        finished: Callable[[dict[str, Any]], bool],
        each: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """As ``HttpTransport.follow``: ``each`` object of the stream in turn; the first ``finished`` one is
        returned."""
        failures = 0
        while True:
            try:
                response = await self.send("GET", path, api_key, safe=True, stream=True)
                try:
                    async for line in response.aiter_lines():
                        item = json_line(line, path)
                        if item is None:
                            continue
                        failures = 0
                        each(item)
                        if finished(item):
                            return item
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.max_retries:
                    raise APIConnectionError(f"lost the stream {path} on {self.base_url}: {exc}") from exc
                await self._sleep(backoff(failures - 1))

    async def download(self, path: str, api_key: str | None, out: Path, sha256: str) -> None:
        """As ``HttpTransport.download``."""
        attempt = 0
        while True:
            partial = partial_path(out)
            try:
                digest = hashlib.sha256()
                response = await self.send("GET", path, api_key, safe=True, stream=True)
                try:
                    with partial.open("wb") as handle:
                        async for chunk in response.aiter_bytes(1 << 20):
                            handle.write(chunk)
                            digest.update(chunk)
                finally:
                    await response.aclose()
                finish_download(partial, out, digest.hexdigest(), sha256)
                return
            except httpx.TransportError as exc:
                partial.unlink(missing_ok=True)
                if attempt >= self.max_retries:
                    raise APIConnectionError(f"the download of {path} broke: {exc}") from exc
                await self._sleep(backoff(attempt))
                attempt += 1
            except BaseException:
                partial.unlink(missing_ok=True)
                raise


# -- what both transports read the same way ---------------------------------------------------------------------


def check_options(timeout: float | httpx.Timeout | None, max_retries: int | None) -> None:
    """``InvalidInputError`` for a timeout that is not a positive number of seconds, or a retry count below 0."""
    if timeout is not None:
        _timeout(timeout)
    if max_retries is not None:
        _retries(max_retries)


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout <= 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return httpx.Timeout(timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT))


def _retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidInputError(f"max_retries must be a whole number 0 or more, got {max_retries!r}")
    return max_retries


def _client_settings() -> dict[str, Any]:
    from xp_sdk.version import __version__

    return {
        # Drop idle connections before a server does (uvicorn: after 5 s), so a request is never written to a
        # connection the server is closing, where it could not tell whether to retry.
        "limits": httpx.Limits(keepalive_expiry=4.0),
        "headers": {"User-Agent": f"xp-sdk-python/{__version__}", "Accept": "application/json"},
    }


def json_object(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise APIResponseError(
            f"{method} {path} answered {response.status_code} with something that is not JSON", response.status_code
        ) from exc
    if not isinstance(body, dict):
        raise APIResponseError(f"{method} {path} answered with JSON that is not an object", response.status_code)
    return body


def json_line(line: str, path: str) -> dict[str, Any] | None:
    """One object of a JSON-lines stream (None for a blank line)."""
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise APIResponseError(f"the stream {path} is not JSON lines: {exc}") from exc
    if not isinstance(item, dict):
        raise APIResponseError(f"the stream {path} holds JSON that is not an object")
    return item


def partial_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")


def finish_download(partial: Path, out: Path, found: str, sha256: str) -> None:
    if found != sha256:
        raise APIResponseError(f"the downloaded output does not match its audited SHA-256 {sha256}")
    os.replace(partial, out)


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
        body["retry_after"] = retry_after(response) or 1.0
    return error_from_body(body, response.status_code)


def error_from_body(body: Mapping[str, Any], status: int | None) -> XPError:
    """The exception local mode would have raised, rebuilt from ``{"error", "type", "message", ...}`` by the class
    the body names (``XPError.from_wire``)."""
    cls = error_class(str(body.get("type", "")))
    message = str(body.get("message") or ("the server refused the request" + (f" (HTTP {status})" if status else "")))
    exc = cls.from_wire(message, body)
    code = body.get("error")
    if isinstance(code, str) and code != exc.code:
        exc.code = code  # a server-side subclass (payload_too_large) keeps its own code under its public class
    return exc


# -- timing -----------------------------------------------------------------------------------------------------


def backoff(attempt: int) -> float:
    delay: float = min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def retry_after(response: httpx.Response) -> float | None:
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
