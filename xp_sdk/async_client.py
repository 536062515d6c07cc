"""``AsyncClient``: ``Client``'s resources and errors, awaited.

    async with xp_sdk.AsyncClient(api_key="xp_…", base_url="https://…") as client:   # over httpx.AsyncClient
        result = await client.animate("photo.jpg", template="smile", subject="sub_…", out="clip.mp4")
        report = await client.verify("clip.mp4")
        async for event in client.audit.query(subject="sub_…"):                     # every page
            ...

Remote, every operation is ``HttpOperations``' own plan run over ``httpx.AsyncClient``; embedded (``home`` /
``database_url``), the deployment's blocking work runs in worker threads, off the event loop. Each method is the
``Operations`` declaration with the client's key bound, as ``Client``'s are: nothing is declared twice.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

import numpy as np

from xp_sdk.errors import InvalidInputError
from xp_sdk.operations import Operations
from xp_sdk.pages import AsyncEventPager, later_page_filters, walk_start
from xp_sdk.quiet import native_stderr_captured

if TYPE_CHECKING:
    from audit import EventPage
    from xp_sdk.config import Settings
    from xp_sdk.deployment import Deployment
    from xp_sdk.service import Service

P = ParamSpec("P")
R = TypeVar("R")

Prepare = Callable[[inspect.BoundArguments], None]
"""Rewrites a call's arguments in place before it is sent (what ``Client``'s hand-written methods also accept)."""


class AsyncOperations(Protocol):
    """How an ``AsyncClient`` runs an operation: by its ``Operations`` name, with the caller's key first."""

    async def call(self, name: str, api_key: str | None, /, *args: Any, **kwargs: Any) -> Any: ...

    async def aclose(self) -> None: ...


