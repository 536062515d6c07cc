"""An HTTP operation written once as a plan, run by either transport.

A plan is a generator: it yields the requests it needs (``Json``, ``Send``, ``Follow``, ``Download``) and is sent
each one's answer, so the work around the requests (checking arguments, building forms, reading answers into
result types) is written once and run over ``HttpTransport`` (``run``) or ``AsyncHttpTransport`` (``arun``). An
exception from a request is thrown into the plan at the ``yield`` that asked for it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from xp_sdk.transport import AsyncHttpTransport, FilesFactory, HttpTransport

R = TypeVar("R")

CLEANUP_SECONDS = 10.0
"""How long a plan's clean-up after a cancellation (cancelling its job) may take."""


@dataclass(frozen=True)
class Json:
    """A request whose answer is a JSON object (sent back to the plan as a dict)."""

    method: str
    path: str
    api_key: str | None
    params: Mapping[str, Any] | None = None
    json_body: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    files: FilesFactory | None = None
    safe: bool | None = None
    idempotent: bool = False


@dataclass(frozen=True)
class Send:
    """A request whose answer's body is not needed (None is sent back)."""

    method: str
    path: str
    api_key: str | None


@dataclass(frozen=True)
class Follow:
    """A JSON-lines stream read until an object is ``finished`` (that object is sent back), ``each`` called on
    every object on the way."""

    path: str
    api_key: str | None
    finished: Callable[[dict[str, Any]], bool]
    each: Callable[[dict[str, Any]], None] = field(default=lambda item: None)


@dataclass(frozen=True)
class Download:
    """A file fetched into ``out`` atomically and checked against ``sha256`` (None is sent back)."""

    path: str
    api_key: str | None
    out: Path
    sha256: str


Step = Json | Send | Follow | Download
Plan = Generator[Step, Any, R]


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is the caller stopping the work (Ctrl-C, or a cancelled task), not a failure of it."""
    trio = sys.modules.get("trio")
    return isinstance(exc, KeyboardInterrupt | asyncio.CancelledError) or (
        trio is not None and isinstance(exc, trio.Cancelled)
    )


def run(plan: Plan[R], http: HttpTransport) -> R:
    answer: Any = None
    failure: BaseException | None = None
    while True:
        try:
            step = plan.throw(failure) if failure is not None else plan.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        answer, failure = None, None
        try:
            answer = _perform(step, http)
        except BaseException as exc:
            failure = exc


async def arun(plan: Plan[R], http: AsyncHttpTransport) -> R:
    import anyio

    answer: Any = None
    failure: BaseException | None = None
    stopping = False
    while True:
        try:
            step = plan.throw(failure) if failure is not None else plan.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        answer, failure = None, None
        try:
            if stopping:  # the plan is cleaning up after a cancellation: let that finish, briefly
                with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
                    answer = await _aperform(step, http)
            else:
                answer = await _aperform(step, http)
        except BaseException as exc:
            failure = exc
            stopping = stopping or interrupted(exc)


def _perform(step: Step, http: HttpTransport) -> Any:
    match step:
        case Json():
            return http.json(
                step.method, step.path, step.api_key, params=step.params, json_body=step.json_body, data=step.data,
                files=step.files, safe=step.safe, idempotent=step.idempotent,
            )  # fmt: skip
        case Send():
            http.send(step.method, step.path, step.api_key)
            return None
        case Follow():
            last: dict[str, Any] | None = None
            for last in http.follow(step.path, step.api_key, finished=step.finished):
                step.each(last)
            return last
        case Download():
            http.download(step.path, step.api_key, step.out, step.sha256)
            return None


async def _aperform(step: Step, http: AsyncHttpTransport) -> Any:
    match step:
        case Json():
            return await http.json(
                step.method, step.path, step.api_key, params=step.params, json_body=step.json_body, data=step.data,
                files=step.files, safe=step.safe, idempotent=step.idempotent,
            )  # fmt: skip
        case Send():
            await http.send(step.method, step.path, step.api_key)
            return None
        case Follow():
            return await http.follow(step.path, step.api_key, finished=step.finished, each=step.each)
        case Download():
            await http.download(step.path, step.api_key, step.out, step.sha256)
            return None
