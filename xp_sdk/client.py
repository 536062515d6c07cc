"""``Client``: the product's face. Every call is authenticated, gated and audited.

    client = xp_sdk.Client(api_key="xp_…")                       # embedded: the deployment in XP_HOME
    client = xp_sdk.Client(api_key="xp_…", base_url="https://…")  # remote: the same calls against `xp serve`
    result = client.animate("photo.jpg", template="showcase", subject="sub_…", out="clip.mp4")
    report = client.verify("clip.mp4")
    for event in client.audit.query(subject="sub_…"):          # every page, fetched as reached
        ...
    patient = client.with_options(timeout=3600, max_retries=5)  # a copy with other network settings

``xp_sdk.AsyncClient`` offers the same, awaited.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import numpy as np

from xp_sdk.errors import InvalidInputError
from xp_sdk.operations import Operations, PhotoInput
from xp_sdk.pages import EventPages, later_page_filters, walk_start
from xp_sdk.quiet import native_stderr_captured, quiet_native_logging_defaults
from xp_sdk.remote import HttpOperations
from xp_sdk.transport import check_options

if TYPE_CHECKING:
    # An embedded client's machinery, imported when one is made: a remote client never loads it.
    from audit import EventPage, SubjectInfo
    from xp_sdk.config import Settings
    from xp_sdk.deployment import Deployment
    from xp_sdk.engine import AnimateOptions, ProgressCallback
    from xp_sdk.engine.templates import MotionTemplate
    from xp_sdk.results import AnimationResult
    from xp_sdk.service import Service

P = ParamSpec("P")
R = TypeVar("R")


class Resource:
    """A group of operations, each called with its client's API key."""

    def __init__(self, client: Client) -> None:
        self._client = client


class _Operation(Generic[P, R]):
    """A method that is one ``Operations`` method called with the client's API key: the same signature (less the
    key) and the same documentation, so neither is written twice."""

    def __init__(self, declared: Callable[Concatenate[Any, str | None, P], R]) -> None:
        self.declared = declared
        whole = inspect.signature(declared)
        self.__signature__ = whole.replace(parameters=list(whole.parameters.values())[2:])
        self.__doc__ = declared.__doc__

    @overload
    def __get__(self, owner: None, owner_type: type[Any]) -> _Operation[P, R]: ...
    @overload
    def __get__(self, owner: Client | Resource, owner_type: type[Any]) -> Callable[P, R]: ...
    def __get__(self, owner: Client | Resource | None, owner_type: type[Any]) -> _Operation[P, R] | Callable[P, R]:
        if owner is None:
            return self
        client = owner if isinstance(owner, Client) else owner._client
        method: Callable[..., R] = getattr(client._ops, self.declared.__name__)

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            with client._quiet():
                return method(client._api_key, *args, **kwargs)

        call.__name__ = call.__qualname__ = self.declared.__name__
        call.__doc__ = self.__doc__
        call.__signature__ = self.__signature__  # type: ignore[attr-defined]
        return call


def operation(declared: Callable[Concatenate[Any, str | None, P], R]) -> _Operation[P, R]:
    """``declared`` (an ``Operations`` method) as a method of a client or a resource."""
    return _Operation(declared)


class _Paged(Generic[P]):
    """A list operation that takes a ``cursor``: the same signature, answering ``EventPages`` (one page, that walks
    every later page when iterated)."""

    def __init__(self, declared: Callable[Concatenate[Any, str | None, P], EventPage]) -> None:
        self.operation = _Operation(declared)
        self.declared = declared
        self.__signature__ = self.operation.__signature__
        self.__doc__ = declared.__doc__

    @overload
    def __get__(self, owner: None, owner_type: type[Any]) -> _Paged[P]: ...
    @overload
    def __get__(self, owner: Client | Resource, owner_type: type[Any]) -> Callable[P, EventPages]: ...
    def __get__(self, owner: Client | Resource | None, owner_type: type[Any]) -> _Paged[P] | Callable[P, EventPages]:
        if owner is None:
            return self
        call = self.operation.__get__(owner, owner_type)

        def paged(*args: P.args, **kwargs: P.kwargs) -> EventPages:
            later = later_page_filters(kwargs, walk_start())

            def fetch(cursor: str) -> EventPage:
                return call(*args, **{**later, "cursor": cursor})

            return EventPages.first(call(*args, **kwargs), fetch)

        paged.__name__ = paged.__qualname__ = self.declared.__name__
        paged.__doc__ = self.__doc__
        paged.__signature__ = self.__signature__  # type: ignore[attr-defined]
        return paged


def paged(declared: Callable[Concatenate[Any, str | None, P], EventPage]) -> _Paged[P]:
    """``declared`` (an ``Operations`` method that pages with ``cursor``) as a method whose answer walks on to the
    next page when iterated."""
    return _Paged(declared)


