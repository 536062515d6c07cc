"""``client.audit.query(...)`` answers one page that, iterated, walks every later page (openai-python's list
methods): the same events, in the same order, as one page big enough for all of them. Embedded and remote, and
``async for`` on the ``AsyncClient``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from xp_sdk import AsyncClient, AsyncEventPages, Client, EventPages

from ..server.conftest import Deployed, serve_deployment

PAGE = 2


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, faces: Path) -> Iterator[Deployed]:
    with serve_deployment(tmp_path_factory.mktemp("paging"), faces) as served:
        yield served


@pytest.fixture(scope="module")
def everything(deployed: Deployed) -> list[int]:
    """Every event's sequence number, from one page that holds them all (the set-up wrote more than a few)."""
    page = deployed.admin.audit.query(limit=1000)
    assert page.next_cursor is None and len(page.events) > 2 * PAGE
    return [event.seq for event in page.events]


@pytest.mark.parametrize("transport", ["remote", "embedded"])
def test_iterating_a_page_walks_every_page(deployed: Deployed, everything: list[int], transport: str) -> None:
    client = (
        Client(deployed.admin_key, base_url=deployed.url)
        if transport == "remote"
        else deployed.local(deployed.admin_key)
    )
    with client:
        first = client.audit.query(limit=PAGE)
        assert isinstance(first, EventPages) and len(first.events) == PAGE and first.has_next_page()
        walked = [event.seq for event in first]
        pages = list(client.audit.query(limit=PAGE).iter_pages())
    assert walked[: len(everything)] == everything  # events written since are walked too, after these
    assert [len(p.events) for p in pages[:-1]] == [PAGE] * (len(pages) - 1) and not pages[-1].has_next_page()


def test_one_page_is_still_one_page(deployed: Deployed, everything: list[int]) -> None:
    page = deployed.admin.audit.query(limit=PAGE)
    second = page.next_page()
    assert [e.seq for e in page.events] == everything[:PAGE]
    assert second is not None and [e.seq for e in second.events] == everything[PAGE : 2 * PAGE]
    assert page.model_dump(mode="json").keys() == {"events", "next_cursor"}  # what `xp audit query --json` prints


def test_filters_hold_on_every_page(deployed: Deployed) -> None:
    types = {event.type for event in deployed.admin.audit.query(type="subject.registered", limit=1)}
    assert types == {"subject.registered"}


@pytest.mark.parametrize("transport", ["remote", "embedded"])
def test_async_for_walks_every_page(deployed: Deployed, everything: list[int], transport: str) -> None:
    async def walk() -> tuple[list[int], list[int], list[int]]:
        client = (
            AsyncClient(deployed.admin_key, base_url=deployed.url)
            if transport == "remote"
            else AsyncClient(deployed.admin_key, home=deployed.home)
        )
        async with client:
            walked = [event.seq async for event in client.audit.query(limit=PAGE)]
            first = await client.audit.query(limit=PAGE)
            assert isinstance(first, AsyncEventPages) and first.has_next_page()
            from_first = [event.seq async for event in first]
            second = await first.next_page()
            assert second is not None
            return walked, from_first, [e.seq for e in second.events]

    walked, from_first, second = anyio.run(walk)
    assert walked[: len(everything)] == everything and from_first[: len(everything)] == everything
    assert second == everything[PAGE : 2 * PAGE]