class ServiceInThreads:
    """An embedded ``Service``, each operation run in a worker thread so that the event loop keeps turning while
    a face is matched, a clip generated or the log verified. Cancelling the awaiting task does not stop work that
    has begun: the call returns once its thread is done."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def call(self, name: str, api_key: str | None, /, *args: Any, **kwargs: Any) -> Any:
        import anyio.to_thread

        method = getattr(self.service, name)

        def work() -> Any:
            with native_stderr_captured():
                return method(api_key, *args, **kwargs)

        return await anyio.to_thread.run_sync(work)

    async def aclose(self) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.service.close)


class AsyncResource:
    """A group of operations, each awaited with its client's API key."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class _AsyncOperation(Generic[P, R]):
    """``Operations`` method ``declared`` as a coroutine method of an ``AsyncClient`` or its resources: the same
    signature (less the key) and documentation."""

    def __init__(self, declared: Callable[Concatenate[Any, str | None, P], R], prepare: Prepare | None) -> None:
        self.declared = declared
        self.prepare = prepare
        whole = inspect.signature(declared)
        self.__signature__ = whole.replace(parameters=list(whole.parameters.values())[2:])
        self.__doc__ = declared.__doc__

    @overload
    def __get__(self, owner: None, owner_type: type[Any]) -> _AsyncOperation[P, R]: ...
    @overload
    def __get__(
        self, owner: AsyncClient | AsyncResource, owner_type: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(
        self, owner: AsyncClient | AsyncResource | None, owner_type: type[Any]
    ) -> _AsyncOperation[P, R] | Callable[P, Coroutine[Any, Any, R]]:
        if owner is None:
            return self
        client = owner if isinstance(owner, AsyncClient) else owner._client
        name, prepare, signature = self.declared.__name__, self.prepare, self.__signature__

        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if prepare is not None:
                bound = signature.bind(*args, **kwargs)
                prepare(bound)
                args, kwargs = bound.args, bound.kwargs  # type: ignore[assignment]
            result: R = await client._ops.call(name, client._api_key, *args, **kwargs)
            return result

        call.__name__ = call.__qualname__ = name
        call.__doc__ = self.__doc__
        call.__signature__ = signature  # type: ignore[attr-defined]
        return call


def operation(
    declared: Callable[Concatenate[Any, str | None, P], R], *, prepare: Prepare | None = None
) -> _AsyncOperation[P, R]:
    """``declared`` (an ``Operations`` method) as a coroutine method of an async client or resource."""
    return _AsyncOperation(declared, prepare)


class _AsyncPaged(Generic[P]):
    """A list operation that takes a ``cursor``: await its answer for one page, or ``async for`` over it for every
    event of every page."""

    def __init__(self, declared: Callable[Concatenate[Any, str | None, P], EventPage]) -> None:
        self.operation = _AsyncOperation(declared, None)
        self.declared = declared
        self.__signature__ = self.operation.__signature__
        self.__doc__ = declared.__doc__

    @overload
    def __get__(self, owner: None, owner_type: type[Any]) -> _AsyncPaged[P]: ...
    @overload
    def __get__(self, owner: AsyncClient | AsyncResource, owner_type: type[Any]) -> Callable[P, AsyncEventPager]: ...
    def __get__(
        self, owner: AsyncClient | AsyncResource | None, owner_type: type[Any]
    ) -> _AsyncPaged[P] | Callable[P, AsyncEventPager]:
        if owner is None:
            return self
        call = self.operation.__get__(owner, owner_type)

        def pager(*args: P.args, **kwargs: P.kwargs) -> AsyncEventPager:
            later = later_page_filters(kwargs, walk_start())

            async def fetch(cursor: str | None) -> EventPage:
                if cursor is None:
                    return await call(*args, **kwargs)
                return await call(*args, **{**later, "cursor": cursor})

            return AsyncEventPager(fetch)

        pager.__name__ = pager.__qualname__ = self.declared.__name__
        pager.__doc__ = self.__doc__
        pager.__signature__ = self.__signature__  # type: ignore[attr-defined]
        return pager


def paged(declared: Callable[Concatenate[Any, str | None, P], EventPage]) -> _AsyncPaged[P]:
    return _AsyncPaged(declared)


def _resolve_template(bound: inspect.BoundArguments) -> None:
    """A template file of the caller's (or a built-in's name) read into what the operation takes, as
    ``Client.animate`` does."""
    from xp_sdk.engine.templates import resolve_template

    template = bound.arguments.get("template")
    if template is not None:
        bound.arguments["template"] = resolve_template(template)


def _photo_list(bound: inspect.BoundArguments) -> None:
    """One photo given alone, as ``Client.subjects.register`` accepts it."""
    photos = bound.arguments["photos"]
    if isinstance(photos, str | os.PathLike | np.ndarray):
        bound.arguments["photos"] = [photos]


class AsyncClient:
    """One API key talking to one deployment, awaited: remote (``base_url``, over ``httpx.AsyncClient``) or in
    process (``home`` / ``database_url``, the blocking work in worker threads). The arguments are ``Client``'s.

    Without an API key, a remote client's ``verify`` answers the server's public verdict (``PublicVerification``).
    A ``progress`` callback runs on the event loop (remote) or in the worker thread (embedded)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        base_url: str | None = None,
        policy_paths: Sequence[str | os.PathLike[str]] | None = None,
        face_match_threshold: float | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
    ) -> None:
        from xp_sdk.variables import environment

        base_url = base_url or environment("base_url")
        self._service: Service | None = None
        self._ops: AsyncOperations
        if base_url is not None:
            if home is not None or database_url is not None or policy_paths is not None:
                raise InvalidInputError("a remote client (base_url) takes no home, database_url or policy_paths")
            from xp_sdk.remote import AsyncHttpOperations

            self._api_key = api_key or environment("api_key")
            self._ops = AsyncHttpOperations(base_url, timeout=timeout, max_retries=max_retries)
        else:
            from xp_sdk.client import Client

            # The embedded deployment is opened as Client opens it (settings, database, policies), once, here.
            embedded = Client(
                api_key, home=home, database_url=database_url, policy_paths=policy_paths,
                face_match_threshold=face_match_threshold,
            )  # fmt: skip
            assert embedded._service is not None
            self._api_key = embedded._api_key
            self._service = embedded._service
            self._ops = ServiceInThreads(embedded._service)
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._bind_resources()

    def _bind_resources(self) -> None:
        self.audit = AsyncAuditResource(self)
        self.subjects = AsyncSubjectsResource(self)
        self.consents = AsyncConsentsResource(self)
        self.keys = AsyncKeysResource(self)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> AsyncClient:
        """A copy with another ``timeout`` or ``max_retries``, sharing this client's connection pool or
        deployment (closing either closes both)."""
        from xp_sdk.remote import AsyncHttpOperations
        from xp_sdk.transport import check_options

        check_options(timeout, max_retries)
        copied = object.__new__(AsyncClient)
        copied.__dict__.update(self.__dict__)
        if isinstance(self._ops, AsyncHttpOperations):
            copied._ops = self._ops.with_options(timeout=timeout, max_retries=max_retries)
        if timeout is not None:
            copied.timeout = timeout
        if max_retries is not None:
            copied.max_retries = max_retries
        copied._bind_resources()
        return copied

    @property
    def settings(self) -> Settings:
        """The resolved settings of an embedded client."""
        return self.deployment.settings

    @property
    def deployment(self) -> Deployment:
        """The opened deployment of an embedded client (a remote one has none)."""
        if self._service is None:
            raise InvalidInputError("a remote client has no local deployment")
        return self._service.deployment

    async def close(self) -> None:
        await self._ops.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    animate = operation(Operations.animate, prepare=_resolve_template)
    verify = operation(Operations.verify)


class AsyncAuditResource(AsyncResource):
    """``client.audit``, awaited. ``query`` is awaited for one page, or walked with ``async for``."""

    query = paged(Operations.audit_query)
    show = operation(Operations.audit_show)
    verify = operation(Operations.audit_verify)
    consistency = operation(Operations.audit_consistency)
    abandoned = operation(Operations.audit_abandoned)
    checkpoint = operation(Operations.audit_checkpoint)
    checkpoints = operation(Operations.audit_checkpoints)


class AsyncSubjectsResource(AsyncResource):
    """``client.subjects``, awaited."""

    register = operation(Operations.register_subject, prepare=_photo_list)
    get = operation(Operations.subject)
    list = operation(Operations.subjects)


class AsyncConsentsResource(AsyncResource):
    """``client.consents``, awaited."""

    grant = operation(Operations.grant_consent)
    revoke = operation(Operations.revoke_consent)
    list = operation(Operations.consents)
    challenge = operation(Operations.consent_challenge)
    grant_by_video = operation(Operations.grant_consent_by_video)


class AsyncKeysResource(AsyncResource):
    """``client.keys``, awaited."""

    create = operation(Operations.create_key)
    list = operation(Operations.keys)
    revoke = operation(Operations.revoke_key)
