"""Pages of audit events that walk on to the next page when iterated, as openai-python's list methods do.

``client.audit.query(...)`` fetches one page (``events``, ``next_cursor``: still an ``EventPage``); iterating it
yields every event of that page and of every later one, fetching each page when it is reached:

    for event in client.audit.query(subject="sub_…"):          # every matching event
    async for event in async_client.audit.query(subject="sub_…"):
    page = await async_client.audit.query(subject="sub_…")     # one page

A walk covers the events written before it began: every page read is itself logged, and that event may match the
filters (a query by ``generation_id`` is logged under that generation), so pages after the first are asked with
``until`` at the walk's start by this machine's clock (or the caller's own ``until``, when earlier); a walk
always ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import PrivateAttr

from audit import AuditEvent, EventPage


def later_page_filters(filters: Mapping[str, Any], began: datetime) -> dict[str, Any]:
    """``filters`` for the pages after the first of a walk that began at ``began``: ``until`` no later."""
    given = filters.get("until")
    comparable = isinstance(given, datetime) and given.tzinfo is not None
    if given is None or (comparable and given > began):
        return {**filters, "until": began}
    return dict(filters)  # the caller's (earlier, or one the operation will refuse as it stands)


def walk_start() -> datetime:
    return datetime.now(UTC)


class EventPages(EventPage):
    """One page of events; iterating it walks this page and every later one."""

    _fetch: Callable[[str], EventPage] | None = PrivateAttr(default=None)

    @classmethod
    def first(cls, page: EventPage, fetch: Callable[[str], EventPage]) -> EventPages:
        """``page``, able to fetch the page after it (``fetch(cursor)``)."""
        pages = cls.model_validate(page.model_dump())
        pages._fetch = fetch
        return pages

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    def next_page(self) -> EventPages | None:
        """The page after this one (None when this is the last), fetched now."""
        if self.next_cursor is None or self._fetch is None:
            return None
        return EventPages.first(self._fetch(self.next_cursor), self._fetch)

    def iter_pages(self) -> Iterator[EventPages]:
        """This page and each later one, fetched as it is reached."""
        page: EventPages | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[AuditEvent]:  # type: ignore[override]  # events, not the model's fields
        for page in self.iter_pages():
            yield from page.events


class AsyncEventPages(EventPage):
    """One page of events fetched by an ``AsyncClient``; ``async for`` walks this page and every later one."""

    _fetch: Callable[[str], Awaitable[EventPage]] | None = PrivateAttr(default=None)

    @classmethod
    def first(cls, page: EventPage, fetch: Callable[[str], Awaitable[EventPage]]) -> AsyncEventPages:
        pages = cls.model_validate(page.model_dump())
        pages._fetch = fetch
        return pages

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    async def next_page(self) -> AsyncEventPages | None:
        if self.next_cursor is None or self._fetch is None:
            return None
        return AsyncEventPages.first(await self._fetch(self.next_cursor), self._fetch)

    async def iter_pages(self) -> AsyncIterator[AsyncEventPages]:
        page: AsyncEventPages | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def _events(self) -> AsyncIterator[AuditEvent]:
        async for page in self.iter_pages():
            for event in page.events:
                yield event

    def __aiter__(self) -> AsyncIterator[AuditEvent]:
        return self._events()


class AsyncEventPager:
    """What ``AsyncClient.audit.query(...)`` returns: await it for the first page, or ``async for`` over it for
    every event of every page."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[EventPage]]) -> None:
        self._fetch = fetch

    async def _first(self) -> AsyncEventPages:
        return AsyncEventPages.first(await self._fetch(None), self._fetch)

    def __await__(self) -> Generator[Any, None, AsyncEventPages]:
        return self._first().__await__()

    async def _events(self) -> AsyncIterator[AuditEvent]:
        async for event in await self._first():
            yield event

    def __aiter__(self) -> AsyncIterator[AuditEvent]:
        return self._events()
