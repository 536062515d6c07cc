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
import email.utils
import hashlib
import json
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

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


class HttpTransport:
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
        headers: dict[str, str] = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if idempotent:
            headers["Idempotency-Key"] = f"xp-{uuid.uuid4()}"
        attempt = 0
        while True:
            with contextlib.ExitStack() as stack:
                request = self._http.build_request(
                    method, path, params=params, json=json_body, data=data,
                    files=files(stack) if files is not None else None, headers=headers,
                )  # fmt: skip
                try:
                    # The whole body is sent before send() returns, so the files may close after it.
                    response = self._http.send(request, stream=True)
                except httpx.TransportError as exc:
                    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                    if attempt < self.max_retries and (retry_safe or never_sent):
                        self._sleep(backoff(attempt))
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
                        if not line.strip():
                            continue
                        item = json.loads(line)
                        failures = 0
                        yield item
                        if finished(item):
                            return
            except httpx.TransportError as exc:  # the stream broke after it began
                failures += 1
                if failures > self.max_retries:
                    raise APIConnectionError(f"lost the stream {path} on {self.base_url}: {exc}") from exc
                self._sleep(backoff(failures - 1))
            except ValueError as exc:
                raise APIResponseError(f"the stream {path} is not JSON lines: {exc}") from exc

    def download(self, path: str, api_key: str | None, out: Path, sha256: str) -> None:
        """GET ``path`` into ``out`` atomically: a temporary file beside it, checked against ``sha256``, renamed
        into place; a download that breaks starts again (with backoff), and nothing is left when it fails."""
        attempt = 0
        while True:
            partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
            try:
                digest = hashlib.sha256()
                response = self.send("GET", path, api_key, safe=True, stream=True)
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
                    raise APIConnectionError(f"the download of {path} broke: {exc}") from exc
                self._sleep(backoff(attempt))
                attempt += 1
            except BaseException:
                partial.unlink(missing_ok=True)
                raise

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