class Client:
    """One API key talking to one deployment: in process (``home`` / ``database_url``) or remote (``base_url``).

    Safe to share across threads; parallel ``animate`` calls produce separately audited outputs. Without an API
    key, a remote client's ``verify`` answers the server's public verdict (``PublicVerification``).

    ``timeout`` (seconds a request may take) and ``max_retries`` govern a remote client's requests; an embedded
    client keeps them but has no network for them to govern."""

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
        if base_url is not None:
            if home is not None or database_url is not None or policy_paths is not None:
                raise InvalidInputError("a remote client (base_url) takes no home, database_url or policy_paths")
            self._api_key = api_key or environment("api_key")
            self._ops: Operations = HttpOperations(base_url, timeout=timeout, max_retries=max_retries)
        else:
            quiet_native_logging_defaults()  # before the engine loads OpenCV or MediaPipe
            from xp_sdk.config import Settings
            from xp_sdk.deployment import Deployment
            from xp_sdk.service import Service

            settings = Settings.resolve(
                home=home,
                api_key=api_key,
                database_url=database_url,
                policy_paths=tuple(Path(p) for p in policy_paths) if policy_paths is not None else None,
                face_match_threshold=face_match_threshold,
            )
            self._api_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
            self._service = Service(Deployment.open(settings))
            self._ops = self._service
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._bind_resources()

    def _bind_resources(self) -> None:
        self.audit = AuditResource(self)
        self.subjects = SubjectsResource(self)
        self.consents = ConsentsResource(self)
        self.keys = KeysResource(self)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> Client:
        """A copy of this client with another ``timeout`` or ``max_retries`` (those not given stay as they are),
        sharing its connection pool or deployment: closing either closes both.

            client.with_options(timeout=3600).animate(...)"""
        check_options(timeout, max_retries)
        copied = copy.copy(self)
        if isinstance(self._ops, HttpOperations):
            copied._ops = self._ops.with_options(timeout=timeout, max_retries=max_retries)
        if timeout is not None:
            copied.timeout = timeout
        if max_retries is not None:
            copied.max_retries = max_retries
        copied._bind_resources()
        return copied

    def _quiet(self) -> AbstractContextManager[None]:
        """Native libraries' chatter kept off stderr while an embedded operation runs (``xp_sdk.quiet``)."""
        return native_stderr_captured() if self._service is not None else nullcontext()

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

    def close(self) -> None:
        self._ops.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def animate(
        self,
        source: PhotoInput,
        *,
        subject: str,
        out: str | os.PathLike[str],
        driving: str | os.PathLike[str] | None = None,
        template: str | os.PathLike[str] | MotionTemplate | None = None,
        options: AnimateOptions | None = None,
        purpose: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> AnimationResult:
        """Animate ``source`` (a photo of ``subject``) with a driving video or a motion template into ``out``.
        ``template``: a built-in template's name, a template JSON file of yours, or a ``MotionTemplate``.

        Refusals raise an ``AccessDeniedError`` subclass (``ConsentRequiredError``, ``FaceMismatchError``,
        ``PermissionDeniedError``, ``PolicyDeniedError``) and are logged; no file is left on any failure."""
        from xp_sdk.engine.templates import resolve_template

        with self._quiet():
            return self._ops.animate(
                self._api_key, source, subject=subject, out=out, driving=driving,
                template=resolve_template(template) if template is not None else None,
                options=options, purpose=purpose, progress=progress,
            )  # fmt: skip

    verify = operation(Operations.verify)


class AuditResource(Resource):
    """``client.audit``: query, show, verify, checkpoint. Needs ``audit:read``; a key sees its own tenant's
    events unless it also holds ``keys:admin``. ``query`` answers one page that, iterated, walks every later
    page."""

    query = paged(Operations.audit_query)
    show = operation(Operations.audit_show)
    verify = operation(Operations.audit_verify)
    consistency = operation(Operations.audit_consistency)
    abandoned = operation(Operations.audit_abandoned)
    checkpoint = operation(Operations.audit_checkpoint)
    checkpoints = operation(Operations.audit_checkpoints)


class SubjectsResource(Resource):
    """``client.subjects``: the people who may be animated (and the tenant's protected persons)."""

    def register(self, name: str, photos: Sequence[PhotoInput] | PhotoInput, *, protected: bool = False) -> SubjectInfo:
        """Register a person from one or more reference photos (one photo may be given alone), each showing
        their face."""
        listed: list[PhotoInput] = [photos] if isinstance(photos, (str, os.PathLike, np.ndarray)) else list(photos)
        with self._client._quiet():
            return self._client._ops.register_subject(self._client._api_key, name, listed, protected=protected)

    get = operation(Operations.subject)
    list = operation(Operations.subjects)


class ConsentsResource(Resource):
    """``client.consents``: who agreed to be animated, by whom, for what, until when, on what evidence."""

    grant = operation(Operations.grant_consent)
    revoke = operation(Operations.revoke_consent)
    list = operation(Operations.consents)
    challenge = operation(Operations.consent_challenge)
    grant_by_video = operation(Operations.grant_consent_by_video)


class KeysResource(Resource):
    """``client.keys``: API key administration (the ``keys:admin`` scope)."""

    create = operation(Operations.create_key)
    list = operation(Operations.keys)
    revoke = operation(Operations.revoke_key)
